"""The worker side of `isolation: process`: answer framed calls on one channel until it closes.
A worker is normally forked from its runner's template process (`template_process.py`, the
model already loaded) and talks over a socket; without a template it is started as `python -P -m
runtime.serving.worker_process TAG THREADS CALLS`, loads the model itself and uses stdin/stdout.

A frame is a header `>II` (body length, call id) and a body in the `runtime.serving.wire` format
(msgpack, never pickle). Calls carry ids so that a worker may run `CALLS` of them at once (a model
that allows it) and answer out of order; the parent (`workers.ProcessWorkers`) matches answers
to callers by id and fails every call still open when the process dies.
"""

from __future__ import annotations

import concurrent.futures
import os
import signal
import struct
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import IO, Any

from runtime.errors import SignatureError
from runtime.serving import wire

HEADER = struct.Struct(">II")
"""(body length, call id) before every frame body, in both directions."""

READY_ID = 0
"""The id of the worker's first frame: `{"ready": load_seconds, "forked": bool}` or
`{"err": ...}`."""


def declared_method(obj: Any, signatures: Any, method: str, tag: object) -> Any:
    """`obj`'s bound method `method`, only if the model declares it as a signature: a runner
    never calls a name from a request or a pipe that the model did not declare."""
    if method not in signatures:
        known = ", ".join(sorted(signatures)) or "(none)"
        raise SignatureError(f"model '{tag}' has no signature {method!r}; declared: {known}")
    return getattr(obj, method)


def set_torch_threads(threads: int | None) -> None:
    """Match torch's intra-op threads to the cores this worker owns (only if torch is in use:
    importing it just to set threads would cost a second of start-up)."""
    if threads and "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)


def frame(call_id: int, value: Any) -> bytes:
    """One frame: header and wire body. A value that cannot cross the wire becomes an error
    answer for that call instead of breaking the stream."""
    try:
        body = wire.encode(value)
    except wire.WireError as exc:
        body = wire.encode({"err": error_body(exc)})
    return HEADER.pack(len(body), call_id) + body


def error_body(exc: BaseException) -> dict[str, str]:
    return {
        "type": type(exc).__name__,
        "message": str(exc),
        "trace": "".join(traceback.format_exception(exc)),
    }


def _read_exact(stream: IO[bytes], size: int) -> bytes | None:
    chunks: list[bytes] = []
    while size:
        chunk = stream.read(size)
        if not chunk:
            return None
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


class _Answers:
    """The worker's stdout: whole frames only, from any compute thread."""

    def __init__(self, out: IO[bytes]) -> None:
        self._out = out
        self._lock = threading.Lock()

    def send(self, call_id: int, value: Any) -> None:
        data = frame(call_id, value)
        with self._lock:
            self._out.write(data)
            self._out.flush()


def ignore_stop_signals() -> None:
    """The server decides when a worker stops (it closes the channel after draining its calls):
    a Ctrl-C or a SIGTERM sent to the whole process group must not kill the worker under the
    calls the server is still finishing. A dead server closes the channel, which ends the loop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def load_model(tag: str, threads: int) -> tuple[Any, Any]:
    """(model ref, loaded object) for `tag`, with torch set to `threads` intra-op threads
    before the model loads (a torch-backed serializer imports torch anyway)."""
    from runtime.store.model_store import get

    model = get(tag)
    if model.info.serializer in {"torch", "transformers", "sentence-transformers"}:
        import torch

        torch.set_num_threads(threads)
    obj = model.load()
    set_torch_threads(threads)
    return model, obj


def serve_calls(
    model: Any, obj: Any, threads: int, calls: int, inp: IO[bytes], answers: _Answers
) -> int:
    """Answer framed calls from `inp` until it closes (0), `calls` of them at once at most."""

    # The CPU-seconds of each call go back with its answer (the batcher weighs batch sizes
    # with them, see runtime.serving.cpu): the whole process's while calls run one at a time
    # (torch's intra-op threads included), else the answering thread's own.
    clock = time.process_time if calls == 1 else time.thread_time

    def answer(call_id: int, body: bytes) -> None:
        began = clock()
        try:
            request = wire.decode(body)
            bound = declared_method(obj, model.info.signatures, request["m"], model.tag)
            reply: dict[str, Any] = {"ok": bound(*request["a"], **request["k"])}
        except Exception as exc:
            reply = {"err": error_body(exc)}
        reply["cpu"] = clock() - began
        answers.send(call_id, reply)

    # More than one call at once only when the runner allows it (`max_concurrency`); torch
    # keeps its thread count per OS thread, so each compute thread sets it.
    pool = (
        concurrent.futures.ThreadPoolExecutor(
            calls, initializer=set_torch_threads, initargs=(threads,)
        )
        if calls > 1
        else None
    )
    try:
        while True:
            header = _read_exact(inp, HEADER.size)
            if header is None:
                return 0
            size, call_id = HEADER.unpack(header)
            body = _read_exact(inp, size)
            if body is None:
                return 0
            if pool is None:
                answer(call_id, body)
            else:
                pool.submit(answer, call_id, body)
    finally:
        if pool is not None:
            pool.shutdown(wait=True)


def worker_main(argv: list[str]) -> int:
    """A spawned worker (no template): load the model, then answer framed calls on
    stdin/stdout until stdin closes."""
    tag, threads = argv[0], int(argv[1])
    calls = int(argv[2]) if len(argv) > 2 else 1
    ignore_stop_signals()
    # The protocol owns the real stdout; anything the model prints goes to stderr instead.
    answers = _Answers(os.fdopen(os.dup(1), "wb"))
    os.dup2(2, 1)
    inp = os.fdopen(os.dup(0), "rb")
    began = time.perf_counter()
    try:
        model, obj = load_model(tag, threads)
    except Exception as exc:
        answers.send(READY_ID, {"err": error_body(exc)})
        return 1
    answers.send(READY_ID, {"ready": time.perf_counter() - began, "forked": False})
    return serve_calls(model, obj, threads, calls, inp, answers)


BOOT = (
    "import sys; sys.path[0] == '' and sys.path.pop(0); "
    "from runtime.serving.worker_process import main; main(sys.argv[1:])"
)
"""`python -c BOOT TAG THREADS CALLS`: the working directory is taken off `sys.path` before
`runtime` is imported, so a user's `runtime.py` or `runtime/` in the server's working directory
cannot shadow nbento's package (`python -m` would put it first)."""


def exit_after(body: Callable[[list[str]], int], argv: list[str]) -> None:
    """Run a process's `body`, then exit with its status without the interpreter's teardown:
    every answer is written and flushed, and torch's and the tokenizers' teardown takes a second
    or more, which a server stopping within its grace period cannot spare."""
    status = 1
    try:
        status = body(argv)
    finally:
        sys.stderr.flush()
        os._exit(status)


def main(argv: list[str]) -> None:
    exit_after(worker_main, argv)


if __name__ == "__main__":
    main(sys.argv[1:])
