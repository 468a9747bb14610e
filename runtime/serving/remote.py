"""The split layout's client: the API server's `RemoteBackend` calls a runner served as its own
HTTP process (`runner_app.py`, behind `nbento serve SRC --runner NAME`). Batching
happens on the runner side, where the rows of all API replicas meet. The body is `runtime.serving.wire`
(msgpack with an ndarray extension), never pickle.

    POST /_runner/{method}   body: wire {"args": [...], "kwargs": {...}} -> wire result
    errors: the API server's JSON error body (`runtime.serving.error_body`), whose `type`
    names the exception class; the client raises that class again (`remote_error`)
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx

from runtime.errors import (
    ERROR_CLASSES,
    NbentoError,
    QueueFull,
    RemoteCallError,
    RequestError,
    RunnerUnreachable,
    SignatureError,
    UndeclaredMethod,
)
from runtime.serving import wire
from runtime.serving.error_body import ErrorBody
from runtime.serving.loop import call_on_loop

log = logging.getLogger("nbento.runners")


class RemoteBackend:
    """Calls a runner served by `runner_app` at `url`, over one pooled httpx client."""

    def __init__(
        self,
        name: str,
        url: str,
        *,
        loop: asyncio.AbstractEventLoop | None = None,
        timeout: float = 300.0,
    ) -> None:
        self.name = name
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._loop = loop
        self._client: httpx.AsyncClient | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """The server's event loop; sync `call` from worker threads runs requests on it."""
        self._loop = loop

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                base_url=self.url,
                timeout=httpx.Timeout(self.timeout, connect=5.0),
                limits=httpx.Limits(max_connections=256, max_keepalive_connections=256),
            )
        return self._client

    async def acall(self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        body = wire.encode({"args": list(args), "kwargs": kwargs})
        try:
            response = await self._http().post(
                f"/_runner/{method}", content=body, headers={"content-type": wire.CONTENT_TYPE}
            )
        except httpx.TransportError as exc:
            raise RunnerUnreachable(
                f"remote runner '{self.name}' at {self.url} is unreachable "
                f"({type(exc).__name__}: {exc}); check that `nbento serve ... --runner "
                f"{self.name}` is running there",
                1.0,
            ) from exc
        if response.status_code == 200:
            return wire.decode(response.content)
        raise remote_error(self.name, response)

    def call(self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if self._loop is None:
            raise NbentoError(f"remote runner '{self.name}' is not bound to the server loop yet")
        return call_on_loop(self._loop, self.acall(method, args, kwargs), f"{self.name}.{method}")

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def remote_error(name: str, response: httpx.Response) -> NbentoError:
    """The exception a runner's error answer stands for, so a split deployment fails exactly
    like a single one: the class its body's `type` names, with the same message (and the
    runner's error id, to find its traceback in the runner's log). Errors about the HTTP
    exchange itself (a 4xx `RequestError`: the API server sent a body the runner refused) and
    answers that are not our error body are the API server's problem: `RemoteCallError`."""
    status = response.status_code
    try:
        detail = ErrorBody.model_validate_json(response.content).error
    except ValueError:
        text = response.text[:500] or "(empty body)"
        return RemoteCallError(
            f"remote runner '{name}' answered HTTP {status} without an nbento error body: {text}",
            f"HTTP {status}",
        )
    message = detail.message + (f" (runner error id {detail.id})" if detail.id else "")
    cls = ERROR_CLASSES.get(detail.type)
    if cls is UndeclaredMethod:  # the service's own code asked for it: a bug, as in one process
        cls = SignatureError
    if cls is not None and issubclass(cls, QueueFull):
        retry = _seconds(response.headers.get("retry-after"))
        return cls(f"remote runner '{name}': {message}", retry)
    if cls is None or cls is RemoteCallError or issubclass(cls, RequestError):
        return RemoteCallError(
            f"remote runner '{name}' failed ({status} {detail.type}): {message}", detail.type
        )
    try:
        return cls(message)
    except TypeError:  # a class with more required arguments than a message
        return RemoteCallError(f"remote runner '{name}': {detail.type}: {message}", detail.type)


def _seconds(value: str | None) -> float:
    try:
        return max(1.0, float(value or 1))
    except ValueError:
        return 1.0
