"""Soak: the MiniLM example served for N minutes at 70% of its capacity, with a code reload
every 5 s and a bad reload (a syntax error in service.py, fixed 2 s later) every minute. Counts
errors outside the bad reloads' own windows (must be zero), the server's RSS growth (must stay
under 10%) and p50/p95/p99 per minute (should stay steady: max/min within --p95-steady), with
the CPU-seconds of the server's main process, its worker processes and this generator per
minute (CPU-seconds hold on a busy machine; latencies do not).

Setup: examples/support_tickets_minilm.ipynb (a copy in bench/.work/soak) runs in a real kernel
up to `%nbento serve`, which saves both models into a scratch NBENTO_HOME; `nbento build-service`
writes the service folder; the kernel is shut down and `nbento serve FOLDER --reload` serves it.

Capacity, in the soak's own conditions (the reload loop running, this generator's CPU on the
same cores): one closed-loop wrk run (80 connections, bench/serve_scenario/post.lua) gives an
upper bound; then an open-loop ramp from 40% of it in steps of 10% (up to 200%: on a busy
machine wrk's short run can be low) finds the highest rate held (every answer 200, p95
within --ramp-p95-ms, by default 220 ms: a rate at which latency has already run away is not
capacity, and at 1000 ms the first recorded run soaked at 95% of the CPU). The 70% refers to that
open-loop figure: the
closed loop keeps 80 requests in flight, so its batches are bigger and each request costs less
CPU than at any open-loop rate (the report shows CPU ms per OK for both).

Load: this script's own open-loop generator (raw HTTP/1.1 on asyncio, uvloop when installed,
keep-alive connections, requests sent on a fixed schedule whatever the answers; latency counts
from the scheduled time, so a stalled server shows up as latency, and a request with no free
connection counts as an error).

    .venv/bin/python bench/soak.py                     # 10 minutes, prints the table
    .venv/bin/python bench/soak.py --minutes 2         # a short check
    .venv/bin/python bench/soak.py --record            # also adds the run to "## Soak" in RESULTS.md
"""

from __future__ import annotations

import argparse
import asyncio
import glob
import itertools
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "bench" / "serve_scenario"
sys.path.insert(0, str(SCENARIO))

from harness import BenchError, Server, free_port, http, run_wrk  # noqa: E402
from open_loop import TEXTS, OpenLoop  # noqa: E402

WORK = ROOT / "bench" / ".work" / "soak"
RESULTS = ROOT / "bench" / "RESULTS.md"
SECTION = "## Soak"
NOTEBOOK = ROOT / "examples" / "support_tickets_minilm.ipynb"
BAD_WINDOW_AFTER_FIX_S = 3.0


# -- setup -------------------------------------------------------------------------------------


def prepare(home: Path) -> Path:
    """Run the notebook up to `%nbento serve` (saving its models into `home`), then write its
    service folder; returns the folder."""
    import nbformat
    from jupyter_core.utils import run_sync
    from nbclient import NotebookClient

    shutil.rmtree(WORK, ignore_errors=True)
    shutil.copytree(NOTEBOOK.parent, WORK, ignore=shutil.ignore_patterns(".nbento", "*.ipynb"))
    notebook = WORK / NOTEBOOK.name
    shutil.copy(NOTEBOOK, notebook)
    env = dict(os.environ, NBENTO_HOME=str(home), JPY_SESSION_NAME=str(notebook))
    nb = nbformat.read(str(notebook), as_version=4)
    client = NotebookClient(nb, kernel_name="python3", timeout=600,
                            resources={"metadata": {"path": str(WORK)}})
    client.km = client.create_kernel_manager()
    client.start_new_kernel(env=env)
    client.start_new_kernel_client()
    try:
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            if cell.source.startswith("%nbento serve"):
                break
            client.execute_cell(cell, index)
    finally:
        if client.kc is not None:
            client.kc.stop_channels()
        run_sync(client.km.shutdown_kernel)(now=True)
    subprocess.run([sys.executable, "-m", "runtime", "build-service", str(notebook)],
                   env=env, check=True, stdout=subprocess.DEVNULL)
    found = glob.glob(str(WORK / ".nbento" / "*" / "service.py"))
    if not found:
        raise BenchError(f"build-service wrote no service.py under {WORK / '.nbento'}")
    return Path(found[0]).parent


