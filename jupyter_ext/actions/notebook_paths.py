"""Which notebook paths the panels act on: Jupyter hides files and folders whose name starts
with a dot (`.secret/x.ipynb`, `.ssh/`, `.git/`) unless `ContentsManager.allow_hidden` is set,
and the panels' actions (start a server, export, list services) refuse what Jupyter hides,
so the nbento routes are no side door into them."""

from __future__ import annotations

from pathlib import Path

from runtime.errors import NbentoError


class HiddenNotebook(NbentoError):
    """A notebook under a hidden folder (or itself hidden) while Jupyter hides such files."""

    status = 404
    code = "hidden_path"
    public = True


def hidden_part(rel: str | Path) -> str | None:
    """The first hidden component of a root-relative path (`.secret` for `.secret/x.ipynb`),
    or None. `.` and `..` are not names; resolve them before asking."""
    return next((part for part in Path(rel).parts if part.startswith(".")
                 and part not in (".", "..")), None)


def refuse_hidden(rel: str, path: Path, root: Path, *, allow_hidden: bool = False) -> None:
    """Raise `HiddenNotebook` when `rel` (as the client named it) or `path` (resolved, under
    `root`) passes through a hidden file or folder and hidden files are not allowed."""
    if allow_hidden:
        return
    resolved = path.relative_to(root) if path.is_relative_to(root) else path
    hidden = hidden_part(rel.lstrip("/")) or hidden_part(resolved)
    if hidden is not None:
        raise HiddenNotebook(
            f"notebook {rel!r} is under the hidden name {hidden!r}, and this Jupyter server "
            f"does not serve hidden files; move the notebook out of {hidden!r}, or start "
            f"Jupyter with --ContentsManager.allow_hidden=True"
        )
