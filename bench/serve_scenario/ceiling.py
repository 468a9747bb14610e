"""In-process ceiling: embed + classify called directly at fixed batch sizes, no HTTP, no queue.

Run by serve_bench.py as a subprocess so its torch thread setting cannot leak into the driver.
Prints one JSON line: {"threads": T, "batches": {"16": items_per_s, "32": items_per_s},
"cpu_ms_per_item": {"16": ms, "32": ms}}.
"""

from __future__ import annotations

import argparse
import json
import time

from scenario_data import request_texts
from scenario_models import classify, fit_classifier, load_embedder, set_torch_threads


def measure(embedder: object, clf: object, batch: int, seconds: float) -> tuple[float, float]:
    """(items per second, CPU ms per item) over whole batches, after one warm-up batch. CPU per
    item is less sensitive than wall time to other work on a shared machine."""
    texts = request_texts(256)
    classify(embedder, clf, texts[:batch])
    done = 0
    start, cpu_start = time.perf_counter(), time.process_time()
    i = 0
    while time.perf_counter() - start < seconds:
        offset = (i * batch) % (len(texts) - batch)
        classify(embedder, clf, texts[offset : offset + batch])
        done += batch
        i += 1
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    return done / wall, 1000 * cpu / done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0, help="time per batch size")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--batch", type=int, action="append", help="batch sizes (default 16, 32)")
    args = parser.parse_args()
    set_torch_threads(args.threads)
    embedder = load_embedder()
    clf = fit_classifier(embedder)
    batches = args.batch or [16, 32]
    measured = {str(b): measure(embedder, clf, b, args.seconds) for b in batches}
    print(json.dumps({
        "threads": args.threads,
        "batches": {b: round(rate, 1) for b, (rate, _) in measured.items()},
        "cpu_ms_per_item": {b: round(cpu, 2) for b, (_, cpu) in measured.items()},
    }), flush=True)


if __name__ == "__main__":
    main()
