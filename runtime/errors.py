"""Every error nbento raises on purpose, in one place, each with the HTTP status it answers with.

Errors are for people: each says what was wrong, with the offending value, and what to do. The
CLI turns any `NbentoError` into one readable line and exit code 1; the magics show it in the
cell output; the HTTP servers (the API server and a split layout's runner servers) answer with
`status` and a JSON body whose `type` is the class's `code` (`runtime.serving.error_body`
builds it; docs/apis.md lists the codes).

    status 400-422  the request is wrong; the message says how (`RequestError` and its kin)
    status 503      try again after `retry_after` seconds (a full queue, a runner not ready)
    status 500      a bug or a broken deployment; the body carries an error id, the log the
                    traceback (every error not listed here answers 500 as well)

This module imports nothing heavy: a kernel that only uses `runner(...)` stays cheap.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import ClassVar, TypeAlias

FieldProblem: TypeAlias = "tuple[str | None, str]"
"""`(field, message)`: one problem with one input field (None: the body as a whole)."""


class NbentoError(Exception):
    """Base class for every error nbento raises on purpose. Unexpected by default: 500."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"
    public: ClassVar[bool] = False
    """Whether an HTTP answer may show the message to any client (4xx, 503). A 500 shows it
    only to developers (`--dev`) and to the API server calling a runner."""
    retry_after: float | None = None
    """Seconds a client should wait before retrying (sent as `Retry-After`), for 503s."""

    @property
    def field(self) -> str | None:
        """The input field the error is about, if any."""
        return None

    @property
    def fields(self) -> list[FieldProblem]:
        """Every problem with the request's input, with the field it concerns."""
        return []

    def http_status(self) -> int:
        return self.status

    def http_headers(self) -> dict[str, str]:
        if self.retry_after is None:
            return {}
        return {"Retry-After": str(max(1, math.ceil(self.retry_after)))}


# -- the store, services and builds: never the client's fault --------------------------------


class InvalidName(NbentoError, ValueError):
    """A model, service or runner name breaks the naming rule."""

    code = "invalid_name"


class ModelNotFound(NbentoError, LookupError):
    """No model (or no such version) in the store."""

    code = "model_not_found"


class ChecksumMismatch(NbentoError):
    """An artifact on disk does not match the sha256 recorded when it was saved."""

    code = "checksum_mismatch"


class SerializationError(NbentoError):
    """No serializer can save or load this object."""

    code = "serialization_error"


class ServiceLoadError(NbentoError):
    """A service module failed to import or defines no API."""

    code = "service_load_error"


class ServiceImportError(ServiceLoadError):
    """The service module raised while importing; `file` and `line` point into user code."""

    code = "service_import_error"

    def __init__(self, message: str, file: str | None = None, line: int | None = None) -> None:
        where = f"{file}:{line}: " if file else ""
        super().__init__(f"{where}{message}")
        self.message = message
        self.file = file
        self.line = line

    def as_status(self) -> dict[str, str | int | None]:
        return {"message": self.message, "file": self.file, "line": self.line}


class SignatureError(NbentoError, AttributeError):
    """A model handle was asked for a method the model did not save a signature for."""

    code = "signature_error"


class UndeclaredMethod(SignatureError):
    """A runner server was asked (`POST /_runner/NAME`) for a method its model does not declare
    as a signature: refused before anything is looked up on the model object. An API server
    calling a remote runner raises it like a local `SignatureError`."""

    public = True
    status = 404
    code = "undeclared_method"


class UntrustedModel(NbentoError):
    """A model from outside this machine would run code on load (a pickle) or declares methods
    beyond inference; loading it needs a trust decision (`nbento models trust TAG`)."""

    code = "untrusted_model"


class UnsafeWrite(NbentoError):
    """A write that a symbolic link would lead out of the folder it belongs to."""

    status = 400
    code = "unsafe_write"
    public = True


class BuildError(NbentoError):
    """A Bento build or export refused its input (secrets, missing models, bad options)."""

    code = "build_error"


