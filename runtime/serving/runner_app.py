"""The split layout's runner process: one runner of a `RunnerPool` behind HTTP
(`nbento serve SRC --runner NAME`). Batching happens here, where the rows of all API replicas
meet. Bodies are `runtime.serving.wire` (msgpack with ndarray extensions), never pickle.

    POST /_runner/{method}   body: wire {"args": [...], "kwargs": {...}} -> wire result
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from runtime.errors import InvalidBody, WireError
from runtime.serving import wire
from runtime.serving.error_body import error_response, install_error_handlers
from runtime.serving.runners import RunnerPool

log = logging.getLogger("nbento.runners")


def runner_app(pool: RunnerPool, name: str) -> FastAPI:
    """The HTTP face of one runner of `pool` (which the caller syncs and closes). Errors use the
    API server's body (`runtime.serving.error_body`) and show their messages: its only client
    is the API server, which rebuilds them as the same exceptions (`remote.py`)."""
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    app = FastAPI(title=f"nbento runner {name}", docs_url=None, redoc_url=None)
    install_error_handlers(
        app, log=log, routes_hint=lambda: "; this runner serves POST /_runner/{method}",
        internals=True,
    )

    @app.post("/_runner/{method}")
    async def call(method: str, request: Request) -> Response:
        try:
            try:
                payload = wire.decode(await request.body())
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
            answer = error_response(
                exc, where=f"runner '{name}' method '{method}'", log=log, internals=True
            )
            return Response(answer.content, answer.status, answer.headers)

    @app.get("/livez")
    async def livez() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        ready = pool.ready and name in pool.runners
        return JSONResponse({"ready": ready, "runners": pool.status()}, 200 if ready else 503)

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app
