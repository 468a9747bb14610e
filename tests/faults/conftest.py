"""The fault suite's shared parts: real `nbento serve` processes on 127.0.0.1 (started and
stopped by their PIDs through `tests.runtime.serving_support`), a small service over the test
`Scaler` model, a bounded concurrent load, and the server's resident memory read from
/proc/PID/status. Under CI=true a missing prerequisite fails instead of skipping."""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.conftest import descendants
from tests.runtime.serving_models import save_scaler
from tests.runtime.serving_support import write_service

SERVICE = """
from __future__ import annotations

from runtime import api, runner

scaler = runner("scaler:latest")


@api
def double(xs: list[float]) -> list[float]:
    return scaler.predict(xs)
"""


def make_service(root: Path, *, batch_delay_s: float = 0.0, config: str = "") -> Path:
    """A service folder `root/svc` serving `POST /double` over a saved `Scaler` (in
    `root/home`, which the caller puts in NBENTO_HOME), plus `root/config.yaml`."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NBENTO_HOME", str(root / "home"))
        save_scaler("scaler", factor=2.0, batch_delay_s=batch_delay_s)
    write_service(root / "svc", SERVICE)
    (root / "config.yaml").write_text(config)
    return root / "svc"


def rss_kib(pid: int) -> int:
    """Resident memory of `pid` in KiB (VmRSS), 0 once the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def child_pids(pid: int) -> set[int]:
    """Every live descendant of `pid`."""
    return set(descendants(pid))


@dataclass
class RssPeak:
    """Samples a process's VmRSS every `interval` seconds in a thread, keeping the peak."""

    pid: int
    interval: float = 0.02
    before: int = 0
    peak: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> RssPeak:
        self.before = self.peak = rss_kib(self.pid)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, rss_kib(self.pid))

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)


@dataclass
class Outcome:
    """One request of a load: status (0: no HTTP answer), Retry-After, error type, seconds."""

    status: int
    retry_after: str | None
    kind: str
    seconds: float
    started: float


async def _one(client: httpx.AsyncClient, url: str, body: object) -> Outcome:
    started = time.monotonic()
    try:
        r = await client.post(url, json=body)
    except httpx.HTTPError as exc:
        return Outcome(0, None, type(exc).__name__, time.monotonic() - started, started)
    kind = ""
    if r.status_code != 200:
        try:
            kind = str(r.json()["error"]["type"])
        except (ValueError, KeyError, TypeError):
            kind = r.text[:200]
    return Outcome(r.status_code, r.headers.get("retry-after"), kind,
                   time.monotonic() - started, started)


def run_load(url: str, *, seconds: float, concurrency: int, timeout: float,
             stop: threading.Event | None = None) -> list[Outcome]:
    """`concurrency` closed-loop clients posting `[1.0]` to `url` for `seconds` (or until
    `stop` is set); every outcome, in the order they finished."""

    async def client_loop(client: httpx.AsyncClient, out: list[Outcome], until: float) -> None:
        while time.monotonic() < until and not (stop and stop.is_set()):
            outcome = await _one(client, url, [1.0])
            out.append(outcome)
            if outcome.status != 200:
                await asyncio.sleep(0.01)  # an answered refusal: do not spin

    async def main() -> list[Outcome]:
        out: list[Outcome] = []
        until = time.monotonic() + seconds
        limits = httpx.Limits(max_connections=concurrency)
        async with httpx.AsyncClient(timeout=timeout, limits=limits) as client:
            await asyncio.gather(*(client_loop(client, out, until) for _ in range(concurrency)))
        return out

    return asyncio.run(main())
