"""In-process micro-benchmark of the AdaptiveBatcher with a synthetic model (no HTTP, no torch).

- idle: one caller, one row at a time; the batcher's overhead per request against calling the
  same model directly (what a lone request pays for batching).
- free model: 200 callers against a model that costs nothing; the batcher's own CPU per row.
- loaded model: 80 callers, model cost a + b*rows in a thread (sleep releases the GIL like torch);
  throughput against the model's ceiling at max_batch_size, latency percentiles, mean batch.

    python bench/batcher_bench.py [--record]      # --record rewrites "## Batcher" in RESULTS.md
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from runtime.serving.batching import AdaptiveBatcher  # noqa: E402
from runtime.settings import BatchingConfig  # noqa: E402


def model(fixed_s: float, per_row_s: float) -> Any:
    async def run_batch(rows: list[Any]) -> list[Any]:
        cost = fixed_s + per_row_s * len(rows)
        if cost:
            await asyncio.to_thread(time.sleep, cost)
        return rows

    return run_batch


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def idle(n: int = 2000) -> dict[str, Any]:
    run = model(0, 0)
    batcher = AdaptiveBatcher("bench", "idle", run, BatchingConfig(max_latency_ms=10))
    direct, batched, waits = [], [], []
    for _ in range(n):
        t = time.perf_counter()
        await run(["x"])
        direct.append(time.perf_counter() - t)
        t = time.perf_counter()
        await batcher.submit(["x"])
        batched.append(time.perf_counter() - t)
        waits.append(batcher.last_wait)
    await batcher.aclose(5)
    over = [b - d for b, d in zip(batched, direct, strict=True)]
    return {
        "scenario": "idle, 1 caller, model costs 0",
        "rows_s": n / sum(batched),
        "p50_ms": statistics.median(batched) * 1000,
        "p95_ms": pct(batched, 0.95) * 1000,
        "mean_batch": batcher.stats()["mean_batch_size"],
        "note": f"overhead vs direct call: p50 {statistics.median(over) * 1e6:.0f} us, "
        f"p99 {pct(over, 0.99) * 1e6:.0f} us; queue wait p50 {statistics.median(waits) * 1e6:.0f}"
        f" us, p99 {pct(waits, 0.99) * 1e6:.0f} us",
    }


async def load(
    label: str, callers: int, seconds: float, fixed_s: float, per_row_s: float, size: int
) -> dict[str, Any]:
    config = BatchingConfig(max_batch_size=size, max_latency_ms=10, max_queue_rows=100_000)
    batcher = AdaptiveBatcher("bench", label, model(fixed_s, per_row_s), config)
    latencies: list[float] = []
    stop = time.perf_counter() + seconds

    async def caller() -> None:
        while time.perf_counter() < stop:
            t = time.perf_counter()
            await batcher.submit(["x"])
            latencies.append(time.perf_counter() - t)

    began = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(callers)))
    elapsed = time.perf_counter() - began
    stats = batcher.stats()
    await batcher.aclose(5)
    row = {
        "scenario": label,
        "rows_s": len(latencies) / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p95_ms": pct(latencies, 0.95) * 1000,
        "mean_batch": stats["mean_batch_size"],
    }
    if fixed_s or per_row_s:
        ceiling = size / (fixed_s + per_row_s * size)
        row["note"] = (
            f"ceiling {ceiling:.0f} rows/s at batch {size}: {100 * row['rows_s'] / ceiling:.0f}%;"
            f" learned a={stats['cost_a_s'] * 1000:.1f} ms b={stats['cost_b_s'] * 1000:.2f} ms"
        )
    else:
        row["note"] = f"batcher CPU per row ~{1e6 / row['rows_s']:.0f} us (1 core, incl. callers)"
    return row


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--record", action="store_true")
    args = parser.parse_args()
    rows = [
        await idle(),
        await load("200 callers, model costs 0", 200, args.seconds, 0, 0, 32),
        await load("80 callers, model 15 ms + 1.5 ms/row", 80, args.seconds, 0.015, 0.0015, 32),
        await load("80 callers, model 5 ms + 0.2 ms/row", 80, args.seconds, 0.005, 0.0002, 32),
        await load("8 callers, model 5 ms + 0.2 ms/row", 8, args.seconds, 0.005, 0.0002, 32),
        await load("1 caller, model 5 ms + 0.2 ms/row", 1, args.seconds, 0.005, 0.0002, 32),
    ]
    lines = [
        "| scenario | rows/s | p50 ms | p95 ms | mean batch | notes |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['scenario']} | {r['rows_s']:.0f} | {r['p50_ms']:.2f} | {r['p95_ms']:.2f} | "
            f"{r['mean_batch']:.1f} | {r['note']} |"
        )
    table = "\n".join(lines)
    print(table)
    if args.record:
        record(table)


def record(table: str) -> None:
    """Replace the "## Batcher" section of bench/RESULTS.md (other sections untouched)."""
    path = ROOT / "bench" / "RESULTS.md"
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    section = (
        f"## Batcher\n\n`python bench/batcher_bench.py` ({when}; Python {platform.python_version()},"
        f" {platform.machine()}, 2 shared cores, load average {os.getloadavg()[0]:.1f};"
        f" max_batch_size 32, max_latency_ms 10; synthetic "
        f"model sleeping a + b*rows in a thread).\n\n{table}\n"
    )
    start = text.find("## Batcher\n")
    if start == -1:
        text = text.rstrip("\n") + "\n\n" + section
    else:
        end = text.find("\n## ", start + 1)
        text = text[:start] + section + (text[end + 1 :] if end != -1 else "")
    path.write_text(text)
    print(f"recorded in {path}")


if __name__ == "__main__":
    asyncio.run(main())
