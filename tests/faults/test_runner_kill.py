"""`kill -9` of a runner process in the split layout, under concurrent load: the API server
answers 503 with Retry-After while the runner is gone (never a 500, never a hang past the
request timeout) and 200 again once the runner is back on the same port."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from runtime.serving.remote import LIVENESS_TIMEOUT_S, STALL_CHECK_S
from tests.faults.conftest import make_service, run_load
from tests.runtime.serving_support import running_server, start_server

REQUEST_TIMEOUT_S = 10.0
CONFIG = """
runners:
  scaler:
    batching: {max_batch_size: 8, max_latency_ms: 2}
"""


@pytest.mark.slow
def test_a_killed_runner_gives_503_then_recovers(tmp_path: Path) -> None:
    svc = make_service(tmp_path, batch_delay_s=0.005, config=CONFIG)
    env = {"NBENTO_HOME": str(tmp_path / "home")}
    common = ("--config", str(tmp_path / "config.yaml"))
    runner = start_server(svc, "--runner", "scaler", *common, env=env)
    try:
        port = runner.url.rsplit(":", 1)[1]
        runner_map = json.dumps({"scaler": runner.url})
        with running_server(svc, "--runner-map", runner_map, *common, env=env) as api:
            url = f"{api.url}/double"
            stop = threading.Event()
            outcomes: list = []
            load = threading.Thread(target=lambda: outcomes.extend(run_load(
                url, seconds=40, concurrency=16, timeout=REQUEST_TIMEOUT_S + 5, stop=stop,
            )))
            load.start()
            try:
                time.sleep(1.5)  # steady load first
                killed_at = time.monotonic()
                runner.stop(signal.SIGKILL)
                time.sleep(3.0)  # the runner is gone; the API keeps answering
                restarted_at = time.monotonic()
                runner = start_server(
                    svc, "--runner", "scaler", *common, env=env, port=int(port),
                )
                ready_at = time.monotonic()
                time.sleep(3.0)  # the API server finds the runner again
            finally:
                stop.set()
                load.join(REQUEST_TIMEOUT_S + 30)
            assert api.proc.poll() is None, api.log()
    finally:
        runner.stop()

    assert not load.is_alive()
    before = [o for o in outcomes if o.started + o.seconds < killed_at]
    gone = [o for o in outcomes if killed_at + 0.5 < o.started < restarted_at]
    after = [o for o in outcomes if o.started > ready_at + 2.0]
    statuses = {o.status for o in outcomes}
    assert statuses <= {200, 503}, sorted(
        {(o.status, o.kind) for o in outcomes if o.status not in (200, 503)}
    )
    assert before and all(o.status == 200 for o in before)
    # while the runner is dead: fast 503s that say so, with Retry-After
    assert gone and all(o.status == 503 for o in gone), {(o.status, o.kind) for o in gone}
    assert all(o.kind == "runner_unreachable" and o.retry_after for o in gone), gone[:3]
    assert all(int(o.retry_after or 0) >= 1 for o in gone)
    assert max(o.seconds for o in outcomes) < REQUEST_TIMEOUT_S, max(o.seconds for o in outcomes)
    # and back: every request after the restart settled is answered
    assert after and all(o.status == 200 for o in after), {(o.status, o.kind) for o in after}


@pytest.mark.slow
def test_a_frozen_runner_gives_503_after_the_liveness_check_then_recovers(tmp_path: Path) -> None:
    """SIGSTOP: the runner's port still accepts but nothing answers. Calls end with 503 once
    the runner also fails its /livez probe, not when the 300 s call timeout runs out."""
    svc = make_service(tmp_path, batch_delay_s=0.005, config=CONFIG)
    env = {"NBENTO_HOME": str(tmp_path / "home")}
    common = ("--config", str(tmp_path / "config.yaml"))
    bound = STALL_CHECK_S + LIVENESS_TIMEOUT_S + 3.0
    with running_server(svc, "--runner", "scaler", *common, env=env) as runner:
        runner_map = json.dumps({"scaler": runner.url})
        with running_server(svc, "--runner-map", runner_map, *common, env=env) as api:
            stop = threading.Event()
            outcomes: list = []
            load = threading.Thread(target=lambda: outcomes.extend(run_load(
                f"{api.url}/double", seconds=60, concurrency=8, timeout=60, stop=stop,
            )))
            load.start()
            try:
                time.sleep(1.0)
                frozen_at = time.monotonic()
                os.kill(runner.pid, signal.SIGSTOP)
                time.sleep(bound + 2.0)
                thawed_at = time.monotonic()
                os.kill(runner.pid, signal.SIGCONT)
                time.sleep(4.0)
            finally:
                os.kill(runner.pid, signal.SIGCONT)
                stop.set()
                load.join(90)
            assert api.proc.poll() is None, api.log()

    statuses = {(o.status, o.kind) for o in outcomes}
    assert {o.status for o in outcomes} <= {200, 503}, statuses
    stuck = [o for o in outcomes if frozen_at - 1 < o.started < thawed_at]
    assert stuck and all(o.seconds < bound for o in stuck), max(o.seconds for o in stuck)
    refused = [o for o in stuck if o.status == 503]
    assert refused and all(o.kind == "runner_unreachable" and o.retry_after for o in refused)
    after = [o for o in outcomes if o.started > thawed_at + 2.0]
    assert after and all(o.status == 200 for o in after), {(o.status, o.kind) for o in after}
