"""The `nbento serve` process a kernel starts with `%nbento serve`, and that never outlives it.

Three guards, because a kernel can die in any way (shutdown, crash, SIGKILL):
- `atexit` in the kernel stops the server on a normal exit;
- the child asks Linux for SIGTERM when its parent dies (`prctl(PR_SET_PDEATHSIG)`);
- a watchdog thread in the child polls the parent pid and terminates the server when it
  changes (covers systems without prctl, and the prctl race at start).
The child runs this module's `main` (`python -c BOOTSTRAP --parent-pid PID --path DIR -- serve
SERVICE_DIR ...`): it installs the guards, then runs the ordinary `nbento` CLI in-process.
It runs in the notebook's folder with that folder importable AFTER site-packages (the bootstrap
drops the working folder Python puts first), so `import mylib` next to the notebook works in
the server as in the kernel, while a `runtime.py` or `nbento.py` there cannot shadow nbento.
It gets its own process group, so a kernel interrupt (SIGINT to the kernel's group) does not
stop it, and `stop()` can end the server and any worker processes it started together.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import hashlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from jupyter_ext.actions.server_registry import (
    ServerRecord,
    is_server_process,
    read_live,
    register,
    server_gone,
    unregister,
)
from runtime.errors import NbentoError
from runtime.serving.auth import auth_headers

LOG_NAME = "server.log"
_PR_SET_PDEATHSIG = 1
# `python -c` puts the working folder first on sys.path (unless -P / PYTHONSAFEPATH did not);
# drop it before anything imports nbento. `main` appends the notebook folder at the end.
_BOOTSTRAP = (
    "import sys\n"
    "if not getattr(sys.flags, 'safe_path', False): del sys.path[0]\n"
    "from jupyter_ext.actions.kernel_server import main\n"
    "sys.exit(main())\n"
)
_live: set[KernelServer] = set()


class KernelServerError(NbentoError):
    """The background server did not start, or is not running."""


def free_port(preferred: int = 3000, tries: int = 100) -> int:
    """`preferred` or the next free port above it on 127.0.0.1."""
    for port in range(preferred, preferred + tries):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise KernelServerError(f"no free port in {preferred}-{preferred + tries - 1}; pass --port")


@dataclass(frozen=True)
class ReloadOutcome:
    ok: bool
    elapsed_ms: float
    error: dict[str, Any] | None = None
    timed_out: bool = False


class KernelServer:
    """One background `nbento serve SERVICE_DIR --reload --port N` owned by this process."""

    def __init__(
        self, folder: Path, *, port: int, reload: bool = True, host: str = "127.0.0.1",
        notebook: Path | None = None, owner: str = "kernel",
    ) -> None:
        self.folder = folder
        self.port = port
        self.reload = reload
        self.host = host
        self.notebook = notebook
        self.owner = owner
        self.process: subprocess.Popen[bytes] | None = None
        # set when this object stands for a server another process started (`attach`)
        self.attached: ServerRecord | None = None
        self.log_path = folder / LOG_NAME
        # the token, when set, is in the server's environment too (it inherits ours)
        self._client = httpx.Client(timeout=5.0, trust_env=False, headers=auth_headers())
        # whether the server answered `POST /_nbento/reload` (None: not asked yet); when it
        # does, a caller need not read the status before writing (only the polling needs it)
        self.reloads_on_request: bool | None = None

    @classmethod
    def attach(cls, folder: Path) -> KernelServer | None:
        """The server registered for `folder` (started by a kernel or a panel), when it runs."""
        record = read_live(folder)
        if record is None:
            return None
        server = cls(Path(record.folder), port=record.port, reload=record.reload, host=record.host,
                     notebook=Path(record.notebook) if record.notebook else None, owner=record.owner)
        server.attached = record
        return server

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        if self.process is not None:
            return self.process.pid
        return self.attached.pid if self.attached is not None else None

    @property
    def running(self) -> bool:
        if self.process is not None:
            return self.process.poll() is None
        return self.attached is not None and is_server_process(self.attached.pid, self.folder)

    def command(self) -> list[str]:
        args = ["serve", str(self.folder), "--port", str(self.port), "--host", self.host]
        if self.reload:
            args.append("--reload")
        deathsig = "1" if threading.current_thread() is threading.main_thread() else "0"
        return [
            sys.executable, "-c", _BOOTSTRAP, "--parent-pid", str(os.getpid()),
            "--deathsig", deathsig, "--path", str(self.workdir), "--", *args,
        ]

    @property
    def workdir(self) -> Path:
        """Where the notebook's kernel runs: `<notebook dir>` for `.nbento/<service>/`."""
        return self.folder.parent.parent if self.folder.parent.name == ".nbento" else self.folder

    def start(self, *, timeout: float = 180.0, port_tries: int = 1) -> None:
        """Start the server and wait until it is ready (models loaded) or has failed.

        With `port_tries` > 1 (the port was picked automatically), a port taken by another
        process between our check and the server's bind is replaced by the next free one."""
        for attempt in range(port_tries):
            try:
                self._start_once(timeout)
                return
            except KernelServerError as exc:
                if "address already in use" not in str(exc) or attempt == port_tries - 1:
                    raise
                self.port = free_port(self.port + 1)

    def _start_once(self, timeout: float) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.log_path.unlink(missing_ok=True)  # the log of this run only
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child owns it after fork
        # Run where the notebook's kernel runs, that folder importable (see the module doc).
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        try:
            self.process = subprocess.Popen(
                self.command(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, env=env, cwd=str(self.workdir),
            )
        finally:
            log.close()
        _live.add(self)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running:
                raise KernelServerError(
                    f"the server exited while starting (code {self.process.returncode}); "
                    f"last lines of {self.log_path}:\n{self.log_tail()}"
                )
            failure = None
            with contextlib.suppress(httpx.HTTPError, ValueError):
                response = self._client.get(f"{self.url}/readyz", timeout=1.0)
                if response.status_code == 200:
                    self._register()
                    return
                failure = response.json().get("error")
            if failure:  # a model failed to load: the server would never become ready
                self.stop()
                raise KernelServerError(
                    f"the server could not load its models: {failure}\n(full log: {self.log_path})"
                )
            time.sleep(0.1)
        self.stop()
        raise KernelServerError(
            f"the server was not ready after {timeout:.0f} s; last lines of {self.log_path}:\n"
            f"{self.log_tail()}"
        )

    def _register(self) -> None:
        assert self.process is not None
        with contextlib.suppress(OSError):  # a read-only folder only costs the other faces
            register(ServerRecord(
                url=self.url, pid=self.process.pid, folder=str(self.folder),
                notebook=str(self.notebook) if self.notebook else None, owner=self.owner,
                owner_pid=os.getpid(), reload=self.reload, started_at=time.time(),
            ))

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM the server's process group, SIGKILL after `timeout`; returns the exit code
        (None for a server another process started: its parent collects the code)."""
        _live.discard(self)
        pid = self.pid
        if pid is not None:
            with contextlib.suppress(OSError):
                unregister(self.folder, pid)
        if self.attached is not None:
            self._stop_attached(timeout)
            return None
        process, self.process = self.process, None
        if process is None:
            return None
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(5)
        return process.returncode

    def _stop_attached(self, timeout: float) -> None:
        record, self.attached = self.attached, None
        if record is None or not is_server_process(record.pid, self.folder):
            return
        # the server runs in its own session: its group holds its worker processes too
        group = record.pid if _pgid(record.pid) == record.pid else None
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                if group is not None:
                    os.killpg(group, sig)
                else:
                    os.kill(record.pid, sig)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and not server_gone(record.pid, self.folder):
                time.sleep(0.02)
            if server_gone(record.pid, self.folder):
                return
            timeout = 5.0

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.rstrip().splitlines()[-lines:])

    def status(self) -> dict[str, Any] | None:
        """`GET /_nbento/status`, or None when the server does not answer."""
        try:
            response = self._client.get(f"{self.url}/_nbento/status", timeout=2.0)
        except httpx.HTTPError:
            return None
        if response.status_code != 200:
            return None
        data: dict[str, Any] = response.json()
        return data

    def wait_for_reload(
        self,
        sha256: str,
        before: dict[str, Any] | None,
        *,
        started: float,
        timeout: float = 30.0,
        same_error_after_ms: float = 1500.0,
    ) -> ReloadOutcome:
        """Until the server serves `sha256` or reports a new error (bounded by `timeout`).

        First asks the server to reload now (`POST /_nbento/reload`, answered when done).
        Against a server without that route, or when it loaded other bytes than ours, polls
        the status: a failed reload is then recognised by a `last_error` that differs from
        the one seen before the write, or by the same error still there after
        `same_error_after_ms`."""
        previous_error = (before or {}).get("last_error")
        deadline = time.monotonic() + timeout
        answer = self._reload_now(timeout)
        if answer is not None:
            elapsed = (time.perf_counter() - started) * 1000
            if answer.get("source_sha256") == sha256:
                return ReloadOutcome(True, elapsed)
            if answer.get("last_error"):
                return ReloadOutcome(False, elapsed, answer["last_error"])
            # loaded other bytes (the file changed again meanwhile): watch for ours below
        while time.monotonic() < deadline and self.running:
            status = self.status()
            if status is not None:
                elapsed = (time.perf_counter() - started) * 1000
                if status.get("source_sha256") == sha256:
                    return ReloadOutcome(True, elapsed)
                error = status.get("last_error")
                # The same error as before the write is only ours once the server had time to
                # try the new file (a reload takes ~10-200 ms; status carries no attempt id).
                if error and (error != previous_error or elapsed > same_error_after_ms):
                    return ReloadOutcome(False, elapsed, error)
            time.sleep(0.01)
        return ReloadOutcome(False, (time.perf_counter() - started) * 1000, timed_out=True)


    def _reload_now(self, timeout: float) -> dict[str, Any] | None:
        """`POST /_nbento/reload`: the server reloads now and answers when done (no file-watch
        latency, no polling). None when the server cannot (an older server, or one that does
        not answer): the caller then polls the status."""
        try:
            response = self._client.post(f"{self.url}/_nbento/reload", timeout=timeout)
        except httpx.HTTPError:
            return None
        self.reloads_on_request = response.status_code == 200
        if response.status_code != 200:
            return None
        try:
            data: dict[str, Any] = response.json()
        except ValueError:
            return None
        return data

    def wait_for_model(self, tag: str, *, timeout: float = 120.0) -> dict[str, Any] | None:
        """After a new model version was saved: wait until every runner serving that model
        name has loaded `tag` (the server reloads those runners only). Returns the runner
        statuses, or None when no runner uses the model or the wait timed out."""
        model = tag.partition(":")[0]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.running:
            status = self.status() or {}
            users = {
                name: info for name, info in (status.get("runners") or {}).items()
                if str(info.get("tag", "")).partition(":")[0] == model
            }
            if not users:
                return None
            if all(info.get("tag") == tag and info.get("loaded") for info in users.values()):
                return users
            time.sleep(0.05)
        return None


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except OSError:
        return None


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@atexit.register
def _stop_all() -> None:
    for server in list(_live):
        with contextlib.suppress(Exception):
            server.stop(timeout=5.0)


# ---- the child side -------------------------------------------------------------------------


def _set_parent_death_signal() -> None:
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def _watch_parent(parent_pid: int, interval: float = 0.5, grace: float = 10.0) -> None:
    while os.getppid() == parent_pid:
        time.sleep(interval)
    os.kill(os.getpid(), signal.SIGTERM)  # graceful: the server drains and exits
    time.sleep(grace)
    os._exit(1)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="nbento kernel server")
    parser.add_argument("--parent-pid", type=int, required=True)
    parser.add_argument("--deathsig", default="1")
    parser.add_argument("--path", action="append", default=[], help="importable, after site-packages")
    parser.add_argument("nbento_args", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    sys.path.extend(p for p in args.path if p not in sys.path)
    if args.deathsig == "1":
        _set_parent_death_signal()
    if os.getppid() != args.parent_pid:  # the kernel died before we got here
        return 1
    threading.Thread(target=_watch_parent, args=(args.parent_pid,), daemon=True).start()
    from runtime.cli import main as nbento_main

    rest = args.nbento_args[1:] if args.nbento_args[:1] == ["--"] else args.nbento_args
    try:
        return nbento_main(rest)
    finally:  # also after the watchdog's SIGTERM: the server drains, then forgets itself
        if len(rest) > 1 and rest[0] == "serve":
            with contextlib.suppress(OSError):
                unregister(Path(rest[1]), os.getpid())


if __name__ == "__main__":
    sys.exit(main())
