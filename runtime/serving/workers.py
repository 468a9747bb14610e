"""Where a runner's model computes, off the event loop. Two strategies behind one small interface:

- `ThreadWorkers`: the model lives in the server process; `workers` threads call it. Cheap
  (no copies), fine for GIL-releasing compute (torch, BLAS) and for any argument type.
- `ProcessWorkers`: `workers` child processes (`python -m runtime.serving.workers TAG`) each load the
  model and serve calls over their stdin/stdout pipes in the `runtime.serving.wire` format (msgpack,
  no pickle; arrays, frames, tensors, sparse matrices and model outputs keep their types, so a
  model answers as it does in a thread). Model compute then never competes with HTTP parsing for the GIL, and each child
  gets its own torch threads (`threads`, default: the cores divided by the workers).

docs/batching.md records which one serves faster here and why the default is what it is.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import os
import signal
import struct
import subprocess
import sys
import threading
import time
import traceback
from typing import IO, Any, Protocol

from runtime.errors import RemoteCallError, SignatureError, UndeclaredMethod, WorkerError
from runtime.serving import wire

_LOAD_LOCK = threading.Lock()


class Workers(Protocol):
    capacity: int
    load_seconds: float | None

    async def start(self) -> None: ...

    async def run(self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any: ...

    async def aclose(self, timeout: float) -> None: ...


def declared_method(obj: Any, signatures: Any, method: str, tag: object) -> Any:
    """`obj`'s bound method `method`, only if the model declares it as a signature: a runner
    never calls a name from a request or a pipe that the model did not declare."""
    if method not in signatures:
        known = ", ".join(sorted(signatures)) or "(none)"
        raise SignatureError(f"model '{tag}' has no signature {method!r}; declared: {known}")
    return getattr(obj, method)


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


def set_torch_threads(threads: int | None) -> None:
    """Match torch's intra-op threads to the cores this worker owns (only if torch is in use:
    importing it just to set threads would cost a second of start-up)."""
    if threads and "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)


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
        call = functools.partial(bound, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(self._pool, call)

    async def aclose(self, timeout: float) -> None:
        if self._pool is not None:
            await asyncio.to_thread(self._pool.shutdown, wait=True)
            self._pool = None


class _Child:
    """One worker process and its pipes. `call` blocks (run it in a thread)."""

    def __init__(self, tag: str, threads: int) -> None:
        env = dict(os.environ)
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            env[var] = str(threads)
        env.setdefault("TOKENIZERS_PARALLELISM", "false")
        self.tag = tag
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "runtime.serving.workers", tag, str(threads)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self._out: IO[bytes] = self.proc.stdin
        self._in: IO[bytes] = self.proc.stdout

    def wait_ready(self) -> float:
        reply = self._read()
        if "err" in reply:
            self.proc.wait(timeout=10)
            raise WorkerError(
                f"worker process for {self.tag} could not load the model: "
                f"{reply['err']['type']}: {reply['err']['message']}"
            )
        return float(reply["ready"])

    def call(self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        payload = wire.encode({"m": method, "a": list(args), "k": kwargs})
        try:
            self._out.write(struct.pack(">I", len(payload)) + payload)
            self._out.flush()
        except (BrokenPipeError, OSError) as exc:
            raise self._died() from exc
        reply = self._read()
        if "err" in reply:
            err = reply["err"]
            raise RemoteCallError(f"{err['type']}: {err['message']}", err["type"], err["trace"])
        return reply["ok"]

    def _read(self) -> Any:
        header = _read_exact(self._in, 4)
        if header is None:
            raise self._died()
        body = _read_exact(self._in, struct.unpack(">I", header)[0])
        if body is None:
            raise self._died()
        return wire.decode(body)

    def _died(self) -> WorkerError:
        try:  # its pipe closed, so it is exiting; give it a moment to report its exit code
            code: int | None = self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            code = None
        return WorkerError(
            f"worker process {self.proc.pid} for {self.tag} exited (code {code}); its log is "
            f"above in the server output"
        )

    def stop(self, timeout: float) -> None:
        try:
            self._out.close()  # EOF: the child finishes its call and exits
        except OSError:
            pass
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)


class ProcessWorkers:
    """`workers` child processes, each with the model loaded; a batch goes to an idle one."""

    def __init__(self, tag: str, *, workers: int = 1, threads: int | None = None) -> None:
        self.tag = tag
        self.capacity = workers
        self.threads = threads or max(1, available_cores() // workers)
        self.load_seconds: float | None = None
        self._children: list[_Child] = []
        self._idle: asyncio.Queue[_Child] = asyncio.Queue()
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix=f"nbento-pipe-{tag}"
        )

    async def start(self) -> None:
        began = time.perf_counter()
        children = [_Child(self.tag, self.threads) for _ in range(self.capacity)]
        self._children = children
        results = await asyncio.gather(
            *(asyncio.to_thread(child.wait_ready) for child in children), return_exceptions=True
        )
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            await asyncio.to_thread(self._stop_all, 5.0)
            raise failures[0]
        for child in children:
            self._idle.put_nowait(child)
        self.load_seconds = time.perf_counter() - began

    async def run(self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        child = await self._idle.get()
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._pool, child.call, method, args, kwargs)
        except WorkerError:
            child = await self._replace(child)
            raise
        finally:
            self._idle.put_nowait(child)

    async def _replace(self, dead: _Child) -> _Child:
        """Start a fresh child for a dead one, so one crash does not shrink the runner."""
        fresh = _Child(self.tag, self.threads)
        try:
            await asyncio.to_thread(fresh.wait_ready)
        except WorkerError:
            return dead  # the next call reports the failure again
        self._children = [fresh if c is dead else c for c in self._children]
        return fresh

    async def aclose(self, timeout: float) -> None:
        await asyncio.to_thread(self._stop_all, timeout)
        self._pool.shutdown(wait=False)

    def _stop_all(self, timeout: float) -> None:
        for child in self._children:
            child.stop(timeout)

    @property
    def pids(self) -> list[int]:
        return [child.proc.pid for child in self._children]


def _read_exact(stream: IO[bytes], size: int) -> bytes | None:
    chunks: list[bytes] = []
    while size:
        chunk = stream.read(size)
        if not chunk:
            return None
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _write_frame(stream: IO[bytes], value: Any) -> None:
    try:
        payload = wire.encode(value)
    except wire.WireError as exc:
        payload = wire.encode({"err": _error_body(exc)})
    stream.write(struct.pack(">I", len(payload)) + payload)
    stream.flush()


def _error_body(exc: BaseException) -> dict[str, str]:
    return {
        "type": type(exc).__name__,
        "message": str(exc),
        "trace": "".join(traceback.format_exception(exc)),
    }


def worker_main(argv: list[str]) -> int:
    """Child side: load the model, then answer framed calls until stdin closes."""
    tag, threads = argv[0], int(argv[1])
    # Ctrl-C in a terminal signals the whole process group; the server then drains and closes
    # our stdin, so a worker must not die of the SIGINT meant for the server.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # The protocol owns the real stdout; anything the model prints goes to stderr instead.
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    inp = os.fdopen(os.dup(0), "rb")
    began = time.perf_counter()
    try:
        from runtime.store.model_store import get

        model = get(tag)
        obj = model.load()
        set_torch_threads(threads)
    except Exception as exc:
        _write_frame(out, {"err": _error_body(exc)})
        return 1
    _write_frame(out, {"ready": time.perf_counter() - began})
    while True:
        header = _read_exact(inp, 4)
        if header is None:
            return 0
        body = _read_exact(inp, struct.unpack(">I", header)[0])
        if body is None:
            return 0
        try:
            request = wire.decode(body)
            bound = declared_method(obj, model.info.signatures, request["m"], model.tag)
            result = bound(*request["a"], **request["k"])
            reply: dict[str, Any] = {"ok": result}
        except Exception as exc:
            reply = {"err": _error_body(exc)}
        _write_frame(out, reply)


if __name__ == "__main__":
    sys.exit(worker_main(sys.argv[1:]))
