"""The server's side of a runner's template process (`template_process.py`): start it (it loads
the model once), ask it to fork a worker (a socket pair: one end travels to the template with the
request, the worker keeps it as its channel, the server keeps the other), and learn each worker's
exit code from it. The template holds no calls: if it dies, its workers keep serving and the pool
starts a new template for the next replacement."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys
import time
from collections.abc import Callable
from typing import Any

from runtime.errors import NotForkable, WorkerError
from runtime.serving import wire
from runtime.serving.template_process import BOOT
from runtime.serving.worker_process import HEADER, READY_ID

log = logging.getLogger("nbento.workers")


def worker_env(threads: int) -> dict[str, str]:
    """The environment of a runner's processes: BLAS pools and tokenizers at the workers' size
    (no thread of their own in a template that forks)."""
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[var] = str(threads)
    env["TOKENIZERS_PARALLELISM"] = "false"
    return env


class Template:
    """One template process; `fork()` gives a new worker's (pid, server end of its socket)."""

    def __init__(self, tag: str, threads: int, calls: int) -> None:
        self.tag = tag
        self.threads = threads
        self.calls = calls
        self.proc: asyncio.subprocess.Process | None = None
        self.load_seconds: float | None = None
        self.alive = False
        self.forks = 0
        self._sock: socket.socket | None = None
        self._next_id = READY_ID
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._exits: dict[int, asyncio.Future[int | None]] = {}
        self._reader: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid if self.proc is not None else -1

    async def start(self, on_death: Callable[[Template], None]) -> float:
        """Start the process and wait until the model is loaded; its load time in seconds."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        ours.setblocking(False)
        self._sock = ours
        began = time.perf_counter()
        try:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-c", BOOT,
                self.tag, str(self.threads), str(self.calls), str(theirs.fileno()),
                stdin=asyncio.subprocess.DEVNULL, env=worker_env(self.threads),
                pass_fds=(theirs.fileno(),),
            )
        finally:
            theirs.close()
        try:
            _, reply = await self._read_frame()
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            code = await self.proc.wait()
            ours.close()
            raise WorkerError(
                f"the template process {self.pid} for {self.tag} exited (code {code}) while "
                f"loading the model; its log is above in the server output"
            ) from exc
        except asyncio.CancelledError:
            self.proc.kill()  # it ignores SIGTERM; the server is stopping mid-load
            ours.close()
            raise
        if "err" in reply:
            await self.proc.wait()
            ours.close()
            raise WorkerError(
                f"the template process for {self.tag} could not load the model: "
                f"{reply['err']['type']}: {reply['err']['message']}"
            )
        self.load_seconds = time.perf_counter() - began
        self.alive = True
        self._reader = asyncio.create_task(self._read_events(on_death))
        return float(reply["ready"])

    async def fork(self) -> tuple[int, socket.socket]:
        """A new worker forked from the template: its pid and the server's end of its socket.
        `NotForkable` when the template is not single-threaded, `WorkerError` when it is gone."""
        if not self.alive or self._sock is None:
            raise WorkerError(f"the template process of {self.tag} is not running")
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self._next_id += 1
        request_id = self._next_id
        reply_future = asyncio.get_running_loop().create_future()
        self._pending[request_id] = reply_future
        try:
            # 8 bytes on a unix socket nobody else writes to: never blocks in practice.
            socket.send_fds(self._sock, [HEADER.pack(0, request_id)], [theirs.fileno()])
            reply = await reply_future
        except (OSError, WorkerError):
            ours.close()
            raise
        finally:
            theirs.close()
            self._pending.pop(request_id, None)
        if "err" in reply:
            ours.close()
            raise NotForkable(f"{reply['err']['type']}: {reply['err']['message']}")
        pid = int(reply["forked"])
        self._exits.setdefault(pid, asyncio.get_running_loop().create_future())
        self.forks += 1
        return pid, ours

    async def exit_code(self, pid: int, timeout: float) -> int | None:
        """The exit code of worker `pid` as the template reaped it; None if the template is
        gone (the worker's exit then goes unreported) or not within `timeout`."""
        waiting = self._exits.get(pid)
        if waiting is None:
            return None
        try:
            code = await asyncio.wait_for(asyncio.shield(waiting), timeout)
        except asyncio.TimeoutError:
            return None
        self._exits.pop(pid, None)  # one entry per live worker, not per fork ever made
        return code

    def knows(self, pid: int) -> bool:
        """Whether `pid` is a worker of this template that has not been reported ended."""
        waiting = self._exits.get(pid)
        return waiting is not None and not waiting.done()

    async def _read_frame(self) -> tuple[int, Any]:
        loop = asyncio.get_running_loop()
        assert self._sock is not None
        size, call_id = HEADER.unpack(await self._recv_exactly(loop, HEADER.size))
        return call_id, wire.decode(await self._recv_exactly(loop, size))

    async def _recv_exactly(self, loop: asyncio.AbstractEventLoop, size: int) -> bytes:
        assert self._sock is not None
        data = b""
        while len(data) < size:
            chunk = await loop.sock_recv(self._sock, size - len(data))
            if not chunk:
                raise asyncio.IncompleteReadError(data, size)
            data += chunk
        return data

    async def _read_events(self, on_death: Callable[[Template], None]) -> None:
        try:
            while True:
                call_id, reply = await self._read_frame()
                if call_id == READY_ID and "exited" in reply:
                    waiting = self._exits.setdefault(
                        int(reply["exited"]), asyncio.get_running_loop().create_future()
                    )
                    if not waiting.done():
                        waiting.set_result(reply["code"])
                    continue
                answer = self._pending.get(call_id)
                if answer is not None and not answer.done():
                    answer.set_result(reply)
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            pass
        self.alive = False
        gone = WorkerError(f"the template process of {self.tag} exited")
        for answer in self._pending.values():
            if not answer.done():
                answer.set_exception(gone)
        for waiting in self._exits.values():
            if not waiting.done():
                waiting.set_result(None)  # its workers live on, unreported
        if self.proc is not None:
            code = await self.proc.wait()
            log.warning("template process %d of %s exited (code %s)", self.pid, self.tag, code)
        on_death(self)

    async def aclose(self, timeout: float) -> None:
        """Close the control channel (the template exits; its workers are stopped by their own
        channels); kill it past `timeout`."""
        self.alive = False
        if self._reader is not None:
            self._reader.cancel()  # a stop, not a death: no replacement template
            await asyncio.gather(self._reader, return_exceptions=True)
        closed = WorkerError(f"the template process of {self.tag} was stopped")
        for answer in self._pending.values():
            if not answer.done():
                answer.set_exception(closed)
        if self._sock is not None:
            self._sock.close()
        if self.proc is not None and self.proc.returncode is None:
            try:
                await asyncio.wait_for(self.proc.wait(), timeout)
            except asyncio.TimeoutError:
                self.proc.kill()
                await self.proc.wait()
