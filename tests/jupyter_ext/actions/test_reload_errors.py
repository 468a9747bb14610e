"""A change that did not load is said where the user edits: service.py lines map back to the
notebook cell and its line, and a capture failure names the failing cell."""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_notebook

from jupyter_ext.actions.reload_errors import capture_failure, module_line_to_cell, server_error
from jupyter_ext.capture.cells import CaptureError
from jupyter_ext.capture.notebook import build_service

API = "%%nbento api shout\n\ndef shout(text: str) -> str:\n    return text.upper()\nraise boom\n"


def _notebook(tmp_path: Path, api_source: str = API) -> Path:
    path = tmp_path / "loud.ipynb"
    cells = [
        new_code_cell("x = 1  # training, not captured"),
        new_code_cell("%%nbento preprocess\nimport os\n"),
        new_code_cell(api_source),
    ]
    for number, cell in enumerate(cells):
        cell["id"] = f"cell-{number}"
    nbformat.write(new_notebook(cells=cells), str(path))
    return path


def test_a_service_py_line_maps_to_the_notebook_cell_and_line(tmp_path: Path) -> None:
    _, written = build_service(_notebook(tmp_path))
    lines = written.module_path.read_text().splitlines()
    boom = lines.index("raise boom") + 1  # the line the server's traceback names
    found = module_line_to_cell(written.folder, boom)
    assert found == {"cell_id": "cell-2", "cell_index": 2,
                     "cell_label": "notebook cell 3 (api shout)", "line": 5}
    assert module_line_to_cell(written.folder, 1) is None  # the generated header
    error = server_error({"message": "NameError: name 'boom' is not defined",
                          "file": str(written.module_path), "line": boom}, written.folder, 4)
    assert error is not None
    assert error["text"] == ("notebook cell 3 (api shout) line 5: NameError: name 'boom' is not "
                             "defined. The server keeps answering with generation 4 until the "
                             "cell is fixed.")


def test_an_error_outside_the_module_is_still_one_sentence(tmp_path: Path) -> None:
    error = server_error({"message": "ImportError: no module x", "file": "/lib/x.py", "line": 3},
                         tmp_path, 2)
    assert error is not None and error["cell_id"] is None
    assert error["text"].startswith("The last code change did not load (x.py, line 3)")


def test_a_syntax_error_names_its_cell_and_line(tmp_path: Path) -> None:
    notebook = _notebook(tmp_path, "%%nbento api shout\ndef shout(text: str) -> str:\n    return (text\n")
    try:
        build_service(notebook)
    except CaptureError as exc:
        failure = capture_failure(notebook, exc)
    else:
        raise AssertionError("a syntax error must fail the capture")
    assert failure["cell_id"] == "cell-2" and failure["cell_index"] == 2
    assert failure["line"] == 3
    assert failure["text"].startswith("notebook cell 3 (api shout) line 3:")
