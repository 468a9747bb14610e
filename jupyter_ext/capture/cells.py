"""What a captured cell is: its identity, kind, name and code, the checks that it can go into a
module, and where the files of a service live. Everything else in `capture` builds on this."""

from __future__ import annotations

import ast
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runtime.atomic import atomic_write_text
from runtime.errors import NbentoError
from runtime.tags import validate_name

PROJECT_DIR = ".nbento"


class CaptureError(NbentoError):
    """A captured cell cannot become part of the service (bad syntax, no API function...)."""


@dataclass(frozen=True)
class CapturedCell:
    """One captured cell: its identity, what it is, and its code without the magic line."""

    cell_id: str
    kind: str  # preprocess | api | model
    name: str | None
    source: str
    options: dict[str, Any] = field(default_factory=dict)
    index: int | None = None  # position in the notebook file when known (for messages)
    line_offset: int = 0  # cell lines before `source` (the magic line), so messages match

    @property
    def label(self) -> str:
        where = f"cell {self.index + 1}" if self.index is not None else f"cell {self.cell_id}"
        what = f"{self.kind} {self.name}" if self.name else self.kind
        return f"{where} ({what})"


@dataclass(frozen=True)
class NotebookCell:
    """A code cell of a notebook file, as offline capture and free-name reports see it."""

    index: int
    cell_id: str
    source: str


def service_name_for(notebook: Path | str) -> str:
    """`Support Tickets.ipynb` -> `support_tickets`: the default service name."""
    stem = Path(notebook).stem.lower()
    name = re.sub(r"[^a-z0-9_.-]+", "_", stem).strip("_.-") or "notebook"
    if not name[0].isalnum():
        name = f"nb{name}"
    return validate_name(name[:63], "service name")


def service_dir(notebook_dir: Path, service_name: str) -> Path:
    return notebook_dir / PROJECT_DIR / service_name


def normalise_source(source: str) -> str:
    """Cell code as it goes into the module: no leading blank lines, no trailing whitespace,
    one final newline. Applied to live and offline cells alike."""
    lines = source.splitlines()
    while lines and not lines[0].strip():
        lines.pop(0)
    text = "\n".join(line.rstrip() for line in lines).rstrip()
    return text + "\n" if text else ""


def leading_blank_lines(source: str) -> int:
    """Blank lines `normalise_source` drops from the top (to map module lines back)."""
    lines = source.splitlines()
    return next((i for i, text in enumerate(lines) if text.strip()), 0)


def check_cell(cell: CapturedCell) -> None:
    """Raise `CaptureError` in plain words when the cell's code cannot go into a module."""
    try:
        ast.parse(cell.source)
    except SyntaxError as exc:
        line = (exc.text or "").strip()
        shown = f": {line}" if line else ""
        raise CaptureError(
            f"{cell.label} line {(exc.lineno or 0) + cell.line_offset}: {exc.msg}{shown} (IPython "
            f"syntax such as %magics or !commands cannot go into the service module)"
            if line.startswith(("%", "!"))
            else f"{cell.label} line {(exc.lineno or 0) + cell.line_offset}: {exc.msg}{shown}"
        ) from None
    if cell.kind == "api":
        api_function(cell)


def api_function(cell: CapturedCell) -> str:
    """The function an `api NAME` cell exposes: the one named NAME, or the only one it defines."""
    tree = ast.parse(cell.source)
    defined = [
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    ]
    if cell.name in defined:
        return str(cell.name)
    if len(defined) == 1:
        return defined[0]
    found = ", ".join(defined) if defined else "none"
    raise CaptureError(
        f"{cell.label} must define the endpoint function `def {cell.name}(...)` (functions "
        f"found: {found})"
    )


def atomic_write(path: Path, text: str, *, root: Path | None = None) -> None:
    """Write through a temp file in the same folder and rename: readers see old or new. With
    `root`, links never lead the write out of it (`runtime.atomic.UnsafeWrite`)."""
    atomic_write_text(path, text, root=root)


def write_root(folder: Path, notebook: Path | None) -> Path:
    """The folder a service folder's writes must stay under: the notebook's folder for the
    usual `<notebook dir>/.nbento/<service>` (so a `.nbento` linked elsewhere is refused),
    else the service folder itself (an explicit output folder)."""
    if notebook is not None:
        base = Path(os.path.abspath(notebook)).parent
        if Path(os.path.abspath(folder)).is_relative_to(base):
            return base
    return folder
