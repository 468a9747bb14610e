"""The split layout's runner process: one runner of a `RunnerPool` behind HTTP
(`nbento serve SRC --runner NAME`). Batching happens here, where the rows of all API replicas
meet. Bodies are `runtime.serving.wire` (msgpack with ndarray extensions), never pickle.

    POST /_runner/{method}   body: wire {"args": [...], "kwargs": {...}} -> wire result

The body is capped (`RUNNER_BODY_FACTOR` x `max_body_bytes`: an API request's rows can grow on
their way, text to vectors) and read with the same timeout as API bodies. The message of an
unexpected exception (what a model or library raised) is shown only with `--dev`; otherwise the
API server gets its class and the runner's error id.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from runtime.errors import (
    BodyTooLarge,
    InvalidBody,
    NbentoError,
    RemoteCallError,
    RequestTimeout,
    WireError,
)
from runtime.serving import wire
from runtime.serving.app import read_body, with_close
from runtime.serving.error_body import error_response, install_error_handlers
from runtime.serving.runners import RunnerPool
from runtime.settings import ServerConfig

log = logging.getLogger("nbento.runners")
RUNNER_BODY_FACTOR = 4


def runner_app(pool: RunnerPool, name: str, config: ServerConfig | None = None) -> FastAPI:
    """The HTTP face of one runner of `pool` (which the caller syncs and closes). Errors use the
    API server's body (`runtime.serving.error_body`), which the API server rebuilds as the same
    exceptions (`remote.py`); a 500 shows its message only with `config.dev`."""
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    config = config or ServerConfig.model_validate({})
    max_body = RUNNER_BODY_FACTOR * config.max_body_bytes
    app = FastAPI(
        title=f"nbento runner {name}", docs_url=None, redoc_url=None, openapi_url=None
    )
    install_error_handlers(
        app, log=log, routes_hint=lambda: "; this runner serves POST /_runner/{method}",
        internals=config.dev,
    )

    @app.post("/_runner/{method}")
    async def call(method: str, request: Request) -> Response:
        try:
            length = request.headers.get("content-length", "")
            if length.isdigit() and int(length) > max_body:
                raise _too_large(int(length), max_body)
            try:
                body = await read_body(request.receive, max_body, config.http.read_timeout_s)
            except BodyTooLarge as exc:
                raise _too_large(None, max_body) from exc
            try:
                payload = wire.decode(body)
            except WireError as exc:
                raise InvalidBody(str(exc)) from exc
            if not isinstance(payload, dict) or not isinstance(payload.get("args", []), list):
                raise InvalidBody(
                    'runner body must be a wire-encoded {"args": [...], "kwargs": {...}}'
                )
            args, kwargs = tuple(payload.get("args", [])), payload.get("kwargs") or {}
            result = await pool.get(name).acall_declared(method, args, kwargs)
            return Response(wire.encode(result), media_type=wire.CONTENT_TYPE)
        except Exception as exc:
            # Our own errors' messages are written to be shown (the API server rebuilds them as
            # the same class); what a model or library raised is shown only with --dev.
            ours = isinstance(exc, NbentoError) and not isinstance(exc, RemoteCallError)
            answer = error_response(
                exc, where=f"runner '{name}' method '{method}'", log=log,
                internals=config.dev or ours,
            )
            if isinstance(exc, BodyTooLarge | RequestTimeout):
                answer = with_close(answer)
            return Response(answer.content, answer.status, answer.headers)

    @app.get("/livez")
    async def livez() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        ready = pool.ready and name in pool.runners
        runners = pool.status() if config.dev else {
            runner: {"loaded": bool(info.get("loaded"))} for runner, info in pool.status().items()
        }
        return JSONResponse({"ready": ready, "runners": runners}, 200 if ready else 503)

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app


def _too_large(size: int | None, limit: int) -> BodyTooLarge:
    got = f"of {size} bytes " if size is not None else ""
    return BodyTooLarge(
        f"runner body {got}exceeds the limit of {limit} bytes ({RUNNER_BODY_FACTOR} x the "
        f"setting max_body_bytes); send fewer rows per request or raise max_body_bytes"
    )
