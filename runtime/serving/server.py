"""`serve(source, config)`: run a service (or one of its runners) under uvicorn.

Lifecycle: import the service before binding (a broken module fails fast with its file and
line), bind, start loading runners in the background (`/readyz` says 503 until done), print the
URL. On SIGTERM or Ctrl-C: stop accepting, let in-flight requests and their batches finish
within `graceful_timeout_s`, close the runners, exit 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Generator
from pathlib import Path
from typing import Any

import uvicorn

from runtime.errors import NbentoError
from runtime.service.definition import Service, as_source, load_service
from runtime.service.handles import set_backend_resolver
from runtime.service.sources import ServiceSource
from runtime.settings import ServerConfig, resolve_settings

log = logging.getLogger("nbento.server")


class _Server(uvicorn.Server):
    shutdown_started: float | None = None

    async def shutdown(self, sockets: Any = None) -> None:
        self.shutdown_started = time.monotonic()
        await super().shutdown(sockets)

    def time_left(self, budget: float) -> float:
        """What remains of the graceful budget after uvicorn drained the connections, for
        closing runners (at least a second, so queued batches are not cut off at once)."""
        if self.shutdown_started is None:
            return budget
        return max(1.0, budget - (time.monotonic() - self.shutdown_started))

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        # uvicorn re-raises the captured signal after its graceful shutdown, which turns a clean
        # SIGTERM drain into exit status 143; a drain that finished is a success, so don't.
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        handled = (signal.SIGINT, signal.SIGTERM)
        original = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)


def quiet_model_libraries() -> None:
    """sentence-transformers draws a tqdm bar on every `encode` when its logger is at INFO: in a
    server that is a log line and CPU per batch."""
    logging.getLogger("sentence_transformers").setLevel(logging.WARNING)


def setup_logging(level: int | str | None = None) -> None:
    """One format for nbento's and uvicorn's lines, on stderr (the URL goes to stdout).
    `level` defaults to $NBENTO_LOG_LEVEL (`nbento --log-level`), else info."""
    if level is None:
        level = os.environ.get("NBENTO_LOG_LEVEL", "info").upper()
    root = logging.getLogger()
    if not any(getattr(h, "_nbento", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler._nbento = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(level)
    logging.getLogger("watchfiles").setLevel(logging.WARNING)  # we log each reload ourselves
    quiet_model_libraries()


def serve(
    source: str | Path | ServiceSource, config: ServerConfig | None = None, *,
    runner: str | None = None,
) -> None:
    """Serve `source` until SIGTERM/SIGINT. With `runner`, serve only that runner
    (`POST /_runner/{method}`) for an API server elsewhere that maps it with `runner_map`.
    Without `config`, settings come from `resolve_settings()` (`$NBENTO_CONFIG`, `NBENTO_*`)."""
    from runtime.serving.runners import RunnerPool

    config = config or resolve_settings()
    src = as_source(source)
    setup_logging()
    pool = RunnerPool(config)
    previous = set_backend_resolver(pool.resolver)
    try:
        if runner is not None:
            service = load_service(src).only_runner(runner)
            main = _serve_runner(pool, service, runner, config)
        else:
            main = _serve_service(pool, src, config)
        _run(main)
    finally:
        set_backend_resolver(previous)


def _run(main: Any) -> None:
    """Run `main` on uvloop when installed (as uvicorn would)."""
    factory = uvicorn.Config(app="", log_config=None).get_loop_factory()
    if sys.version_info >= (3, 11):
        with asyncio.Runner(loop_factory=factory) as runner:
            runner.run(main)
        return
    loop = factory() if factory is not None else asyncio.new_event_loop()  # pragma: no cover
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(main)
    finally:
        loop.close()


def _uvicorn_config(app: Any, config: ServerConfig) -> uvicorn.Config:
    from runtime.serving.http_limits import limited_protocol

    limits = config.http
    return uvicorn.Config(
        app,
        host=config.host,
        port=config.port,
        access_log=False,  # the app writes its own access line (with latency)
        log_config=None,
        lifespan="off",
        timeout_graceful_shutdown=max(1, math.ceil(config.graceful_timeout_s)),
        backlog=2048,
        limit_concurrency=config.limit_concurrency,
        # Untrusted input (docs/security.md): the head is capped in size, count and time by our
        # httptools protocol (h11's own cap when httptools is missing); bodies by the gateway.
        http=limited_protocol(limits) or "h11",
        h11_max_incomplete_event_size=limits.max_header_bytes,
        timeout_keep_alive=limits.keep_alive_s,
        ws="none",  # no route takes a WebSocket
    )


async def _serve_service(pool: Any, source: ServiceSource, config: ServerConfig) -> None:
    from runtime.serving.app import create_app
    from runtime.serving.host import ServiceHost
    from runtime.serving.reload import Reloader

    host = ServiceHost(source, config, pool)
    service = await asyncio.to_thread(host.load_initial)
    server = _Server(_uvicorn_config(create_app(host, config), config))
    await host.start()
    reloader = Reloader(host) if config.reload else None
    if reloader is not None:
        reloader.start()
    announce = asyncio.create_task(_announce(server, service, with_docs=True))
    assert host.initial_load is not None
    watchdog = asyncio.create_task(_stop_if_failed(host.initial_load, server))
    try:
        await server.serve()
    finally:
        announce.cancel()
        watchdog.cancel()
        if reloader is not None:
            await reloader.stop()
        await host.aclose(server.time_left(config.graceful_timeout_s))
        log.info("stopped")
    failed = _failure(host.initial_load)
    if failed is not None:
        # A server that can never become ready should not sit there looking alive.
        raise NbentoError(f"the runners of service '{service.name}' failed to load: {failed}")


async def _stop_if_failed(task: asyncio.Task[None], server: uvicorn.Server) -> None:
    await asyncio.wait([task])
    if _failure(task) is not None:
        server.should_exit = True


def _failure(task: asyncio.Task[None]) -> BaseException | None:
    if not task.done() or task.cancelled():
        return None
    return task.exception()


async def _serve_runner(pool: Any, service: Service, name: str, config: ServerConfig) -> None:
    from runtime.serving.app import ApiGateway
    from runtime.serving.auth import HttpGuard
    from runtime.serving.runner_app import runner_app

    app = runner_app(pool, name, config)
    # request metrics + access lines, and the same token and Host/Origin checks as the API server
    app.add_middleware(ApiGateway, host=None, config=config, guard=HttpGuard.for_server(config))
    server = _Server(_uvicorn_config(app, config))
    # only=: load this runner here even if a shared NBENTO_RUNNER_MAP names it (it is us)
    loading = asyncio.create_task(pool.sync(service, only=name))
    loading.add_done_callback(_log_failure)
    announce = asyncio.create_task(_announce(server, service, with_docs=False, runner=name))
    try:
        await server.serve()
    finally:
        announce.cancel()
        if not loading.done():
            loading.cancel()
        await pool.aclose(server.time_left(config.graceful_timeout_s))
        log.info("stopped")


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("runner failed to load: %s", task.exception(), exc_info=task.exception())


async def _announce(
    server: uvicorn.Server, service: Service, *, with_docs: bool, runner: str | None = None
) -> None:
    while not server.started:
        await asyncio.sleep(0.01)
    sockets = [s for srv in server.servers for s in srv.sockets]
    if not sockets:
        return
    host, port = sockets[0].getsockname()[:2]
    shown_host = f"[{host}]" if ":" in host else host
    url = f"http://{shown_host}:{port}"
    if runner is not None:
        print(f"nbento: runner '{runner}' of service '{service.name}' at {url}", flush=True)
        return
    apis = ", ".join(f"POST {spec.route}" for spec in service.apis.values())
    print(f"nbento: serving '{service.name}' at {url} ({apis})", flush=True)
    if with_docs:
        print(f"nbento: docs at {url}/docs", flush=True)
