"""A notebook is input from outside (downloaded, shared, opened from a repository): nothing in
its JSON but the code of its captured cells may become code of the service. A cell id that
carries a newline stays inside the marker comment, through offline capture and through the
panel's Start."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import httpx
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from jupyter_ext.capture.notebook import build_service, capture_notebook, cell_line, render_module

API = "%%nbento api echo\ndef echo(texts: list[str]) -> dict:\n    return {'texts': texts}"


def evil_id(marker: Path) -> str:
    return f"x) ----\nimport os; os.system('touch {marker}')\n# ----"


def write_notebook(path: Path, cell_id: str) -> Path:
    nb = new_notebook(cells=[new_code_cell("%%nbento preprocess\nPREFIX = ''"), new_code_cell(API)])
    nb.cells[0]["id"] = "pre"
    nb.cells[1]["id"] = cell_id
    path.write_text(json.dumps(nb))  # crafted by hand: nbformat.write would refuse the id
    return path


def imported_modules(text: str) -> set[str]:
    return {alias.name for node in ast.walk(ast.parse(text)) if isinstance(node, ast.Import)
            for alias in node.names}


def test_a_cell_id_with_a_newline_stays_in_its_comment(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    notebook = write_notebook(tmp_path / "nb.ipynb", evil_id(marker))
    _, written = build_service(notebook)
    text = written.module_path.read_text()
    assert "os" not in imported_modules(text), text
    assert not any(line.startswith("import os") for line in text.splitlines())
    # errors still map back to the cell whose id was escaped
    cells = capture_notebook(notebook).cells
    api_line = next(n for n, line in enumerate(text.splitlines(), 1) if "return {'texts'" in line)
    found = cell_line(cells, text, api_line)
    assert found is not None and found[0].cell_id == evil_id(marker) and found[1] == 3


def test_a_plain_cell_id_is_shown_as_is(tmp_path: Path) -> None:
    notebook = write_notebook(tmp_path / "nb.ipynb", "api-cell_01")
    text = render_module(capture_notebook(notebook).cells, "nb")
    assert "# ---- api echo (cell api-cell_01) ----" in text


def test_the_panels_start_does_not_run_a_cell_id(tmp_path: Path) -> None:
    from jupyter_ext.actions.dev_servers import DevServers

    marker = tmp_path / "pwned"
    notebook = write_notebook(tmp_path / "nb.ipynb", evil_id(marker))
    servers = DevServers()
    server = servers.start(notebook)
    try:
        r = httpx.post(f"{server.url}/echo", json={"texts": ["hi"]}, timeout=30, trust_env=False)
        assert r.status_code == 200, r.text
        assert not marker.exists()
    finally:
        servers.stop_all()


def test_capture_refuses_a_project_folder_linked_out_of_the_notebook_folder(tmp_path: Path) -> None:
    from runtime.atomic import UnsafeWrite

    work, elsewhere = tmp_path / "work", tmp_path / "elsewhere"
    work.mkdir()
    elsewhere.mkdir()
    notebook = write_notebook(work / "nb.ipynb", "api")
    (work / ".nbento").symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(UnsafeWrite, match=r"\.nbento.*outside .*remove the link"):
        build_service(notebook)
    assert list(elsewhere.iterdir()) == []
    (work / ".nbento").unlink()
    _, written = build_service(notebook)  # a real folder is fine
    assert written.module_path.is_file()
