"""Where a runner computes at nbento's defaults (`isolation: auto`): torch-backed models in one
worker process per core with one torch thread each, other models in threads; a worker process
killed under load fails its open calls at once (503 + Retry-After) and is replaced; thread and
process layouts answer the same."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import numpy as np
import psutil
import pytest

from runtime import store
from runtime.service.handles import ModelHandle, runner, set_backend_resolver
from runtime.serving.effective import effective_settings
from runtime.serving.runners import RunnerPool
from runtime.serving.workers import available_cores
from runtime.settings import RunnerConfig, ServerConfig
from tests.runtime.runner_models import SIGNATURES as DOUBLER_SIGNATURES
from tests.runtime.runner_models import Doubler
from tests.runtime.serving_support import running_server, write_service

torch = pytest.importorskip("torch")

from tests.runtime.serving.layout_models import SIGNATURES, ThreadReporter  # noqa: E402

pytestmark = pytest.mark.anyio
REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    yield
    set_backend_resolver(None)


def service(*handles: ModelHandle) -> Any:
    return SimpleNamespace(name="svc", runners={h.name: h for h in handles}, apis={})


async def test_defaults_put_a_torch_model_in_one_process_per_core_with_one_torch_thread() -> None:
    saved = store.save_model("reporter", ThreadReporter(), signatures=SIGNATURES)
    assert saved.info.serializer == "torch"
    store.save_model("doubler", Doubler(), signatures=DOUBLER_SIGNATURES)
    reporter, doubler = runner("reporter"), runner("doubler")
    pool = RunnerPool(ServerConfig())  # nbento's defaults: no config file, no overrides
    await pool.sync(service(reporter, doubler))
    set_backend_resolver(pool.resolver)
    cores = available_cores()
    try:
        status = pool.status()
        assert status["reporter"]["isolation"] == "process"
        assert status["reporter"]["workers"] == cores
        assert status["reporter"]["threads"] == 1
        assert status["doubler"]["isolation"] == "thread"  # not torch: threads
        # Each worker process computes with one torch thread, away from this process.
        seen = await reporter.layout.async_run(list(range(64)))
        assert {threads for threads, _ in seen} == {1}
        assert os.getpid() not in {pid for _, pid in seen}
        view = effective_settings(ServerConfig(), service(reporter, doubler))
        assert view["runners"]["reporter"]["isolation"] == "process"
        assert view["runners"]["reporter"]["threads"] == 1
        assert view["runners"]["doubler"]["isolation"] == "thread"
    finally:
        await pool.aclose(10)


@pytest.mark.parametrize("isolation", ["thread", "process"])
async def test_thread_and_process_layouts_answer_the_same(isolation: str) -> None:
    store.save_model("reporter", ThreadReporter(), signatures=SIGNATURES)
    handle = runner("reporter")
    rows = torch.arange(24, dtype=torch.float32).reshape(6, 4)
    expected = ThreadReporter()(rows).detach()
    pool = RunnerPool(ServerConfig(runners={"reporter": RunnerConfig(isolation=isolation)}))
    await pool.sync(service(handle))
    set_backend_resolver(pool.resolver)
    try:
        assert pool.status()["reporter"]["isolation"] == isolation
        out = await handle.forward.async_run(rows)
        assert isinstance(out, torch.Tensor) and out.shape == (6, 2)
        assert torch.equal(out.detach(), expected)
    finally:
        await pool.aclose(10)


SLOW_SERVICE = """
from runtime import api, runner

reporter = runner("reporter:latest")


@api
async def slow(xs: list[float]) -> list[float]:
    return await reporter.slow.async_run(xs)
