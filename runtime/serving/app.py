"""The HTTP app: `POST /{api}` plus probes, metrics, status and OpenAPI docs.

API requests never enter FastAPI's routing or dependency injection: a pure ASGI gateway in
front looks the path up in the host's current endpoint table (swapped atomically on reload),
reads the body under the size limit, decodes it with the API's prebuilt schema, calls the
function and writes the answer. Everything else (probes, docs) falls through to FastAPI.
The gateway also records the request metrics and writes one access log line per request,
and refuses what the server does not answer before anything else runs: a missing API token, a
foreign Host or Origin (`runtime.serving.auth`), a body over the limit or sent too slowly.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException

from runtime.errors import BodyTooLarge, InvalidBody, MethodNotAllowed, RequestTimeout
from runtime.serving.auth import HttpGuard
from runtime.serving.error_body import (
    ErrorResponse,
    chosen_answer,
    error_response,
    install_error_handlers,
    send_error,
)
from runtime.serving.host import Endpoint, ServiceHost
from runtime.serving.metrics import IN_PROGRESS, REQUEST_LATENCY, REQUESTS
from runtime.serving.openapi import build_openapi, install_docs
from runtime.settings import ServerConfig
from runtime.version import __version__

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

access_log = logging.getLogger("nbento.access")
error_log = logging.getLogger("nbento.error")

# Metric label for paths that are not APIs: fixed names keep label cardinality bounded.
_FIXED_PATHS = {
    "/livez": "livez", "/readyz": "readyz", "/metrics": "metrics", "/_nbento/status": "status",
    "/_nbento/reload": "reload",
    "/docs": "docs", "/openapi.json": "openapi",
}


def create_app(host: ServiceHost, config: ServerConfig) -> FastAPI:
    """The ASGI app serving `host` (whose endpoints may be swapped by a reload at any time)."""
    app = FastAPI(title="nbento", version=__version__, docs_url=None, redoc_url=None)
    install_docs(app)  # Swagger UI served from this process: no CDN (runtime.serving.openapi)

    @app.get("/livez", include_in_schema=False)
    async def livez() -> dict[str, str]:
        return {"status": "ok"}

    # Anyone who reaches the port may probe: without --dev (or --reload, a development server
    # that reports each failed reload where the user looks) no pids, paths or exception texts.
    details = config.dev or config.reload

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> Response:
        ready = host.ready
        runners = host.pool.status()
        body: dict[str, Any] = {"ready": ready, "runners": runners if details else {
            name: {"loaded": bool(info.get("loaded"))} for name, info in runners.items()
        }}
        if host.runners_error:
            body["error"] = host.runners_error if details else (
                "the runners failed to load; the server log says why"
            )
        return JSONResponse(body, status_code=200 if ready else 503)

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/_nbento/status", include_in_schema=False)
    async def status() -> dict[str, Any]:
        return host.status() if details else trimmed_status(host.status())

    if config.reload:

        @app.post("/_nbento/reload", include_in_schema=False)
        async def reload_now() -> dict[str, Any]:
            """Reload now and answer when done: the kernel calls this right after writing the
            service, instead of waiting for the file watcher and polling the status. The same
            content twice reloads once. Only on a development server (`--reload`), behind the
            same token, Host and Origin checks as every other route."""
            await host.reload(if_changed=True)
            return host.reload_status()

    def routes_hint() -> str:
        apis = ", ".join(f"POST {path}" for path in sorted(host.endpoints)) or "(none)"
        return f"; this service has {apis}"

    install_error_handlers(
        app, log=error_log, routes_hint=routes_hint, internals=config.dev, traceback=config.dev
    )
    guard = HttpGuard.for_server(config)  # now: a bad token file fails the start, not a request
    app.openapi = lambda: build_openapi(  # type: ignore[method-assign]
        app, host, token=guard.token is not None)
    app.add_middleware(ApiGateway, host=host, config=config, guard=guard)
    return app


def trimmed_status(status: dict[str, Any]) -> dict[str, Any]:
    """`/_nbento/status` for a server without --dev: no pids, no runner URLs, no error text."""
    status = {k: v for k, v in status.items() if k != "pid"}
    status["runners"] = {
        name: {k: v for k, v in info.items() if k not in ("url", "processes")}
        for name, info in (status.get("runners") or {}).items()
    }
    if status.get("last_error"):
        status["last_error"] = {
            "message": "the last reload failed; the server log says why", "file": None, "line": None,
        }
    return status


class _Labelled:
    """Metric children for one endpoint label, resolved once (labels() is not free)."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.latency = REQUEST_LATENCY.labels(label)
        self.in_progress = IN_PROGRESS.labels(label)
        self._counters: dict[int, Any] = {}

    def count(self, status: int) -> None:
        counter = self._counters.get(status)
        if counter is None:
            counter = self._counters[status] = REQUESTS.labels(self.label, str(status))
        counter.inc()


