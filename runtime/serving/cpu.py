"""What a batch costs in CPU, and how much of the machine's CPU is left for a runner's workers.

Wall time alone misleads the batcher when the cores, not the workers, are the bottleneck: two
worker processes on two cores look like two free servers, yet the server's own event loop, other
runners and other processes take part of those cores, and every small batch pays the model's
fixed cost again (see docs/batching.md, "CPU-aware dispatch"). So workers report the CPU-seconds
of each call (`charge`, collected per batch by `metering`), and `MachineCpu` says how many cores
are busy, from the container's cgroup when it has a CPU quota, else from `/proc/stat`.
Elsewhere than Linux the machine's load is unknown and the batcher decides on wall time alone.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator
from contextvars import ContextVar
from pathlib import Path


class CpuMeter:
    """The CPU-seconds workers reported for one batch."""

    __slots__ = ("reported", "seconds")

    def __init__(self) -> None:
        self.seconds = 0.0
        self.reported = False

    def charge(self, seconds: float) -> None:
        self.seconds += seconds
        self.reported = True


_METER: ContextVar[CpuMeter | None] = ContextVar("nbento_batch_cpu", default=None)


@contextlib.contextmanager
def metering() -> Iterator[CpuMeter]:
    """Collect what the calls made inside this block (in this task) report with `charge`."""
    meter = CpuMeter()
    token = _METER.set(meter)
    try:
        yield meter
    finally:
        _METER.reset(token)


def current_meter() -> CpuMeter | None:
    """The meter of the batch being run in this task (None outside `metering`); a thread
    worker takes it before handing the call to its pool thread."""
    return _METER.get()


def charge(seconds: object) -> None:
    """Add a worker's reported CPU-seconds to the current batch's meter (if any)."""
    meter = _METER.get()
    if meter is not None and isinstance(seconds, float) and math.isfinite(seconds) and seconds >= 0:
        meter.charge(seconds)


def _read_proc_stat() -> float | None:
    """Busy CPU-seconds of the whole machine since boot (user, nice, system, irq, softirq and
    steal: time a vCPU could not give to an idle task)."""
    try:
        with open("/proc/stat", "rb") as stat:
            fields = stat.readline().split()
    except OSError:
        return None
    if len(fields) < 9 or fields[0] != b"cpu":
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[1:9])
    return (user + nice + system + irq + softirq + steal) / _TICKS


_TICKS = float(os.sysconf("SC_CLK_TCK")) if hasattr(os, "sysconf") else 100.0
CGROUP = Path("/sys/fs/cgroup")


def _cgroup_quota(root: Path) -> float | None:
    """The cgroup v2 CPU quota in cores (`cpu.max`), None without one."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    return int(quota) / int(period)


def _cgroup_usage(root: Path) -> float | None:
    try:
        for line in (root / "cpu.stat").read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == "usage_usec":
                return int(value) / 1e6
    except (OSError, ValueError):
        return None
    return None


class MachineCpu:
    """Cores busy on this machine (or in this container's CPU quota), smoothed over about
    `tau` seconds. Read at most every `every` seconds, so asking on every dispatch decision
    costs a clock read."""

    def __init__(self, every: float = 0.2, tau: float = 1.0, cgroup: Path = CGROUP) -> None:
        self.every = every
        self.tau = tau
        quota = _cgroup_quota(cgroup)
        if quota is not None:
            self.cores = quota
            self._read = lambda: _cgroup_usage(cgroup)
        else:
            self.cores = float(os.cpu_count() or 1)
            self._read = _read_proc_stat
        self._last: tuple[float, float] | None = None  # (monotonic time, busy CPU-seconds)
        self._busy: float | None = None

    def busy(self, now: float) -> float | None:
        """Busy cores, smoothed; None until two readings exist (or where none can be made)."""
        last = self._last
        if last is not None and now - last[0] < self.every:
            return self._busy
        used = self._read()
        if used is None:
            return self._busy
        self._last = (now, used)
        if last is None or now <= last[0]:
            return self._busy
        cores = max(0.0, (used - last[1]) / (now - last[0]))
        if self._busy is None:
            self._busy = cores
        else:
            weight = 1.0 - math.exp(-(now - last[0]) / self.tau)
            self._busy += weight * (cores - self._busy)
        return self._busy


_MACHINE: MachineCpu | None = None


def machine_cpu() -> MachineCpu:
    """The process's one `MachineCpu` (every batcher reads the same samples)."""
    global _MACHINE
    if _MACHINE is None:
        _MACHINE = MachineCpu()
    return _MACHINE
