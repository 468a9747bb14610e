"""A captured cell that loads a model by a tag `nbento build` cannot pin is reported when the
cell runs, with the notebook cell and line, not only when the build refuses it."""

from __future__ import annotations

from typing import Any

import pytest

LITERAL = "%%nbento preprocess\nimport nbento\ndef scale():\n    return nbento.load('scale:latest')"
COMPUTED = "%%nbento preprocess\nimport nbento\ndef scale(v):\n    return nbento.load(f'scale:{v}')"


def test_a_tag_the_build_cannot_pin_is_reported_on_capture(
    ip: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    shell, _ = ip
    assert shell.run_cell(LITERAL, cell_id="lit").success
    assert "loads a model" not in capsys.readouterr().err
    assert shell.run_cell(COMPUTED, cell_id="comp").success
    err = capsys.readouterr().err
    assert "nbento: warning: cell comp (preprocess) line 4 loads a model by a tag known only " \
           "when it runs (nbento.load(f'scale:{v}'))" in err, err
    assert 'runner("NAME:latest")' in err
