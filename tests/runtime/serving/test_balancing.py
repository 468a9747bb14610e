"""Runner replicas share the load (issue 15): three runner processes on 127.0.0.2-4 (one port),
an API server whose runner map lists two of them by URL and the third by a `dns+http://` name
that a hosts entry resolves, inside a mount namespace the test makes for the API server
(`unshare --mount` + a bind-mounted /etc/hosts; needs root). Under 20 concurrent clients every
replica gets its share, a fourth replica added to the name during the load gets its share
within 10 s, and SIGKILL of a replica costs no failed request."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import require
from tests.runtime.serving_models import save_scaler
from tests.runtime.serving_support import (
    REPO,
    ServerProcess,
    metric_value,
    serve_command,
    start_server,
    write_service,
)

SERVICE = """
from runtime import api, runner

scaler = runner("scaler:latest")


@api
def double(xs: list[float]) -> list[float]:
    return scaler.predict(xs)
"""
NAME = "scaler-replicas"


def _unshare_works() -> bool:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    probe = subprocess.run(
        ["unshare", "--mount", "sh", "-c", "mount --bind /etc/hostname /etc/hosts"],
        capture_output=True, timeout=30,
    )
    return probe.returncode == 0


def _port_free_on(hosts: list[str]) -> int:
    for _ in range(50):
        with socket.socket() as s:
            s.bind((hosts[0], 0))
            port = int(s.getsockname()[1])
        try:
            for host in hosts[1:]:
                with socket.socket() as s:
                    s.bind((host, port))
            return port
        except OSError:
            continue
    raise RuntimeError(f"no port free on all of {hosts}")


def _start_api_with_hosts(svc: Path, hosts_file: Path, runner_map: str) -> ServerProcess:
    """`nbento serve` in its own mount namespace, where /etc/hosts is `hosts_file` (edited in
    place by the test, so the server's resolver sees replicas join)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    fd, name = tempfile.mkstemp(prefix="nbento-api-", suffix=".log")
    argv = [
        "unshare", "--mount", "sh", "-c", f'mount --bind "{hosts_file}" /etc/hosts && exec "$@"',
        "sh", *serve_command(svc, "--port", "0", "--runner-map", runner_map, "--dev"),  # --dev: status shows runner URLs
    ]
    with os.fdopen(fd, "wb") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, cwd=str(REPO), env=env)
    server = ServerProcess(proc, Path(name), args=argv)
    try:
        server.wait_ready(90)
    except BaseException:
        server.stop(signal.SIGKILL, 10)
        raise
    return server


class Load:
    """20 clients posting to /double until stopped; every status code is kept."""

    def __init__(self, url: str, clients: int = 20) -> None:
        self.url = url
        self.statuses: Counter[int] = Counter()
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(clients)]

    def _run(self) -> None:
        with httpx.Client(timeout=30) as client:
            while not self._stop.is_set():
                try:
                    r = client.post(f"{self.url}/double", json=[1.0, 2.0, 3.0])
                    ok = r.status_code == 200 and r.json() == [2.0, 4.0, 6.0]
                    with self._lock:
                        self.statuses[r.status_code] += 1
                        if not ok:
                            self.errors.append(f"{r.status_code} {r.text[:300]}")
                except httpx.HTTPError as exc:
                    with self._lock:
                        self.errors.append(repr(exc))

    def __enter__(self) -> Load:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(60)


def _calls(url: str, replicas: list[str]) -> dict[str, float]:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    return {
        r: metric_value(text, "nbento_runner_replica_calls_total",
                        {"runner": "scaler", "replica": r, "outcome": "answered"})
        for r in replicas
    }


def _window(url: str, replicas: list[str], seconds: float) -> dict[str, float]:
    before = _calls(url, replicas)
    time.sleep(seconds)
    after = _calls(url, replicas)
    return {r: after[r] - before[r] for r in replicas}


def _fair(shares: dict[str, float]) -> bool:
    mean = sum(shares.values()) / len(shares)
    return mean > 0 and all(abs(v - mean) <= 0.25 * mean for v in shares.values())


@pytest.fixture
def runners(tmp_path: Path) -> Iterator[tuple[Path, int, list[ServerProcess]]]:
    save_scaler("scaler", batch_delay_s=0.002)
    svc = tmp_path / "svc"
    write_service(svc, SERVICE)
    port = _port_free_on([f"127.0.0.{i}" for i in (2, 3, 4, 5)])
    started: list[ServerProcess] = []
    try:
        yield svc, port, started
    finally:
        for server in started:
            server.stop(timeout=15)


def test_replicas_share_calls_join_under_load_and_survive_sigkill(
    runners: tuple[Path, int, list[ServerProcess]], tmp_path: Path
) -> None:
    require(sys.platform == "linux" and _unshare_works(),
            "needs root and `unshare --mount` for the hosts entry")
    svc, port, started = runners
    for i in (2, 3, 4):
        started.append(start_server(svc, "--runner", "scaler", "--host", f"127.0.0.{i}",
                                    port=port, timeout=90))
    hosts = tmp_path / "hosts"
    hosts.write_text(f"127.0.0.1 localhost\n127.0.0.4 {NAME}\n")
    runner_map = (
        f'{{"scaler": ["http://127.0.0.2:{port}", "http://127.0.0.3:{port}", '
        f'"dns+http://{NAME}:{port}"]}}'
    )
    api = _start_api_with_hosts(svc, hosts, runner_map)
    started.append(api)
    three = [f"http://127.0.0.{i}:{port}" for i in (2, 3, 4)]
    four = [*three, f"http://127.0.0.5:{port}"]
    with Load(api.url) as load:
        time.sleep(1.0)  # warm up connections
        shares = _window(api.url, three, 4.0)
        assert _fair(shares), shares

        # a fourth replica: started, ready, then added to the name (as an endpoint would be)
        started.append(start_server(svc, "--runner", "scaler", "--host", "127.0.0.5",
                                    port=port, timeout=90))
        with hosts.open("a") as f:  # in place: the bind mount follows the inode
            f.write(f"127.0.0.5 {NAME}\n")
        joined = time.monotonic()
        windows = []
        while time.monotonic() - joined < 10.0:
            windows.append(_window(api.url, four, 2.0))
            if _fair(windows[-1]):
                break
        assert _fair(windows[-1]), windows
        assert time.monotonic() - joined <= 10.5

        # SIGKILL one replica: the calls it would have had go elsewhere, nobody sees an error
        started[0].stop(signal.SIGKILL, 10)
        time.sleep(1.0)
        rest = four[1:]
        after_kill = _window(api.url, rest, 3.0)
        assert _fair(after_kill), after_kill
    assert load.errors == [], load.errors[:5]
    assert set(load.statuses) == {200}, load.statuses
    metrics = httpx.get(f"{api.url}/metrics").text
    unreachable = metric_value(metrics, "nbento_runner_replica_calls_total",
                               {"replica": four[0], "outcome": "unreachable"})
    assert unreachable >= 1, "the killed replica was never tried, so the retry went untested"
    status = httpx.get(f"{api.url}/_nbento/status").json()
    assert f"dns+http://{NAME}:{port}" in status["runners"]["scaler"]["url"]
