"""Open-loop steps on the MiniLM example: requests on a fixed schedule (not a closed loop that
waits for answers), one step per rate, from a fresh server. Prints, per step: answers, p50/p95/
p99 latency from the scheduled time, CPU ms per answer of the server's main process and of its
worker processes, the CPU other processes used meanwhile, and the embedder's batches (mean rows
per batch; the fixed and per-row cost the batcher had learned at the end of the step, in wall
time and in the workers' reported CPU; the servers it counted: workers, or the cores the rest of
the machine left them).

This is the load a service sees from many independent clients; it is where the batcher's
dispatch policy decides how much CPU a request costs (wrk's closed loop keeps the queue full,
so every policy sends full batches there). To compare two versions of the code, run this
script from a checkout of each, one after the other, on a quiet machine:

    .venv/bin/python bench/open_loop_steps.py                       # 195, 195, 135 req/s, 20 s
    .venv/bin/python bench/open_loop_steps.py --rates 100 150 200 --seconds 30

Setup as in bench/soak.py (the notebook in a real kernel, `nbento build-service`, then
`nbento serve FOLDER`), without reloads.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import time
from pathlib import Path

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from soak import SCENARIO, WORK, ProcessWatch, pct, run_loop, serve_settings, setup

sys.path.insert(0, str(SCENARIO))
from harness import Server, free_port
from open_loop import TEXTS, OpenLoop

RUNNER, METHOD = "support_embedder", "encode"


def batcher_stats(base: str) -> dict[str, float]:
    status = httpx.get(f"{base}/_nbento/status", timeout=10, trust_env=False).json()
    stats: dict[str, float] = status["runners"][RUNNER]["batchers"][METHOD]
    return stats


async def step(port: int, rate: float, seconds: float) -> OpenLoop:
    load = OpenLoop(port, rate, 256)
    await load.run(seconds, asyncio.get_running_loop().time())
    return load


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", type=float, nargs="+", default=[195.0, 195.0, 135.0])
    parser.add_argument("--seconds", type=float, default=20.0, help="per step")
    parser.add_argument("--set", dest="settings", action="append", default=[],
                        metavar="KEY=VALUE", help="passed on as `nbento serve --set KEY=VALUE`")
    args = parser.parse_args(argv)

    home, env, folder = setup("nbento-steps-")
    port = free_port()
    server = Server("nbento", [sys.executable, "-m", "runtime", "serve", str(folder),
                               "--port", str(port),
                               *serve_settings(args.settings)], port, WORK, env, WORK / "server.log")
    rows = []
    try:
        server.start()
        server.wait_ready({"texts": [TEXTS[0]]})
        assert server.proc is not None
        watch = ProcessWatch(server.proc.pid)
        for rate in args.rates:
            time.sleep(3.0)
            before, stats0 = watch.sample(0.0), batcher_stats(server.base)
            load = run_loop(step(port, rate, args.seconds))
            after, stats1 = watch.sample(args.seconds), batcher_stats(server.base)
            ok = [r.latency * 1000 for r in load.records if r.status == 200]
            main_s = after.cpu_main - before.cpu_main
            workers_s = after.cpu_workers - before.cpu_workers
            gen_s = after.cpu_generator - before.cpu_generator
            foreign = max(0.0, after.cpu_busy - before.cpu_busy - main_s - workers_s - gen_s)
            batches = stats1["batches"] - stats0["batches"]
            mean_batch = (stats1["rows"] - stats0["rows"]) / batches if batches else 0.0
            rows.append(
                f"| {rate:.0f} | {len(ok)} / {len(load.records)} | {pct(ok, 0.5):.0f} "
                f"| {pct(ok, 0.95):.0f} | {pct(ok, 0.99):.0f} "
                f"| {main_s * 1000 / max(1, len(ok)):.2f} "
                f"| {workers_s * 1000 / max(1, len(ok)):.2f} "
                f"| {foreign / args.seconds:.2f} | {mean_batch:.2f} "
                f"| {stats1['cost_a_s'] * 1000:.1f} / {stats1['cost_b_s'] * 1000:.1f} "
                f"| {stats1.get('cpu_cost_a_s', 0) * 1000:.1f} / "
                f"{stats1.get('cpu_cost_b_s', 0) * 1000:.1f} "
                f"| {stats1.get('servers', float('nan')):.2f} |")
            print(rows[-1], file=sys.stderr, flush=True)
    finally:
        server.stop()
        shutil.rmtree(home, ignore_errors=True)
    print(f"{args.seconds:g} s per step, {psutil.cpu_count()} cores, "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n")
    print("| req/s | OK / sent | p50 ms | p95 ms | p99 ms | main CPU ms per OK "
          "| workers CPU ms per OK | other processes, cores | rows per batch "
          "| learned a / b ms (wall) | learned a / b ms (CPU) | servers at the end |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
