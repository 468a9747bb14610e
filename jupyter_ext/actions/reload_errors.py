"""A change that did not load, said once and where the user edits: the notebook cell (id,
position) and the line in that cell, mapped back from `service.py` through its
`# ---- KIND NAME (cell ID) ----` markers and the `first_line` of each cell in `service.yaml`
(see `jupyter_ext.capture.render`). The panels show `text` and jump to `cell_id` / `line`.

    {"message": "NameError: name 'x' is not defined", "cell_id": "9f2c", "cell_index": 6,
     "cell_label": "notebook cell 7 (api classify)", "line": 12, "generation": 3,
     "text": "notebook cell 7 (api classify) line 12: NameError: ... The server keeps ..."}
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import yaml

from runtime.service.sources import SERVICE_MANIFEST, SERVICE_MODULE

_MARKER = re.compile(r"^# ---- .* \(cell (?P<cell_id>\S+)\) ----$")


def _keeps_serving(generation: Any) -> str:
    which = f"generation {generation}" if isinstance(generation, int) else "the previous version"
    return f"The server keeps answering with {which} until the cell is fixed."


def reload_error(error: Any) -> str | None:
    """`{"message", "file", "line"}` -> one sentence, without a notebook to map it to."""
    if not error:
        return None
    if not isinstance(error, dict):
        return str(error)
    where = ""
    if error.get("file"):
        where = f" ({Path(str(error['file'])).name}"
        where += f", line {error['line']})" if error.get("line") else ")"
    return (f"The last code change did not load{where}: {error.get('message', 'unknown error')}. "
            + _keeps_serving(None))


def module_line_to_cell(folder: Path, line: int) -> dict[str, Any] | None:
    """Line `line` of `folder/service.py` as {cell_id, cell_index, cell_label, line}, or None
    when it is not inside a captured cell (the header, a registration line)."""
    try:
        lines = (folder / SERVICE_MODULE).read_text(encoding="utf-8").splitlines()
        manifest = yaml.safe_load((folder / SERVICE_MANIFEST).read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    entries = {str(e.get("cell_id")): e for e in manifest.get("cells") or [] if isinstance(e, dict)}
    if not 1 <= line <= len(lines) or lines[line - 1].startswith("_nbento_api("):
        return None
    for number in range(line, 0, -1):
        match = _MARKER.match(lines[number - 1])
        if match is None:
            continue
        entry = entries.get(match.group("cell_id"))
        if entry is None or number == line:
            return None
        index = entry.get("index")
        first_line = entry.get("first_line")
        first = first_line if isinstance(first_line, int) else 1
        what = f"{entry.get('kind')} {entry['name']}" if entry.get("name") else entry.get("kind")
        where = f"cell {index + 1}" if isinstance(index, int) else f"cell {entry['cell_id']}"
        return {"cell_id": match.group("cell_id"), "cell_index": index,
                "cell_label": f"notebook {where} ({what})", "line": line - number - 1 + first}
    return None


def server_error(error: Any, folder: Path, generation: Any) -> dict[str, Any] | None:
    """The server's `last_error` (from `/_nbento/status`) pointed at the notebook cell."""
    if not error:
        return None
    if not isinstance(error, dict):
        error = {"message": str(error)}
    message = str(error.get("message") or "unknown error")
    found = None
    if error.get("line") and str(error.get("file") or "").endswith(SERVICE_MODULE):
        try:
            found = module_line_to_cell(folder, int(error["line"]))
        except (TypeError, ValueError):
            found = None
    if found is None:
        return {"message": message, "cell_id": None, "cell_index": None, "cell_label": None,
                "line": None, "generation": generation,
                "text": reload_error(error)}
    return {"message": message, **found, "generation": generation,
            "text": f"{found['cell_label']} line {found['line']}: {message}. "
                    + _keeps_serving(generation)}


def capture_failure(notebook: Path, exc: Exception) -> dict[str, Any]:
    """A saved notebook whose captured cells do not make a module (a syntax error, an api
    cell without its function): the message capture raised, and the first cell that fails."""
    from jupyter_ext.capture.cells import check_cell
    from jupyter_ext.capture.notebook import capture_notebook

    found: dict[str, Any] = {"cell_id": None, "cell_index": None, "cell_label": None, "line": None}
    try:
        cells = capture_notebook(notebook).cells
    except Exception:  # the notebook itself is unreadable: say only the message
        cells = []
    for cell in cells:
        if cell.kind == "model":
            continue
        try:
            check_cell(cell)
        except Exception:  # capture's own error is the message; we want the cell
            line = 1
            try:
                ast.parse(cell.source)
            except SyntaxError as syntax:
                line = (syntax.lineno or 1) + cell.line_offset
            found = {"cell_id": cell.cell_id, "cell_index": cell.index,
                     "cell_label": f"notebook {cell.label}", "line": line}
            break
    message = str(exc)
    if found["cell_label"] and message.startswith(found["cell_label"][len("notebook "):]):
        message = f"notebook {message}"  # the same words as a server error's
    return {"message": message, **found, "generation": None,
            "text": f"{message}. The saved change was not loaded; the server keeps answering "
                    f"with the previous version until the cell is fixed."}
