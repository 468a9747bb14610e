"""Limits on the HTTP head that uvicorn's httptools protocol does not have: the request line plus
headers are capped in bytes (`http.max_header_bytes`) and in lines (`http.max_headers`), refused
with 431, and a head that is not complete within `http.read_timeout_s` (a client trickling
headers, a connection that never sends a request) is answered 408 and closed. Bodies get their
read timeout in the gateway (`runtime.serving.app.read_body`).

The head is counted twice: exactly from the parser's callbacks, and coarsely from the bytes
received while the head is incomplete, because httptools buffers a header line until it ends
(a single 64 MiB header would be held in memory before the exact count sees it).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from runtime.errors import HttpError
from runtime.serving.error_body import error_response
from runtime.settings import HttpConfig

log = logging.getLogger("nbento.server")


def limited_protocol(limits: HttpConfig) -> type[asyncio.Protocol] | None:
    """An httptools protocol class enforcing `limits` on the head, or None when httptools is not
    installed (uvicorn's h11 protocol then caps the head with `h11_max_incomplete_event_size`,
    without the head timeout)."""
    try:
        import httptools  # noqa: F401
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:  # pragma: no cover - uvicorn[standard] brings httptools
        return None

    class LimitedHttpToolsProtocol(HttpToolsProtocol):
        _head_bytes = 0
        _head_exact = 0
        _head_lines = 0
        _in_head = True
        _refusal: tuple[int, str] | None = None
        _head_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._arm_head_timer()

        def connection_lost(self, exc: Exception | None) -> None:
            self._cancel_head_timer()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            if self._in_head:
                self._head_bytes += len(data)
            super().data_received(data)
            if (
                self._in_head and self._head_bytes > limits.max_header_bytes
                and not self.transport.is_closing()
            ):
                self._refuse(431, self._too_large_message())

        # -- parser callbacks ---------------------------------------------------------------

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._in_head = True
            self._head_exact = self._head_lines = 0
            if self._head_timer is None:
                self._arm_head_timer()

        def on_url(self, url: bytes) -> None:
            self._head_exact += len(url)
            super().on_url(url)

        def on_header(self, name: bytes, value: bytes) -> None:
            self._head_exact += len(name) + len(value) + 4
            self._head_lines += 1
            if self._head_lines > limits.max_headers:
                self._refusal = (
                    431, f"more than {limits.max_headers} header lines (setting http.max_headers)"
                )
                raise ValueError("too many headers")  # stops the parser; see send_400_response
            if self._head_exact > limits.max_header_bytes:
                self._refusal = (431, self._too_large_message())
                raise ValueError("headers too large")
            super().on_header(name, value)

        def on_headers_complete(self) -> None:
            self._in_head = False
            self._head_bytes = 0
            self._cancel_head_timer()
            super().on_headers_complete()

        def send_400_response(self, msg: str) -> None:
            # uvicorn answers any parser error with 400; a refusal raised in our callbacks
            # surfaces here too and gets its own status.
            status, message = self._refusal or (400, msg)
            self._refuse(status, message)

        # -- refusals -----------------------------------------------------------------------

        def _too_large_message(self) -> str:
            return (
                f"request line and headers exceed {limits.max_header_bytes} bytes "
                f"(setting http.max_header_bytes)"
            )

        def _refuse(self, status: int, message: str) -> None:
            self._cancel_head_timer()
            if self.transport.is_closing():
                return
            log.warning("refused a request from %s: %s", _peer(self.client), message)
            answer = error_response(HttpError(status, message), where="HTTP head", log=log)
            lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Bad Request')}".encode()]
            lines += [f"{k}: {v}".encode("latin-1") for k, v in answer.headers.items()]
            lines += [f"content-length: {len(answer.content)}".encode(), b"connection: close"]
            self.transport.write(b"\r\n".join(lines) + b"\r\n\r\n" + answer.content)
            self.transport.close()

        def _arm_head_timer(self) -> None:
            self._head_timer = self.loop.call_later(limits.read_timeout_s, self._head_timed_out)

        def _cancel_head_timer(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _head_timed_out(self) -> None:
            self._head_timer = None
            if self.transport.is_closing() or not self._in_head:
                return
            if self._head_bytes == 0 and self._head_exact == 0:
                self.transport.close()  # an idle connection: nothing to answer
                return
            self._refuse(
                408, f"the request headers did not arrive within {limits.read_timeout_s:g}s "
                f"(setting http.read_timeout_s)",
            )

    return LimitedHttpToolsProtocol


_REASONS = {400: "Bad Request", 408: "Request Timeout", 431: "Request Header Fields Too Large"}


def _peer(client: Any) -> str:
    return f"{client[0]}:{client[1]}" if client else "-"
