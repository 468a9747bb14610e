"""Background jobs: progress only moves forward, user errors end as 'failed' with their
message, unexpected ones keep their traceback in the log."""

from __future__ import annotations

import pytest

from jupyter_ext.actions.jobs import JobRegistry
from runtime.errors import BuildError, NbentoError


def test_a_job_reports_progress_and_its_result() -> None:
    jobs = JobRegistry()

    def body(report):  # type: ignore[no-untyped-def]
        report(0.5, "half way")
        report(0.2, "late message")  # progress never goes back
        return {"paths": ["a.yaml"]}

    job = jobs.wait(jobs.start("export", body).id, timeout=10)
    assert job.state == "done" and job.progress == 1.0 and job.result == {"paths": ["a.yaml"]}
    assert job.log == ["half way", "late message"]
    assert job.to_json()["message"] == "done"


def test_user_errors_and_crashes_end_as_failed_jobs() -> None:
    jobs = JobRegistry()

    def refused(report):  # type: ignore[no-untyped-def]
        raise BuildError("secret found in cell 3")

    def crashed(report):  # type: ignore[no-untyped-def]
        return 1 / 0

    failed = jobs.wait(jobs.start("export", refused).id, timeout=10)
    assert failed.state == "failed" and failed.error == "secret found in cell 3"
    crash = jobs.wait(jobs.start("export", crashed).id, timeout=10)
    assert crash.state == "failed" and crash.error == "ZeroDivisionError: division by zero"
    assert any("Traceback" in line for line in crash.log)


def test_unknown_job_ids_are_reported() -> None:
    with pytest.raises(NbentoError, match="no job 'nope'"):
        JobRegistry().get("nope")