def setup(prefix: str) -> tuple[Path, dict[str, str], Path]:
    """A scratch NBENTO_HOME (also set in this process), the environment to serve with, and
    the service folder `prepare` wrote there."""
    home = Path(tempfile.mkdtemp(prefix=prefix))
    env = dict(os.environ, NBENTO_HOME=str(home), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               TOKENIZERS_PARALLELISM="false", PYTHONUNBUFFERED="1",
               PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "runtime" / "_nbento_pkg"),
                                           os.environ.get("PYTHONPATH", "")]))
    os.environ.update({k: env[k] for k in ("NBENTO_HOME", "PYTHONPATH")})
    print("setup: running the notebook up to %nbento serve ...", file=sys.stderr, flush=True)
    return home, env, prepare(home)


# -- reloads and memory --------------------------------------------------------------------


@dataclass
class Events:
    good: list[float] = field(default_factory=list)  # seconds from start
    bad: list[tuple[float, float]] = field(default_factory=list)  # (broken at, fixed at)
    samples: list[Sample] = field(default_factory=list)  # one a second
    scrapes: list[tuple[float, dict[str, float]]] = field(default_factory=list)  # one a minute

    def in_bad_window(self, t: float) -> bool:
        return any(b <= t <= f + BAD_WINDOW_AFTER_FIX_S for b, f in self.bad)


async def reloads(service: Path, seconds: float, t0: float, every: float, bad_every: float,
                  events: Events) -> None:
    """Rewrite service.py every `every` s (a new constant: a real code change); every
    `bad_every` s (offset half a period) break it with a syntax error and fix it 2 s later."""
    loop = asyncio.get_running_loop()
    original = service.read_text()
    rev = 0
    next_good, next_bad = every, bad_every / 2
    try:
        while True:
            now = loop.time() - t0
            if now >= seconds - 1:
                break
            if now >= next_bad:
                broken = loop.time() - t0
                service.write_text(original + "\n\ndef soak_broken(:\n    pass\n")
                await asyncio.sleep(2.0)
                rev += 1
                service.write_text(original + f"\nSOAK_REV = {rev}\n")
                events.bad.append((broken, loop.time() - t0))
                next_bad += bad_every
                next_good = loop.time() - t0 + every
            elif now >= next_good:
                rev += 1
                service.write_text(original + f"\nSOAK_REV = {rev}\n")
                events.good.append(now)
                next_good += every
            await asyncio.sleep(0.1)
    finally:
        service.write_text(original)


@dataclass
class Sample:
    """One look at the server's process tree and at this process (the generator)."""

    t: float  # seconds from start
    rss_main: int
    rss_workers: int
    cpu_main: float  # CPU-seconds (user + system) since the process started
    cpu_workers: float  # summed over every worker process seen so far, dead ones included
    cpu_generator: float
    worker_pids: frozenset[int]
    cpu_busy: float  # CPU-seconds the whole machine spent busy (all processes; no steal)
    cpu_steal: float  # CPU-seconds the hypervisor gave to other guests


class ProcessWatch:
    """CPU-seconds and RSS of the server's main process, its worker processes and this process.
    CPU-seconds do not depend on how busy the machine is, unlike latency."""

    def __init__(self, pid: int) -> None:
        self.main = psutil.Process(pid)
        self.me = psutil.Process()
        self._worker_cpu: dict[int, float] = {}  # last value seen per worker pid

    def sample(self, t: float) -> Sample:
        rss_workers = 0
        pids = set()
        try:
            children = self.main.children(recursive=True)
            cpu_main = sum(self.main.cpu_times()[:2])
            rss_main = self.main.memory_info().rss
        except psutil.NoSuchProcess:
            children, cpu_main, rss_main = [], 0.0, 0
        for child in children:
            try:
                with child.oneshot():
                    self._worker_cpu[child.pid] = sum(child.cpu_times()[:2])
                    rss_workers += child.memory_info().rss
                pids.add(child.pid)
            except psutil.NoSuchProcess:
                pass
        machine = psutil.cpu_times()
        busy = sum(getattr(machine, f, 0.0)
                   for f in ("user", "nice", "system", "irq", "softirq"))
        return Sample(t, rss_main, rss_workers, cpu_main, sum(self._worker_cpu.values()),
                      sum(self.me.cpu_times()[:2]), frozenset(pids), busy,
                      getattr(machine, "steal", 0.0))