class GoldenError(NbentoError):
    """A golden file cannot be read, or a replay found answers that differ from the notebook's."""

    code = "golden_mismatch"


class ContainerEngineUnavailable(NbentoError):
    """No Docker-API engine answered; the message carries the equivalent `docker build`."""

    code = "container_engine_unavailable"


class ImageBuildFailed(NbentoError):
    """The engine ran the build and it failed (the log says where)."""

    code = "image_build_failed"


# -- runners: batching, the wire format, worker processes ------------------------------------


class BatchInputError(NbentoError, ValueError):
    """A batchable method was called with something that has no rows (a scalar, a string), or
    with row arguments of different lengths."""

    code = "batch_input_error"


class BatchOutputError(NbentoError):
    """A batchable method returned something that cannot be split back into rows."""

    code = "batch_output_error"


class WireError(NbentoError, ValueError):
    """A value cannot cross the wire (an object array, a DataFrame, a custom class)."""

    code = "wire_error"


class WorkerError(NbentoError):
    """A worker process failed to load the model, or died."""

    code = "worker_error"


class NotForkable(WorkerError):
    """A runner's template process refused to fork a worker (it is not single-threaded); the
    runner spawns workers that load the model themselves instead. Never reaches a client."""

    code = "not_forkable"


class WorkerDied(WorkerError):
    """A worker process died (crashed, killed) with calls in flight: those calls fail at once
    with 503 and `Retry-After`, and the runner starts a replacement process."""

    public = True
    status = 503
    code = "worker_died"

    def __init__(self, message: str, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RemoteCallError(NbentoError, RuntimeError):
    """An unexpected exception raised in another process (the model in a worker process, or
    anything in a remote runner); the message carries the original type and message (and the
    remote error id, if any). Its code is `internal_error`, like any unexpected exception's."""

    code = "internal_error"

    def __init__(self, message: str, error_type: str = "Exception", trace: str = "") -> None:
        super().__init__(message)
        self.error_type = error_type
        self.trace = trace


class RequestTooLarge(NbentoError, ValueError):
    """One request holds more rows than the queue can ever take (`max_queue_rows`)."""

    public = True
    status = 413
    code = "too_many_rows"


class QueueFull(NbentoError):
    """The runner's queue holds `max_queue_rows` rows: 503, retry after `retry_after` s."""

    public = True
    status = 503
    code = "overloaded"

    def __init__(self, message: str, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RunnerClosed(QueueFull):
    """The runner is shutting down (or being replaced) and takes no new rows."""

    code = "runner_closed"


class RunnerUnreachable(QueueFull):
    """A remote runner did not answer (down, restarting); a 503 the client may retry."""

    code = "runner_unreachable"


class RunnerNotAvailable(NbentoError):
    """A handle was called whose runner the server did not start, is stopped, or failed to load
    (`/readyz` says which)."""

    public = True
    status = 503
    code = "not_ready"
    retry_after = 1.0


# -- the HTTP request itself: the client can fix these ---------------------------------------


class RequestError(NbentoError):
    """A request the server cannot take as sent: a 4xx whose message says what to change.

    `field` names the input it concerns; `fields` lists every problem (a 422 may have several).
    """

    public = True
    status = 400
    code = "bad_request"

    def __init__(
        self, message: str, field: str | None = None, fields: list[FieldProblem] | None = None
    ) -> None:
        super().__init__(message)
        self._field = field
        if fields is None:
            fields = [(field, message)] if field is not None else []
        self._fields = fields

    @property
    def field(self) -> str | None:
        return self._field

    @property
    def fields(self) -> list[FieldProblem]:
        return list(self._fields)


class InvalidBody(RequestError):
    """The body cannot be read: bad UTF-8, an unreadable `.npy`, a malformed multipart."""

    code = "invalid_body"


class InvalidJSON(InvalidBody):
    """The body (or a form field) is not valid JSON."""

    code = "invalid_json"


class BodyTooLarge(RequestError):
    """The body is larger than `max_body_bytes`."""

    status = 413
    code = "body_too_large"


class UnsupportedMediaType(RequestError):
    """A Content-Type the API's parameter cannot take; the message says what it takes."""

    status = 415
    code = "unsupported_media_type"


class ValidationFailed(RequestError):
    """The input does not fit the API's type hints; `fields` names each offending field."""

    status = 422
    code = "validation_error"

    @classmethod
    def listing(cls, problems: list[FieldProblem]) -> ValidationFailed:
        """A 422 for every problem in `problems`: the message spells them all out, `field` is
        the first one's field."""
        if not problems:
            return cls("the input does not fit the API's type hints")
        text = "; ".join(f"{field}: {message}" if field else message for field, message in problems)
        return cls(text, problems[0][0], problems)


class Unauthorized(RequestError):
    """The server requires the API token (`NBENTO_API_TOKEN`) and the request did not carry it
    as `Authorization: Bearer <token>`, or carried another one."""

    status = 401
    code = "unauthorized"

    def http_headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": 'Bearer realm="nbento"'}


class Forbidden(RequestError):
    """A request from somewhere this server does not answer: a `Host` or `Origin` that is not
    local on a loopback bind (DNS rebinding, a web page posting to the notebook's server), or
    not in the configured allow-list."""

    status = 403
    code = "forbidden"


class RequestTimeout(RequestError):
    """The client stopped sending the body half-way (no data for `http.read_timeout_s`)."""

    status = 408
    code = "request_timeout"

    def http_headers(self) -> dict[str, str]:
        return {"Connection": "close"}


class NotFound(RequestError):
    """No route for this path; the message lists what the server does have."""

    status = 404
    code = "not_found"


class MethodNotAllowed(RequestError):
    """A route called with the wrong method; `allow` lists the right ones."""

    status = 405
    code = "method_not_allowed"

    def __init__(self, message: str, allow: str) -> None:
        super().__init__(message)
        self.allow = allow

    def http_headers(self) -> dict[str, str]:
        return {"Allow": self.allow}


class HttpError(RequestError):
    """An HTTP answer chosen on purpose (an API function raising starlette's `HTTPException`,
    or a framework answer nbento has no class for): its own status and headers."""

    code = "http_error"

    def __init__(
        self, status: int, message: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.own_status = status
        self.headers = dict(headers or {})

    def http_status(self) -> int:
        return self.own_status

    def http_headers(self) -> dict[str, str]:
        return dict(self.headers)


ERROR_CLASSES: dict[str, type[NbentoError]] = {
    cls.code: cls
    for cls in (
        UndeclaredMethod, UntrustedModel,
        InvalidName, ModelNotFound, ChecksumMismatch, SerializationError,
        ServiceLoadError, ServiceImportError, SignatureError, UnsafeWrite, BuildError, GoldenError,
        ContainerEngineUnavailable, ImageBuildFailed, BatchInputError, BatchOutputError,
        WireError, WorkerError, NotForkable, WorkerDied, RemoteCallError, RequestTooLarge, QueueFull, RunnerClosed,
        RunnerUnreachable, RunnerNotAvailable, RequestError, InvalidBody, InvalidJSON,
        BodyTooLarge, UnsupportedMediaType, ValidationFailed, Unauthorized, Forbidden,
        RequestTimeout, NotFound, MethodNotAllowed, HttpError,
    )
}
"""Every error class by the `type` its HTTP body carries, so an API server rebuilds a remote
runner's errors as the same class and a split deployment fails exactly like a single one.
`internal_error` (anything unexpected, the `NbentoError` base included) comes back as a
`RemoteCallError`."""


def status_for(exc: BaseException) -> int:
    """The HTTP status `exc` answers with: its class's status, 500 for anything unexpected."""
    if isinstance(exc, NbentoError):
        return exc.http_status()
    return 500


def code_for(exc: BaseException) -> str:
    """The `type` of `exc`'s HTTP error body: its class's code, `internal_error` otherwise."""
    return exc.code if isinstance(exc, NbentoError) else NbentoError.code
