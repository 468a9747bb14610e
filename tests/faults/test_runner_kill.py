"""`kill -9` of a runner process in the split layout, under concurrent load: the API server
answers 503 with Retry-After while the runner is gone (never a 500, never a hang past the
request timeout) and 200 again once the runner is back on the same port."""

from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path

import pytest

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
