"""The split layout's client: the API server's `RemoteBackend` calls a runner served as its own
HTTP process (`runner_app.py`, behind `nbento serve SRC --runner NAME`). Batching
happens on the runner side, where the rows of all API replicas meet. The body is `runtime.serving.wire`
(msgpack with an ndarray extension), never pickle. A runner may have many replicas; which one
a call goes to is `runtime.serving.balancer`.

    POST /_runner/{method}   body: wire {"args": [...], "kwargs": {...}} -> wire result
    errors: the API server's JSON error body (`runtime.serving.error_body`), whose `type`
    names the exception class; the client raises that class again (`remote_error`)
"""

from __future__ import annotations

import asyncio
import contextlib
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
from runtime.serving.balancer import BalancingOptions, ReplicaSet, Resolver
from runtime.serving.error_body import ErrorBody
from runtime.serving.loop import call_on_loop

log = logging.getLogger("nbento.runners")


class RemoteBackend:
    """Calls a runner served by `runner_app` at `url`: one URL, a list of replica URLs or a
    `dns+http://NAME:PORT` name, balanced by `runtime.serving.balancer.ReplicaSet`. A call whose
    replica cannot be reached (refused, reset, killed mid-call) is sent to another replica;
    only when every replica failed does the caller see `RunnerUnreachable` (503)."""

    def __init__(
        self,
        name: str,
        url: str | list[str],
        *,
        loop: asyncio.AbstractEventLoop | None = None,
        timeout: float = 300.0,
        resolver: Resolver | None = None,
        options: BalancingOptions | None = None,
    ) -> None:
        self.name = name
        self.timeout = timeout
        self._loop = loop
        self.replicas = ReplicaSet(name, url, timeout=timeout, resolver=resolver, options=options)
        self.url = self.replicas.description

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """The server's event loop; sync `call` from worker threads runs requests on it."""
        self._loop = loop

    async def acall(self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        body = wire.encode({"args": list(args), "kwargs": kwargs})
        rows = _rows(args)
        tried: set[str] = set()
        failures: list[str] = []
        while (replica := await self.replicas.choose(tried)) is not None:
            tried.add(replica.url)
            try:
                async with self.replicas.lease(replica, rows) as client:
                    response = await _post_watched(client, f"/_runner/{method}", body)
            except _RETRYABLE as exc:
                # inference calls may run twice; a lost answer is worse than a repeated row
                self.replicas.failed(replica, exc)
                failures.append(f"{replica.url} ({type(exc).__name__}: {exc})")
                continue
            except httpx.TransportError as exc:  # a timeout: the replica is alive but slow
                raise RunnerUnreachable(
                    f"remote runner '{self.name}' at {replica.url} did not answer "
                    f"({type(exc).__name__}: {exc}); it may be overloaded",
                    1.0,
                ) from exc
            self.replicas.answered(replica)
            if response.status_code == 200:
                return wire.decode(response.content)
            raise remote_error(self.name, response)
        raise RunnerUnreachable(
            f"remote runner '{self.name}' at {self.url} is unreachable: "
            f"{'; '.join(failures) or 'its name resolved to no address (yet)'}; check that "
            f"`nbento serve ... --runner {self.name}` is running there",
            1.0,
        )

    def call(self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if self._loop is None:
            raise NbentoError(f"remote runner '{self.name}' is not bound to the server loop yet")
        return call_on_loop(self._loop, self.acall(method, args, kwargs), f"{self.name}.{method}")

    async def aclose(self) -> None:
        await self.replicas.aclose()


class _ReplicaStalled(Exception):
    """A call outstanding for `STALL_CHECK_S` to a replica that then failed its liveness probe
    (the process is stopped or wedged: its port still accepts, nothing answers)."""


# A call outstanding this long makes the caller probe the replica's /livez (answered by its
# event loop, not by the model); a replica that cannot answer that within LIVENESS_TIMEOUT_S
# is treated as gone, so its callers get a 503 instead of waiting out the call timeout.
STALL_CHECK_S = 5.0
LIVENESS_TIMEOUT_S = 2.0


async def _post_watched(client: httpx.AsyncClient, path: str, body: bytes) -> httpx.Response:
    post = asyncio.ensure_future(
        client.post(path, content=body, headers={"content-type": wire.CONTENT_TYPE})
    )
    try:
        while True:
            done, _ = await asyncio.wait({post}, timeout=STALL_CHECK_S)
            if done:
                return post.result()
            try:
                probe = await client.get("/livez", timeout=LIVENESS_TIMEOUT_S)
                alive = probe.status_code == 200
            except httpx.HTTPError:
                alive = False
            if not alive and not post.done():
                raise _ReplicaStalled(
                    f"no answer for {STALL_CHECK_S:g}s and /livez did not answer within "
                    f"{LIVENESS_TIMEOUT_S:g}s (the process may be stopped or wedged)"
                )
    finally:
        if not post.done():
            post.cancel()
            with contextlib.suppress(asyncio.CancelledError, httpx.HTTPError):
                await post


# Failures before or while talking to a replica that say nothing about the call itself.
_RETRYABLE = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.RemoteProtocolError,
    httpx.ReadError,
    httpx.WriteError,
    _ReplicaStalled,
)


def _rows(args: tuple[Any, ...]) -> int:
    """Rows in a call, for balancing: the length of the first argument when it is a batch."""
    first = args[0] if args else None
    if isinstance(first, (list, tuple)) or hasattr(first, "shape"):
        try:
            return max(1, len(first))  # type: ignore[arg-type]
        except TypeError:  # a 0-d array
            return 1
    return 1


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
