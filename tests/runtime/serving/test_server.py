"""The server process: readiness while models load, SIGTERM drain, startup errors, the runner
process of the split layout, and the CLI's printed URLs. Real subprocesses on 127.0.0.1."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from tests.runtime.serving_models import save_scaler
from tests.runtime.serving_support import (
    REPO,
    metric_value,
    running_server,
    serve_command,
    start_server,
    wait_until,
    write_service,
)

SERVICE = """
from runtime import api, runner

scaler = runner("scaler:latest")


@api
def double(xs: list[float]) -> list[float]:
    return scaler.predict(xs)


@api
def describe() -> str:
    return scaler.describe()


@api
async def adouble(xs: list[float]) -> dict:
    return {"out": await scaler.predict.async_run(xs)}
"""


def in_progress(url: str) -> float:
    metrics = httpx.get(f"{url}/metrics").text
    return metric_value(metrics, "nbento_requests_in_progress", {"endpoint": "double"})


def test_readyz_is_503_until_the_model_has_loaded(tmp_path: Path) -> None:
    save_scaler("scaler", load_delay_s=2.5)
    write_service(tmp_path / "svc", SERVICE)
    server = start_server(tmp_path / "svc", ready=False)
    try:
        assert httpx.get(f"{server.url}/livez").status_code == 200
        early = httpx.get(f"{server.url}/readyz")
        assert early.status_code == 503 and early.json()["ready"] is False
        # a call while loading is a retryable 503, not a 500
        r = httpx.post(f"{server.url}/double", json=[1])
        assert r.status_code == 503 and "retry-after" in r.headers
        server.wait_ready(timeout=30)
        assert httpx.post(f"{server.url}/double", json=[1]).json() == [2.0]
        status = httpx.get(f"{server.url}/_nbento/status").json()
        assert status["runners"]["scaler"]["load_seconds"] >= 2.0
    finally:
        assert server.stop() == 0


def test_sigterm_finishes_in_flight_requests_and_exits_0(tmp_path: Path) -> None:
    save_scaler("scaler", batch_delay_s=0.8)
    write_service(tmp_path / "svc", SERVICE)
    server = start_server(tmp_path / "svc")
    with ThreadPoolExecutor(6) as pool:
        futures = [
            pool.submit(httpx.post, f"{server.url}/double", json=[i], timeout=30) for i in range(6)
        ]
        # wait until all six are inside the server (the first batch is computing)
        assert wait_until(lambda: in_progress(server.url) == 6, timeout=20), server.log()
        server.proc.send_signal(signal.SIGTERM)
        results = [f.result() for f in futures]
    assert [r.status_code for r in results] == [200] * 6, server.log()
    assert [r.json() for r in results] == [[2.0 * i] for i in range(6)]
    assert server.proc.wait(30) == 0
    log = server.log()
    assert "stopped" in log
    # and it stopped accepting: nothing listens any more
    try:
        httpx.get(f"{server.url}/livez", timeout=2)
        raise AssertionError("server still answers after SIGTERM")
    except httpx.TransportError:
        pass


def test_broken_service_fails_before_binding_with_file_and_line(tmp_path: Path) -> None:
    path = write_service(tmp_path / "svc", "from runtime import api\n\nimport no_such_module_xyz\n")
    proc = subprocess.run(
        serve_command(tmp_path / "svc", "--port", "0"), capture_output=True, text=True,
        timeout=60, cwd=REPO,
    )
    assert proc.returncode == 1
    assert f"error: {path}:3: ModuleNotFoundError: No module named 'no_such_module_xyz'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_bad_flags_are_readable_errors(tmp_path: Path) -> None:
    write_service(tmp_path / "svc", SERVICE)
    proc = subprocess.run(
        serve_command(tmp_path / "svc", "--runner-map", "{not json"), capture_output=True,
        text=True, timeout=60, cwd=REPO,
    )
    assert proc.returncode == 1 and "--runner-map must be JSON" in proc.stderr
    proc = subprocess.run(
        serve_command(tmp_path / "nowhere"), capture_output=True, text=True, timeout=60, cwd=REPO,
    )
    assert proc.returncode == 1 and "error: no service at" in proc.stderr


def test_prints_url_and_docs_url(tmp_path: Path) -> None:
    save_scaler("scaler")
    write_service(tmp_path / "svc", SERVICE)
    with running_server(tmp_path / "svc") as server:
        log = server.log()
        assert server.url.startswith("http://127.0.0.1:")
        assert f"nbento: serving 'svc' at {server.url} (POST /double" in log
        assert f"nbento: docs at {server.url}/docs" in log


def test_split_layout_gives_the_same_answers(tmp_path: Path) -> None:
    save_scaler("scaler", factor=3.0)
    write_service(tmp_path / "svc", SERVICE)
    calls = [("double", [1, 2, 3]), ("adouble", [0.5]), ("describe", None), ("double", list(range(40)))]

    def answers(url: str) -> list[object]:
        out = []
        for api, body in calls:
            r = httpx.post(f"{url}/{api}", json=body, timeout=30)
            out.append((r.status_code, r.headers["content-type"], r.text))
        return out

    with running_server(tmp_path / "svc") as single:
        expected = answers(single.url)
    # a runner map shared by every pod names the runner itself: it must still load it locally
    shared_env = {"NBENTO_RUNNER_MAP": json.dumps({"scaler": "http://127.0.0.1:9"})}
    with running_server(tmp_path / "svc", "--runner", "scaler", env=shared_env) as runner_proc:
        assert "nbento: runner 'scaler' of service 'svc' at" in runner_proc.log()
        runner_map = json.dumps({"scaler": runner_proc.url})
        with running_server(tmp_path / "svc", "--runner-map", runner_map) as api_proc:
            assert answers(api_proc.url) == expected
            status = httpx.get(f"{api_proc.url}/_nbento/status").json()
            assert "url" not in status["runners"]["scaler"]  # internal addresses: --dev only
        # the runner process did the batching, and logged and counted its requests
        metrics = httpx.get(f"{runner_proc.url}/metrics").text
        assert 'nbento_runner_batch_size_count{method="predict",runner="scaler"}' in metrics
        assert 'nbento_requests_total{endpoint="runner:predict",status="200"}' in metrics
        assert '"POST /_runner/predict HTTP/1.1" 200' in runner_proc.log()
    assert expected[0] == (200, "application/json", "[3.0,6.0,9.0]")


def test_python_dash_m_runtime_is_the_cli() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "runtime", "serve", "--help"], capture_output=True, text=True,
        timeout=60, cwd=REPO,
    )
    assert proc.returncode == 0
    for flag in ("--host", "--port", "--config", "--runner", "--runner-map", "--dev", "--reload"):
        assert flag in proc.stdout


def test_runner_that_cannot_load_stops_the_server_with_exit_1(tmp_path: Path) -> None:
    # no model saved: the runner's load fails (after one retry), so the server must not sit
    # there alive but never ready
    write_service(tmp_path / "svc", SERVICE)
    proc = subprocess.run(
        serve_command(tmp_path / "svc", "--port", "0"), capture_output=True, text=True,
        timeout=60, cwd=REPO,
    )
    assert proc.returncode == 1, proc.stderr
    assert "error: the runners of service 'svc' failed to load:" in proc.stderr
    assert "scaler" in proc.stderr.splitlines()[-1]
    assert "retrying the runner load" in proc.stderr
