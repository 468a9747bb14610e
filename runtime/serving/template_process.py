"""The template process of a process-isolated runner: it imports what the model needs, loads the
model once (torch at the workers' thread count before anything runs), never computes, and forks
one worker per request from the server. A forked worker shares the template's imported modules
and weights copy-on-write and starts in milliseconds; it answers calls on the socket the server
sent along with the request (`worker_process.serve_calls`).

Control channel (a unix socket inherited as CONTROL_FD): frames `>II` (body length, id) like the
workers'. Server -> template: a fork request is a header with length 0 and the worker's socket
attached (SCM_RIGHTS). Template -> server: `{"ready": load_seconds}` (or `{"err": ...}`) first,
then `{"forked": pid}` or `{"err": ...}` under each request's id, and `{"exited": pid, "code":
exit code}` under id 0 whenever a worker ends (the template reaps them). The template ends when
the control channel closes; its workers end when their own channels close.
"""

from __future__ import annotations

import gc
import os
import select
import signal
import socket
import sys
import threading
import time
from typing import Any

from runtime.serving.worker_process import (
    HEADER,
    READY_ID,
    _Answers,
    error_body,
    exit_after,
    frame,
    ignore_stop_signals,
    load_model,
    serve_calls,
)

BOOT = (
    "import sys; sys.path[0] == '' and sys.path.pop(0); "
    "from runtime.serving.template_process import main; main(sys.argv[1:])"
)
"""`python -c BOOT ...`: the working directory is taken off `sys.path` before `runtime` is
imported, so a user's `runtime.py` or `runtime/` next to the notebook cannot shadow nbento's
package (`python -m` would put it first), while PYTHONPATH and installed packages still count."""


FORK_SAFE_THREADS = frozenset({"jemalloc_bg_thd"})
"""Native threads (by their /proc comm name) that survive a fork by design: jemalloc (loaded by
pyarrow, which scikit-learn's and transformers' imports pull in) takes its own locks in a
pthread_atfork handler and restarts its background thread in the child when needed."""


def thread_count_reason() -> str | None:
    """Why forking here is unsafe (another thread could hold a lock the child inherits), or
    None when this process runs one thread (besides `FORK_SAFE_THREADS`)."""
    python_threads = threading.active_count()
    others: list[str] = []
    try:
        for task in os.listdir("/proc/self/task"):
            if int(task) == threading.get_native_id():
                continue
            with open(f"/proc/self/task/{task}/comm", encoding="utf-8") as comm:
                name = comm.read().strip()
            if name not in FORK_SAFE_THREADS:
                others.append(name)
    except (OSError, ValueError):
        pass
    if python_threads > 1 or others:
        names = ", ".join(t.name for t in threading.enumerate() if t is not threading.main_thread())
        return (
            f"the template process runs {len(others)} other OS threads ({', '.join(others)}) "
            f"and {python_threads - 1} other Python threads ({names}); forking a worker from "
            f"it is unsafe"
        )
    return None


def stop_helper_threads() -> None:
    """End the helper threads a model load leaves behind that are known to be idle: tqdm's
    monitor (progress bars while the weights load) wakes every 10 s for bars nobody draws."""
    monitor_class = getattr(sys.modules.get("tqdm._monitor"), "TMonitor", None)
    if monitor_class is None:
        return
    for thread in threading.enumerate():
        if isinstance(thread, monitor_class):
            thread.exit()


def _receive(control: socket.socket) -> tuple[int, int | None] | None:
    """The next fork request: (id, the worker's socket fd), or None once the server is gone."""
    data, fds = b"", []
    while len(data) < HEADER.size:
        try:
            chunk, got, _, _ = socket.recv_fds(control, HEADER.size - len(data), 4)
        except ConnectionError:
            return None
        if not chunk:
            return None
        data += chunk
        fds += got
    for extra in fds[1:]:
        os.close(extra)
    return HEADER.unpack(data)[1], (fds[0] if fds else None)


def _become_worker(fd: int, model: Any, obj: Any, threads: int, calls: int) -> int:
    """In the forked child: answer calls on `fd` until the server closes it."""
    began = time.perf_counter()
    # Objects the template made stay out of this process's collections, so a collection does
    # not write to (and un-share) their pages.
    gc.freeze()
    reseed_random_generators()
    answers = _Answers(os.fdopen(os.dup(fd), "wb"))
    answers.send(READY_ID, {"ready": time.perf_counter() - began, "forked": True})
    return serve_calls(model, obj, threads, calls, os.fdopen(fd, "rb"), answers)


def reseed_random_generators() -> None:
    """Fresh seeds from the OS for the global generators a model may draw from (sampling,
    dropout left on, random augmentation). A forked worker otherwise starts from the template's
    state, and every worker would draw the same numbers. Python's `random` reseeds itself after
    a fork; NumPy's and torch's global generators do not. Only libraries already imported."""
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        numpy.random.seed()  # no argument: from the OS's entropy
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.seed()  # a non-deterministic seed for every device's default generator


def _fork(control: socket.socket, fd: int, model: Any, obj: Any, threads: int, calls: int,
          wakeup: tuple[int, int]) -> int:
    pid = os.fork()
    if pid != 0:
        os.close(fd)
        return pid
    code = 1
    try:
        # Nothing of the template's own plumbing stays open here: a worker holding the control
        # channel would hide the template's death from the server.
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        control.close()
        for end in wakeup:
            os.close(end)
        code = _become_worker(fd, model, obj, threads, calls)
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        sys.stderr.flush()
        os._exit(code)


def _reap(control: socket.socket) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        control.sendall(frame(0, {"exited": pid, "code": os.waitstatus_to_exitcode(status)}))


def template_main(argv: list[str]) -> int:
    tag, threads, calls, control_fd = argv[0], int(argv[1]), int(argv[2]), int(argv[3])
    ignore_stop_signals()
    os.dup2(2, 1)  # the model's prints go to the server's stderr; the protocol has its socket
    control = socket.socket(fileno=control_fd)
    control.setblocking(True)
    began = time.perf_counter()
    try:
        model, obj = load_model(tag, threads)
    except Exception as exc:
        control.sendall(frame(READY_ID, {"err": error_body(exc)}))
        return 1
    stop_helper_threads()
    # Everything loaded so far is for keeps: freeze it so no collection here or in a worker
    # touches those objects' pages.
    gc.collect()
    gc.freeze()
    control.sendall(frame(READY_ID, {"ready": time.perf_counter() - began}))
    wakeup = os.pipe()
    for end in wakeup:
        os.set_blocking(end, False)
    signal.set_wakeup_fd(wakeup[1])
    signal.signal(signal.SIGCHLD, lambda *_: None)
    while True:
        readable, _, _ = select.select([control.fileno(), wakeup[0]], [], [])
        if wakeup[0] in readable:
            while True:
                try:
                    if not os.read(wakeup[0], 512):
                        break
                except BlockingIOError:
                    break
            _reap(control)
        if control.fileno() not in readable:
            continue
        request = _receive(control)
        if request is None:
            return 0  # the server closed the channel (stopping or gone); workers end on their own
        call_id, fd = request
        if fd is None:
            control.sendall(frame(call_id, {"err": error_body(ValueError("no socket attached"))}))
            continue
        reason = thread_count_reason()
        if reason is not None:
            os.close(fd)
            control.sendall(frame(call_id, {"err": error_body(RuntimeError(reason))}))
            continue
        pid = _fork(control, fd, model, obj, threads, calls, wakeup)
        control.sendall(frame(call_id, {"forked": pid}))


def main(argv: list[str]) -> None:
    exit_after(template_main, argv)
