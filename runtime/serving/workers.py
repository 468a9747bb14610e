"""Where a runner's model computes, off the event loop. Two strategies behind one small interface:

- `ThreadWorkers`: the model lives in the server process; `workers` threads call it. Cheap
  (no copies), fine for GIL-releasing compute (torch, BLAS) and for any argument type.
- `ProcessWorkers`: `workers` child processes, forked from one template process that loaded the
  model once (`runtime.serving.template`), serve calls over a socket each
  (`runtime.serving.worker_process`) in the `runtime.serving.wire` format (msgpack, no pickle;
  arrays, frames, tensors, sparse matrices and model outputs keep their types, so a model
  answers as it does in a thread). Model compute then never competes with HTTP parsing for
  the GIL, and each child gets its own torch threads (`threads`, default: the cores divided by
  the workers). A child that dies fails its open calls at once (`WorkerDied`, 503) and is
  replaced in the background.

`resolve_isolation` picks one for `isolation: auto` (the default); docs/batching.md records the
measurements behind that choice.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Protocol, TypeVar

from runtime.errors import NotForkable, RemoteCallError, UndeclaredMethod, WorkerDied, WorkerError
from runtime.serving import cpu, wire
from runtime.serving.template import Template, worker_env
from runtime.serving.worker_process import BOOT as WORKER_BOOT
from runtime.serving.worker_process import (
    HEADER,
    READY_ID,
    declared_method,
    set_torch_threads,
)

__all__ = [
    "ProcessWorkers", "RemoteCallError", "ThreadWorkers", "WorkerDied", "WorkerError", "Workers",
    "available_cores", "declared_method", "refuse_undeclared", "resolve_isolation",
    "set_torch_threads",
]

log = logging.getLogger("nbento.workers")
_T = TypeVar("_T")

_LOAD_LOCK = threading.Lock()

_CAN_FORK = sys.platform.startswith("linux") and hasattr(socket, "send_fds")
"""Workers are forked from a template on Linux (fork, SCM_RIGHTS, /proc); elsewhere each worker
process loads the model itself."""


class Workers(Protocol):
    capacity: int
    load_seconds: float | None

    async def start(self) -> None: ...

    async def run(self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any: ...

    async def aclose(self, timeout: float) -> None: ...


def refuse_undeclared(signatures: Any, method: str, tag: object, runner: str) -> None:
    """The runner route's check (`POST /_runner/NAME`): a name the model does not declare is
    the client's mistake, `UndeclaredMethod` (404), before anything is looked up on the model."""
    if method not in signatures:
        raise UndeclaredMethod(
            f"model '{tag}' of runner '{runner}' has no signature '{method}'; it declares: "
            f"{', '.join(sorted(signatures)) or '(none)'}"
        )


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


TORCH_SERIALIZERS = frozenset({"torch", "transformers", "sentence-transformers"})
"""Serializers whose models compute with torch: `isolation: auto` gives them worker processes."""


def resolve_isolation(isolation: str, serializer: str | None) -> str:
    """`thread` or `process` for a runner: `auto` means processes for torch-backed models (their
    Python-level work, tokenizers and module dispatch, no longer shares the server's GIL with
    HTTP; docs/batching.md has the measurements) and threads for everything else (cheap models
    gain nothing from a process, and threads take any argument type).

    >>> resolve_isolation("auto", "sentence-transformers"), resolve_isolation("auto", "sklearn")
    ('process', 'thread')
    """
    if isolation != "auto":
        return isolation
    return "process" if serializer in TORCH_SERIALIZERS else "thread"


