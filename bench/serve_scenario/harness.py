"""Process and measurement plumbing for serve_bench.py: servers as bounded subprocesses, wrk
runs, CPU accounting and Prometheus scraping. Nothing here knows which server it drives.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

WRK = os.environ.get("WRK", "/usr/bin/wrk")
READY_TIMEOUT_S = 180.0


class BenchError(RuntimeError):
    """A row could not be measured (server did not start, wrk failed); the row says why."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http(method: str, url: str, body: dict[str, Any] | None = None, timeout: float = 10.0) -> tuple[int, str]:
    """(status, text) of one request; (0, reason) when the server cannot be reached."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return int(resp.status), resp.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read().decode(errors="replace")
    except (urllib.error.URLError, OSError) as exc:
        return 0, str(exc)


@dataclass
class Server:
    """One server subprocess in its own session (process group = its pid), logged to a file."""

    name: str
    argv: list[str]
    port: int
    cwd: Path
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    seen: dict[int, psutil.Process] = field(default_factory=dict)
    ready_path: str = "/readyz"  # LitServe answers /health
    route: str = "/classify"

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                self.argv, cwd=self.cwd, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )

    def wait_ready(self, probe: dict[str, Any], timeout: float = READY_TIMEOUT_S) -> float:
        """Wait until `GET /readyz` and then `POST /classify` with `probe` answer 200; seconds taken. A server that
        exits or never answers is a BenchError carrying the end of its log."""
        start = time.monotonic()
        last = ""
        while time.monotonic() - start < timeout:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise BenchError(f"{self.name} exited with {self.proc.returncode}: {self.log_tail()}")
            # /readyz (or the server's health route) first, so no request hits a loading server.
            status, text = http("GET", f"{self.base}{self.ready_path}", timeout=10)
            failure = _load_error(text) if status == 503 else None
            if failure:  # the server says its models failed to load: waiting will not help
                raise BenchError(f"{self.name} failed to load its models: {failure[:300]}")
            if status == 200:
                status, text = http("POST", f"{self.base}{self.route}", probe, timeout=30)
                if status == 200:
                    return time.monotonic() - start
            last = f"{status} {text[:200]}"
            time.sleep(1.0)
        raise BenchError(f"{self.name} not ready after {timeout:.0f}s (last: {last}): {self.log_tail()}")

    def tree(self) -> list[psutil.Process]:
        """The server and all its descendants now; remembered so stop() can reap stragglers."""
        assert self.proc is not None
        try:
            root = psutil.Process(self.proc.pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []
        for p in procs:
            self.seen[p.pid] = p
        return procs

    def cpu_seconds(self) -> dict[int, float]:
        """user+system CPU seconds per live process of the tree."""
        out: dict[int, float] = {}
        for p in self.tree():
            try:
                t = p.cpu_times()
                out[p.pid] = t.user + t.system
            except psutil.NoSuchProcess:
                pass
        return out

    def memory_bytes(self) -> tuple[int, int]:
        """(RSS, PSS) of the whole tree now, each summed over its processes. RSS counts a page
        shared by two processes (a library's code, a forked parent's memory) twice; PSS splits
        it between them, so its sum is what the tree really holds."""
        rss = pss = 0
        for p in self.tree():
            try:
                info = p.memory_full_info()
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            rss += info.rss
            pss += getattr(info, "pss", info.rss)
        return rss, pss

    def main_thread_cpu(self) -> float:
        """CPU seconds of the server process's main thread (the event loop for uvicorn-based
        servers): with cpu_seconds() it splits server time into HTTP/event loop vs the rest."""
        assert self.proc is not None
        try:
            for t in psutil.Process(self.proc.pid).threads():
                if t.id == self.proc.pid:
                    return float(t.user_time + t.system_time)
        except psutil.NoSuchProcess:
            pass
        return 0.0

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM the process group we created, then SIGKILL it and any remembered descendant
        that is still alive (some servers start workers in new sessions)."""
        if self.proc is None:
            return
        self.tree()
        pgid = self.proc.pid
        try:
            os.killpg(pgid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        for p in self.seen.values():
            try:
                if p.is_running():
                    p.kill()
            except psutil.NoSuchProcess:
                pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        text = [ln for ln in text if "/readyz" not in ln]
        return " | ".join(text[-lines:])


def _load_error(readyz_body: str) -> str | None:
    """The `error` field of a JSON /readyz answer, when the server reports a failed load."""
    try:
        body = json.loads(readyz_body)
    except ValueError:
        return None
    error = body.get("error") if isinstance(body, dict) else None
    return str(error) if error else None


class PeakMemory:
    """Samples a server tree's summed RSS and PSS every `interval` s in a thread until stopped;
    the peaks are what the tree needed at once (models, batches in flight, queues)."""

    def __init__(self, server: Server, interval: float = 0.5) -> None:
        self.server = server
        self.interval = interval
        self.rss, self.pss = server.memory_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        rss, pss = self.server.memory_bytes()
        self.rss, self.pss = max(self.rss, rss), max(self.pss, pss)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def stop(self) -> tuple[int, int]:
        """(peak RSS, peak PSS) in bytes."""
        self._stop.set()
        self._thread.join(5)
        self._sample()
        return self.rss, self.pss


class Burner:
    """A CPU burner taking about one core (a busy loop in its own process group) for the
    `--burner` run: how each server copes when something else wants a core."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", "while True: pass"],
                                     start_new_session=True, stdin=subprocess.DEVNULL)

    def stop(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=10)


def cpu_delta(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds spent between two snapshots, by processes alive at the end (a process born in
    between counts from zero)."""
    return sum(t - before.get(pid, 0.0) for pid, t in after.items())


def machine_busy_seconds() -> float:
    t = psutil.cpu_times()
    return float(sum(t) - t.idle - getattr(t, "iowait", 0.0))


@dataclass
class WrkResult:
    requests: int
    duration_s: float
    non2xx: int
    socket_errors: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    cpu_s: float
    statuses: dict[int, int] = field(default_factory=dict)

    @property
    def ok_rps(self) -> float:
        return (self.requests - self.non2xx) / self.duration_s if self.duration_s else 0.0


def run_wrk(url: str, script: Path, seconds: float, connections: int, threads: int = 1) -> WrkResult:
    """One wrk run; the Lua script's done() prints a WRKJSON line that is parsed here.
    Timeout per request 10 s, so slow-but-served answers count as latency, not errors."""
    argv = [WRK, f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s",
            "--timeout", "10s", "--latency", "-s", str(script), url]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60, check=False)
    except FileNotFoundError as exc:
        raise BenchError(f"wrk not found at {WRK}: install it with `apt-get install -y wrk`") from exc
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"wrk did not finish within {seconds + 60:.0f}s") from exc
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("WRKJSON ")), None)
    if done.returncode != 0 or line is None:
        raise BenchError(f"wrk failed ({done.returncode}): {done.stderr.strip()[:300]} {done.stdout[-300:]}")
    data = json.loads(line.removeprefix("WRKJSON "))
    return WrkResult(
        requests=int(data["requests"]),
        duration_s=data["duration_us"] / 1e6,
        non2xx=int(data["status_errors"]),
        socket_errors=sum(int(data[k]) for k in ("connect", "read", "write", "timeout")),
        p50_ms=data["p50"] / 1000,
        p95_ms=data["p95"] / 1000,
        p99_ms=data["p99"] / 1000,
        cpu_s=(after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
        statuses={int(k): int(v) for k, v in data.get("statuses", {}).items()},
    )


def scrape(url: str) -> dict[str, float]:
    """Prometheus text -> {'name{labels}': value}; empty when /metrics is missing."""
    status, text = http("GET", url, timeout=10)
    if status != 200:
        return {}
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        key, _, value = line.rpartition(" ")
        try:
            out[key] = out.get(key, 0.0) + float(value)
        except ValueError:
            continue
    return out


def histogram_mean(before: dict[str, float], after: dict[str, float], metric: str,
                   label_filter: str = "") -> float | None:
    """Mean of a histogram over the window between two scrapes (sum delta / count delta),
    summed over all label sets whose labels contain `label_filter`."""

    def total(snapshot: dict[str, float], suffix: str) -> float:
        return sum(v for k, v in snapshot.items()
                   if k.split("{")[0].endswith(metric + suffix) and label_filter in k)

    count = total(after, "_count") - total(before, "_count")
    if count <= 0:
        return None
    return (total(after, "_sum") - total(before, "_sum")) / count
