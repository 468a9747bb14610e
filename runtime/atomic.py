"""Writing a small text file so that readers see the old bytes or the new ones, never half: a
temp file in the same folder, then `os.replace` (which replaces a symlink at `path` rather than
writing through it). With `root`, the write also stays under that folder: a symlinked folder
or file (`.nbento -> /home/other`, `deployment.yaml -> ~/.bashrc`) that would lead the write
out of it is refused before anything is created."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from runtime.errors import UnsafeWrite

__all__ = ["UnsafeWrite", "atomic_write_text", "check_under_root"]


def check_under_root(path: Path, root: Path) -> None:
    """Raise `UnsafeWrite` unless `path`'s folder, and `path` itself when it is a link, resolve
    to places under `root` (resolved too)."""
    real_root = Path(root).resolve()
    for what, real in (("folder", path.parent.resolve()),
                       ("file", path.resolve() if path.is_symlink() else None)):
        if real is not None and real != real_root and real_root not in real.parents:
            raise UnsafeWrite(
                f"refusing to write {path}: its {what} is a symbolic link (or lies behind one) "
                f"to {real}, outside {real_root}; remove the link and run again"
            )


def atomic_write_text(path: Path, text: str, *, root: Path | None = None) -> None:
    """Write `text` to `path` through a temp file in the same folder and rename; with `root`,
    refuse (`UnsafeWrite`) when links would lead the write out of `root`."""
    if root is not None:
        check_under_root(path, root)  # before mkdir: it would follow a linked folder too
    path.parent.mkdir(parents=True, exist_ok=True)
    if root is not None:
        check_under_root(path, root)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
