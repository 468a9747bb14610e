"""Live capture state in a kernel: which cells are captured, under which cell id, in which
order, and where the notebook and its service folder are.

Cell identity, first that applies:
1. the front end's cell id (JupyterLab and Notebook 7 send `cellId` in the execute request);
2. the id of the cell in the saved notebook file whose source equals the running cell;
3. for api and model cells, the earlier capture with the same kind and name; else a stable key
   from the cell itself (`api-classify`, `model-clf`, `preprocess-<hash of its code>`).
The notebook path, first that applies: `%nbento name --notebook PATH`, `__session__` /
`JPY_SESSION_NAME` (set by jupyter_server), the one `.ipynb` in the working directory whose
cells contain the running cell, else none (files go to `./.nbento/notebook/`).

One capture: what the kernel writes is its live captures merged with the cells the saved
notebook marks (`%%nbento` lines, or the metadata and tags the JupyterLab panel writes), so a
re-run in the kernel and a save never disagree about which APIs exist. For a cell the kernel
ran, the kernel's source wins; a marked cell it never ran comes from the saved file.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from jupyter_ext.capture.cell_args import split_magic
from jupyter_ext.capture.cells import (
    CapturedCell,
    NotebookCell,
    normalise_source,
    service_dir,
    service_name_for,
)
from jupyter_ext.capture.free_names import FreeName, find_free_names
from jupyter_ext.capture.offline import FileCell, captured_file_cells, read_notebook_cells
from jupyter_ext.capture.render import WrittenService, cell_line, render_module, write_service
from runtime.export.model_loads import find_model_loads


def _same_code(a: str, b: str) -> bool:
    return normalise_source(a) == normalise_source(b)


class LiveCapture:
    """The captures of one kernel. Re-recording a cell id replaces it; `drop` forgets it."""

    def __init__(self, user_ns: dict[str, Any] | None = None) -> None:
        self.user_ns = user_ns if user_ns is not None else {}
        self.cells: dict[str, CapturedCell] = {}
        self.models_saved: dict[str, dict[str, Any]] = {}
        self.explicit_notebook: Path | None = None
        self.explicit_name: str | None = None
        # Set by the pre_run_cell hook for the cell now running.
        self.current_raw: str | None = None
        self.current_id: str | None = None
        self._order: dict[str, int] = {}
        self._counter = 0
        self._nb_cache: tuple[Path, float, list[NotebookCell]] | None = None
        self._marked_cache: tuple[Path, float, list[FileCell]] | None = None
        self._discovered: Path | None = None
        # Cells the kernel ran without a %%nbento line (cell id -> source), for the saved
        # notebook's marked cells: their live source wins over the file's.
        self.ran: dict[str, str] = {}

    # ---- where things are ------------------------------------------------------------------

    def notebook(self) -> Path | None:
        if self.explicit_notebook is not None:
            return self.explicit_notebook
        session = self.user_ns.get("__session__") or os.environ.get("JPY_SESSION_NAME")
        if isinstance(session, str) and session.endswith(".ipynb"):
            for candidate in (Path(session), Path.cwd() / Path(session).name):
                if candidate.is_file():
                    return candidate.resolve()
        if self._discovered is not None and self._discovered.is_file():
            return self._discovered
        if self.current_raw:
            matches = [
                nb for nb in sorted(Path.cwd().glob("*.ipynb"))
                if any(_same_code(c.source, self.current_raw) for c in self._cells_of(nb))
            ]
            if len(matches) == 1:
                self._discovered = matches[0].resolve()  # keep it: later cells may be ambiguous
                return self._discovered
        return None

    @property
    def service_name(self) -> str:
        if self.explicit_name:
            return self.explicit_name
        notebook = self.notebook()
        return service_name_for(notebook) if notebook else "notebook"

    @property
    def folder(self) -> Path:
        notebook = self.notebook()
        return service_dir(notebook.parent if notebook else Path.cwd(), self.service_name)

    def _cells_of(self, path: Path) -> list[NotebookCell]:
        try:
            mtime = path.stat().st_mtime
        except OSError:
            return []
        if self._nb_cache and self._nb_cache[0] == path and self._nb_cache[1] == mtime:
            return self._nb_cache[2]
        try:
            cells = [cell for cell, _ in read_notebook_cells(path)]
        except Exception:  # an unreadable notebook only costs us the ordering hints
            cells = []
        self._nb_cache = (path, mtime, cells)
        return cells

    def notebook_cells(self) -> list[NotebookCell]:
        notebook = self.notebook()
        return self._cells_of(notebook) if notebook else []

    # ---- identity and order ----------------------------------------------------------------

    def cell_in_file(self, raw: str | None = None) -> NotebookCell | None:
        """The saved notebook cell that is running now (by front-end id, else by source)."""
        cells = self.notebook_cells()
        if self.current_id:
            for cell in cells:
                if cell.cell_id == self.current_id:
                    return cell
            return None
        raw = raw if raw is not None else self.current_raw
        if raw is None:
            return None
        found = [c for c in cells if _same_code(c.source, raw)]
        return found[0] if len(found) == 1 else None

    def running_cell_id(self) -> str | None:
        """The id of the cell running now, when the front end or the saved file tells."""
        in_file = self.cell_in_file()
        return self.current_id or (in_file.cell_id if in_file else None)

    def identify(self, kind: str, name: str | None, body: str) -> tuple[str, int | None]:
        """(cell id, index in the notebook file or None) for the cell now running."""
        in_file = self.cell_in_file()
        if self.current_id:
            return self.current_id, in_file.index if in_file else None
        if in_file is not None:
            return in_file.cell_id, in_file.index
        if name:  # an edited, unsaved cell without a front-end id: the capture of that name
            for cell in self.cells.values():
                if cell.kind == kind and cell.name == name:
                    return cell.cell_id, cell.index
            return f"{kind}-{name}", None
        digest = hashlib.sha1(normalise_source(body).encode()).hexdigest()[:8]
        return f"{kind}-{digest}", None

    def marked_in_file(self) -> list[FileCell]:
        """The captured cells of the saved notebook (magic lines, metadata, tags)."""
        notebook = self.notebook()
        if notebook is None:
            return []
        try:
            mtime = notebook.stat().st_mtime
        except OSError:
            return []
        cache = self._marked_cache
        if cache and cache[0] == notebook and cache[1] == mtime:
            return cache[2]
        try:
            cells = captured_file_cells(notebook)[0]
        except Exception:  # an unreadable or half-saved notebook: the live captures still count
            cells = []
        self._marked_cache = (notebook, mtime, cells)
        return cells

    def merged(self) -> dict[str, CapturedCell]:
        """Live captures plus the saved notebook's marked cells the kernel did not capture:
        with the kernel's source when it ran the cell, from the file otherwise. A cell whose
        `%%nbento` line the kernel saw removed stays out although the file still has it."""
        cells = dict(self.cells)
        for marked in self.marked_in_file():
            cell = marked.cell
            if cell.cell_id in cells:
                continue
            ran = self.ran.get(cell.cell_id)
            if ran is not None:
                if not marked.by_metadata:
                    continue  # the saved file is behind: the cell ran without its magic line
                cell = replace(cell, source=ran, line_offset=0)
            cells[cell.cell_id] = cell
        return cells

    def note_run(self, raw: str) -> bool:
        """A cell without `%%nbento` ran cleanly. True when the saved notebook marks it (panel
        metadata or tag): its live source is now what the service uses, so write again."""
        if split_magic(raw) is not None:
            return False
        in_file = self.cell_in_file(raw)
        key = self.current_id or (in_file.cell_id if in_file else None)
        marked = next((m for m in self.marked_in_file() if m.cell.cell_id == key), None)
        if key is None or marked is None:
            return False
        before = self.merged().get(key)
        self.ran[key] = raw
        return self.merged().get(key) != before

    def ordered(self) -> list[CapturedCell]:
        """Captured cells in notebook order (saved file), then unsaved ones by execution."""
        position = {c.cell_id: c.index for c in self.notebook_cells()}
        big = 1 << 30
        return sorted(
            self.merged().values(),
            key=lambda c: (position.get(c.cell_id, big), self._order.get(c.cell_id, 0)),
        )

    def _uncaptured(self, captured: list[CapturedCell]) -> list[NotebookCell]:
        ids = {c.cell_id for c in captured}
        return [c for c in self.notebook_cells() if c.cell_id not in ids]

    def free_names(self) -> list[FreeName]:
        """Names the service uses that no captured cell defines (what `nbento build` refuses)."""
        captured = self.ordered()
        return find_free_names(captured, self._uncaptured(captured))

    def build_warnings(self) -> list[str]:
        """What `nbento build` would refuse, in plain words: names no captured cell defines,
        and models loaded from the store by a tag the build cannot pin."""
        captured = self.ordered()
        warnings = [free.message for free in self.free_names()]
        if not any(c.kind != "model" for c in captured):
            return warnings
        text = render_module(captured, self.service_name)
        for load in find_model_loads(text):
            if load.tag is None:
                where = cell_line(captured, text, load.line)
                label = f"{where[0].label} line {where[1]}" if where else f"line {load.line}"
                warnings.append(
                    f"{label} loads a model by a tag known only when it runs ({load.call}), "
                    f"so `nbento build` cannot pin it into the Bento and refuses; write the tag "
                    f'as a literal (load("NAME:latest")) or use runner("NAME:latest")'
                )
        return warnings

    def record(self, cell: CapturedCell) -> None:
        if cell.cell_id not in self._order:
            self._counter += 1
            self._order[cell.cell_id] = self._counter
        self.cells[cell.cell_id] = cell

    def drop(self, cell_id: str) -> CapturedCell | None:
        """Forget a capture: its cell now runs without `%%nbento` (so the saved notebook's
        magic line, until the next save, does not bring it back)."""
        if self.current_raw is not None and split_magic(self.current_raw) is None:
            self.ran[cell_id] = self.current_raw
        self._order.pop(cell_id, None)
        removed = self.cells.pop(cell_id, None)
        if removed is not None and removed.kind == "model" and removed.name:
            self.models_saved.pop(removed.name, None)
        return removed

    def write(self) -> WrittenService:
        captured = self.ordered()
        return write_service(
            self.folder,
            captured,
            self.service_name,
            notebook=self.notebook(),
            models_saved=list(self.models_saved.values()),
            others=self._uncaptured(captured),
        )
