"""In-process ceiling: embed + classify called directly at fixed batch sizes, no HTTP, no queue.

Three layouts of the same two cores: `--parallel 1 --threads 2` (one caller, torch using two
intra-op threads: issue 3's reference), `--parallel 2 --threads 1` (two Python threads of one
process, each running whole batches with one torch thread) and `--parallel 2 --threads 1
--processes` (two processes with one torch thread each, started together: "the limit" of
issue 12, what a server can at best reach on these cores).
Run by serve_bench.py as a subprocess so its torch thread setting cannot leak into the driver.
Prints one JSON line: {"threads": T, "parallel": P, "batches": {"16": items_per_s, ...},
"cpu_ms_per_item": {"16": ms, ...}}.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from typing import Any

from scenario_data import request_texts
from scenario_models import classify, fit_classifier, load_embedder, set_torch_threads


def _loop(embedder: Any, clf: Any, batch: int, seconds: float, threads: int, done: list[int]) -> None:
    set_torch_threads(threads)  # torch's intra-op thread count is kept per calling thread
    texts = request_texts(256)
    start, i = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        offset = (i * batch) % (len(texts) - batch)
        classify(embedder, clf, texts[offset : offset + batch])
        done.append(batch)
        i += 1


def measure(embedder: Any, clf: Any, batch: int, seconds: float, threads: int,
            parallel: int) -> tuple[float, float]:
    """(items per second, CPU ms per item) over whole batches from `parallel` callers, after one
    warm-up batch. CPU per item is less sensitive than wall time to other work on the machine."""
    classify(embedder, clf, request_texts(batch))
    done: list[int] = []
    start, cpu_start = time.perf_counter(), time.process_time()
    callers = [
        threading.Thread(target=_loop, args=(embedder, clf, batch, seconds, threads, done))
        for _ in range(parallel)
    ]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join()
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    items = sum(done)
    return items / wall, 1000 * cpu / max(items, 1)


def in_processes(args: argparse.Namespace) -> dict[str, Any]:
    """`args.parallel` copies of this script, one caller each, loaded first and then released
    together per batch size; items/s add up, CPU per item is their mean."""
    children = [
        subprocess.Popen(
            [sys.executable, __file__, "--child", "--threads", str(args.threads),
             "--seconds", str(args.seconds), *[f"--batch={b}" for b in args.batch]],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        for _ in range(args.parallel)
    ]
    try:
        for child in children:
            assert child.stdout is not None
            if child.stdout.readline().strip() != "ready":
                raise SystemExit("a ceiling child failed to load the models")
        for child in children:
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        results = [json.loads(child.communicate(timeout=600)[0].strip().splitlines()[-1])
                   for child in children]
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
    return {
        "batches": {b: round(sum(r["batches"][b] for r in results), 1) for b in results[0]["batches"]},
        "cpu_ms_per_item": {b: round(sum(r["cpu_ms_per_item"][b] for r in results) / len(results), 2)
                            for b in results[0]["cpu_ms_per_item"]},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0, help="time per batch size")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads per caller")
    parser.add_argument("--parallel", type=int, default=1, help="callers (Python threads)")
    parser.add_argument("--processes", action="store_true", help="callers are processes, not threads")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, action="append", help="batch sizes (default 16, 32)")
    args = parser.parse_args()
    args.batch = args.batch or [16, 32]
    if args.processes:
        data = in_processes(args)
        print(json.dumps({"threads": args.threads, "parallel": args.parallel, "processes": True,
                          **data}), flush=True)
        return
    set_torch_threads(args.threads)
    embedder = load_embedder()
    clf = fit_classifier(embedder)
    if args.child:  # loaded: wait until every sibling is, then measure together
        classify(embedder, clf, request_texts(max(args.batch)))
        print("ready", flush=True)
        sys.stdin.readline()
    measured = {str(b): measure(embedder, clf, b, args.seconds, args.threads, args.parallel)
                for b in args.batch}
    print(json.dumps({
        "threads": args.threads,
        "parallel": args.parallel,
        "batches": {b: round(rate, 1) for b, (rate, _) in measured.items()},
        "cpu_ms_per_item": {b: round(cpu, 2) for b, (_, cpu) in measured.items()},
    }), flush=True)


if __name__ == "__main__":
    main()
