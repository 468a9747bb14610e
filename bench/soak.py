"""Soak: the MiniLM example served for N minutes at about 70% of its measured capacity, with a
code reload every 5 s and a bad reload (a syntax error in service.py, fixed 2 s later) every
minute. Counts errors outside the bad reloads' own windows (must be zero), the server's RSS
growth (must stay under 10%) and p50/p95/p99 per minute (should stay steady).

Setup: examples/support_tickets_minilm.ipynb (a copy in bench/.work/soak) runs in a real kernel
up to `%nbento serve`, which saves both models into a scratch NBENTO_HOME; `nbento build-service`
writes the service folder; the kernel is shut down and `nbento serve FOLDER --reload` serves it.
Capacity: one closed-loop wrk run (80 connections, bench/serve_scenario/post.lua). Load: this
script's own open-loop generator (raw HTTP/1.1 on asyncio, keep-alive connections, requests
sent on a fixed schedule whatever the answers; latency counts from the scheduled time, so a
stalled server shows up as latency, and a request with no free connection counts as an error).

    .venv/bin/python bench/soak.py                     # 10 minutes, prints the table
    .venv/bin/python bench/soak.py --minutes 2         # a short check
    .venv/bin/python bench/soak.py --record            # also writes "## Soak" in RESULTS.md
"""

from __future__ import annotations

import argparse
import asyncio
import glob
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

WORK = ROOT / "bench" / ".work" / "soak"
RESULTS = ROOT / "bench" / "RESULTS.md"
SECTION = "## Soak"
NOTEBOOK = ROOT / "examples" / "support_tickets_minilm.ipynb"
TEXTS = [
    "I was charged twice for my order", "my package has not arrived yet",
    "the app crashes when I open settings", "I cannot log in to my account",
    "please send me a refund for the last invoice", "the parcel tracking number does not work",
    "sync between my phone and laptop is broken", "please reset my password",
]
REQUEST_TIMEOUT_S = 10.0
BAD_WINDOW_AFTER_FIX_S = 3.0
IDLE_EXPIRY_S = 3.0  # nbento's http.keep_alive_s is 5


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


# -- the open-loop load ----------------------------------------------------------------------


@dataclass
class Record:
    due: float  # scheduled send time, seconds from the start of the load
    status: int  # 0: no HTTP answer
    latency: float  # from the scheduled time to the full answer
    kind: str = ""


@dataclass
class _Conn:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    idle_since: float = 0.0


def request_bytes(i: int) -> bytes:
    body = f'{{"texts": ["{TEXTS[i % len(TEXTS)]} (#{i})"]}}'.encode()
    return (b"POST /classify HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body))


async def _exchange(conn: _Conn, payload: bytes) -> tuple[int, bool]:
    """Send one request and read its answer; (status, whether the connection stays open)."""
    conn.writer.write(payload)
    await conn.writer.drain()
    head = await conn.reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
    await conn.reader.readexactly(int(length.group(1)) if length else 0)
    return status, not re.search(rb"(?i)\r\nconnection: *close", head)


class OpenLoop:
    """Requests at `rate` per second on a fixed schedule over up to `max_conns` keep-alive
    connections to 127.0.0.1:`port`."""

    def __init__(self, port: int, rate: float, max_conns: int) -> None:
        self.port = port
        self.rate = rate
        self.max_conns = max_conns
        self.records: list[Record] = []
        self._idle: list[_Conn] = []
        self._open = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def run(self, seconds: float, t0: float) -> None:
        loop = asyncio.get_running_loop()
        total = int(seconds * self.rate)
        for i in range(total):
            due = t0 + i / self.rate
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            conn = self._reusable(loop.time())
            if conn is None and self._open >= self.max_conns:
                self.records.append(Record(due - t0, 0, 0.0, "no free connection"))
                continue
            if conn is None:
                self._open += 1
            task = asyncio.create_task(self._one(conn, i, due, t0))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=REQUEST_TIMEOUT_S + 5)
        for conn in self._idle:
            conn.writer.close()

    def _reusable(self, now: float) -> _Conn | None:
        """The most recently used idle connection, dropping those the server may have closed:
        idle longer than IDLE_EXPIRY_S (under the server's keep-alive timeout, as HTTP
        clients do) or already at EOF; otherwise a request would race the server's close."""
        while self._idle:
            conn = self._idle.pop()
            if now - conn.idle_since < IDLE_EXPIRY_S and not conn.reader.at_eof():
                return conn
            conn.writer.close()
            self._open -= 1
        return None

    async def _one(self, conn: _Conn | None, i: int, due: float, t0: float) -> None:
        loop = asyncio.get_running_loop()
        keep = False
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT_S):
                if conn is None:
                    reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
                    conn = _Conn(reader, writer)
                status, keep = await _exchange(conn, request_bytes(i))
            self.records.append(Record(due - t0, status, loop.time() - due))
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                TimeoutError, ValueError, IndexError) as exc:
            self.records.append(Record(due - t0, 0, loop.time() - due, type(exc).__name__))
        if keep and conn is not None:
            conn.idle_since = loop.time()
            self._idle.append(conn)
        else:
            self._open -= 1
            if conn is not None:
                conn.writer.close()