async def sample_processes(watch: ProcessWatch, base: str, seconds: float, t0: float,
                           events: Events) -> None:
    """A process sample every second; the server's reload counters once a minute."""
    loop = asyncio.get_running_loop()
    next_scrape = 0.0
    while (now := loop.time() - t0) < seconds:
        events.samples.append(watch.sample(now))
        if now >= next_scrape:
            events.scrapes.append((now, await asyncio.to_thread(reload_counts, base)))
            next_scrape += 60.0
        await asyncio.sleep(1.0)
    events.samples.append(watch.sample(loop.time() - t0))
    events.scrapes.append((loop.time() - t0, await asyncio.to_thread(reload_counts, base)))


async def warm_up(port: int, rate: float, max_conns: int) -> None:
    """10 s at the soak's rate first, so minute 1 does not measure the batchers' cold start."""
    await OpenLoop(port, rate, max_conns).run(10.0, asyncio.get_running_loop().time())


async def soak(port: int, pid: int, service: Path, rate: float, seconds: float,
               args: argparse.Namespace) -> tuple[OpenLoop, Events]:
    load = OpenLoop(port, rate, args.max_connections)
    events = Events()
    watch = ProcessWatch(pid)
    t0 = asyncio.get_running_loop().time() + 0.2
    await asyncio.gather(
        load.run(seconds, t0),
        reloads(service, seconds, t0, args.reload_every, args.bad_every, events),
        sample_processes(watch, f"http://127.0.0.1:{port}", seconds, t0, events),
    )
    return load, events


# -- report ----------------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _at(samples: list[Sample], t: float) -> Sample:
    """The last sample taken at or before `t` (the first one if none)."""
    best = samples[0]
    for s in samples:
        if s.t <= t:
            best = s
    return best


def _scrape_delta(events: Events, lo: float, hi: float, key: str) -> float:
    def at(t: float) -> float:
        best = events.scrapes[0][1] if events.scrapes else {}
        for when, counts in events.scrapes:
            if when <= t + 1.5:
                best = counts
        return best.get(key, 0.0)

    return at(hi) - at(lo)


