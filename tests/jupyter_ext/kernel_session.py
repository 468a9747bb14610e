"""A real kernel driven cell by cell with nbclient, for the notebook and hot-reload tests."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import nbformat
from jupyter_core.utils import run_sync
from nbclient import NotebookClient


def output_text(cell: Any) -> str:
    parts = []
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream":
            parts.append(out.get("text", ""))
        elif out.get("output_type") in ("execute_result", "display_data"):
            parts.append(out.get("data", {}).get("text/plain", ""))
        elif out.get("output_type") == "error":
            parts.append(f"{out.get('ename')}: {out.get('evalue')}\n" + "\n".join(out.get("traceback", [])))
    return "".join(parts)


class KernelSession:
    """Execute cells of `notebook` in a fresh python3 kernel started in the notebook's folder."""

    def __init__(self, notebook: Path, *, session_env: bool = True, timeout: int = 300) -> None:
        self.path = notebook
        self.nb = nbformat.read(str(notebook), as_version=4)
        self.client = NotebookClient(
            self.nb, kernel_name="python3", timeout=timeout, allow_errors=True,
            resources={"metadata": {"path": str(notebook.parent)}},
        )
        self.client.km = self.client.create_kernel_manager()
        env = dict(os.environ)
        if session_env:
            env["JPY_SESSION_NAME"] = str(notebook)
        else:
            env.pop("JPY_SESSION_NAME", None)
        self.client.start_new_kernel(env=env)
        self.client.start_new_kernel_client()

    @property
    def kernel_pid(self) -> int:
        km: Any = self.client.km
        provisioner: Any = km.provisioner
        return int(provisioner.process.pid)

    def run(self, index: int) -> str:
        cell = self.nb.cells[index]
        self.client.execute_cell(cell, index)
        return output_text(cell)

    def run_all(self, upto: int | None = None) -> list[str]:
        end = len(self.nb.cells) if upto is None else upto
        return [self.run(i) for i in range(end) if self.nb.cells[i].cell_type == "code"]

    def edit(self, index: int, source: str, *, save: bool = True) -> str:
        """Change a cell (saving the notebook, as a front end does) and execute it."""
        self.nb.cells[index].source = source
        if save:
            nbformat.write(self.nb, str(self.path))
        return self.run(index)

    def index_of(self, prefix: str) -> int:
        return next(i for i, c in enumerate(self.nb.cells) if c.source.startswith(prefix))

    def close(self) -> None:
        try:
            if self.client.kc is not None:
                self.client.kc.stop_channels()
        finally:
            if self.client.km is not None and self.client.km.has_kernel:
                shutdown: Any = self.client.km.shutdown_kernel  # async on nbclient's manager
                run_sync(shutdown)(now=True)


def served_url(text: str) -> str:
    match = re.search(r"serving \S+ at (http://127\.0\.0\.1:\d+)", text)
    assert match, f"no server URL in: {text!r}"
    return match.group(1)
