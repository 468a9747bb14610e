"""The panel's Export builds the Bento in a child process: the notebook's cells (imported by
the build) never run inside the Jupyter server that asked for the export."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from nbformat.v4 import new_code_cell, new_notebook

from jupyter_ext.actions.export_job import ExportOptions, export_notebook
from runtime.errors import NbentoError

PIDS = """%%nbento preprocess
import os
with open({path!r}, "a") as f:
    f.write(f"{{os.getpid()}}\\n")
"""
API = "%%nbento api echo\ndef echo(texts: list[str]) -> dict:\n    return {'texts': texts}"


def write_notebook(path: Path, *cells: str) -> Path:
    nb = new_notebook(cells=[new_code_cell(c) for c in cells])
    for index, cell in enumerate(nb.cells):
        cell["id"] = f"c{index}"
    path.write_text(json.dumps(nb))
    return path


def test_the_export_imports_the_service_in_a_child_process(tmp_path: Path) -> None:
    pids = tmp_path / "pids.txt"
    notebook = write_notebook(tmp_path / "echo.ipynb", PIDS.format(path=str(pids)), API)
    lines: list[tuple[float, str]] = []
    result = export_notebook(notebook, ExportOptions(), lambda f, m: lines.append((f, m)))
    seen = {int(p) for p in pids.read_text().split()}
    assert seen and os.getpid() not in seen  # the service was imported, never here
    assert Path(result["bento"]).is_dir() and result["service"] == "echo"
    assert all(Path(f).is_file() for f in result["manifests"])
    assert any("Bento" in m for _, m in lines) and lines == sorted(lines, key=lambda x: x[0])


def test_a_failed_export_says_why(tmp_path: Path) -> None:
    notebook = write_notebook(tmp_path / "broken.ipynb", "%%nbento preprocess\nx = 1")
    with pytest.raises(NbentoError, match="no API cell"):
        export_notebook(notebook, ExportOptions(), lambda f, m: None)
