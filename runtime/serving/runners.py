"""Runners: what the server builds from each `runner(tag)` handle of a service. A `Runner` owns
one loaded model (in worker threads or worker processes, see workers.py) and one
`AdaptiveBatcher` per batchable method; the `RunnerPool` maps handles to runners, keeps runners
whose resolved tag is unchanged across reloads, and stops the rest. Remote runners (split
layout) are in remote.py.

Batching settings per method come from `runtime.settings` (defaults < `runner(...,
batching=...)` in code < config file < `NBENTO_*` env < command line), so whoever deploys can
tune a service without editing it. See docs/settings.md.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from runtime.errors import RunnerNotAvailable, SignatureError
from runtime.service.handles import ModelHandle, RunnerBackend
from runtime.serving.batching import Batchers, QueueFull, RunnerClosed
from runtime.serving.loop import call_on_loop
from runtime.serving.workers import (
    ProcessWorkers,
    ThreadWorkers,
    Workers,
    available_cores,
    refuse_undeclared,
    resolve_isolation,
)
from runtime.settings import BatchingConfig, RunnerConfig, ServerConfig

if TYPE_CHECKING:

    from runtime.serving.remote import RemoteBackend

log = logging.getLogger("nbento.runners")


class ServiceLike(Protocol):
    name: str
    runners: dict[str, ModelHandle]


def method_settings(
    config: RunnerConfig, handle_batching: Mapping[str, Any], method: str
) -> BatchingConfig:
    """Batching for `method`: defaults < code (`handle.batching["*"]`, then
    `handle.batching[method]`) < each settings layer (file, env, command line) of `config`,
    resolved by `RunnerConfig.method_batching` (the one merge every layout uses)."""
    return config.method_batching(method, handle_batching)


def worker_counts(config: RunnerConfig) -> tuple[int, int]:
    """(workers, torch/BLAS threads per worker) a runner gets: unset means one worker per core
    and the cores shared out among the workers."""
    workers = config.workers or available_cores()
    return workers, config.threads or max(1, available_cores() // workers)


def choose_workers(model_ref: Any, config: RunnerConfig) -> Workers:
    """Thread or process workers for a model (`isolation: auto`: processes for torch-backed
    models, see `resolve_isolation`); docs/batching.md has the measurements."""
    # Threads of all workers add up to the cores: oversubscribed torch threads stall at every
    # intra-op barrier (docs/batching.md has the numbers).
    workers, threads = worker_counts(config)
    if resolve_isolation(config.isolation, model_ref.info.serializer) == "process":
        return ProcessWorkers(
            str(model_ref.tag), workers=workers, threads=threads, calls=config.max_concurrency
        )
    return ThreadWorkers(model_ref, workers=workers, threads=threads, calls=config.max_concurrency)


class Runner:
    """One runner name serving one resolved model tag."""

    def __init__(
        self,
        name: str,
        model_ref: Any,
        config: RunnerConfig,
        handle_batching: Mapping[str, Any] | None = None,
        *,
        workers: Workers | None = None,
    ) -> None:
        self.name = name
        self.model_ref = model_ref
        self.tag = str(model_ref.tag)
        self.config = config
        self.handle_batching: dict[str, Any] = dict(handle_batching or {})
        self.workers = workers or choose_workers(model_ref, config)
        self.ready = False
        self.load_seconds: float | None = None
        self.load_count = 0
        self.backend = LocalRunnerBackend(self)
        self._batchers = Batchers(name, concurrency=self.workers.capacity)
        self._gates: dict[str, _CallGate] = {}
        self._settings: dict[str, BatchingConfig] = {}
        self._closing = False
        self._loop: asyncio.AbstractEventLoop | None = None

    async def start(self) -> None:
        """Load the model (off the event loop) and make the runner callable."""
        self._loop = asyncio.get_running_loop()
        began = time.perf_counter()
        await self.workers.start()
        self.load_seconds = time.perf_counter() - began
        self.load_count += 1
        self.ready = True
        log.info("runner %s loaded %s in %.2fs", self.name, self.tag, self.load_seconds)

    def configure(self, config: RunnerConfig, handle_batching: Mapping[str, Any]) -> None:
        """New batching settings after a reload that kept the model (the code's `batching=`
        may have changed); running batchers use them from their next decision on."""
        self.config = config
        self.handle_batching = dict(handle_batching)
        self._settings.clear()
        self._batchers.retune(lambda method: method_settings(config, self.handle_batching, method))

    @property
    def queue_depth(self) -> int:
        return self._batchers.queued_rows + sum(
            g.waiting for g in self._gates.values()
        )

    def status(self) -> dict[str, Any]:
        return {
            "tag": self.tag,
            "loaded": self.ready,
            "load_seconds": self.load_seconds,
            "queue_depth": self.queue_depth,
            "workers": self.workers.capacity,
            "threads": getattr(self.workers, "threads", None),
            "isolation": "process" if isinstance(self.workers, ProcessWorkers) else "thread",
            # Replacements, the template and (under `processes`, left out of a public status)
            # the pids of a process-isolated runner.
            **(self.workers.status() if isinstance(self.workers, ProcessWorkers) else {}),
            "batchers": self._batchers.stats(),
            "settings": self.effective_batching(),
        }

    def effective_batching(self) -> dict[str, dict[str, Any]]:
        """The batching each batchable method of the model runs with, resolved from all
        sources (what `/_nbento/status` and `/readyz` of a runner process show)."""
        return {
            method: method_settings(self.config, self.handle_batching, method).model_dump()
            for method, signature in sorted(self.model_ref.info.signatures.items())
            if signature.batchable
        }

    async def acall(self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if self._closing:
            raise RunnerClosed(f"runner '{self.name}' is shutting down; retry shortly", 1.0)
        if not self.ready:
            raise QueueFull(f"runner '{self.name}' is still loading {self.tag}", 1.0)
        signature = self._signature(method)
        settings = self._settings.get(method)
        if settings is None:
            settings = self._settings[method] = method_settings(
                self.config, self.handle_batching, method
            )
        if signature.batchable and settings.enabled and (args or kwargs):
            batcher = self._batchers.get(
                method, self._run_method(method), settings, batch_dim=signature.batch_dim
            )
            return await batcher.submit_call(args, kwargs)
        gate = self._gates.get(method)
        if gate is None:
            limit = self.config.max_concurrency * self.workers.capacity
            gate = self._gates[method] = _CallGate(self.name, limit, settings.max_queue_rows)
        async with gate:
            return await self.workers.run(method, args, kwargs)

    def _run_method(self, method: str) -> Any:
        workers = self.workers

        async def run_batch(*args: Any, **kwargs: Any) -> Any:
            return await workers.run(method, args, kwargs)

        return run_batch

    def _signature(self, method: str) -> Any:
        signatures = self.model_ref.info.signatures
        if method not in signatures:
            known = ", ".join(sorted(signatures)) or "(none)"
            raise SignatureError(
                f"model '{self.tag}' has no signature '{method}'; saved signatures: {known}. "
                f"Save the model again with --batchable {method} (or signatures={{'{method}': "
                f"...}})."
            )
        return signatures[method]

    def call(self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Blocking call from an API function running in a worker thread."""
        loop = self._loop
        if loop is None:
            raise RunnerNotAvailable(f"runner '{self.name}' is not started")
        return call_on_loop(loop, self.acall(method, args, kwargs), f"{self.name}.{method}")

    async def acall_declared(
        self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        """`acall` for a request naming the method (a split layout's runner route): a method the
        model does not declare is a 404 `UndeclaredMethod`, never an attribute lookup."""
        refuse_undeclared(self.model_ref.info.signatures, method, self.tag, self.name)
        return await self.acall(method, args, kwargs)

    async def aclose(self, timeout: float) -> None:
        """Finish queued and in-flight batches (up to `timeout`), then stop the workers."""
        self._closing = True
        deadline = time.monotonic() + timeout
        await self._batchers.aclose(timeout)
        for gate in self._gates.values():
            await gate.drain(max(0.0, deadline - time.monotonic()))
        await self.workers.aclose(max(1.0, deadline - time.monotonic()))
        self.ready = False


class _CallGate:
    """At most `limit` calls at once for a non-batchable method; at most `max_waiting` calls
    waiting, past which callers get QueueFull (503) instead of unbounded memory."""

    def __init__(self, name: str, limit: int, max_waiting: int) -> None:
        self.name = name
        self.semaphore = asyncio.Semaphore(limit)
        self.limit = limit
        self.max_waiting = max_waiting
        self.waiting = 0
        self.active = 0

    async def __aenter__(self) -> None:
        if self.waiting >= self.max_waiting:
            raise QueueFull(
                f"runner '{self.name}' has {self.waiting} calls waiting (bound "
                f"{self.max_waiting}); retry shortly",
                1.0,
            )
        self.waiting += 1
        try:
            await self.semaphore.acquire()
        finally:
            self.waiting -= 1
        self.active += 1

    async def __aexit__(self, *exc: object) -> None:
        self.active -= 1
        self.semaphore.release()

    async def drain(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while (self.active or self.waiting) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)


class LocalRunnerBackend:
    """The `RunnerBackend` handles get for an in-process runner."""

    def __init__(self, runner: Runner) -> None:
        self.runner = runner

    def call(self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        return self.runner.call(method, args, kwargs)

    async def acall(self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        return await self.runner.acall(method, args, kwargs)


class _PoolBackend:
    """What the resolver hands a handle: looks its runner up at call time, so a reload that
    replaces the runner is picked up by handles that cached this backend."""

    def __init__(self, pool: RunnerPool, name: str) -> None:
        self.pool = pool
        self.name = name

    def call(self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        return self.pool.get(self.name).call(method, args, kwargs)

    async def acall(self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        return await self.pool.get(self.name).acall(method, args, kwargs)


class RunnerPool:
    """The runners of the served service, by runner name."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.runners: dict[str, Runner] = {}
        self.remotes: dict[str, RemoteBackend] = {}
        self._backends: dict[str, RunnerBackend] = {}
        self._lock: asyncio.Lock | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._synced = False

    @property
    def ready(self) -> bool:
        """True once a sync finished and every local runner has its model loaded."""
        return self._synced and all(r.ready for r in self.runners.values())

    def resolver(self, handle: ModelHandle) -> RunnerBackend:
        """For `set_backend_resolver`: a handle's calls go to its runner (or remote runner)."""
        name = handle.name
        backend = self._backends.get(name)
        if backend is None:
            if name in self.config.runner_map:
                backend = self._remote(name)
            else:
                backend = _PoolBackend(self, name)
            self._backends[name] = backend
        return backend

    def _remote(self, name: str) -> RemoteBackend:
        from runtime.serving.remote import RemoteBackend

        remote = self.remotes.get(name)
        if remote is None:
            remote = self.remotes[name] = RemoteBackend(
                name, self.config.runner_map[name], loop=self._loop
            )
        return remote

    def get(self, name: str) -> Runner:
        runner = self.runners.get(name)
        if runner is None:
            started = ", ".join(sorted(self.runners)) or "(none)"
            raise RunnerNotAvailable(
                f"runner '{name}' is not running in this server (running: {started}); create "
                f"handles with runner(...) at module level of the service so the server finds them"
            )
        return runner

    async def sync(self, service: ServiceLike, *, only: str | None = None) -> None:
        """Start the runners `service` needs, reusing those whose resolved tag is unchanged;
        then stop the others. If a new runner fails to load, the old set stays and the error
        propagates (the host keeps serving the last good generation)."""
        from runtime.store.model_store import get as get_model

        self._loop = asyncio.get_running_loop()
        for remote in self.remotes.values():
            remote.bind(self._loop)
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            wanted: dict[str, tuple[Any, ModelHandle]] = {}
            for name, handle in service.runners.items():
                if only is not None and name != only:
                    continue
                if name in self.config.runner_map and only is None:
                    self._remote(name)
                    continue
                wanted[name] = (await asyncio.to_thread(get_model, handle.tag), handle)
            keep: dict[str, Runner] = {}
            new: dict[str, Runner] = {}
            for name, (model_ref, handle) in wanted.items():
                current = self.runners.get(name)
                config = self.config.runner(name)
                if current is not None and current.tag == str(model_ref.tag):
                    current.configure(config, handle.batching)
                    keep[name] = current
                else:
                    new[name] = Runner(name, model_ref, config, handle.batching)
            results = await asyncio.gather(
                *(r.start() for r in new.values()), return_exceptions=True
            )
            failed = [r for r in results if isinstance(r, BaseException)]
            if failed:
                await asyncio.gather(*(r.aclose(5.0) for r in new.values()))
                raise failed[0]
            stale = [r for n, r in self.runners.items() if keep.get(n) is not r]
            self.runners = {**keep, **new}
            self._synced = True
            timeout = self.config.graceful_timeout_s
            await asyncio.gather(*(r.aclose(timeout) for r in stale))

    def status(self) -> dict[str, dict[str, Any]]:
        status = {name: runner.status() for name, runner in self.runners.items()}
        for name, remote in self.remotes.items():
            status[name] = {"tag": None, "loaded": None, "load_seconds": None, "url": remote.url}
        return status

    async def aclose(self, timeout: float) -> None:
        runners, self.runners = list(self.runners.values()), {}
        await asyncio.gather(*(r.aclose(timeout) for r in runners))
        await asyncio.gather(*(r.aclose() for r in self.remotes.values()))
