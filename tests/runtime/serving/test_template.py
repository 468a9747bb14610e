"""Worker processes forked from one template process per runner (docs/batching.md): the
workers are the template's children and did not load the model themselves, a dead worker is
replaced by a fork, a dead template is restarted while its workers keep serving, and a user's
`runtime.py` next to the service cannot shadow nbento's package in the worker processes."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from runtime import store
from runtime.errors import WorkerError
from runtime.serving.template import Template
from runtime.serving.template_process import thread_count_reason
from runtime.serving.workers import ProcessWorkers
from tests.runtime.serving_support import REPO, ServerProcess, write_service

torch = pytest.importorskip("torch")

from tests.runtime.serving.layout_models import SIGNATURES, ThreadReporter  # noqa: E402


class ThreadStarter(ThreadReporter):
    """A model whose loading leaves a thread running (as some libraries do): no safe fork."""

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        threading.Thread(target=time.sleep, args=(3600,), name="left-running", daemon=True).start()

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def _pythonpath(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    yield


async def _until(check: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def _pids_answering(workers: ProcessWorkers) -> set[int]:
    seen = await workers.run("layout", (list(range(4)),), {})
    return {pid for _, pid in seen}


async def test_workers_are_forked_children_of_the_template_and_load_nothing() -> None:
    store.save_model("reporter", ThreadReporter(), signatures=SIGNATURES)
    workers = ProcessWorkers("reporter:latest", workers=2, threads=1)
    await workers.start()
    try:
        status = workers.status()
        template = status["processes"]["template"]
        assert status["template"]["forks"] == 2 and status["spawn_reason"] is None
        children = status["processes"]["workers"]
        assert len(children) == 2
        for child in children:
            assert child["forked"] is True
            assert psutil.Process(child["pid"]).ppid() == template
            # the template imported torch and loaded the weights; the fork only said hello
            assert child["load_seconds"] < 0.2 < status["template"]["load_seconds"]
        assert psutil.Process(template).ppid() == os.getpid()
        answered = set()
        for _ in range(20):
            answered |= await _pids_answering(workers)
        assert answered <= {c["pid"] for c in children} and answered
        assert template not in answered  # the template never computes
    finally:
        await workers.aclose(10)
    assert not psutil.pid_exists(template) or psutil.Process(template).status() == "zombie"


async def test_forked_workers_do_not_share_their_random_numbers() -> None:
    """Every worker starts from the template's memory; without fresh seeds after the fork,
    each would draw the same NumPy and torch numbers as its siblings."""
    store.save_model("reporter", ThreadReporter(), signatures=SIGNATURES)
    workers = ProcessWorkers("reporter:latest", workers=2, threads=1)
    await workers.start()
    try:
        draws: dict[int, list[tuple[float, float]]] = {}
        for _ in range(50):
            answers = await asyncio.gather(*(workers.run("draw", ([0],), {}) for _ in range(4)))
            for [[pid, numpy_draw, torch_draw]] in answers:
                draws.setdefault(int(pid), []).append((numpy_draw, torch_draw))
            if len(draws) == 2:
                break
        assert len(draws) == 2, draws
        first, second = draws.values()
        for kind in (0, 1):  # NumPy's, then torch's
            assert not {d[kind] for d in first} & {d[kind] for d in second}, draws
    finally:
        await workers.aclose(5.0)


async def test_a_killed_template_is_restarted_while_its_workers_keep_serving() -> None:
    store.save_model("reporter", ThreadReporter(), signatures=SIGNATURES)
    workers = ProcessWorkers("reporter:latest", workers=2, threads=1)
    await workers.start()
    try:
        old_template = workers.status()["processes"]["template"]
        old_workers = {c["pid"] for c in workers.status()["processes"]["workers"]}
        os.kill(old_template, signal.SIGKILL)
        # the workers answer the whole time the template is gone or reloading
        for _ in range(10):
            assert await _pids_answering(workers) <= old_workers
        await _until(lambda: workers.template_restarts == 1, timeout=60)
        new_template = workers.status()["processes"]["template"]
        assert new_template not in (None, old_template)
        # a worker dying later is still replaced, by a fork of the new template
        victim = sorted(old_workers)[0]
        os.kill(victim, signal.SIGKILL)
        await _until(lambda: workers.replaced == 1)
        fresh = {c["pid"] for c in workers.status()["processes"]["workers"]} - old_workers
        assert len(fresh) == 1
        assert psutil.Process(fresh.pop()).ppid() == new_template
        for _ in range(10):
            await _pids_answering(workers)
    finally:
        await workers.aclose(10)
    # the first template's workers were stopped by their channels too
    assert not any(
        psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie" for pid in old_workers
    )


async def test_a_replacement_is_a_fork_not_a_reload() -> None:
    store.save_model("reporter", ThreadReporter(), signatures=SIGNATURES)
    workers = ProcessWorkers("reporter:latest", workers=1, threads=1)
    await workers.start()
    try:
        first = workers.pids[0]
        os.kill(first, signal.SIGKILL)
        await _until(lambda: workers.replaced == 1)
        (child,) = workers.status()["processes"]["workers"]
        assert child["forked"] and child["pid"] != first and child["load_seconds"] < 0.2
        assert workers.status()["template"]["forks"] == 2
        assert await _pids_answering(workers) == {child["pid"]}
    finally:
        await workers.aclose(10)


async def test_without_forking_each_worker_loads_the_model_itself() -> None:
    store.save_model("reporter", ThreadReporter(), signatures=SIGNATURES)
    workers = ProcessWorkers("reporter:latest", workers=1, threads=1, fork=False)
    await workers.start()
    try:
        status = workers.status()
        assert status["template"] is None and status["spawn_reason"]
        (child,) = status["processes"]["workers"]
        assert child["forked"] is False
        assert psutil.Process(child["pid"]).ppid() == os.getpid()
        assert await _pids_answering(workers) == {child["pid"]}
    finally:
        await workers.aclose(10)


async def test_a_template_left_with_a_thread_is_not_forked_from_and_workers_load_instead() -> None:
    store.save_model("starter", ThreadStarter(), signatures=SIGNATURES)
    workers = ProcessWorkers("starter:latest", workers=2, threads=1)
    await asyncio.wait_for(workers.start(), 120)
    try:
        status = workers.status()
        assert "left-running" in status["spawn_reason"], status
        assert status["template"] is None
        assert [c["forked"] for c in status["processes"]["workers"]] == [False, False]
        for child in status["processes"]["workers"]:
            assert psutil.Process(child["pid"]).ppid() == os.getpid()
        assert await _pids_answering(workers) <= set(workers.pids)
    finally:
        await workers.aclose(10)


async def test_a_fork_asked_of_a_template_being_closed_fails_instead_of_hanging() -> None:
    store.save_model("reporter", ThreadReporter(), signatures=SIGNATURES)
    template = Template("reporter:latest", 1, 1)
    await template.start(lambda _: None)
    asking = asyncio.create_task(template.fork())
    await asyncio.sleep(0)  # the request is sent; its answer is not read yet
    await template.aclose(10)
    with pytest.raises(WorkerError):
        await asyncio.wait_for(asking, 10)


def test_a_process_with_a_second_thread_is_not_forked_from() -> None:
    stop = threading.Event()
    extra = threading.Thread(target=stop.wait)
    extra.start()
    try:
        reason = thread_count_reason()
        assert reason is not None and "threads" in reason
    finally:
        stop.set()
        extra.join()


SHADOW_SERVICE = """
from runtime import api, runner

