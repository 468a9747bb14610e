"""The served state of one service: the current generation of compiled endpoints, the runner
pool they call, and what `/_nbento/status` reports. A reload builds a complete new generation
off to the side and swaps one dict reference, so a request sees the old code or the new, never
a mix; a reload that fails keeps the last good generation serving."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from runtime.service.definition import ApiSpec, Service, ServiceImportError, load_service
from runtime.service.schema import ApiSchema
from runtime.service.sources import ServiceSource
from runtime.serving.effective import api_code, effective_settings
from runtime.serving.metrics import RELOAD_CPU, RELOADS
from runtime.settings import BatchingConfig, ServerConfig

if TYPE_CHECKING:
    from runtime.service.handles import ModelHandle, RunnerBackend
    from runtime.serving.batching import AdaptiveBatcher

log = logging.getLogger("nbento.server")
T = TypeVar("T")


class RunnerPoolLike(Protocol):
    """What the host needs from `runtime.serving.runners.RunnerPool` (see docs/ARCHITECTURE.md)."""

    ready: bool

    def resolver(self, handle: ModelHandle) -> RunnerBackend: ...
    async def sync(self, service: Service) -> None: ...
    def status(self) -> dict[str, dict[str, Any]]: ...
    async def aclose(self, timeout: float) -> None: ...


@dataclass
class Endpoint:
    """One API as served: its spec, its request/response schema and, for batchable APIs, the
    batcher that groups the rows of concurrent requests into one call."""

    spec: ApiSpec
    schema: ApiSchema
    batcher: AdaptiveBatcher | None
    executor: ThreadPoolExecutor

    async def call(self, kwargs: dict[str, Any]) -> Any:
        if self.batcher is not None:
            (rows,) = kwargs.values()
            return await self.batcher.submit(rows)
        if self.spec.is_async:
            return await self.spec.func(**kwargs)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, lambda: self.spec.func(**kwargs))


def api_batching(spec: ApiSpec, config: ServerConfig) -> BatchingConfig:
    """Settings for a batchable API: defaults < `@api(...)` arguments < each settings layer's
    `apis: {NAME: ...}` (file, env, command line), as for runners, so operators can retune
    without editing code. The merge is `ServerConfig.api_batching`."""
    return config.api_batching(spec.name, api_code(spec))


def _utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class ServiceHost:
    """Holds the live service; `endpoints` maps a URL path to its `Endpoint`."""

    def __init__(self, source: ServiceSource, config: ServerConfig, pool: RunnerPoolLike) -> None:
        self.source = source
        self.config = config
        self.pool = pool
        # Sync API functions run here; big enough that blocking calls into the batcher never
        # cap the batch size below what the batcher wants.
        self.executor = ThreadPoolExecutor(
            max_workers=max(config.api_threads, 1), thread_name_prefix="nbento-api"
        )
        self.service: Service | None = None
        self.endpoints: dict[str, Endpoint] = {}
        self.generation = 0
        self.loaded_at: str | None = None
        self.last_reload_ms: float | None = None
        self.last_error: dict[str, Any] | None = None
        self.runners_error: str | None = None
        # The effective settings of the live generation (what /_nbento/status shows).
        self.settings: dict[str, Any] | None = None
        self._sync_task: asyncio.Task[None] | None = None
        self._reloading: asyncio.Task[None] | None = None
        # The startup load of the runners; the server exits when it fails for good.
        self.initial_load: asyncio.Task[None] | None = None
        self._lock: asyncio.Lock | None = None
        self._closing: list[asyncio.Task[None]] = []
        # The content of the source files the last load attempt read: a second request to
        # reload the same content (the kernel's, then the file watcher's) does nothing.
        self._attempted: str | None = None

    # -- loading ----------------------------------------------------------------------------

    def _compile(self, service: Service) -> dict[str, Endpoint]:
        endpoints: dict[str, Endpoint] = {}
        for spec in service.apis.values():
            try:
                schema = ApiSchema(spec)
            except TypeError as exc:
                code = spec.func.__code__
                raise ServiceImportError(str(exc), code.co_filename, code.co_firstlineno) from None
            endpoints[spec.route] = Endpoint(spec, schema, None, self.executor)
        return endpoints

    def _start_batchers(self, endpoints: dict[str, Endpoint], service: Service) -> None:
        """Batchers are made on the event loop, once the generation is about to go live; each
        generation's batchable APIs get their own set (closed when it is replaced)."""
        from runtime.serving.batching import Batchers

        batchers = Batchers(f"api:{service.name}")
        for endpoint in endpoints.values():
            spec = endpoint.spec
            if spec.batchable and endpoint.batcher is None:
                endpoint.batcher = batchers.get(
                    spec.name, self._batch_runner(spec), api_batching(spec, self.config)
                )

    def _batch_runner(self, spec: ApiSpec) -> Any:
        executor = self.executor

        async def run_batch(rows: Any) -> Any:
            if spec.is_async:
                return await spec.func(rows)
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(executor, spec.func, rows)

        return run_batch

    def source_files(self) -> set[Path]:
        """The files whose change reloads the code: the source's watch list, else its path,
        else the loaded module's file."""
        source = self.source
        files = {Path(p).resolve() for p in source.watch}
        if not files and source.path is not None:
            files.add(Path(source.path).resolve())
        if not files and self.service is not None:
            module_file = getattr(self.service.module, "__file__", None)
            if module_file:
                files.add(Path(module_file).resolve())
        return files

    def _fingerprint(self) -> str:
        digest = hashlib.sha256()
        for path in sorted(self.source_files()):
            digest.update(str(path).encode() + b"\0")
            try:
                digest.update(hashlib.sha256(path.read_bytes()).digest())
            except OSError as exc:
                digest.update(f"unreadable: {exc.errno}".encode())
        return digest.hexdigest()

    def load_initial(self) -> Service:
        """Import the service before the server binds, so a broken module fails `serve` with
        a readable error instead of a server that never becomes ready."""
        self._attempted = self._fingerprint()
        service = load_service(self.source)
        self.endpoints = self._compile(service)
        self.settings = effective_settings(self.config, service)
        self.service = service
        self.generation = 1
        self.loaded_at = _utc_now()
        return service

    async def start(self) -> None:
        """Go live: create batchers and start loading the runners in the background
        (`/readyz` answers 503 until they are loaded)."""
        assert self.service is not None, "call load_initial() first"
        self._lock = asyncio.Lock()
        self._start_batchers(self.endpoints, self.service)
        self._sync_task = self.initial_load = asyncio.create_task(self._first_sync(self.service))

    async def _first_sync(self, service: Service, attempts: int = 2) -> None:
        """Load the runners at startup; one retry, since a first load can fail for transient
        reasons (two frameworks imported at once by two loading threads, a busy disk)."""
        for attempt in range(1, attempts + 1):
            try:
                await self._sync_runners(service, final=attempt == attempts)
                return
            except Exception:
                if attempt == attempts:
                    raise
                log.warning("retrying the runner load (attempt %d of %d)", attempt + 1, attempts)
                await asyncio.sleep(1.0)

    async def _sync_runners(self, service: Service, *, final: bool = True) -> None:
        """`final=False`: a retry follows, so the failure is not reported on /readyz yet."""
        started = time.perf_counter()
        try:
            await self.pool.sync(service)
        except Exception as exc:
            if final:
                self.runners_error = f"{type(exc).__name__}: {exc}"
            log.exception("runners of service '%s' failed to load", service.name)
            raise
        self.runners_error = None
        log.info("runners ready in %.2fs", time.perf_counter() - started)

    @property
    def ready(self) -> bool:
        task = self._sync_task
        return (
            self.service is not None
            and task is not None
            and task.done()
            and not task.cancelled()
            and task.exception() is None
            and bool(self.pool.ready)
        )

    async def reload(self, changed_at: float | None = None, *, if_changed: bool = False) -> bool:
        """Re-import the service and swap it in; returns False (and keeps the old generation)
        when the new code fails to import or its runners fail to load. `changed_at` is the
        perf_counter time of the edit, for `last_reload_ms`. With `if_changed`, source files
        whose content the last attempt already loaded successfully are not loaded again: the
        kernel asks for a reload right after writing, and the file watcher
        sees the same write a moment later."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            started = changed_at if changed_at is not None else time.perf_counter()
            if self._sync_task is not None and not self._sync_task.done():
                await asyncio.wait([self._sync_task])
            try:
                if self.source.regenerate is not None:
                    await _in_thread_timed(self.source.regenerate)
                fingerprint = self._fingerprint()  # a few small files: no extra thread hop
                if if_changed and fingerprint == self._attempted and self.last_error is None:
                    log.debug("source unchanged since the last reload: nothing to do")
                    return True  # (a failed attempt is tried again: it may have been transient)
                self._attempted = fingerprint
                service = await _in_thread_timed(load_service, self.source)
                began = time.thread_time()
                try:
                    endpoints = self._compile(service)
                finally:
                    RELOAD_CPU.inc(time.thread_time() - began)
                settings = await _in_thread_timed(effective_settings, self.config, service)
            except Exception as exc:
                return self._failed(exc)
            task = asyncio.create_task(self._sync_runners(service))
            self._reloading = task  # aclose cancels it, so no half-started worker outlives us
            try:
                await asyncio.wait([task])
            finally:
                self._reloading = None
            if task.exception() is not None:
                return self._failed(task.exception())  # type: ignore[arg-type]
            self._start_batchers(endpoints, service)
            old = self.endpoints
            self.endpoints = endpoints  # the atomic swap
            self.service = service
            self.settings = settings
            self._sync_task = task
            self.generation += 1
            self.loaded_at = _utc_now()
            self.last_error = None
            self.last_reload_ms = round((time.perf_counter() - started) * 1000, 1)
            RELOADS.labels("ok").inc()
            log.info(
                "reloaded service '%s' (generation %d) in %.1f ms",
                service.name, self.generation, self.last_reload_ms,
            )
            self._close_later(old)
            return True

    def _failed(self, exc: BaseException) -> bool:
        if isinstance(exc, ServiceImportError):
            self.last_error = exc.as_status()
        else:
            self.last_error = {"message": f"{type(exc).__name__}: {exc}", "file": None, "line": None}
        RELOADS.labels("error").inc()
        log.error("reload failed, still serving generation %d: %s", self.generation, exc)
        return False

    def _close_later(self, endpoints: dict[str, Endpoint]) -> None:
        batchers = [e.batcher for e in endpoints.values() if e.batcher is not None]
        if batchers:
            timeout = self.config.graceful_timeout_s
            task = asyncio.create_task(_close_all(batchers, timeout))
            self._closing.append(task)
            task.add_done_callback(self._closing.remove)

    # -- reporting and shutdown -------------------------------------------------------------

    def reload_status(self) -> dict[str, Any]:
        """What a reload left: the live generation, its source's sha256, the last reload's
        time and error (`POST /_nbento/reload` answers with this)."""
        service = self.service
        return {
            "generation": self.generation,
            "source_sha256": service.source_sha256 if service else None,
            "last_reload_ms": self.last_reload_ms,
            "last_error": self.last_error,
        }

    def status(self) -> dict[str, Any]:
        import os

        service = self.service
        return {
            "service": service.name if service else None,
            **self.reload_status(),
            "loaded_at": self.loaded_at,
            "runners": self.pool.status(),
            "settings": self.settings,
            "settings_sources": ["defaults", "code", *self.config.sources],
            "pid": os.getpid(),
        }

    async def aclose(self, timeout: float) -> None:
        """Finish queued batches of batchable APIs, then stop the runners."""
        if self._sync_task is not None and not self._sync_task.done():
            self._sync_task.cancel()
        reloading = self._reloading
        if reloading is not None and not reloading.done():
            reloading.cancel()
            await asyncio.gather(reloading, return_exceptions=True)
        batchers = [e.batcher for e in self.endpoints.values() if e.batcher is not None]
        await _close_all(batchers, timeout)
        if self._closing:
            await asyncio.wait(list(self._closing), timeout=timeout)
        await self.pool.aclose(timeout)
        self.executor.shutdown(wait=False, cancel_futures=True)


async def _in_thread_timed(func: Callable[..., T], *args: Any) -> T:
    """`asyncio.to_thread`, adding the thread CPU time the call used to `RELOAD_CPU` (what the
    soak reads to tell reload cost from request cost on a busy server)."""

    def timed() -> T:
        began = time.thread_time()
        try:
            return func(*args)
        finally:
            RELOAD_CPU.inc(time.thread_time() - began)

    return await asyncio.to_thread(timed)


async def _close_all(batchers: list[AdaptiveBatcher], timeout: float) -> None:
    results = await asyncio.gather(*(b.aclose(timeout) for b in batchers), return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            log.warning("a batcher did not close cleanly: %s", result)
