"""Long actions (Bento builds, Kubernetes exports) run as background jobs that report
progress, so the JupyterLab panel can poll a job id and the ipywidgets panel can move a
progress bar without blocking the Jupyter server's event loop or the kernel."""

from __future__ import annotations

import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from runtime.errors import NbentoError

# A job body gets `report(fraction, message)` and returns a JSON-able result.
Report = Callable[[float, str], None]
JobBody = Callable[[Report], Any]

_KEEP_FINISHED = 50  # finished jobs kept for polling; older ones are forgotten


@dataclass
class Job:
    """One background action. `state` is running, done or failed; `progress` is 0..1."""

    id: str
    kind: str
    state: str = "running"
    progress: float = 0.0
    message: str = "starting"
    log: list[str] = field(default_factory=list)
    result: Any = None
    error: str | None = None
    started_at: float = field(default_factory=time.time)
    finished_at: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "state": self.state,
            "progress": round(self.progress, 3),
            "message": self.message,
            "log": list(self.log[-200:]),
            "result": self.result,
            "error": self.error,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
        }


class JobRegistry:
    """Thread-backed jobs, looked up by id. One registry per process (see `default_jobs`)."""

    def __init__(self) -> None:
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()

    def start(self, kind: str, body: JobBody) -> Job:
        job = Job(id=uuid.uuid4().hex[:12], kind=kind)
        with self._lock:
            self._jobs[job.id] = job
            self._forget_old()
        thread = threading.Thread(
            target=self._run, args=(job, body), name=f"nbento-{kind}-{job.id}", daemon=True
        )
        thread.start()
        return job

    def get(self, job_id: str) -> Job:
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            raise NbentoError(f"no job {job_id!r}; jobs are kept until the Jupyter server restarts")
        return job

    def wait(self, job_id: str, timeout: float) -> Job:
        """Block until the job finishes or `timeout` seconds pass (used by tests and the
        ipywidgets panel's worker thread)."""
        deadline = time.monotonic() + timeout
        job = self.get(job_id)
        while job.state == "running" and time.monotonic() < deadline:
            time.sleep(0.05)
        return job

    def _run(self, job: Job, body: JobBody) -> None:
        def report(fraction: float, message: str) -> None:
            job.progress = max(job.progress, min(1.0, max(0.0, fraction)))
            job.message = message
            job.log.append(message)

        try:
            job.result = body(report)
        except NbentoError as exc:
            job.error = str(exc)
        except Exception as exc:  # a job must never die silently; keep the trace in its log
            job.error = f"{type(exc).__name__}: {exc}"
            job.log.extend(traceback.format_exc().splitlines())
        job.finished_at = time.time()
        if job.error is None:
            job.progress = 1.0
            job.message = "done"
            job.state = "done"
        else:
            job.message = job.error
            job.state = "failed"

    def _forget_old(self) -> None:
        finished = [j for j in self._jobs.values() if j.state != "running"]
        finished.sort(key=lambda j: j.finished_at or 0)
        for job in finished[: max(0, len(finished) - _KEEP_FINISHED)]:
            del self._jobs[job.id]


default_jobs = JobRegistry()