reporter = runner("reporter:latest")


@api
async def slow(xs: list[float]) -> list[float]:
    return await reporter.slow.async_run(xs)
"""


@pytest.mark.parametrize("shadow", ["runtime.py", "runtime/__init__.py"])
def test_a_users_runtime_module_in_the_working_directory_does_not_shadow_nbento(
    tmp_path: Path, shadow: str
) -> None:
    store.save_model("reporter", ThreadReporter(), signatures=SIGNATURES)
    service = write_service(tmp_path / "svc", SHADOW_SERVICE)
    (tmp_path / "svc" / shadow).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / "svc" / shadow).write_text("raise SystemExit('the user runtime module was imported')\n")
    # Started the way the `nbento` console script starts (its own folder first on sys.path,
    # not the working directory), from the service's folder.
    argv = [sys.executable, "-c",
            "import sys; sys.path.pop(0); from runtime.cli import main; sys.exit(main(sys.argv[1:]))",
            "serve", str(service), "--port", "0", "--set", "runners.reporter.workers=2"]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    fd, name = tempfile.mkstemp(prefix="nbento-serve-", suffix=".log")
    with os.fdopen(fd, "wb") as log_file:
        proc = subprocess.Popen(argv, stdout=log_file, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, cwd=tmp_path / "svc", env=env)
    server = ServerProcess(proc, Path(name), args=argv)
    try:
        server.wait_url(120)
        server.wait_ready(120)
        r = httpx.post(f"{server.url}/slow", json={"xs": [1.0, 2.5]}, timeout=30)
        assert r.status_code == 200 and r.json() == [2.0, 5.0], server.log()[-2000:]
        assert "user runtime module" not in server.log()
    finally:
        server.stop()
        Path(name).unlink(missing_ok=True)
