"""Capture, in one import: captured cells -> one service module. Live capture (the magics) and
offline capture (an `.ipynb` read with nbformat) both end in `render_module`, so the kernel,
`nbento build-service` and `nbento serve NOTEBOOK.ipynb` produce the same bytes for the same
cells.

    cells = capture_notebook("support_tickets.ipynb").cells
    text = render_module(cells, "support_tickets")

Files land in `<notebook dir>/.nbento/<service>/`: `service.py` (what the server imports),
`service.yaml` (the manifest) and `golden.jsonl` (answers recorded in the kernel, replayed by
`nbento build`). The parts: `cells` (what a captured cell is), `render` (module + manifest),
`offline` (reading .ipynb files), `free_names`, `golden` (recording answers), `live` (a
kernel's capture state).
"""

from __future__ import annotations

from jupyter_ext.capture.cell_args import split_magic
from jupyter_ext.capture.cells import (
    PROJECT_DIR,
    CapturedCell,
    CaptureError,
    NotebookCell,
    api_function,
    atomic_write,
    check_cell,
    normalise_source,
    service_dir,
    service_name_for,
)
from jupyter_ext.capture.free_names import FreeName, find_free_names
from jupyter_ext.capture.offline import (
    NotebookCapture,
    build_service,
    capture_notebook,
    cell_spec,
    read_notebook_cells,
    source_from_notebook,
)
from jupyter_ext.capture.render import (
    SAMPLE_PREFIX,
    WrittenService,
    build_manifest,
    cell_line,
    render_module,
    runner_tags,
    write_service,
)

__all__ = [
    "PROJECT_DIR",
    "SAMPLE_PREFIX",
    "CaptureError",
    "CapturedCell",
    "FreeName",
    "NotebookCapture",
    "NotebookCell",
    "WrittenService",
    "api_function",
    "atomic_write",
    "build_manifest",
    "build_service",
    "capture_notebook",
    "cell_line",
    "cell_spec",
    "check_cell",
    "find_free_names",
    "normalise_source",
    "read_notebook_cells",
    "render_module",
    "runner_tags",
    "service_dir",
    "service_name_for",
    "source_from_notebook",
    "split_magic",
    "write_service",
]
