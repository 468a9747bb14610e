"""Shared helpers for tests that need a real server: start `nbento serve ...` as a subprocess on
127.0.0.1, wait for `/readyz`, talk HTTP, stop it by its PID. Other test modules reuse these;
keep the names and signatures stable.

    with running_server(service_dir) as server:       # waits for /readyz (200)
        r = httpx.post(f"{server.url}/classify", json=["hi"])

    server = start_server(path, "--reload", ready=False)   # manual lifecycle
    try:
        server.wait_ready(timeout=30)
        ...
    finally:
        server.stop()                                   # SIGTERM, wait, return exit code

The server binds port 0 (a free port chosen by the OS, no race with other tests) and prints
its URL; `start_server` reads the URL from the server's log file. stdout and stderr go to
`server.log_path` (shown by `server.log()`, handy in assertion messages). The child inherits
the environment, including the per-test `NBENTO_HOME` from tests/conftest.py, with the repo
root on PYTHONPATH so test-only model classes (tests/runtime/serving_models.py) load.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]
_URL_RE = re.compile(r"nbento: (?:serving|runner) .* at (http://[^\s)]+)")


def free_port() -> int:
    """A port free right now on 127.0.0.1 (prefer `--port 0`, which `start_server` uses)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ServerProcess:
    """A running `nbento serve` subprocess."""

    proc: subprocess.Popen[bytes]
    log_path: Path
    url: str = ""
    args: list[str] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def wait_url(self, timeout: float = 30.0) -> str:
        """Wait until the server printed its URL (it is bound and accepting)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = _URL_RE.search(self.log())
            if found:
                self.url = found.group(1)
                return self.url
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"server exited with {self.proc.returncode} before binding:\n{self.log()}"
                )
            time.sleep(0.02)
        raise TimeoutError(f"server printed no URL within {timeout}s:\n{self.log()}")

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Poll `/readyz` until 200."""
        if not self.url:
            self.wait_url(timeout)
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log()}")
            try:
                r = httpx.get(f"{self.url}/readyz", timeout=2.0)
                if r.status_code == 200:
                    return
                last = r.text
            except httpx.HTTPError as exc:
                last = repr(exc)
            time.sleep(0.05)
        raise TimeoutError(f"/readyz not 200 within {timeout}s (last: {last}):\n{self.log()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Send `sig` to this server's PID and wait for it to exit; returns the exit code
        (killed with SIGKILL after `timeout`)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return int(self.proc.returncode)


def serve_command(source: str | Path, *args: str) -> list[str]:
    """The argv that runs `nbento serve SOURCE ARGS` with this interpreter."""
    return [sys.executable, "-m", "runtime", "serve", str(source), *args]


def start_server(
    source: str | Path,
    *args: str,
    ready: bool = True,
    port: int = 0,
    env: dict[str, str] | None = None,
    cwd: str | Path | None = None,
    timeout: float = 60.0,
) -> ServerProcess:
    """Start `nbento serve SOURCE --port PORT ARGS` and wait for its URL (and, with `ready`,
    for `/readyz` 200). Stop it with `.stop()`."""
    child_env = dict(os.environ)
    child_env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO), child_env.get("PYTHONPATH", "")) if p
    )
    child_env.setdefault("PYTHONUNBUFFERED", "1")
    if env:
        child_env.update(env)
    fd, name = tempfile.mkstemp(prefix="nbento-serve-", suffix=".log")
    log_path = Path(name)
    argv = serve_command(source, "--port", str(port), *args)
    with os.fdopen(fd, "wb") as log_file:
        proc = subprocess.Popen(
            argv, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            cwd=str(cwd or REPO), env=child_env,
        )
    server = ServerProcess(proc, log_path, args=argv)
    try:
        server.wait_url(timeout)
        if ready:
            server.wait_ready(timeout)
    except BaseException:
        server.stop(signal.SIGKILL, 10)
        raise
    return server


@contextlib.contextmanager
def running_server(
    source: str | Path, *args: str, ready: bool = True, env: dict[str, str] | None = None,
    timeout: float = 60.0,
) -> Iterator[ServerProcess]:
    """`start_server` as a context manager that always stops the server (SIGTERM)."""
    server = start_server(source, *args, ready=ready, env=env, timeout=timeout)
    try:
        yield server
    finally:
        server.stop()
        with contextlib.suppress(OSError):
            server.log_path.unlink()


def write_service(folder: Path, code: str, name: str = "service.py") -> Path:
    """Write a service module (dedented) into `folder` and return its path."""
    import textwrap

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(textwrap.dedent(code).lstrip())
    return path


def metric_value(text: str, name: str, labels: dict[str, str] | None = None) -> float:
    """Sum of the samples of metric `name` (with at least `labels`) in Prometheus text."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        head, _, value = line.rpartition(" ")
        metric, _, label_text = head.partition("{")
        if metric != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', label_text))
        if all(found.get(k) == v for k, v in (labels or {}).items()):
            total += float(value)
    return total


def wait_until(predicate: object, timeout: float = 10.0, interval: float = 0.05) -> bool:
    """Poll `predicate()` until true or `timeout`; returns the last result."""
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)


def stop_all(servers: Sequence[ServerProcess]) -> None:
    for server in servers:
        server.stop()
