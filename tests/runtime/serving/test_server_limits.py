"""Limits and shutdown of a real `nbento serve` process on 127.0.0.1: `limit_concurrency` answers
503 past its bound, `api_threads` bounds how many sync API calls run at once, and Ctrl-C
(SIGINT to the whole process group, as a terminal sends it) drains, exits 0 and leaves no
worker process behind."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.conftest import descendants
from tests.runtime.serving_models import save_scaler
from tests.runtime.serving_support import (
    REPO,
    ServerProcess,
    metric_value,
    running_server,
    serve_command,
    wait_until,
    write_service,
)

SLOW = """
import threading
import time

from runtime import api

_lock = threading.Lock()
_running = 0
_peak = 0


@api
def slow(seconds: float) -> dict:
    global _running, _peak
    with _lock:
        _running += 1
        _peak = max(_peak, _running)
    time.sleep(seconds)
    with _lock:
        _running -= 1
    return {"peak": _peak}
"""


def _post_all(url: str, n: int, body: object) -> list[httpx.Response]:
    """`n` requests at once, each on its own connection."""
    with ThreadPoolExecutor(n) as pool:
        futures = [
            pool.submit(httpx.post, url, json=body, timeout=60, trust_env=False) for _ in range(n)
        ]
        return [f.result() for f in futures]


def test_requests_past_limit_concurrency_get_503(tmp_path: Path) -> None:
    write_service(tmp_path / "svc", SLOW)
    with running_server(tmp_path / "svc", "--set", "limit_concurrency=3") as server:
        answers = _post_all(f"{server.url}/slow", 8, 1.0)
        codes = sorted(r.status_code for r in answers)
        assert set(codes) == {200, 503}, (codes, server.log())
        assert codes.count(200) <= 3  # never more at once than the limit
        refused = next(r for r in answers if r.status_code == 503)
        assert "Traceback" not in refused.text
        # the limit is on what runs at once, not a budget: a later request is served
        assert httpx.post(f"{server.url}/slow", json=0.0, trust_env=False).status_code == 200


def test_api_threads_bounds_sync_calls_running_at_once(tmp_path: Path) -> None:
    write_service(tmp_path / "svc", SLOW)
    with running_server(tmp_path / "svc", "--set", "api_threads=2") as server:
        started = time.monotonic()
        answers = _post_all(f"{server.url}/slow", 6, 0.5)
        elapsed = time.monotonic() - started
    assert [r.status_code for r in answers] == [200] * 6, [r.text for r in answers]
    peak = max(r.json()["peak"] for r in answers)
    assert peak == 2  # two threads: two at once (not one), and never three
    assert elapsed >= 3 * 0.5 * 0.9  # six half-second calls two at a time


def _alive(pid: int, start: str) -> bool:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return fields[19] == start and fields[0] != "Z"


@pytest.fixture
def process_group_server(tmp_path: Path) -> Iterator[ServerProcess]:
    """`nbento serve` in its own session (a terminal's foreground group), its runner in two
    worker processes."""
    save_scaler("scaler", batch_delay_s=1.0)
    write_service(tmp_path / "svc", """
        from runtime import api, runner

        scaler = runner("scaler:latest")


        @api
        def double(xs: list[float]) -> list[float]:
            return scaler.predict(xs)
    """)
    log_path = tmp_path / "serve.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    argv = serve_command(
        tmp_path / "svc", "--port", "0", "--set", "runners.scaler.isolation=process",
        "--set", "runners.scaler.workers=2",
    )
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, cwd=REPO, env=env,
                                start_new_session=True)
    server = ServerProcess(proc, log_path, args=argv)
    try:
        server.wait_ready(timeout=90)
        yield server
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def test_ctrl_c_drains_exits_0_and_leaves_no_worker_behind(
    process_group_server: ServerProcess,
) -> None:
    server = process_group_server
    children = descendants(server.pid)
    assert len(children) >= 2, f"expected two worker processes, found {children}"
    with ThreadPoolExecutor(1) as pool:
        in_flight = pool.submit(httpx.post, f"{server.url}/double", json=[4], timeout=30,
                                trust_env=False)
        # inside the server (its batch computes for a second in a worker) before the signal
        assert wait_until(lambda: metric_value(
            httpx.get(f"{server.url}/metrics", trust_env=False).text,
            "nbento_requests_in_progress", {"endpoint": "double"}) == 1, timeout=20), server.log()
        os.killpg(server.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        answer = in_flight.result()
    assert answer.status_code == 200 and answer.json() == [8.0], answer.text
    assert server.proc.wait(30) == 0, server.log()
    assert wait_until(lambda: not any(_alive(p, s) for p, s in children.items()), timeout=10), (
        f"left behind: {[p for p, s in children.items() if _alive(p, s)]}"
    )
    log = server.log()
    assert "stopped" in log
    assert "Traceback" not in log and "KeyboardInterrupt" not in log, log
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{server.url}/livez", timeout=2, trust_env=False)
