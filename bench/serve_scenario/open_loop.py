"""The soak's load generator: requests sent on a fixed schedule whatever the answers (open
loop), raw HTTP/1.1 on asyncio over keep-alive connections. Latency counts from the scheduled
time, so a stalled server shows up as latency; a request that finds no free connection is
counted as an error rather than delayed."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass

TEXTS = [
    "I was charged twice for my order", "my package has not arrived yet",
    "the app crashes when I open settings", "I cannot log in to my account",
    "please send me a refund for the last invoice", "the parcel tracking number does not work",
    "sync between my phone and laptop is broken", "please reset my password",
]
REQUEST_TIMEOUT_S = 10.0
IDLE_EXPIRY_S = 3.0  # nbento's http.keep_alive_s is 5


@dataclass
class Record:
    due: float  # scheduled send time, seconds from the start of the load
    status: int  # 0: no HTTP answer
    latency: float  # from the scheduled time to the full answer
    kind: str = ""


@dataclass
class _Conn:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    idle_since: float = 0.0


def request_bytes(i: int) -> bytes:
    body = f'{{"texts": ["{TEXTS[i % len(TEXTS)]} (#{i})"]}}'.encode()
    return (b"POST /classify HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body))


async def _exchange(conn: _Conn, payload: bytes) -> tuple[int, bool]:
    """Send one request and read its answer; (status, whether the connection stays open)."""
    conn.writer.write(payload)
    await conn.writer.drain()
    head = await conn.reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
    await conn.reader.readexactly(int(length.group(1)) if length else 0)
    return status, not re.search(rb"(?i)\r\nconnection: *close", head)


class OpenLoop:
    """Requests at `rate` per second on a fixed schedule over up to `max_conns` keep-alive
    connections to 127.0.0.1:`port`."""

    def __init__(self, port: int, rate: float, max_conns: int) -> None:
        self.port = port
        self.rate = rate
        self.max_conns = max_conns
        self.records: list[Record] = []
        self._idle: list[_Conn] = []
        self._open = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def run(self, seconds: float, t0: float) -> None:
        loop = asyncio.get_running_loop()
        total = int(seconds * self.rate)
        for i in range(total):
            due = t0 + i / self.rate
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            conn = self._reusable(loop.time())
            if conn is None and self._open >= self.max_conns:
                self.records.append(Record(due - t0, 0, 0.0, "no free connection"))
                continue
            if conn is None:
                self._open += 1
            task = asyncio.create_task(self._one(conn, i, due, t0))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=REQUEST_TIMEOUT_S + 5)
        for conn in self._idle:
            conn.writer.close()

    def _reusable(self, now: float) -> _Conn | None:
        """The most recently used idle connection, dropping those the server may have closed:
        idle longer than IDLE_EXPIRY_S (under the server's keep-alive timeout, as HTTP
        clients do) or already at EOF; otherwise a request would race the server's close."""
        while self._idle:
            conn = self._idle.pop()
            if now - conn.idle_since < IDLE_EXPIRY_S and not conn.reader.at_eof():
                return conn
            conn.writer.close()
            self._open -= 1
        return None

    async def _one(self, conn: _Conn | None, i: int, due: float, t0: float) -> None:
        loop = asyncio.get_running_loop()
        keep = False
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT_S):
                if conn is None:
                    reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
                    conn = _Conn(reader, writer)
                status, keep = await _exchange(conn, request_bytes(i))
            self.records.append(Record(due - t0, status, loop.time() - due))
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                TimeoutError, ValueError, IndexError) as exc:
            self.records.append(Record(due - t0, 0, loop.time() - due, type(exc).__name__))
        if keep and conn is not None:
            conn.idle_since = loop.time()
            self._idle.append(conn)
        else:
            self._open -= 1
            if conn is not None:
                conn.writer.close()
