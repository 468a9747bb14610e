"""The split layout's client: the API server's `RemoteBackend` calls a runner served as its own
HTTP process (`runner_app.py`, behind `nbento serve SRC --runner NAME`). Batching
happens on the runner side, where the rows of all API replicas meet. The body is `runtime.serving.wire`
(msgpack with an ndarray extension), never pickle.

    POST /_runner/{method}   body: wire {"args": [...], "kwargs": {...}} -> wire result
    errors: JSON {"error": {"type", "message", "id"?}}; 503 + Retry-After when the queue is full
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx

from runtime.errors import NbentoError, SignatureError
from runtime.serving import wire
from runtime.serving.batching import QueueFull, RequestTooLarge
from runtime.serving.loop import call_on_loop
from runtime.serving.rows import BatchInputError, BatchOutputError
from runtime.serving.workers import RemoteCallError

log = logging.getLogger("nbento.runners")

# Errors that keep their type across the wire, so a split deployment fails like a single one.
_KNOWN_ERRORS: dict[str, type[Exception]] = {
    "SignatureError": SignatureError,
    "BatchInputError": BatchInputError,
    "BatchOutputError": BatchOutputError,
    "RequestTooLarge": RequestTooLarge,
    "WireError": wire.WireError,
}


class RunnerUnreachable(QueueFull):
    """The remote runner did not answer (down, restarting); a 503 the client may retry."""


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
        raise _remote_error(self.name, response)

    def call(self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if self._loop is None:
            raise NbentoError(f"remote runner '{self.name}' is not bound to the server loop yet")
        return call_on_loop(self._loop, self.acall(method, args, kwargs), f"{self.name}.{method}")

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def _remote_error(name: str, response: httpx.Response) -> Exception:
    try:
        error = response.json()["error"]
        kind, message = str(error["type"]), str(error["message"])
    except Exception:
        kind, message = "HTTPError", response.text[:500]
    if response.status_code == 503:
        retry = float(response.headers.get("retry-after") or 1)
        return QueueFull(f"remote runner '{name}': {message}", retry)
    known = _KNOWN_ERRORS.get(kind)
    if known is not None:
        return known(message)
    return RemoteCallError(
        f"remote runner '{name}' failed ({response.status_code}): {kind}: {message}", kind
    )
