"""Runners and the runner pool with real models saved in the store: thread and process workers,
handles resolved to runners, reload sync, and the split layout over a real uvicorn server."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import numpy as np
import pytest
import uvicorn

from runtime import store
from runtime.errors import NbentoError, SignatureError
from runtime.service.handles import ModelHandle, runner, set_backend_resolver
from runtime.serving.runner_app import runner_app
from runtime.serving.runners import RunnerPool, method_settings
from runtime.serving.workers import RemoteCallError, WorkerError
from runtime.settings import BatchingConfig, RunnerConfig, ServerConfig
from tests.runtime.runner_models import SIGNATURES, Doubler

pytestmark = pytest.mark.anyio
REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # Worker processes import the test models by reference.
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    yield
    set_backend_resolver(None)


def save_doubler(load_log: Path | None = None) -> str:
    saved = store.save_model(
        "doubler", Doubler(str(load_log) if load_log else None), signatures=SIGNATURES
    )
    return str(saved.tag)


def service(*handles: ModelHandle) -> Any:
    return SimpleNamespace(name="svc", runners={h.name: h for h in handles})


def config(isolation: str = "thread", **runner: Any) -> ServerConfig:
    batching = BatchingConfig(max_batch_size=8, max_latency_ms=10)
    return ServerConfig(
        runners={"doubler": RunnerConfig(batching=batching, isolation=isolation, **runner)}
    )


@pytest.mark.parametrize("isolation", ["thread", "process"])
async def test_handles_call_their_runner_with_rows_split_and_ordered(isolation: str) -> None:
    save_doubler()
    handle = runner("doubler:latest")
    pool = RunnerPool(config(isolation))
    await pool.sync(service(handle))
    set_backend_resolver(pool.resolver)
    try:
        status = pool.status()["doubler"]
        assert pool.ready and status["loaded"] and status["isolation"] == isolation
        for n in (1, 5, 100):
            assert await handle.predict.async_run(list(range(n))) == [2 * i for i in range(n)]
            array = np.arange(2 * n, dtype=np.int64).reshape(n, 2)
            np.testing.assert_array_equal(await handle.predict.async_run(array), array * 2)
        labels, index = await handle.pair.async_run([1, 2, 3])
        assert labels == [2, 4, 6] and list(index) == [0, 1, 2]
        assert await handle.predict.async_run([1, 2], scale=5) == [5, 10]
        assert await handle.describe.async_run() == "doubler"
        # A plain `def` API runs in a worker thread and calls the handle synchronously.
        assert await asyncio.to_thread(handle.predict, [4, 5]) == [8, 10]
        stats = pool.status()["doubler"]["batchers"]["predict"]
        assert stats["max_batch_size_seen"] == 8
    finally:
        await pool.aclose(10)


@pytest.mark.parametrize("isolation", ["thread", "process"])
async def test_concurrent_calls_coalesce_and_a_model_error_fails_only_its_batch(
    isolation: str,
) -> None:
    save_doubler()
    handle = runner("doubler")
    pool = RunnerPool(config(isolation))
    await pool.sync(service(handle))
    set_backend_resolver(pool.resolver)
    try:
        results = await asyncio.gather(*(handle.predict.async_run([i]) for i in range(40)))
        assert results == [[2 * i] for i in range(40)]
        assert pool.status()["doubler"]["batchers"]["predict"]["max_batch_size_seen"] > 1
        with pytest.raises((ValueError, RemoteCallError), match="cannot double 'boom'"):
            await handle.predict.async_run(["boom"])
        assert await handle.predict.async_run(["a"]) == ["aa"]  # the runner still serves
    finally:
        await pool.aclose(10)


async def test_sync_call_on_the_event_loop_says_to_use_async_run() -> None:
    save_doubler()
    handle = runner("doubler")
    pool = RunnerPool(config())
    await pool.sync(service(handle))
    set_backend_resolver(pool.resolver)
    try:
        with pytest.raises(NbentoError, match=r"await handle\.predict\.async_run"):
            handle.predict([1])
        with pytest.raises(SignatureError, match="no signature 'transform'"):
            await handle.transform.async_run([1])
    finally:
        await pool.aclose(10)


async def test_non_batchable_methods_run_one_call_at_a_time_per_worker() -> None:
    save_doubler()
    handle = runner("doubler")
    pool = RunnerPool(config(workers=1))
    await pool.sync(service(handle))
    set_backend_resolver(pool.resolver)
    try:
        seen = await asyncio.gather(*(handle.slow_describe.async_run() for _ in range(4)))
        assert max(seen) == 1
    finally:
        await pool.aclose(10)
    pool = RunnerPool(config(workers=1, max_concurrency=4))
    await pool.sync(service(handle))
    set_backend_resolver(pool.resolver)
    try:
        seen = await asyncio.gather(*(handle.slow_describe.async_run() for _ in range(4)))
        assert max(seen) > 1
    finally:
        await pool.aclose(10)


def test_config_file_settings_win_over_code_per_key() -> None:
    file_config = RunnerConfig.model_validate(
        {"batching": {"max_latency_ms": 3}, "methods": {"predict": {"max_batch_size": 16}}}
    )
    code = {"*": {"max_queue_rows": 100}, "predict": {"max_batch_size": 4, "max_latency_ms": 50}}
    merged = method_settings(file_config, code, "predict")
    assert (merged.max_batch_size, merged.max_latency_ms, merged.max_queue_rows) == (16, 3, 100)
    other = method_settings(RunnerConfig(), code, "predict")
    assert (other.max_batch_size, other.max_latency_ms) == (4, 50)
    with pytest.raises(NbentoError, match="invalid batching settings for method 'predict'"):
        method_settings(RunnerConfig(), {"predict": {"max_batch_size": 0}}, "predict")


async def test_sync_keeps_an_unchanged_runner_and_replaces_a_changed_tag(tmp_path: Path) -> None:
    log = tmp_path / "loads.txt"
    save_doubler(log)
    pool = RunnerPool(config())
    await pool.sync(service(runner("doubler:latest")))
    first = pool.get("doubler")
    await pool.sync(service(runner("doubler:latest")))  # a code reload, same model
    assert pool.get("doubler") is first and first.load_count == 1
    assert len(log.read_text().split()) == 1
    new_tag = save_doubler(log)
    await pool.sync(service(runner("doubler:latest")))
    replaced = pool.get("doubler")
    assert replaced is not first and replaced.tag == new_tag and not first.ready
    assert len(log.read_text().split()) == 2
    await pool.sync(service())  # the service no longer uses the runner
    assert pool.status() == {} and not replaced.ready
    await pool.aclose(10)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RunnerServer:
    """`runner_app` on a real uvicorn in its own thread and event loop, like a runner process."""

    def __init__(self, tag: str) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.pool = RunnerPool(config())
        self.service = service(runner(tag))
        self.server = uvicorn.Server(
            uvicorn.Config(
                runner_app(self.pool, "doubler"),
                host="127.0.0.1",
                port=self.port,
                log_level="warning",
                lifespan="off",
            )
        )
        self.thread = threading.Thread(target=asyncio.run, args=(self._main(),), daemon=True)

    async def _main(self) -> None:
        await self.pool.sync(self.service)
        try:
            await self.server.serve()
        finally:
            await self.pool.aclose(5)

    def __enter__(self) -> RunnerServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise AssertionError("runner server did not become ready")

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(15)


async def test_split_layout_round_trip_matches_local_results() -> None:
    tag = save_doubler()
    handle = runner("doubler:latest")
    local_pool = RunnerPool(config())
    await local_pool.sync(service(handle))
    set_backend_resolver(local_pool.resolver)
    inputs: list[Any] = [[1, 2, 3], list(range(100)), np.arange(12.0).reshape(6, 2)]
    local = [await handle.predict.async_run(x) for x in inputs]
    local_pair = await handle.pair.async_run(["a", "b"])
    await local_pool.aclose(5)

    with RunnerServer(tag) as server:
        api_pool = RunnerPool(ServerConfig(runner_map={"doubler": server.url}))
        await api_pool.sync(service(handle))
        set_backend_resolver(api_pool.resolver)
        try:
            remote = [await handle.predict.async_run(x) for x in inputs]
            for got, want in zip(remote, local, strict=True):
                np.testing.assert_array_equal(got, want)
                assert type(got) is type(want)
            pair = await handle.pair.async_run(["a", "b"])
            assert isinstance(pair, tuple) and pair[0] == local_pair[0]
            np.testing.assert_array_equal(pair[1], local_pair[1])
            assert await asyncio.to_thread(handle.predict, [7]) == [14]
            with pytest.raises(SignatureError, match="no signature 'transform'"):
                await handle.transform.async_run([1])
            # the model's own words stay in the runner's log without --dev
            with pytest.raises(RemoteCallError, match="method 'predict' raised ValueError"):
                await handle.predict.async_run(["boom"])
            batched = await asyncio.gather(*(handle.predict.async_run([i]) for i in range(30)))
            assert batched == [[2 * i] for i in range(30)]
            assert api_pool.status()["doubler"]["url"] == server.url
            metrics = httpx.get(f"{server.url}/metrics").text
            assert 'nbento_runner_batch_size_count{method="predict",runner="doubler"}' in metrics
            bad = httpx.post(f"{server.url}/_runner/predict", content=b"\xc1not msgpack")
            assert bad.status_code == 400 and bad.json()["error"]["type"] == "invalid_body"
            assert "malformed" in bad.json()["error"]["message"]
        finally:
            await api_pool.aclose(5)


async def test_batching_off_sends_each_call_to_the_model_as_it_is() -> None:
    save_doubler()
    handle = runner("doubler", batching={"predict": {"enabled": False}})
    pool = RunnerPool(ServerConfig())
    await pool.sync(service(handle))
    set_backend_resolver(pool.resolver)
    try:
        results = await asyncio.gather(*(handle.predict.async_run([i] * 50) for i in range(5)))
        assert results == [[2 * i] * 50 for i in range(5)]
        assert pool.status()["doubler"]["batchers"] == {}
    finally:
        await pool.aclose(10)


async def test_a_crashed_worker_process_fails_its_call_and_is_replaced() -> None:
    save_doubler()
    handle = runner("doubler")
    pool = RunnerPool(config("process"))
    await pool.sync(service(handle))
    set_backend_resolver(pool.resolver)
    try:
        with pytest.raises(WorkerError, match=r"exited \(code 3\)"):
            await handle.crash.async_run()
        assert await handle.predict.async_run([1, 2]) == [2, 4]
    finally:
        await pool.aclose(10)
