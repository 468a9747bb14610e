"""The split layout's runner process: one runner of a `RunnerPool` behind HTTP
(`nbento serve SRC --runner NAME`). Batching happens here, where the rows of all API replicas
meet. Bodies are `runtime.serving.wire` (msgpack with ndarray extensions), never pickle.

    POST /_runner/{method}   body: wire {"args": [...], "kwargs": {...}} -> wire result
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from runtime.errors import NbentoError, SignatureError
from runtime.serving import wire
from runtime.serving.batching import QueueFull, RequestTooLarge
from runtime.serving.rows import BatchInputError
from runtime.serving.runners import RunnerNotAvailable, RunnerPool

log = logging.getLogger("nbento.runners")


def _error(status: int, exc: BaseException, **extra: Any) -> JSONResponse:
    body = {"error": {"type": type(exc).__name__, "message": str(exc), **extra}}
    return JSONResponse(body, status_code=status)


def runner_app(pool: RunnerPool, name: str) -> FastAPI:
    """The HTTP face of one runner of `pool` (which the caller syncs and closes)."""
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    app = FastAPI(title=f"nbento runner {name}", docs_url=None, redoc_url=None)

    @app.post("/_runner/{method}")
    async def call(method: str, request: Request) -> Response:
        try:
            payload = wire.decode(await request.body())
            if not isinstance(payload, dict) or not isinstance(payload.get("args", []), list):
                raise wire.WireError(
                    'runner body must be a wire-encoded {"args": [...], "kwargs": {...}}'
                )
            args, kwargs = tuple(payload.get("args", [])), payload.get("kwargs") or {}
            result = await pool.get(name).acall(method, args, kwargs)
            return Response(wire.encode(result), media_type=wire.CONTENT_TYPE)
        except QueueFull as exc:
            response = _error(503, exc)
            response.headers["Retry-After"] = str(max(1, round(exc.retry_after)))
            return response
        except SignatureError as exc:
            return _error(404, exc)
        except RequestTooLarge as exc:
            return _error(413, exc)
        except (BatchInputError, wire.WireError) as exc:
            return _error(400, exc)
        except RunnerNotAvailable as exc:
            return _error(503, exc)
        except NbentoError as exc:
            return _error(400, exc)
        except Exception as exc:
            error_id = uuid.uuid4().hex[:12]
            log.exception("runner %s.%s failed (error id %s)", name, method, error_id)
            return _error(500, exc, id=error_id)

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
