"""SIGTERM while a reload is in progress (`nbento serve SVC --reload`, the service file edited to
use a model whose worker process is still loading it): the server exits 0, the requests in
flight are answered or refused cleanly (no 500, no hang) and no worker process outlives it."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.faults.conftest import SERVICE, Outcome, child_pids, make_service, run_load
from tests.runtime.serving_models import save_scaler
from tests.runtime.serving_support import start_server, wait_until, write_service

CONFIG = """
graceful_timeout_s: 10
runners:
  scaler: {isolation: process, workers: 1}
  slow: {isolation: process, workers: 1}
"""


def alive(pid: int) -> bool:
    """Running (a zombie waiting to be reaped has exited: it holds no resources but a slot)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.slow
def test_sigterm_during_a_reload_exits_cleanly_without_orphans(tmp_path: Path) -> None:
    svc = make_service(tmp_path, config=CONFIG)
    home = tmp_path / "home"
    env = {"NBENTO_HOME": str(home)}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NBENTO_HOME", str(home))
        save_scaler("slow", factor=3.0, load_delay_s=4.0)  # its worker takes 4 s to load it
    server = start_server(svc, "--reload", "--config", str(tmp_path / "config.yaml"), env=env)
    seen: set[int] = set()
    outcomes: list[Outcome] = []
    stop = threading.Event()
    load = threading.Thread(target=lambda: outcomes.extend(
        run_load(f"{server.url}/double", seconds=60, concurrency=4, timeout=20, stop=stop)
    ))
    try:
        assert httpx.post(f"{server.url}/double", json=[1], timeout=10).json() == [2.0]
        seen |= child_pids(server.pid)
        assert seen, "the process-isolated runner should have a worker process"
        load.start()
        time.sleep(0.5)
        write_service(svc, SERVICE.replace('runner("scaler:latest")', 'runner("slow:latest")'))
        assert wait_until(lambda: "reloading" in server.log(), timeout=10), server.log()
        # the new runner's worker is starting and loading its model: the reload is in progress
        wait_until(lambda: len(child_pids(server.pid)) > len(seen), timeout=5)
        time.sleep(0.5)
        seen |= child_pids(server.pid)
        assert "reloaded service" not in server.log()
        server.proc.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        code = server.proc.wait(30)
        exited = time.monotonic()
    finally:
        stop.set()
        if load.is_alive():
            load.join(40)
        if server.proc.poll() is None:
            server.stop(signal.SIGKILL)
        survivors = {pid for pid in seen if alive(pid)}
        for pid in survivors:  # leave nothing behind, whatever the assertions say
            os.kill(pid, signal.SIGKILL)

    assert code == 0, server.log()
    assert len(seen) >= 2, seen  # the old runner's worker and the new one's
    lingering = [pid for pid in seen if alive(pid)]
    assert not survivors and not lingering, (survivors, server.log()[-3000:])
    assert time.monotonic() - exited < 60
    # requests sent well before the signal were answered (the drain); later ones were answered,
    # refused with 503, or found the socket closed (refused connect, or a keep-alive
    # connection closed under a request racing it); never a 500, never a hang
    early = [o for o in outcomes if o.started < signalled - 0.5]
    assert early and all(o.status == 200 for o in early), {(o.status, o.kind) for o in early}
    late = [o for o in outcomes if o.started >= signalled - 0.5]
    clean = (200, 503)
    closed = ("ConnectError", "ReadError", "RemoteProtocolError")
    kinds = {(o.status, o.kind) for o in late}
    assert all(o.status in clean or (o.status == 0 and o.kind in closed) for o in late), kinds
    assert max(o.seconds for o in outcomes) < 15, max(o.seconds for o in outcomes)
    assert "Traceback" not in server.log(), server.log()[-3000:]