class ThreadWorkers:
    """The model in this process, called from `workers` dedicated threads."""

    def __init__(
        self, model_ref: Any, *, workers: int = 1, threads: int | None = None, calls: int = 1
    ) -> None:
        self.model_ref = model_ref
        self.capacity = workers
        self.threads = threads
        # Threads in the pool: a worker may run `calls` non-batchable calls at once.
        self._size = workers * calls
        self.load_seconds: float | None = None
        self.obj: Any = None
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None

    async def start(self) -> None:
        began = time.perf_counter()
        self.obj = await asyncio.to_thread(self._load)
        # torch keeps its thread count per OS thread: set it in each compute thread.
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=self._size,
            thread_name_prefix=f"nbento-runner-{self.model_ref.tag}",
            initializer=set_torch_threads,
            initargs=(self.threads,),
        )
        self.load_seconds = time.perf_counter() - began

    def _load(self) -> Any:
        # One load at a time per process: two runners loading at once import torch and
        # scikit-learn/scipy from two threads, and scipy then sees a half-imported torch.
        with _LOAD_LOCK:
            return self.model_ref.load()

    async def run(self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if self._pool is None:
            raise WorkerError(f"runner for {self.model_ref.tag} is not started")
        bound = declared_method(
            self.obj, self.model_ref.info.signatures, method, self.model_ref.tag
        )
        meter = cpu.current_meter()

        def call() -> Any:
            began = time.thread_time()
            try:
                return bound(*args, **kwargs)
            finally:
                if meter is not None:  # the batch's meter, read back once this call is done
                    meter.charge(time.thread_time() - began)

        return await asyncio.get_running_loop().run_in_executor(self._pool, call)

    async def aclose(self, timeout: float) -> None:
        if self._pool is not None:
            await asyncio.to_thread(self._pool.shutdown, wait=True)
            self._pool = None


def _pid_running(pid: int) -> bool:
    """Whether `pid` still runs (a zombie no longer does)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


class _Child:
    """One worker process: its channel, its open calls by id, and a task reading its answers.
    Forked from the runner's template (`fork`) or, without one, started with its own
    interpreter (`spawn`)."""

    def __init__(self, tag: str, threads: int, calls: int) -> None:
        self.tag = tag
        self.threads = threads
        self.calls = calls
        self.pid = -1
        self.forked = False
        self.load_seconds: float | None = None  # ~0 for a forked worker: the template loaded
        self.alive = False
        self.exit_code: int | None = None
        self.open: dict[int, asyncio.Future[Any]] = {}
        self._next_id = READY_ID
        self._stream: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._wait: Callable[[], Awaitable[int | None]] | None = None
        self._kill: Callable[[], None] = lambda: None
        self._reader: asyncio.Task[None] | None = None

    async def spawn(self, on_exit: Any) -> float:
        """Start a process that loads the model itself; its load time in seconds."""
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", WORKER_BOOT, self.tag, str(self.threads), str(self.calls),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            env=worker_env(self.threads),
        )
        self.pid, self._stream, self._writer = proc.pid, proc.stdout, proc.stdin
        self._wait, self._kill = proc.wait, proc.kill
        return await self._ready(on_exit)

    async def fork(self, template: Template, on_exit: Any) -> float:
        """Fork a worker from `template` (the model already loaded there)."""
        pid, sock = await template.fork()
        self.pid, self.forked = pid, True
        self._stream, self._writer = await asyncio.open_unix_connection(sock=sock)

        async def wait() -> int | None:
            code = await template.exit_code(pid, timeout=365 * 86400.0)
            while code is None and _pid_running(pid):  # its template is gone: nobody reports
                await asyncio.sleep(0.05)
            return code

        def kill() -> None:
            if template.knows(pid) or (not template.alive and _pid_running(pid)):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

        self._wait, self._kill = wait, kill
        return await self._ready(on_exit)

    async def _ready(self, on_exit: Any) -> float:
        """Wait for the worker's first frame (its model is loaded), then start reading answers."""
        assert self._wait is not None
        try:
            _, reply = await self._read_frame()
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            code = await self._wait()
            raise WorkerError(
                f"worker process {self.pid} for {self.tag} exited (code {code}) while loading the "
                f"model; its log is above in the server output"
            ) from exc
        except asyncio.CancelledError:
            # the server is stopping while this model still loads: the child ignores SIGTERM
            # (the server drains it by closing its channel, read only once loaded), so end it
            self._kill()
            raise
        if "err" in reply:
            await self._wait()
            raise WorkerError(
                f"worker process for {self.tag} could not load the model: "
                f"{reply['err']['type']}: {reply['err']['message']}"
            )
        self.alive = True
        self._reader = asyncio.create_task(self._read_answers(on_exit))
        self.load_seconds = float(reply["ready"])
        return self.load_seconds

    async def call(self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        assert self._writer is not None
        body = wire.encode({"m": method, "a": list(args), "k": kwargs})  # WireError: the caller's
        self._next_id += 1
        call_id = self._next_id
        answer = asyncio.get_running_loop().create_future()
        self.open[call_id] = answer
        try:
            self._writer.write(HEADER.pack(len(body), call_id) + body)
            await self._writer.drain()
        except (ConnectionError, RuntimeError):
            pass  # the channel is closed: the reader fails this call with the exit code
        try:
            reply = await answer
        finally:
            self.open.pop(call_id, None)
        cpu.charge(reply.get("cpu"))
        if "err" in reply:
            err = reply["err"]
            raise RemoteCallError(f"{err['type']}: {err['message']}", err["type"], err["trace"])
        return reply["ok"]

    async def _read_frame(self) -> tuple[int, Any]:
        assert self._stream is not None
        size, call_id = HEADER.unpack(await self._stream.readexactly(HEADER.size))
        return call_id, wire.decode(await self._stream.readexactly(size))

    async def _read_answers(self, on_exit: Any) -> None:
        assert self._wait is not None
        try:
            while True:
                call_id, reply = await self._read_frame()
                answer = self.open.get(call_id)
                if answer is not None and not answer.done():
                    answer.set_result(reply)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        self.alive = False
        self.exit_code = await self._wait()
        on_exit(self)

    def fail_open_calls(self, error: BaseException) -> None:
        for answer in self.open.values():
            if not answer.done():
                answer.set_exception(error)
        self.open.clear()

    async def stop(self, timeout: float) -> None:
        """Close the channel (the child finishes its calls and exits); kill it past `timeout`."""
        if self._wait is None:
            return
        self.alive = False
        if self._writer is not None:
            self._writer.close()
        try:
            await asyncio.wait_for(self._wait(), timeout)
        except asyncio.TimeoutError:
            self._kill()
            await asyncio.wait_for(self._wait(), 5.0)
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)


class ProcessWorkers:
    """`workers` child processes, each with the model loaded; a call goes to the child with the
    fewest open calls. The children are forked from one template process that loaded the model
    once (`template.py`), so they share its modules and weights and a replacement starts in
    milliseconds; where forking is unavailable or unsafe each child loads the model itself. A
    child that dies fails its open calls at once with `WorkerDied` (503 with `Retry-After`) and a
    fresh one is started in the background; while none is alive, calls get `WorkerDied`
    immediately instead of waiting. A template that dies is restarted; its workers keep serving."""

    def __init__(
        self, tag: str, *, workers: int = 1, threads: int | None = None, calls: int = 1,
        fork: bool = True,
    ) -> None:
        self.tag = tag
        self.capacity = workers
        self.threads = threads or max(1, available_cores() // workers)
        self.calls = calls
        self.load_seconds: float | None = None
        self.replaced = 0
        self.template: Template | None = None
        self.template_restarts = 0
        # Why workers are spawned instead of forked (None while forking works).
        self.spawn_reason: str | None = None if fork and _CAN_FORK else "forking is off"
        self._children: list[_Child] = []
        self._restarts: set[asyncio.Task[None]] = set()
        self._template_task: asyncio.Task[None] | None = None
        self._closing = False

    async def start(self) -> None:
        began = time.perf_counter()
        if self.spawn_reason is None:
            template = Template(self.tag, self.threads, self.calls)
            await template.start(self._template_died)  # a model that cannot load fails here
            self.template = template
        self._children = [_Child(self.tag, self.threads, self.calls) for _ in range(self.capacity)]
        results = await asyncio.gather(
            *(self._start_child(child) for child in self._children), return_exceptions=True
        )
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            await self.aclose(5.0)
            raise failures[0]
        self.load_seconds = time.perf_counter() - began

    async def _start_child(self, child: _Child) -> float:
        """Fork `child` from the template, or spawn it when there is none to fork from."""
        if self._template_task is not None and not self._template_task.done():
            await asyncio.shield(self._template_task)  # a new template is loading: fork from it
        template = self.template
        if template is not None and template.alive:
            try:
                return await child.fork(template, self._exited)
            except NotForkable as exc:
                if self.spawn_reason is None:
                    self.spawn_reason = str(exc)
                    log.warning("spawning worker processes of %s instead of forking: %s",
                                self.tag, exc)
                if self.template is template:
                    self.template = None
                    await template.aclose(5.0)
            except WorkerError as exc:  # the template went away meanwhile: no fork this time
                log.warning("spawning a worker process of %s: %s", self.tag, exc)
        return await child.spawn(self._exited)

    async def run(self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        alive = [child for child in self._children if child.alive]
        if not alive:
            raise WorkerDied(
                f"no worker process of {self.tag} is running: the last one died and a "
                f"replacement is starting; retry after {self._retry_after():.0f} s",
                self._retry_after(),
            )
        child = min(alive, key=lambda c: len(c.open))
        return await child.call(method, args, kwargs)

    def _retry_after(self) -> float:
        if self.template is not None and self.template.alive:
            return 1.0  # a fork takes milliseconds
        return max(1.0, self.load_seconds or 1.0)

    def _exited(self, child: _Child) -> None:
        """A child's answer stream ended: fail its open calls now, replace it unless closing."""
        if self._closing:
            child.fail_open_calls(WorkerDied(f"runner for {self.tag} is shutting down", 1.0))
            return
        message = (
            f"worker process {child.pid} for {self.tag} exited (code {child.exit_code}) while "
            f"computing this call; a replacement is starting, retry after "
            f"{self._retry_after():.0f} s (the worker's log is in the server output)"
        )
        log.warning("%s", message)
        child.fail_open_calls(WorkerDied(message, self._retry_after()))
        self._background(self._replace(child))

    def _background(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(work)
        self._restarts.add(task)
        task.add_done_callback(self._restarts.discard)
        return task

    async def _replace(self, dead: _Child) -> None:
        async def start() -> _Child:
            fresh = _Child(self.tag, self.threads, self.calls)
            await self._start_child(fresh)
            return fresh

        fresh = await self._until_started("replace a worker process", start,
                                          lambda child: child.stop(5.0))
        if fresh is not None:
            self._children = [fresh if c is dead else c for c in self._children]
            self.replaced += 1
            log.info("worker process %d replaces %d for %s", fresh.pid, dead.pid, self.tag)

    def _template_died(self, template: Template) -> None:
        """The template is gone (its workers are not): start a new one in the background."""
        if self._closing or template is not self.template:
            return
        self._template_task = self._background(self._restart_template())

    async def _restart_template(self) -> None:
        async def start() -> Template:
            fresh = Template(self.tag, self.threads, self.calls)
            await fresh.start(self._template_died)
            return fresh

        fresh = await self._until_started("restart the template process", start,
                                          lambda template: template.aclose(5.0))
        if fresh is not None:
            self.template = fresh
            self.template_restarts += 1
            log.info("template process %d of %s restarted", fresh.pid, self.tag)

    async def _until_started(
        self, what: str, start: Callable[[], Awaitable[_T]],
        stop: Callable[[_T], Awaitable[None]],
    ) -> _T | None:
        """`start()` until it succeeds, backing off from 0.5 s to 30 s between attempts, or
        until the runner closes (None; a process that started meanwhile is stopped)."""
        delay = 0.5
        while not self._closing:
            try:
                started = await start()
            except (WorkerError, OSError) as exc:
                log.error("could not %s of %s: %s", what, self.tag, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
                continue
            if self._closing:
                await stop(started)
                return None
            return started
        return None

    async def aclose(self, timeout: float) -> None:
        self._closing = True
        for task in list(self._restarts):
            task.cancel()
        await asyncio.gather(*self._restarts, return_exceptions=True)
        await asyncio.gather(*(child.stop(timeout) for child in self._children))
        if self.template is not None:
            await self.template.aclose(timeout)

    @property
    def pids(self) -> list[int]:
        return [child.pid for child in self._children if child.alive]

    def status(self) -> dict[str, Any]:
        """What `/_nbento/status` shows of these processes (pids only under `processes`, which
        a server without --dev leaves out)."""
        template = self.template if self.template is not None and self.template.alive else None
        return {
            "replaced": self.replaced,
            "template": None if template is None else {
                "load_seconds": template.load_seconds, "forks": template.forks,
                "restarts": self.template_restarts,
            },
            "spawn_reason": self.spawn_reason,
            "processes": {
                "template": None if template is None else template.pid,
                "workers": [
                    {"pid": c.pid, "forked": c.forked, "load_seconds": c.load_seconds}
                    for c in self._children if c.alive
                ],
            },
        }