def report(load: OpenLoop, events: Events, seconds: float, capacity: str, rate: float,
           args: argparse.Namespace) -> tuple[str, bool]:
    minutes = max(1, round(seconds / 60))
    lines = [
        "| minute | sent | OK | errors | errors in bad-reload windows | p50 ms | p95 ms | p99 ms "
        "| reloads ok / failed | reload CPU ms | CPU s: server main / workers / generator "
        "| main CPU ms per OK | embedder rows per batch | foreign CPU s / steal s "
        "| RSS MB main / workers | worker restarts |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    p95s = []
    foreign: list[float] = []  # per minute: CPU-seconds of processes outside this test
    outside_total = inside_total = 0
    kinds: dict[str, int] = {}
    inside_kinds: dict[str, int] = {}
    samples = events.samples
    restarts_total = 0
    for m in range(minutes):
        lo, hi = m * 60.0, (m + 1) * 60.0
        rows = [r for r in load.records if lo <= r.due < hi]
        ok = [r for r in rows if r.status == 200]
        bad = [r for r in rows if r.status != 200]
        inside = [r for r in bad if events.in_bad_window(r.due)]
        outside = [r for r in bad if not events.in_bad_window(r.due)]
        for group, counter in ((outside, kinds), (inside, inside_kinds)):
            for r in group:
                key = f"{r.status} {r.kind}".strip()
                counter[key] = counter.get(key, 0) + 1
        outside_total += len(outside)
        inside_total += len(inside)
        lat = [r.latency * 1000 for r in ok]
        p95 = pct(lat, 0.95)
        p95s.append(p95)
        first, last = _at(samples, lo), _at(samples, hi)
        main_s = last.cpu_main - first.cpu_main
        workers_s = last.cpu_workers - first.cpu_workers
        gen_s = last.cpu_generator - first.cpu_generator
        foreign_s = max(0.0, last.cpu_busy - first.cpu_busy - main_s - workers_s - gen_s)
        foreign.append(foreign_s)
        window = [s for s in samples if lo <= s.t < hi] or [last]
        pid_sets = [s.worker_pids for s in window if s.worker_pids]
        restarts = sum(len(b - a) for a, b in itertools.pairwise(pid_sets))
        restarts_total += restarts
        reloads_ok = _scrape_delta(events, lo, hi, "ok")
        reloads_failed = _scrape_delta(events, lo, hi, "error")
        reload_cpu = _scrape_delta(events, lo, hi, "cpu_seconds")
        batches = _scrape_delta(events, lo, hi, "encode_rows_count")
        rows_per_batch = _scrape_delta(events, lo, hi, "encode_rows_sum") / batches if batches else 0
        lines.append(
            f"| {m + 1} | {len(rows)} | {len(ok)} | {len(outside)} | {len(inside)} "
            f"| {pct(lat, 0.5):.0f} | {p95:.0f} | {pct(lat, 0.99):.0f} "
            f"| {reloads_ok:.0f} / {reloads_failed:.0f} | {reload_cpu * 1000:.0f} "
            f"| {main_s:.1f} / {workers_s:.1f} / {gen_s:.1f} "
            f"| {main_s * 1000 / max(1, len(ok)):.2f} | {rows_per_batch:.2f} "
            f"| {foreign_s:.1f} / {last.cpu_steal - first.cpu_steal:.1f} "
            f"| {max(s.rss_main for s in window) / 2**20:.0f} / "
            f"{max(s.rss_workers for s in window) / 2**20:.0f} | {restarts} |"
        )
    totals = [s.rss_main + s.rss_workers for s in samples]
    first_rss = statistics.median(totals[:10]) if totals else 0
    last_rss = statistics.median(totals[-10:]) if totals else 0
    growth = (last_rss - first_rss) / first_rss * 100 if first_rss else float("nan")
    mains = [s.rss_main for s in samples]
    main_growth = (statistics.median(mains[-10:]) - statistics.median(mains[:10])) if mains else 0
    sent = len(load.records)
    ok_count = sum(1 for r in load.records if r.status == 200)
    inside_lat = [r.latency * 1000 for r in load.records
                  if r.status == 200 and events.in_bad_window(r.due)]
    outside_lat = [r.latency * 1000 for r in load.records
                   if r.status == 200 and not events.in_bad_window(r.due)]
    steady = max(p95s) / min(p95s) if p95s and min(p95s) > 0 else float("nan")
    head, tail = p95s[:3], p95s[-3:]
    drift = (statistics.median(tail) / statistics.median(head)
             if head and statistics.median(head) > 0 else float("nan"))
    whole = (samples[-1].cpu_main - samples[0].cpu_main, samples[-1].cpu_workers -
             samples[0].cpu_workers, samples[-1].cpu_generator - samples[0].cpu_generator)
    span = samples[-1].t - samples[0].t if samples else seconds
    reloads_ok = _scrape_delta(events, 0, seconds, "ok")
    reloads_failed = _scrape_delta(events, 0, seconds, "error")
    reload_cpu = _scrape_delta(events, 0, seconds, "cpu_seconds")
    steady_ok = steady <= args.p95_steady
    errors_ok = outside_total == 0
    rss_ok = growth < 10
    passed = errors_ok and rss_ok and steady_ok
    summary = [
        f"capacity: {capacity}; soak rate {rate:.1f} req/s ({args.fraction:.0%} of it"
        f"{'' if args.rate is None else ', --rate given'}); {sent} requests sent in "
        f"{seconds:.0f} s ({sent / seconds:.1f} req/s), {ok_count} answered 200",
        f"reloads: {len(events.good)} good written (every {args.reload_every:g} s), "
        f"{len(events.bad)} bad (a syntax error every {args.bad_every:g} s, fixed 2 s later); "
        f"the server counted {reloads_ok:.0f} ok and {reloads_failed:.0f} failed, "
        f"{reload_cpu * 1000:.0f} ms of reload CPU in all "
        f"({reload_cpu * 1000 / max(1.0, reloads_ok + reloads_failed):.1f} ms each); "
        f"worker processes restarted: {restarts_total}",
        f"CPU-seconds over {span:.0f} s: server main {whole[0]:.1f} "
        f"({whole[0] * 1000 / max(1, ok_count):.2f} ms per OK), workers {whole[1]:.1f} "
        f"({whole[1] * 1000 / max(1, ok_count):.2f} ms per OK), generator {whole[2]:.1f} "
        f"({whole[2] * 1000 / max(1, sent):.2f} ms per request); "
        f"{(whole[0] + whole[1] + whole[2]) / max(1.0, span):.2f} of {os.cpu_count()} cores busy; "
        f"other processes on the machine: {statistics.mean(foreign or [0.0]) / 60:.2f} cores "
        f"on average, {max(foreign or [0.0]) / 60:.2f} in the busiest minute",
        f"errors outside the bad reloads' windows: {outside_total} {kinds or '(none)'}; "
        f"inside them: {inside_total} {inside_kinds or '(none)'}; p95 of the 200s inside them "
        f"{pct(inside_lat, 0.95):.0f} ms, outside {pct(outside_lat, 0.95):.0f} ms",
        f"RSS (server main + workers): {first_rss / 2**20:.0f} MB at the start, "
        f"{last_rss / 2**20:.0f} MB at the end ({growth:+.1f}%), peak "
        f"{max(totals or [0]) / 2**20:.0f} MB; main process {main_growth / 2**20:+.1f} MB "
        f"({main_growth / 1024 / max(1.0, reloads_ok + reloads_failed):.0f} KB per reload)",
        f"p95 per minute: {min(p95s):.0f}-{max(p95s):.0f} ms (max/min {steady:.2f}); drift: "
        f"median p95 of the last 3 minutes / of the first 3 {drift:.2f} (over 1: rising)",
        f"verdict: {'PASS' if passed else 'FAIL'}: errors outside bad-reload windows "
        f"{'0 ok' if errors_ok else f'{outside_total} FAIL'}; RSS growth {growth:+.1f}% "
        f"{'< 10% ok' if rss_ok else '>= 10% FAIL'}; p95 max/min {steady:.2f} "
        f"{'<=' if steady_ok else '>'} {args.p95_steady:g} {'ok' if steady_ok else 'FAIL'}",
    ]
    return "\n".join(lines) + "\n\n" + "\n".join(f"- {s}" for s in summary), passed


def reload_counts(base: str) -> dict[str, float]:
    """The server's reload counters from /metrics: ok, error, cpu_seconds."""
    status, text = http("GET", f"{base}/metrics")
    if status != 200:
        return {}
    counts = {k: float(v) for k, v in
              re.findall(r'nbento_reloads_total\{result="(\w+)"\} ([\d.e+-]+)', text)}
    cpu = re.search(r"nbento_reload_cpu_seconds_total ([\d.e+-]+)", text)
    counts["cpu_seconds"] = float(cpu.group(1)) if cpu else float("nan")
    for part in ("sum", "count"):  # the embedder's batches: rows and batches so far
        counts[f"encode_rows_{part}"] = float("nan")
        for labels, value in re.findall(
                rf"nbento_runner_batch_size_{part}\{{([^}}]*)\}} ([\d.e+-]+)", text):
            if 'runner="support_embedder"' in labels and 'method="encode"' in labels:
                counts[f"encode_rows_{part}"] = float(value)
    return counts


async def capacity_while_reloading(base: str, pid: int, service: Path,
                                   args: argparse.Namespace) -> tuple[float, str]:
    """Closed-loop wrk capacity measured in the soak's conditions: good reloads every
    `--reload-every` s run meanwhile (no bad ones). (OK req/s, a description with the server's
    CPU per OK answer, which is lower than in the open loop: 80 requests always in flight make
    big batches)."""
    events = Events()
    watch = ProcessWatch(pid)
    t0 = asyncio.get_running_loop().time()
    before = watch.sample(0.0)
    wrk = asyncio.create_task(asyncio.to_thread(
        run_wrk, f"{base}/classify", SCENARIO / "post.lua", args.capacity_seconds, 80))
    await reloads(service, args.capacity_seconds + 1, t0, args.reload_every, float("inf"), events)
    result = await wrk
    after = watch.sample(args.capacity_seconds)
    ok = max(1, int(result.ok_rps * result.duration_s))
    return result.ok_rps, (
        f"{result.ok_rps:.1f} req/s (wrk, 80 connections, closed loop, {args.capacity_seconds:g} s "
        f"while reloading every {args.reload_every:g} s; CPU ms per OK: server main "
        f"{(after.cpu_main - before.cpu_main) * 1000 / ok:.2f}, workers "
        f"{(after.cpu_workers - before.cpu_workers) * 1000 / ok:.2f}, wrk "
        f"{result.cpu_s * 1000 / ok:.2f})"
    )


async def _ramp_step(port: int, watch: ProcessWatch, service: Path, rate: float,
                     args: argparse.Namespace) -> tuple[bool, str]:
    load = OpenLoop(port, rate, args.max_connections)
    t0 = asyncio.get_running_loop().time() + 0.1
    before = watch.sample(0.0)
    await asyncio.gather(
        load.run(args.step_seconds, t0),
        reloads(service, args.step_seconds + 1, t0, args.reload_every, float("inf"), Events()),
    )
    after = watch.sample(args.step_seconds)
    ok = [r.latency * 1000 for r in load.records if r.status == 200]
    p95 = pct(ok, 0.95)
    passed = len(ok) == len(load.records) and p95 <= args.ramp_p95_ms
    n = max(1, len(ok))
    return passed, (
        f"{len(ok)} of {len(load.records)} OK, p95 {p95:.0f} ms, CPU ms per OK: server main "
        f"{(after.cpu_main - before.cpu_main) * 1000 / n:.2f}, workers "
        f"{(after.cpu_workers - before.cpu_workers) * 1000 / n:.2f}, generator "
        f"{(after.cpu_generator - before.cpu_generator) * 1000 / n:.2f} -> "
        f"{'held' if passed else 'not held'}"
    )


async def ramp(port: int, pid: int, service: Path, upper: float,
               args: argparse.Namespace) -> tuple[float, list[str]]:
    """The open-loop capacity in the soak's own conditions: steps of `--step-seconds` at 40%,
    50%, ... (up to 200%) of `upper` (wrk's closed-loop figure) from this generator, with the
    reload loop running, until one is not held twice in a row. A step is held when every
    request got a 200 and p95 stayed within `--ramp-p95-ms`; the capacity is the last step
    held (0 if none)."""
    watch = ProcessWatch(pid)
    held = 0.0
    lines = []
    for tenth in range(4, 21):
        rate = upper * tenth / 10
        for attempt in (1, 2):  # a step not held runs once more: a busy moment elsewhere
            passed, line = await _ramp_step(port, watch, service, rate, args)
            lines.append(f"{rate:.1f} req/s ({tenth * 10}% of wrk's, try {attempt}): {line}")
            await asyncio.sleep(3.0)  # let the step's stragglers finish
            if passed:
                break
        if not passed:
            break
        held = rate
    return held, lines


def serve_settings(settings: list[str]) -> list[str]:
    """`--set KEY=VALUE` options for `nbento serve`, from the scripts' own `--set` values."""
    return [arg for kv in settings for arg in ("--set", kv)]


def run_loop(main: Any) -> Any:
    """asyncio.run on uvloop when it is installed: the generator shares the server's cores, so
    its CPU per request is kept small (and reported)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


def record(body: str, args: argparse.Namespace) -> None:
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    import importlib.metadata as md

    machine = (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python "
               f"{platform.python_version()}, torch {md.version('torch')}, nbento "
               f"{md.version('nbento') if _has('nbento') else '?'}; load average at the end "
               f"{os.getloadavg()[0]:.1f}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    sets = "".join(f" --set {kv}" for kv in args.settings)
    run = (f"### Run of {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n\n"
           f"`python bench/soak.py --minutes {args.minutes:g}{sets} --record` ({machine}).\n\n"
           f"{body.strip()}\n\n")
    start = text.find(f"\n{SECTION}\n")
    if start == -1:
        text = text.rstrip("\n") + f"\n\n{SECTION}\n\n" + run
    else:  # the newest run first; earlier runs and the section's own summary stay
        first = text.find("\n### ", start)
        nxt = text.find("\n## ", start + len(SECTION) + 1)
        at = first + 1 if first != -1 and (nxt == -1 or first < nxt) else (
            nxt + 1 if nxt != -1 else len(text))
        text = text[:at] + run + text[at:]
    RESULTS.write_text(text.rstrip("\n") + "\n")


def _has(dist: str) -> bool:
    import importlib.metadata as md

    try:
        md.version(dist)
        return True
    except md.PackageNotFoundError:
        return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--fraction", type=float, default=0.7, help="of the measured capacity")
    parser.add_argument("--rate", type=float, help="req/s; skips the capacity measurement")
    parser.add_argument("--capacity-seconds", type=float, default=15.0,
                        help="the closed-loop wrk run that bounds the ramp")
    parser.add_argument("--step-seconds", type=float, default=15.0, help="per ramp step")
    parser.add_argument("--ramp-p95-ms", type=float, default=220.0,
                        help="a ramp step is held when all answers are 200 within this p95 "
                             "(default: the p95 issue 12 asks of the serving scenario)")
    parser.add_argument("--reload-every", type=float, default=5.0)
    parser.add_argument("--bad-every", type=float, default=60.0)
    parser.add_argument("--max-connections", type=int, default=256)
    parser.add_argument("--p95-steady", type=float, default=2.0,
                        help="largest p95 max/min ratio across minutes that counts as steady")
    parser.add_argument("--set", dest="settings", action="append", default=[],
                        metavar="KEY=VALUE",
                        help="a server setting, passed on as `nbento serve --set KEY=VALUE` "
                             "(repeatable), e.g. runners.support_embedder.batching."
                             "max_latency_ms=25")
    parser.add_argument("--record", action="store_true", help="add the run to '## Soak' in RESULTS.md (newest first)")
    args = parser.parse_args(argv)

    home, env, folder = setup("nbento-soak-")
    port = free_port()
    settings = serve_settings(args.settings)
    server = Server("nbento", [sys.executable, "-m", "runtime", "serve", str(folder), "--reload",
                               "--port", str(port), *settings], port, WORK, env,
                    WORK / "server.log")
    seconds = args.minutes * 60
    try:
        server.start()
        server.wait_ready({"texts": [TEXTS[0]]})
        assert server.proc is not None
        ramp_lines: list[str] = []
        if args.rate:
            capacity, rate = "not measured (--rate given)", args.rate
        else:
            print("measuring capacity while reloading ...", file=sys.stderr, flush=True)
            run_wrk(f"{server.base}/classify", SCENARIO / "post.lua", 3, 80)  # warm-up
            upper, wrk_line = run_loop(capacity_while_reloading(
                server.base, server.proc.pid, folder / "service.py", args))
            held, ramp_lines = run_loop(ramp(port, server.proc.pid, folder / "service.py",
                                             upper, args))
            ramp_lines.insert(0, f"closed loop: {wrk_line}")
            if held:
                capacity = (f"{held:.1f} req/s (the highest open-loop step held while reloading: "
                            f"all 200, p95 <= {args.ramp_p95_ms:g} ms)")
                rate = args.fraction * held
            else:
                capacity = f"no open-loop step held, down to {0.4 * upper:.1f} req/s"
                rate = args.fraction * 0.4 * upper
        print(f"warming up 10 s, then soaking {args.minutes:g} min at {rate:.1f} req/s ...",
              file=sys.stderr, flush=True)
        run_loop(warm_up(port, rate, args.max_connections))
        load, events = run_loop(soak(port, server.proc.pid, folder / "service.py", rate,
                                     seconds, args))
    finally:
        server.stop()
        shutil.rmtree(home, ignore_errors=True)
    body, ok = report(load, events, seconds, capacity, rate, args)
    if ramp_lines:
        body = ("Capacity ramp (reload loop running):\n\n"
                + "\n".join(f"- {line}" for line in ramp_lines) + "\n\n" + body)
    print(body)
    if args.record:
        record(body, args)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