class ApiGateway:
    """Pure ASGI middleware: serves API paths itself, measures and logs every request.
    With `host=None` it only measures and logs (the runner process of the split layout)."""

    def __init__(
        self, app: ASGIApp, host: ServiceHost | None, config: ServerConfig,
        guard: HttpGuard | None = None,
    ) -> None:
        self.app = app
        self.host = host
        self.config = config
        self.guard = guard or HttpGuard.for_server(config)
        self.max_body = config.max_body_bytes
        self._labels: dict[str, _Labelled] = {}

    def _metrics(self, label: str) -> _Labelled:
        found = self._labels.get(label)
        if found is None:
            found = self._labels[label] = _Labelled(label)
        return found

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        endpoint = self.host.endpoints.get(path) if self.host is not None else None
        if endpoint is not None:
            label = endpoint.spec.name
        elif path.startswith("/_runner/"):
            label = "runner:" + path[len("/_runner/"):]
        else:
            label = _FIXED_PATHS.get(path, "other")
        metrics = self._metrics(label)
        status = 500
        started = time.perf_counter()

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        metrics.in_progress.inc()
        try:
            refused = self.guard.refusal(scope)
            if refused is not None:
                await send_error(send_status, error_response(refused, where=path, log=error_log))
            elif endpoint is not None:
                await self._serve_api(endpoint, scope, receive, send_status)
            else:
                await self.app(scope, receive, send_status)
        finally:
            elapsed = time.perf_counter() - started
            metrics.in_progress.dec()
            metrics.count(status)
            metrics.latency.observe(elapsed)
            if self.config.access_log:
                client = scope.get("client")
                access_log.info(
                    '%s "%s %s HTTP/%s" %d %.1fms',
                    f"{client[0]}:{client[1]}" if client else "-",
                    scope["method"], path, scope.get("http_version", "1.1"), status,
                    elapsed * 1000,
                )

    async def _serve_api(self, endpoint: Endpoint, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            if scope["method"] != "POST":
                raise MethodNotAllowed(
                    f"{endpoint.spec.route} takes POST, not {scope['method']}", "POST"
                )
            content_type = ""
            length: int | None = None
            for key, value in scope["headers"]:
                if key == b"content-type":
                    content_type = value.decode("latin-1")
                elif key == b"content-length":
                    try:
                        length = int(value)
                    except ValueError:
                        length = None
            if length is not None and length > self.max_body:
                raise _too_large(length, self.max_body)
            body = await read_body(receive, self.max_body, self.config.http.read_timeout_s)
            kwargs = await endpoint.schema.decode(content_type, body)
            result = await endpoint.call(kwargs)
            payload, media = endpoint.schema.encode(result)
        except Exception as exc:
            if isinstance(exc, HTTPException):  # raised on purpose by user code
                exc = chosen_answer(exc.status_code, exc.detail, exc.headers)
            answer = error_response(
                exc, where=f"API '{endpoint.spec.name}'", log=error_log,
                internals=self.config.dev, traceback=self.config.dev,
            )
            await send_error(send, with_close(answer) if isinstance(exc, _UNREAD) else answer)
            return
        await send({
            "type": "http.response.start", "status": 200,
            "headers": [(b"content-type", media.encode()), (b"content-length", str(len(payload)).encode())],
        })
        await send({"type": "http.response.body", "body": payload})


_UNREAD = (BodyTooLarge, RequestTimeout)
"""Errors that leave the rest of the body unread: the connection closes after the answer."""


def with_close(answer: ErrorResponse) -> ErrorResponse:
    """`answer` with `Connection: close` (uvicorn then closes instead of reading on)."""
    return dataclasses.replace(answer, headers={**answer.headers, "Connection": "close"})


def _too_large(size: int, limit: int) -> BodyTooLarge:
    return BodyTooLarge(
        f"request body of {size} bytes exceeds the limit of {limit} bytes (setting max_body_bytes)"
    )


async def read_body(receive: Receive, limit: int, timeout: float) -> bytes:
    """The whole body, refusing it as soon as it grows past `limit` (Content-Length may be
    missing or wrong with chunked uploads) or when no chunk arrives for `timeout` seconds
    (uvicorn has no body read timeout: a half-sent body would hold the request forever)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        try:
            message = await asyncio.wait_for(receive(), timeout)
        except asyncio.TimeoutError:
            raise RequestTimeout(
                f"the body stopped arriving after {size} bytes: no data for {timeout:g}s "
                f"(setting http.read_timeout_s)"
            ) from None
        if message["type"] == "http.disconnect":
            raise InvalidBody("the client went away before sending the whole body")
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                raise _too_large(size, limit)
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)
