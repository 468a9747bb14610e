"""One capture: the kernel's writer and the saved notebook's marks (magic lines, the panel's
metadata and tags) give one service module, so a re-run never drops a panel-tagged API."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nbformat
import pytest
import yaml
from nbformat.v4 import new_code_cell, new_notebook

from jupyter_ext.capture.notebook import capture_notebook, render_module

PRE = "%%nbento preprocess\nSUFFIX = '!'\ndef clean(texts):\n    return [t.lower() for t in texts]"
API = "%%nbento api classify\ndef classify(texts: list[str]) -> dict:\n    return {'labels': clean(texts)}"
TAGGED = "def shout(text: str) -> dict:\n    return {'said': text.upper() + SUFFIX}"



def write_notebook(path: Path, tagged_as: str = "metadata") -> Path:
    tagged = new_code_cell(TAGGED)
    if tagged_as == "metadata":
        tagged.metadata["nbento"] = {"kind": "api", "name": "shout"}
    else:
        tagged.metadata["tags"] = ["nbento:api shout"]
    nb = new_notebook(cells=[new_code_cell(PRE), tagged, new_code_cell("x = 1"), new_code_cell(API)])
    for index, cell in enumerate(nb.cells):
        cell["id"] = f"c{index}"
    nbformat.write(nb, str(path))
    return path


def module(tmp_path: Path) -> str:
    return (tmp_path / ".nbento" / "tickets" / "service.py").read_text()


@pytest.mark.parametrize("tagged_as", ["metadata", "tag"])
def test_a_rerun_keeps_an_api_only_tagged_in_the_saved_notebook(
    ip: Any, tmp_path: Path, tagged_as: str
) -> None:
    shell, _ = ip
    notebook = write_notebook(tmp_path / "tickets.ipynb", tagged_as)
    shell.run_cell(PRE, cell_id="c0")
    shell.run_cell(API, cell_id="c3")
    written = module(tmp_path)
    assert "_nbento_api(shout, name='shout')" in written  # never run here: from the saved file
    assert "_nbento_api(classify, name='classify')" in written
    offline = capture_notebook(notebook)
    assert written == render_module(offline.cells, offline.service_name)  # one capture

    shell.run_cell(PRE.replace("'!'", "'?'"), cell_id="c0")  # the re-run of the issue
    written = module(tmp_path)
    assert "_nbento_api(shout, name='shout')" in written and "SUFFIX = '?'" in written
    manifest = yaml.safe_load((tmp_path / ".nbento" / "tickets" / "service.yaml").read_text())
    assert [a["name"] for a in manifest["apis"]] == ["shout", "classify"]


def test_the_kernel_source_of_a_tagged_cell_wins_over_the_saved_file(ip: Any, tmp_path: Path) -> None:
    shell, _ = ip
    write_notebook(tmp_path / "tickets.ipynb")
    shell.run_cell(PRE, cell_id="c0")
    shell.run_cell(API, cell_id="c3")
    assert "+ SUFFIX + '!!'" not in module(tmp_path)
    # Edited in the front end but not saved yet, then run: the kernel serves what it ran.
    result = shell.run_cell(TAGGED.replace("+ SUFFIX", "+ SUFFIX + '!!'"), cell_id="c1")
    assert result.success
    assert "+ SUFFIX + '!!'" in module(tmp_path)
    # A failing run does not change what is served.
    shell.run_cell(TAGGED.replace("+ SUFFIX", "+ undefined_name") + "\nshout('x')", cell_id="c1")
    assert "+ SUFFIX + '!!'" in module(tmp_path) and "undefined_name" not in module(tmp_path)


def test_a_cell_run_without_its_magic_stays_out_until_saved(
    ip: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shell, magics = ip
    write_notebook(tmp_path / "tickets.ipynb")
    shell.run_cell(PRE, cell_id="c0")
    shell.run_cell(API, cell_id="c3")
    shell.run_cell("%%nbento preprocess\nSUFFIX = '!'", cell_id="c9")  # an unsaved new cell
    shell.run_cell(PRE.split("\n", 1)[1], cell_id="c0")  # magic line deleted, not saved yet
    assert "no longer captured" in capsys.readouterr().out
    written = module(tmp_path)
    assert "def clean" not in written  # the saved file still has the magic: the kernel wins
    assert [c.cell_id for c in magics.state.ordered()] == ["c1", "c3", "c9"]


def test_free_names_are_recorded_for_the_build(ip: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shell, _ = ip
    write_notebook(tmp_path / "tickets.ipynb")
    shell.run_cell("SUFFIX = '!'", cell_id="c2")  # defined, but in a cell that is not captured
    shell.run_cell(API, cell_id="c3")
    err = capsys.readouterr().err
    manifest = yaml.safe_load((tmp_path / ".nbento" / "tickets" / "service.yaml").read_text())
    # clean() comes from the saved file's preprocess cell c0; SUFFIX is defined there too.
    assert manifest["free_names"] == []
    shell.run_cell(PRE.split("\n", 1)[1], cell_id="c0")  # c0 no longer captured
    err = capsys.readouterr().err
    manifest = yaml.safe_load((tmp_path / ".nbento" / "tickets" / "service.yaml").read_text())
    names = {f["name"]: f for f in manifest["free_names"]}
    assert set(names) == {"SUFFIX", "clean"}
    assert names["clean"]["message"] == (
        "cell 4 (api classify) line 3 uses 'clean', which no captured cell defines; defined "
        "in cell 1 (id c0), which is not captured: capture it with %%nbento preprocess or move "
        "the definition"
    )
    assert names["clean"]["message"] in err  # what the kernel printed is what build refuses
