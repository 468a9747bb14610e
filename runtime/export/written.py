"""Files an export writes into a folder, recorded there so that the next export into the same
folder removes what it wrote before and no longer writes (a `runner-*.yaml` of a previous
`--split-runners` export that `kubectl apply -f DIR/` would still deploy), and nothing else.

The record is `DIR/.nbento-written`, one `SHA256  NAME` line per file (the `sha256sum` format;
no `.yaml`/`.json` suffix, so `kubectl apply -f DIR/` and kustomize never read it). A recorded
file is removed only when it still holds the bytes we wrote: a file the user edited since, a
symlink, or anything the record does not name is kept.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from runtime.atomic import atomic_write_text

RECORD_NAME = ".nbento-written"


@dataclass
class WrittenFiles:
    """What `write_files` did: files written, stale files removed, stale files kept (edited)."""

    written: list[Path] = field(default_factory=list)
    removed: list[Path] = field(default_factory=list)
    kept: list[Path] = field(default_factory=list)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def read_record(folder: Path) -> dict[str, str]:
    """{file name: sha256} of the files the last export wrote into `folder` ({} if none)."""
    try:
        lines = (folder / RECORD_NAME).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return {}
    record: dict[str, str] = {}
    for line in lines:
        digest, _, name = line.partition("  ")
        # only plain names in this folder: a hand-edited record cannot point elsewhere
        if len(digest) == 64 and name and "/" not in name and "\\" not in name \
                and name not in (".", "..", RECORD_NAME):
            record[name] = digest
    return record


def write_files(folder: Path, files: dict[str, str]) -> WrittenFiles:
    """Write `files` ({name: text}) into `folder`, remove the files the previous call wrote
    there that `files` no longer holds (when unchanged since), and record what was written.

    >>> write_files(Path("k8s-svc"), {"deployment.yaml": "..."})  # doctest: +SKIP
    """
    folder.mkdir(parents=True, exist_ok=True)
    before = read_record(folder)
    result = WrittenFiles()
    for name, text in files.items():
        path = folder / name
        # a file linked out of the folder (deployment.yaml -> ~/.bashrc) is refused, not followed
        atomic_write_text(path, text, root=folder)
        result.written.append(path)
    for name, digest in sorted(before.items()):
        if name in files:
            continue
        path = folder / name
        if path.is_symlink() or not path.is_file():
            continue
        try:
            unchanged = _digest(path.read_text(encoding="utf-8")) == digest
        except (OSError, UnicodeDecodeError):
            unchanged = False
        if unchanged:
            path.unlink()
            result.removed.append(path)
        else:
            result.kept.append(path)
    lines = "".join(f"{_digest(text)}  {name}\n" for name, text in sorted(files.items()))
    atomic_write_text(folder / RECORD_NAME, lines, root=folder)
    return result
