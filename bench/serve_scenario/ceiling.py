"""In-process ceiling: embed + classify called directly at fixed batch sizes, no HTTP, no queue.

Run by serve_bench.py as a subprocess so its torch thread setting cannot leak into the driver.
Prints one JSON line: {"threads": T, "batches": {"16": items_per_s, "32": items_per_s}}.
"""

from __future__ import annotations

import argparse
import json
import time

from scenario_data import request_texts
from scenario_models import classify, fit_classifier, load_embedder, set_torch_threads


def measure(embedder: object, clf: object, batch: int, seconds: float) -> float:
    """Items per second over whole batches, after one warm-up batch."""
    texts = request_texts(256)
    classify(embedder, clf, texts[:batch])
    done = 0
    start = time.perf_counter()
    i = 0
    while time.perf_counter() - start < seconds:
        offset = (i * batch) % (len(texts) - batch)
        classify(embedder, clf, texts[offset : offset + batch])
        done += batch
        i += 1
    return done / (time.perf_counter() - start)


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
    result = {str(b): round(measure(embedder, clf, b, args.seconds), 1) for b in batches}
    print(json.dumps({"threads": args.threads, "batches": result}), flush=True)


if __name__ == "__main__":
    main()