# -- reloads and memory --------------------------------------------------------------------


@dataclass
class Events:
    good: list[float] = field(default_factory=list)  # seconds from start
    bad: list[tuple[float, float]] = field(default_factory=list)  # (broken at, fixed at)
    rss: list[tuple[float, int]] = field(default_factory=list)  # (seconds, bytes)

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


def tree_rss(pid: int) -> int:
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


async def sample_rss(pid: int, seconds: float, t0: float, events: Events) -> None:
    loop = asyncio.get_running_loop()
    while (now := loop.time() - t0) < seconds:
        events.rss.append((now, tree_rss(pid)))
        await asyncio.sleep(1.0)


async def soak(port: int, pid: int, service: Path, rate: float, seconds: float,
               args: argparse.Namespace) -> tuple[OpenLoop, Events]:
    load = OpenLoop(port, rate, args.max_connections)
    events = Events()
    t0 = asyncio.get_running_loop().time() + 0.2
    await asyncio.gather(
        load.run(seconds, t0),
        reloads(service, seconds, t0, args.reload_every, args.bad_every, events),
        sample_rss(pid, seconds, t0, events),
    )
    return load, events


# -- report ----------------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def report(load: OpenLoop, events: Events, seconds: float, capacity: float, rate: float,
           server: dict[str, Any], args: argparse.Namespace) -> tuple[str, bool]:
    minutes = max(1, round(seconds / 60))
    lines = [
        "| minute | sent | OK | errors | errors in bad-reload windows | p50 ms | p95 ms | p99 ms "
        "| reloads / bad | RSS MB |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    p95s = []
    outside_total = inside_total = 0
    kinds: dict[str, int] = {}
    for m in range(minutes):
        lo, hi = m * 60.0, (m + 1) * 60.0
        rows = [r for r in load.records if lo <= r.due < hi]
        ok = [r for r in rows if r.status == 200]
        bad = [r for r in rows if r.status != 200]
        inside = [r for r in bad if events.in_bad_window(r.due)]
        outside = [r for r in bad if not events.in_bad_window(r.due)]
        for r in outside:
            key = f"{r.status} {r.kind}".strip()
            kinds[key] = kinds.get(key, 0) + 1
        outside_total += len(outside)
        inside_total += len(inside)
        lat = [r.latency * 1000 for r in ok]
        p95 = pct(lat, 0.95)
        p95s.append(p95)
        good = sum(1 for t in events.good if lo <= t < hi)
        broken = sum(1 for b, _ in events.bad if lo <= b < hi)
        rss = [v for t, v in events.rss if lo <= t < hi]
        lines.append(
            f"| {m + 1} | {len(rows)} | {len(ok)} | {len(outside)} | {len(inside)} "
            f"| {pct(lat, 0.5):.0f} | {p95:.0f} | {pct(lat, 0.99):.0f} | {good} / {broken} "
            f"| {max(rss) / 2**20 if rss else float('nan'):.0f} |"
        )
    rss_values = [v for _, v in events.rss]
    first = statistics.median(rss_values[:10]) if rss_values else 0
    last = statistics.median(rss_values[-10:]) if rss_values else 0
    growth = (last - first) / first * 100 if first else float("nan")
    sent = len(load.records)
    steady = max(p95s) / min(p95s) if p95s and min(p95s) > 0 else float("nan")
    ok = outside_total == 0 and growth < 10
    summary = [
        f"capacity (wrk, 80 connections, closed loop): "
        f"{'not measured (--rate)' if capacity != capacity else f'{capacity:.1f} req/s'}; soak rate "
        f"{rate:.1f} req/s; {sent} requests sent in {seconds:.0f} s "
        f"({sent / seconds:.1f} req/s)",
        f"reloads: {len(events.good)} good (every {args.reload_every:g} s), {len(events.bad)} "
        f"bad (a syntax error every {args.bad_every:g} s, fixed 2 s later); server generation at the end {server.get('generation')}, "
        f"reloads counted by /metrics: {server.get('reloads')}",
        f"errors outside the bad reloads' windows: {outside_total} "
        f"{kinds or '(none)'}; inside them: {inside_total}",
        f"RSS (server process tree): {first / 2**20:.0f} MB at the start, {last / 2**20:.0f} MB "
        f"at the end ({growth:+.1f}%), peak {max(rss_values or [0]) / 2**20:.0f} MB",
        f"p95 per minute: {min(p95s):.0f}-{max(p95s):.0f} ms (max/min {steady:.2f})",
        f"verdict: {'PASS' if ok else 'FAIL'} (zero errors outside bad-reload windows, RSS "
        f"growth < 10%)",
    ]
    return "\n".join(lines) + "\n\n" + "\n".join(f"- {s}" for s in summary), ok


def server_counts(base: str) -> dict[str, Any]:
    import json

    out: dict[str, Any] = {}
    status, text = http("GET", f"{base}/_nbento/status")
    if status == 200:
        out["generation"] = json.loads(text).get("generation")
    status, text = http("GET", f"{base}/metrics")
    if status == 200:
        counts = dict(re.findall(r'nbento_reloads_total\{result="(\w+)"\} ([\d.e+]+)', text))
        out["reloads"] = {k: int(float(v)) for k, v in counts.items()}
    return out


def record(body: str, args: argparse.Namespace) -> None:
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    import importlib.metadata as md

    machine = (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python "
               f"{platform.python_version()}, torch {md.version('torch')}, nbento "
               f"{md.version('nbento') if _has('nbento') else '?'}; load average at the end "
               f"{os.getloadavg()[0]:.1f}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    section = (f"{SECTION}\n\n`python bench/soak.py --minutes {args.minutes:g} --record` "
               f"({machine}).\n\n{body.strip()}\n")
    start = text.find(f"\n{SECTION}\n")
    if start == -1:
        text = text.rstrip("\n") + "\n\n" + section
    else:
        nxt = text.find("\n## ", start + len(SECTION) + 1)
        text = text[:start + 1] + section + (text[nxt:] if nxt != -1 else "")
    RESULTS.write_text(text)


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
    parser.add_argument("--capacity-seconds", type=float, default=15.0)
    parser.add_argument("--reload-every", type=float, default=5.0)
    parser.add_argument("--bad-every", type=float, default=60.0)
    parser.add_argument("--max-connections", type=int, default=256)
    parser.add_argument("--record", action="store_true", help="write '## Soak' in RESULTS.md")
    args = parser.parse_args(argv)

    home = Path(tempfile.mkdtemp(prefix="nbento-soak-"))
    env = dict(os.environ, NBENTO_HOME=str(home), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               TOKENIZERS_PARALLELISM="false", PYTHONUNBUFFERED="1",
               PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "runtime" / "_nbento_pkg"),
                                           os.environ.get("PYTHONPATH", "")]))
    os.environ.update({k: env[k] for k in ("NBENTO_HOME", "PYTHONPATH")})
    print("setup: running the notebook up to %nbento serve ...", file=sys.stderr, flush=True)
    folder = prepare(home)
    port = free_port()
    server = Server("nbento", [sys.executable, "-m", "runtime", "serve", str(folder), "--reload",
                               "--port", str(port)], port, WORK, env, WORK / "server.log")
    seconds = args.minutes * 60
    try:
        server.start()
        server.wait_ready({"texts": [TEXTS[0]]})
        assert server.proc is not None
        if args.rate:
            capacity, rate = float("nan"), args.rate
        else:
            print("measuring capacity ...", file=sys.stderr, flush=True)
            run_wrk(f"{server.base}/classify", SCENARIO / "post.lua", 3, 80)  # warm-up
            capacity = run_wrk(f"{server.base}/classify", SCENARIO / "post.lua",
                               args.capacity_seconds, 80).ok_rps
            rate = args.fraction * capacity
        print(f"soaking {args.minutes:g} min at {rate:.1f} req/s ...", file=sys.stderr, flush=True)
        load, events = asyncio.run(soak(port, server.proc.pid, folder / "service.py", rate,
                                        seconds, args))
        counts = server_counts(server.base)
    finally:
        server.stop()
        shutil.rmtree(home, ignore_errors=True)
    body, ok = report(load, events, seconds, capacity, rate, counts, args)
    print(body)
    if args.record:
        record(body, args)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
