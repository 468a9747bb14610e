"""Which development server serves a service folder: `.nbento/<service>/server.json`, written
atomically by whoever started the server (a kernel's `%nbento serve`, the side panel's Start,
the widget's Start) once it is ready, and removed when it stops. The kernel, the Jupyter server
extension and the widget read it to attach to that server instead of starting a second one.

It holds no token and nothing secret: URL, PIDs, folder, notebook. A record is believed only
while its PID is alive, not a zombie, and really runs `nbento serve` on that folder (so a stale
or hand-written file cannot make Stop signal an unrelated process).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

REGISTRY_NAME = "server.json"


@dataclass(frozen=True)
class ServerRecord:
    """One running development server, as `server.json` says."""

    url: str
    pid: int
    folder: str
    notebook: str | None
    owner: str  # "kernel" or "jupyter": who started it (and whose child it is)
    owner_pid: int
    reload: bool
    started_at: float

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[-1])

    @property
    def host(self) -> str:
        return self.url.split("://", 1)[-1].rsplit(":", 1)[0]


def registry_path(folder: Path) -> Path:
    return folder / REGISTRY_NAME


def register(record: ServerRecord) -> Path:
    """Write `server.json` atomically (temp file in the same folder, fsync, rename)."""
    path = registry_path(Path(record.folder))
    tmp = path.with_name(f".{REGISTRY_NAME}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as out:
        json.dump(asdict(record), out, indent=2)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)
    return path


def unregister(folder: Path, pid: int) -> None:
    """Remove `server.json` when it still names the server `pid` (a newer one keeps its own)."""
    path = registry_path(folder)
    found = _load(path)
    if found is not None and found.pid == pid:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def read_live(folder: Path) -> ServerRecord | None:
    """The server registered for `folder` while it runs; a stale file is removed."""
    path = registry_path(folder)
    record = _load(path)
    if record is None:
        return None
    if not is_server_process(record.pid, Path(record.folder)):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        return None
    return record


def live_near(notebook: Path) -> list[ServerRecord]:
    """Live servers registered under the notebook's `.nbento/` (any service name: `%nbento
    name` may have renamed it) that serve this notebook."""
    notebook = notebook.resolve()
    base = notebook.parent / ".nbento"
    found = []
    for path in sorted(base.glob(f"*/{REGISTRY_NAME}")) if base.is_dir() else []:
        record = read_live(path.parent)
        if record is not None and record.notebook and Path(record.notebook).resolve() == notebook:
            found.append(record)
    return found


def _load(path: Path) -> ServerRecord | None:
    try:
        data: Any = json.loads(path.read_text(encoding="utf-8"))
        return ServerRecord(
            url=str(data["url"]), pid=int(data["pid"]), folder=str(data["folder"]),
            notebook=data.get("notebook"), owner=str(data.get("owner", "kernel")),
            owner_pid=int(data.get("owner_pid", 0)), reload=bool(data.get("reload", True)),
            started_at=float(data.get("started_at", time.time())),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None  # missing, half-written by hand, or from another version: not a server


def pid_alive(pid: int) -> bool:
    """The process exists and is not a zombie waiting for its parent to reap it. A main thread
    that has exited while the process's other threads are still being torn down also shows as
    a zombie, but the parent cannot collect the process yet: that counts as alive."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no procfs: trust kill(0)
    if stat.rsplit(")", 1)[-1].split()[0] != "Z":
        return True
    try:
        return len(os.listdir(f"/proc/{pid}/task")) > 1
    except OSError:
        return False


def _argv(pid: int) -> list[str] | None:
    """The process's arguments ([] while it exits: the kernel empties them before the zombie
    state), or None without procfs."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def is_server_process(pid: int, folder: Path) -> bool:
    """`pid` is alive and runs nbento's kernel-server bootstrap serving `folder`."""
    if not pid_alive(pid):
        return False
    words = _argv(pid)
    if words is None:
        return True  # no procfs (macOS): the PID check is all we have
    return _serves(words, folder)


def _serves(words: list[str], folder: Path) -> bool:
    """These arguments are nbento's kernel-server bootstrap serving `folder`."""
    return "--parent-pid" in words and str(folder) in words


def server_gone(pid: int, folder: Path) -> bool:
    """The server's process has exited (or its PID now belongs to another program). A process
    in the middle of exiting has already lost its arguments but is not gone yet: its parent
    cannot collect it, so callers that wait for a stop wait through that too."""
    if not pid_alive(pid):
        return True
    words = _argv(pid)
    if words is None:
        return False
    return bool(words) and not _serves(words, folder)
