"""The CPU figures the batcher decides with (runtime/serving/cpu.py): what worker threads and
worker processes report per call, and how busy the machine (or the container's quota) is."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from runtime import store
from runtime.serving import cpu
from runtime.serving.workers import ProcessWorkers, ThreadWorkers

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _matrix() -> np.ndarray:
    return np.random.default_rng(0).random((300, 300))


@pytest.mark.parametrize("kind", ["thread", "process"])
async def test_workers_report_the_cpu_seconds_of_each_call(kind: str) -> None:
    model = store.save_model("square", _matrix(), signatures=["dot"])
    workers = (ThreadWorkers(model) if kind == "thread"
               else ProcessWorkers(str(model.tag), workers=1, threads=1))
    await workers.start()
    try:
        with cpu.metering() as meter:
            began = time.monotonic()
            for _ in range(5):
                out = await workers.run("dot", (_matrix(),), {})
            wall = time.monotonic() - began
        assert np.allclose(out, _matrix() @ _matrix())
        assert meter.reported
        assert 0 < meter.seconds <= wall * 1.5 + 0.05, (meter.seconds, wall)
        await workers.run("dot", (_matrix(),), {})  # outside a batch: nothing to charge, no error
    finally:
        await workers.aclose(5)


def test_charges_outside_a_batch_or_of_junk_are_ignored() -> None:
    cpu.charge(0.5)  # no meter: nothing happens
    with cpu.metering() as meter:
        for junk in (None, "0.1", -1.0, float("nan"), float("inf"), 3):
            cpu.charge(junk)
        assert not meter.reported and meter.seconds == 0.0
        cpu.charge(0.25)
        cpu.charge(0.5)
    assert meter.reported and meter.seconds == 0.75
    assert cpu.current_meter() is None


def test_a_cgroup_quota_gives_the_cores_and_its_usage_the_busy_cores(tmp_path: Path) -> None:
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    stat = tmp_path / "cpu.stat"
    stat.write_text("usage_usec 1000000\nuser_usec 800000\nsystem_usec 200000\n")
    machine = cpu.MachineCpu(every=0.0, tau=1e-9, cgroup=tmp_path)
    assert machine.cores == 1.5
    assert machine.busy(100.0) is None  # one reading is no rate yet
    stat.write_text("usage_usec 1750000\n")
    assert machine.busy(101.0) == pytest.approx(0.75)
    stat.write_text("usage_usec 1750000\n")
    assert machine.busy(101.1) == pytest.approx(0.0)  # idle since


def test_without_a_quota_the_whole_machine_is_read(tmp_path: Path) -> None:
    (tmp_path / "cpu.max").write_text("max 100000\n")
    machine = cpu.MachineCpu(every=0.0, cgroup=tmp_path)
    assert machine.cores == float(os.cpu_count() or 1)
    if not sys.platform.startswith("linux"):
        pytest.skip("/proc/stat is Linux's")  # elsewhere the batcher decides on wall time
    now = time.monotonic()
    machine.busy(now)
    spin = time.process_time() + 0.3
    while time.process_time() < spin:  # keep one core busy
        pass
    busy = machine.busy(time.monotonic())
    assert busy is not None and 0.3 <= busy <= machine.cores + 0.1, busy
    cached = cpu.MachineCpu(every=60.0, cgroup=tmp_path)
    cached.busy(now)
    assert cached.busy(now + 1.0) is None  # read at most every `every` seconds
