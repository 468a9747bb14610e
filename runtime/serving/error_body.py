"""The one JSON error body: what the API server and a split layout's runner servers send for
every error (their own 4xx/503s, a framework's 404/405/422, a 500), and what `/openapi.json`
documents. The exception classes and their statuses are in `runtime.errors`.

    {"error": {"type": "validation_error",              # the class's code (docs/apis.md)
               "message": "order.qty: Input should be a valid integer",
               "field": "order.qty",                     # the input it concerns, or null
               "fields": [{"field": "order.qty", "message": "Input should be ..."}],
               "id": null,                               # 500s: the log has the traceback under it
               "traceback": null}}                       # 500s with --dev only
"""

from __future__ import annotations

import json
import logging
import traceback as tb
import uuid
from collections.abc import Awaitable, Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from runtime.errors import (
    HttpError,
    MethodNotAllowed,
    NbentoError,
    NotFound,
    ValidationFailed,
    code_for,
    status_for,
)

if TYPE_CHECKING:
    from fastapi import FastAPI

Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class FieldMessage(BaseModel):
    """One problem with one input field."""

    model_config = ConfigDict(extra="forbid")

    field: str | None = Field(description="dotted path of the field; null for the whole body")
    message: str


class ErrorDetail(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: str = Field(description="what kind of error: a stable code, see docs/apis.md")
    message: str = Field(description="what was wrong and what to do")
    field: str | None = Field(description="the input field the error concerns, if any")
    fields: list[FieldMessage] = Field(
        description="every problem with the input (a 422 may list several); empty otherwise"
    )
    id: str | None = Field(description="500s: the server log has the traceback under this id")
    traceback: str | None = Field(description="500s on a server started with --dev")


class ErrorBody(BaseModel):
    """The body of every error answer."""

    model_config = ConfigDict(extra="forbid")

    error: ErrorDetail


@dataclass(frozen=True)
class ErrorResponse:
    """An error as HTTP: status, headers (Content-Type included) and the encoded `ErrorBody`."""

    status: int
    headers: dict[str, str]
    content: bytes

    def asgi_headers(self) -> list[tuple[bytes, bytes]]:
        return [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in self.headers.items()]


def error_body(
    exc: BaseException,
    *,
    where: str,
    error_id: str | None = None,
    internals: bool = False,
    traceback: bool = False,
) -> ErrorBody:
    """The body for `exc`. A public error (4xx, 503) shows its message; any other shows its
    message only with `internals` (a `--dev` server, or a runner answering the API server),
    else names `where` it happened and the error id to look up in the log."""
    public = isinstance(exc, NbentoError) and exc.public
    if public:
        message = str(exc)
    elif internals:
        message = str(exc) if isinstance(exc, NbentoError) else f"{type(exc).__name__}: {exc}"
    else:
        message = (
            f"{where} raised {type(exc).__name__}; the server log has the traceback under "
            f"error id {error_id}"
        )
    problems = exc.fields if isinstance(exc, NbentoError) else []
    return ErrorBody.model_validate({"error": {
        "type": code_for(exc),
        "message": message,
        "field": exc.field if isinstance(exc, NbentoError) else None,
        "fields": [{"field": field, "message": text} for field, text in problems],
        "id": None if public else error_id,
        "traceback": "".join(tb.format_exception(exc)) if traceback and not public else None,
    }})


def error_response(
    exc: BaseException,
    *,
    where: str,
    log: logging.Logger,
    internals: bool = False,
    traceback: bool = False,
) -> ErrorResponse:
    """The answer to `exc`, the one way both servers turn an exception into HTTP. An error that
    is not public gets a fresh error id, logged with its traceback."""
    error_id = None
    if not (isinstance(exc, NbentoError) and exc.public):
        error_id = uuid.uuid4().hex[:12]
        log.error(
            "error %s in %s: %s: %s", error_id, where, type(exc).__name__, exc, exc_info=exc
        )
    body = error_body(exc, where=where, error_id=error_id, internals=internals, traceback=traceback)
    content = body.model_dump_json().encode()
    headers = exc.http_headers() if isinstance(exc, NbentoError) else {}
    return ErrorResponse(status_for(exc), {"Content-Type": "application/json", **headers}, content)


async def send_error(send: Send, response: ErrorResponse) -> None:
    """Write `response` on a raw ASGI `send`."""
    headers = [
        *response.asgi_headers(), (b"content-length", str(len(response.content)).encode()),
    ]
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": response.content})


def from_http_exception(
    status: int, detail: Any, headers: Mapping[str, str] | None, method: str, path: str,
    routes_hint: str = "",
) -> NbentoError:
    """The framework's own `HTTPException` as one of ours: its 404 (no route) and 405 get their
    own classes and messages that say what to do; any other status keeps its detail."""
    if status == 404:
        return NotFound(f"no route {method} {path}{routes_hint}")
    if status == 405:
        allow = (headers or {}).get("Allow") or (headers or {}).get("allow") or ""
        return MethodNotAllowed(f"{path} takes {allow or 'another method'}, not {method}", allow)
    return chosen_answer(status, detail, headers)


def chosen_answer(status: int, detail: Any, headers: Mapping[str, str] | None) -> HttpError:
    """An `HTTPException` raised on purpose (by an API function): its status, its detail as the
    message (JSON text when it is not a string), its headers."""
    text = detail if isinstance(detail, str) else json.dumps(detail, default=str)
    return HttpError(status, text, headers)


def from_request_validation(errors: Sequence[Any]) -> ValidationFailed:
    """FastAPI's own request validation (its routes' parameters) as a `ValidationFailed`."""
    return ValidationFailed.listing([
        (".".join(str(p) for p in err.get("loc", ())) or None, str(err.get("msg", "invalid")))
        for err in errors
    ])


def install_error_handlers(
    app: FastAPI,
    *,
    log: logging.Logger,
    routes_hint: Callable[[], str] = lambda: "",
    internals: bool = False,
    traceback: bool = False,
) -> None:
    """Make the framework's own answers (unknown route, wrong method, its request validation, an
    exception in a route) use the one error body. `routes_hint()` completes 404 messages."""
    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException
    from starlette.requests import Request
    from starlette.responses import Response

    def respond(exc: BaseException, request: Request) -> Response:
        answer = error_response(
            exc, where=f"{request.method} {request.url.path}", log=log, internals=internals,
            traceback=traceback,
        )
        return Response(answer.content, answer.status, answer.headers)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        hint = routes_hint() if exc.status_code == 404 else ""
        ours = from_http_exception(
            exc.status_code, exc.detail, exc.headers, request.method, request.url.path, hint
        )
        return respond(ours, request)

    async def invalid_request(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return respond(from_request_validation(exc.errors()), request)

    async def crashed(request: Request, exc: Exception) -> Response:
        return respond(exc, request)

    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(Exception, crashed)
