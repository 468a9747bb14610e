"""Fixtures shared by the notebook-side tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell

from jupyter_ext.kernel.magics import NbentoMagics


@pytest.fixture
def ip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, NbentoMagics]]:
    """An in-process IPython shell with the nbento magics, working in `tmp_path`; its hooks are
    unregistered and any server it started is stopped afterwards."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    shell = InteractiveShell.instance()
    magics = NbentoMagics(shell)
    shell.register_magics(magics)
    yield shell, magics
    shell.events.unregister("pre_run_cell", magics._pre_run_cell)
    shell.events.unregister("post_run_cell", magics._post_run_cell)
    if magics.server is not None:
        magics.server.stop()