"""


def _hammer(url: str, stop: threading.Event, log: list[tuple[float, int, float, str]]) -> None:
    with httpx.Client(timeout=10.0) as client:
        while not stop.is_set():
            began = time.monotonic()
            try:
                r = client.post(f"{url}/slow", json={"xs": [1.0, 2.0]})
                entry = (began, r.status_code, time.monotonic() - began,
                         r.headers.get("retry-after", "") + "|" + r.text[:200])
            except httpx.HTTPError as exc:
                entry = (began, -1, time.monotonic() - began, repr(exc))
            log.append(entry)
            if entry[1] != 200:
                stop.wait(0.05)  # a client honouring Retry-After would wait longer


@pytest.mark.slow
def test_killed_worker_processes_fail_fast_with_503_and_are_replaced(tmp_path: Path) -> None:
    store.save_model("reporter", ThreadReporter(), signatures=SIGNATURES)
    write_service(tmp_path / "svc", SLOW_SERVICE)
    began = time.monotonic()
    with running_server(tmp_path / "svc" / "service.py", timeout=120) as server:
        # Replacements are forks of the template (no reload): 10 s, or three first loads on a
        # machine so busy that a start takes longer (seen at a load average of 8-12).
        recovery = max(10.0, 3 * (time.monotonic() - began))
        (template,) = psutil.Process(server.pid).children()  # the workers are its forks
        workers = template.children()
        assert len(workers) == available_cores(), [w.cmdline() for w in workers]
        stop = threading.Event()
        log: list[tuple[float, int, float, str]] = []
        callers = [threading.Thread(target=_hammer, args=(server.url, stop, log)) for _ in range(8)]
        for t in callers:
            t.start()
        try:
            time.sleep(1.5)
            killed_at = time.monotonic()
            for worker in workers:
                os.kill(worker.pid, signal.SIGKILL)
            # Back to 200s once the replacements loaded the model.
            deadline = killed_at + recovery
            while time.monotonic() < deadline:
                if any(b > killed_at + 0.2 and s == 200 for b, s, _, _ in log[-8:]):
                    break
                time.sleep(0.1)
            time.sleep(0.5)
        finally:
            stop.set()
            for t in callers:
                t.join(30)
        after = [entry for entry in log if entry[0] >= killed_at]
        assert [e for e in log if e[1] not in (200, 503)] == [], server.log()[-3000:]
        # The calls open on the killed workers (begun before the kill, answered after it); a
        # fork replaces a worker within milliseconds, so later calls rarely see the gap.
        failed = [e for e in log if e[1] == 503 and e[0] + e[2] >= killed_at]
        assert failed, "no call failed while every worker process was dead"
        assert all(e[3].split("|")[0].isdigit() and "worker_died" in e[3] for e in failed), failed[:3]
        assert max(e[2] for e in log) < 5.0, "a call waited on a dead worker instead of failing"
        recovered = [e for e in after if e[1] == 200 and e[0] > failed[-1][0]]
        assert recovered, f"no 200 after the kill; server log:\n{server.log()[-3000:]}"
        assert recovered[0][0] + recovered[0][2] - killed_at < recovery, server.log()[-3000:]
        fresh = template.children()
        assert len(fresh) == len(workers)
        assert not {w.pid for w in fresh} & {w.pid for w in workers}
        status = httpx.get(f"{server.url}/_nbento/status").json()
        assert status["runners"]["reporter"]["replaced"] == len(workers)


def test_default_layout_answers_over_http_like_the_model(tmp_path: Path) -> None:
    store.save_model("reporter", ThreadReporter(), signatures=SIGNATURES)
    write_service(tmp_path / "svc", SLOW_SERVICE)
    with running_server(tmp_path / "svc" / "service.py", timeout=120) as server:
        r = httpx.post(f"{server.url}/slow", json={"xs": [1.5, -2.0]}, timeout=30)
        assert r.status_code == 200 and np.allclose(r.json(), [3.0, -4.0])
        status = httpx.get(f"{server.url}/_nbento/status").json()["runners"]["reporter"]
        assert (status["isolation"], status["threads"]) == ("process", 1)


@pytest.mark.slow
def test_sigterm_to_the_whole_group_drains_instead_of_replacing_workers(tmp_path: Path) -> None:
    """Ctrl-C in a terminal (or `kill -TERM -PGID`) reaches the workers too: they leave the
    stopping to the server, which drains and exits 0 without restarting anything."""
    store.save_model("reporter", ThreadReporter(), signatures=SIGNATURES)
    write_service(tmp_path / "svc", SLOW_SERVICE)
    with running_server(tmp_path / "svc" / "service.py", timeout=120) as server:
        # the template and the workers it forked: none may outlive the server
        workers = psutil.Process(server.pid).children(recursive=True)
        assert len(workers) == 1 + available_cores()
        assert httpx.post(f"{server.url}/slow", json={"xs": [1.0]}, timeout=30).status_code == 200
        for worker in workers:
            os.kill(worker.pid, signal.SIGTERM)
        time.sleep(0.5)
        assert all(w.is_running() and w.status() != psutil.STATUS_ZOMBIE for w in workers)
        assert server.stop(signal.SIGTERM, timeout=60) == 0
        assert "exited (code" not in server.log(), server.log()[-2000:]
        assert not any(w.is_running() and w.status() != psutil.STATUS_ZOMBIE for w in workers)


@pytest.mark.slow
def test_a_code_reload_keeps_the_worker_processes_and_their_loaded_model(tmp_path: Path) -> None:
    store.save_model("reporter", ThreadReporter(), signatures=SIGNATURES)
    service = write_service(tmp_path / "svc", SLOW_SERVICE)
    with running_server(service, "--reload", timeout=120) as server:
        before = {w.pid for w in psutil.Process(server.pid).children(recursive=True)}
        assert len(before) == 1 + available_cores()  # the template and its forked workers
        service.write_text(SLOW_SERVICE.replace("return await", "return [-x for x in await")
                           .replace("async_run(xs)", "async_run(xs)]"))
        deadline = time.monotonic() + 60
        answer: Any = None
        while time.monotonic() < deadline:
            answer = httpx.post(f"{server.url}/slow", json={"xs": [1.0]}, timeout=30).json()
            if answer == [-2.0]:
                break
            time.sleep(0.2)
        assert answer == [-2.0], server.log()[-2000:]
        after = {w.pid for w in psutil.Process(server.pid).children(recursive=True)}
        assert after == before
