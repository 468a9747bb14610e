"""Offline capture: the captured cells of an `.ipynb` file read without a kernel (magic lines,
`metadata.nbento` written by the JupyterLab panel, or `nbento:` tags), and the notebook source
loader behind `nbento serve NOTEBOOK.ipynb` and `nbento build NOTEBOOK.ipynb`.

    cells = capture_notebook("support_tickets.ipynb").cells
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jupyter_ext.capture.cell_args import (
    TAG_PREFIX,
    CaptureArgsError,
    CellSpec,
    parse_cell_args,
    spec_from_metadata,
    split_magic,
)
from jupyter_ext.capture.cells import (
    CapturedCell,
    CaptureError,
    NotebookCell,
    service_dir,
    service_name_for,
)
from jupyter_ext.capture.free_names import FreeName, find_free_names
from jupyter_ext.capture.render import WrittenService, write_service
from runtime.service.sources import ServiceSource


@dataclass
class NotebookCapture:
    notebook: Path
    service_name: str
    cells: list[CapturedCell]
    notebook_cells: list[NotebookCell]  # the code cells that are not captured

    @property
    def free_names(self) -> list[FreeName]:
        return find_free_names(self.cells, self.notebook_cells)


def read_notebook_cells(path: Path) -> list[tuple[NotebookCell, dict[str, Any]]]:
    """Code cells of a notebook with their metadata; ids invented (`cell<N>`) where missing.

    nbformat 4 files are read as plain JSON (fast: the kernel re-reads the notebook on every
    save while hot reloading); older formats go through nbformat's converter."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CaptureError(f"no such notebook: {path}") from None
    except (OSError, ValueError) as exc:
        raise CaptureError(f"cannot read notebook {path}: {exc}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("cells"), list) or raw.get("nbformat") != 4:
        import nbformat

        try:
            raw = nbformat.read(str(path), as_version=4)
        except Exception as exc:  # nbformat raises several unrelated types for bad files
            raise CaptureError(f"cannot read notebook {path}: {exc}") from None
    out: list[tuple[NotebookCell, dict[str, Any]]] = []
    for index, cell in enumerate(raw["cells"]):
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        source = "".join(source) if isinstance(source, list) else str(source)
        cell_id = str(cell.get("id") or f"cell{index + 1}")
        out.append((NotebookCell(index, cell_id, source), dict(cell.get("metadata") or {})))
    return out


def cell_spec(source: str, metadata: dict[str, Any]) -> tuple[CellSpec, str] | None:
    """(spec, body) for a captured cell: a `%%nbento` first line, else `metadata.nbento`, else a
    tag `nbento:KIND [NAME] [options]`; None for cells that are not captured."""
    magic = split_magic(source)
    if magic is not None:
        return parse_cell_args(magic[0]), magic[1]
    spec = metadata_spec(metadata)
    return (spec, source) if spec is not None else None


def metadata_spec(metadata: dict[str, Any]) -> CellSpec | None:
    """The spec the JupyterLab panel stored in a cell's metadata (or tags), if any."""
    if "nbento" in metadata:
        return spec_from_metadata(metadata["nbento"])
    tags = [t for t in metadata.get("tags", []) if isinstance(t, str) and t.startswith(TAG_PREFIX)]
    if len(tags) > 1:
        raise CaptureArgsError(f"a cell carries several nbento tags: {', '.join(tags)}; keep one")
    if tags:
        return parse_cell_args(tags[0][len(TAG_PREFIX) :])
    return None


@dataclass(frozen=True)
class FileCell:
    """A captured cell as the saved notebook has it; `by_metadata` when the panel marked it
    (metadata or tag) rather than a `%%nbento` line."""

    cell: CapturedCell
    by_metadata: bool


def captured_file_cells(notebook: Path) -> tuple[list[FileCell], list[NotebookCell]]:
    """(captured cells, plain code cells) of a saved notebook, in notebook order."""
    cells: list[FileCell] = []
    plain: list[NotebookCell] = []
    for nb_cell, metadata in read_notebook_cells(notebook):
        try:
            found = cell_spec(nb_cell.source, metadata)
        except CaptureArgsError as exc:
            raise CaptureError(f"cell {nb_cell.index + 1} (id {nb_cell.cell_id}): {exc}") from None
        if found is None:
            plain.append(nb_cell)
            continue
        spec, body = found
        offset = len(nb_cell.source.splitlines()) - len(body.splitlines())
        captured = CapturedCell(
            nb_cell.cell_id, spec.kind, spec.name, body, spec.options, nb_cell.index, offset
        )
        cells.append(FileCell(captured, by_metadata=split_magic(nb_cell.source) is None))
    return cells, plain


def capture_notebook(path: str | Path, service_name: str | None = None) -> NotebookCapture:
    """Read the captured cells of a notebook file, in notebook order, without a kernel."""
    notebook = Path(path).resolve()
    cells, plain = captured_file_cells(notebook)
    return NotebookCapture(
        notebook, service_name or service_name_for(notebook), [c.cell for c in cells], plain
    )


def build_service(
    notebook: str | Path, *, service_name: str | None = None, out_dir: Path | None = None
) -> tuple[NotebookCapture, WrittenService]:
    """Offline capture and write: what `nbento build-service` and `nbento serve NB.ipynb` run."""
    capture = capture_notebook(notebook, service_name)
    if not any(c.kind == "api" for c in capture.cells):
        raise CaptureError(
            f"notebook {capture.notebook} has no API cell; mark one with '%%nbento api NAME' "
            f"(or the cell tag 'nbento:api NAME')"
        )
    folder = out_dir or service_dir(capture.notebook.parent, capture.service_name)
    models = [
        {"name": c.name, "cell_id": c.cell_id} for c in capture.cells if c.kind == "model"
    ]
    written = write_service(folder, capture.cells, capture.service_name,
                            notebook=capture.notebook, models_saved=models,
                            others=capture.notebook_cells)
    return capture, written


def source_from_notebook(path: Path) -> ServiceSource:
    """Entry point `nbento.source_loaders: ipynb`: capture now, and again before each reload."""
    notebook = Path(path).resolve()
    written = _build_and_report(notebook)

    def regenerate() -> None:
        _build_and_report(notebook)

    return ServiceSource(
        path=written.module_path.resolve(), watch=[notebook], regenerate=regenerate, origin=notebook
    )


def _build_and_report(notebook: Path) -> WrittenService:
    _, written = build_service(notebook)
    for free in written.free_names:
        print(f"warning: {free.message}", file=sys.stderr)
    return written
