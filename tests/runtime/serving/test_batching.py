"""AdaptiveBatcher on a real event loop with a synthetic model that records every batch."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import numpy as np
import pytest

from runtime.serving.batching import AdaptiveBatcher, QueueFull, RequestTooLarge
from runtime.serving.rows import BatchInputError, BatchOutputError
from runtime.settings import BatchingConfig

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Recorder:
    """A batchable 'model': doubles each row, remembers batch sizes, can be slowed or gated."""

    def __init__(self, delay: float = 0.0, output: str = "same") -> None:
        self.sizes: list[int] = []
        self.delay = delay
        self.output = output
        self.gate: asyncio.Event | None = None
        self.threads: set[int] = set()

    async def __call__(self, rows: Any, *args: Any, **kwargs: Any) -> Any:
        if self.gate is not None:
            await self.gate.wait()
        result = await asyncio.to_thread(self._compute, rows, kwargs.get("scale", 2))
        return result

    def _compute(self, rows: Any, scale: int) -> Any:
        self.threads.add(threading.get_ident())
        n = len(rows)
        self.sizes.append(n)
        if self.delay:
            time.sleep(self.delay)
        if any(
            isinstance(r, str) and r == "boom" for r in (rows if isinstance(rows, list) else [])
        ):
            raise ValueError("model exploded on 'boom'")
        doubled = rows * scale if isinstance(rows, np.ndarray) else [r * scale for r in rows]
        if self.output == "tuple":
            return (doubled, np.arange(n))
        if self.output == "dict":
            return {"value": doubled, "index": list(range(n))}
        if self.output == "scalar":
            return 42
        return doubled


def make(model: Recorder, **settings: Any) -> AdaptiveBatcher:
    config = BatchingConfig(**{"max_batch_size": 8, "max_latency_ms": 10.0, **settings})
    return AdaptiveBatcher("test", "double", model, config)


@pytest.mark.parametrize("n", [1, 5, 100])
async def test_rows_are_split_at_max_batch_size_and_reassembled_in_order(n: int) -> None:
    model = Recorder()
    batcher = make(model)
    assert await batcher.submit(list(range(n))) == [2 * i for i in range(n)]
    array = np.arange(n * 3, dtype=np.float32).reshape(n, 3)
    out = await batcher.submit(array)
    assert isinstance(out, np.ndarray) and out.shape == (n, 3)
    np.testing.assert_array_equal(out, array * 2)
    assert max(model.sizes) <= 8
    assert sum(model.sizes) == 2 * n
    await batcher.aclose(5)


async def test_tuple_and_dict_outputs_are_split_per_request() -> None:
    model = Recorder(output="tuple")
    batcher = make(model, max_batch_size=4)
    first, second = await asyncio.gather(batcher.submit([1, 2, 3]), batcher.submit([10, 20, 30]))
    assert first[0] == [2, 4, 6] and second[0] == [20, 40, 60]
    assert len(first[1]) == 3 and len(second[1]) == 3
    dict_batcher = make(Recorder(output="dict"), max_batch_size=4)
    out = await dict_batcher.submit([1, 2, 3, 4, 5, 6])
    assert out == {"value": [2, 4, 6, 8, 10, 12], "index": [0, 1, 2, 3, 0, 1]}
    await batcher.aclose(5)
    await dict_batcher.aclose(5)


async def test_concurrent_submissions_coalesce_while_the_model_is_busy() -> None:
    model = Recorder(delay=0.02)
    batcher = make(model, max_batch_size=32, max_latency_ms=5.0)
    results = await asyncio.gather(*(batcher.submit([i]) for i in range(64)))
    assert results == [[2 * i] for i in range(64)]
    assert max(model.sizes) > 1
    assert len(model.sizes) < 64
    assert batcher.stats()["mean_batch_size"] > 1
    await batcher.aclose(5)


async def test_extra_arguments_only_batch_with_equal_arguments() -> None:
    model = Recorder(delay=0.01)
    batcher = make(model)
    a, b = await asyncio.gather(
        batcher.submit([1, 2], kwargs={"scale": 3}), batcher.submit([1, 2], kwargs={"scale": 10})
    )
    assert a == [3, 6] and b == [10, 20]
    await batcher.aclose(5)


async def test_a_lone_request_at_idle_is_dispatched_without_waiting() -> None:
    batcher = make(Recorder(), max_latency_ms=500.0)
    for _ in range(3):
        await batcher.submit(["x"])
        await asyncio.sleep(0.05)
        # Generous bound: far below the 500 ms window the batcher would otherwise wait for.
        assert batcher.stats()["last_wait_s"] < 0.1
    await batcher.aclose(5)


async def test_a_lone_row_waits_for_companions_at_most_max_latency_ms() -> None:
    """The batcher has learned that a batch costs 0.3 s plus 2 ms a row and has just seen 60
    rows arrive, so it expects companions for the next row and would like a batch of ~20.
    A lone row then must still go to the model within max_latency_ms (30 ms), not wait for
    the companions that never come."""
    latency_s = 0.030
    waits: list[float] = []  # per batch: how long its oldest row waited

    async def fixed_cost_model(rows: list[float]) -> list[float]:
        waits.append(time.monotonic() - min(rows))  # each row is its own submit time
        await asyncio.sleep(0.3 + 0.002 * len(rows))
        return rows

    config = BatchingConfig(max_batch_size=64, max_latency_ms=latency_s * 1000)
    batcher = AdaptiveBatcher("test", "lone", fixed_cost_model, config)
    for n in (4, 48, 4, 48, 60):  # varied sizes teach the fixed cost; the last one the rate
        await batcher.submit([time.monotonic()] * n)
    learned = batcher.stats()
    assert learned["cost_a_s"] > 0.2, learned  # a big fixed cost: it wants bigger batches
    assert learned["arrival_rows_per_s"] * latency_s > 1, learned  # companions expected

    await batcher.submit([time.monotonic()])
    await batcher.aclose(5)

    # generous slack for a busy 2-core machine, yet far below 20x the deadline (600 ms)
    assert waits[-1] < latency_s + 0.1, waits


async def test_a_full_queue_refuses_with_retry_after_and_recovers() -> None:
    model = Recorder()
    model.gate = asyncio.Event()  # the model hangs until released: the queue can only fill
    batcher = make(model, max_batch_size=4, max_queue_rows=10)
    first = asyncio.ensure_future(batcher.submit([0, 1, 2, 3]))  # in flight, not queued
    await asyncio.sleep(0.05)
    queued = [asyncio.ensure_future(batcher.submit([i] * 5)) for i in range(2)]
    await asyncio.sleep(0.01)
    with pytest.raises(QueueFull) as refused:
        await batcher.submit([9])
    assert refused.value.retry_after >= 1
    assert "queue is full" in str(refused.value)
    assert batcher.stats()["rejected_rows"] == 1
    model.gate.set()
    assert await first == [0, 2, 4, 6]
    assert await asyncio.gather(*queued) == [[0] * 5, [2] * 5]
    assert await batcher.submit([7]) == [14]
    await batcher.aclose(5)


async def test_a_request_larger_than_the_queue_is_refused_clearly() -> None:
    batcher = make(Recorder(), max_queue_rows=10)
    with pytest.raises(RequestTooLarge, match="max_queue_rows=10"):
        await batcher.submit(list(range(11)))


async def test_aclose_drains_queued_and_inflight_batches() -> None:
    model = Recorder(delay=0.02)
    batcher = make(model, max_batch_size=4, max_latency_ms=1000.0)
    pending = [asyncio.ensure_future(batcher.submit([i])) for i in range(10)]
    await asyncio.sleep(0)
    await batcher.aclose(10)
    assert [p.result() for p in pending] == [[2 * i] for i in range(10)]
    with pytest.raises(QueueFull, match="shutting down"):
        await batcher.submit([1])


async def test_a_failing_batch_fails_only_its_own_requests() -> None:
    model = Recorder(delay=0.01)
    batcher = make(model, max_batch_size=2)
    results = await asyncio.gather(
        batcher.submit(["a"]),
        batcher.submit(["boom"]),
        batcher.submit(["c", "d"]),
        return_exceptions=True,
    )
    failed = [r for r in results if isinstance(r, Exception)]
    assert failed and all("exploded" in str(e) for e in failed)
    assert ["cc", "dd"] in results  # a later batch of its own still succeeds
    assert await batcher.submit(["z"]) == ["zz"]
    await batcher.aclose(5)


async def test_bad_rows_and_rowless_outputs_get_clear_errors() -> None:
    batcher = make(Recorder())
    with pytest.raises(BatchInputError, match="wrap a single item in a list"):
        await batcher.submit("just a string")
    rowless = make(Recorder(output="scalar"))
    with pytest.raises(BatchOutputError, match="returned int"):
        await rowless.submit([1, 2])
    await batcher.aclose(5)
    await rowless.aclose(5)


async def test_the_cost_model_learns_a_fixed_and_a_per_row_cost() -> None:
    batcher = make(Recorder())
    for rows, seconds in [(1, 0.011), (8, 0.018), (4, 0.014), (2, 0.012)] * 5:
        batcher.cost.add(rows, seconds)
    assert batcher.cost.a == pytest.approx(0.010, abs=1e-4)
    assert batcher.cost.b == pytest.approx(0.001, abs=1e-4)


async def test_one_row_batches_keep_the_learned_fixed_cost_instead_of_forgetting_it() -> None:
    """A trickle of one-row batches cannot separate the fixed from the per-row cost. Reading
    that as 'no fixed cost' made the batcher send one row at a time for ever, so it never saw
    varied sizes again; the model keeps the last shape it could fit (before any: a = b)."""
    cold = make(Recorder()).cost
    for _ in range(50):
        cold.add(1, 0.013)
    assert cold.a == pytest.approx(0.0065) and cold.b == pytest.approx(0.0065)
    assert not cold.fitted

    warm = make(Recorder()).cost
    for rows, seconds in [(1, 0.013), (8, 0.041), (4, 0.025), (32, 0.137)] * 5:  # a=9, b=4 ms
        warm.add(rows, seconds)
    assert warm.fitted and warm.a / warm.b == pytest.approx(9 / 4, rel=0.05)
    for _ in range(200):
        warm.add(1, 0.026)  # twice as slow now (contention), still one row at a time
    assert not warm.fitted
    # a fixed cost it learned from sizes that varied, not a = 0 (the shape is that of the last
    # fit, made while the old sizes faded out)
    assert warm.a > 2 * warm.b > 0
    assert warm.seconds(1) == pytest.approx(0.026, rel=0.01)  # scaled to today's cost


async def test_the_target_batch_grows_with_the_rate_up_to_what_the_workers_can_do() -> None:
    """MiniLM on one thread: 9 ms a batch plus 4 ms a row, two workers (the soak's model).
    A low rate gets one row at once; near the workers' limit the target is a batch that keeps
    their load under 1; past any batch's capacity, max_batch_size."""
    batcher = AdaptiveBatcher("test", "encode", Recorder(),
                              BatchingConfig(max_batch_size=32, max_latency_ms=10.0),
                              concurrency=2)
    for rows, seconds in [(1, 0.013), (8, 0.041), (4, 0.025), (32, 0.137)] * 5:
        batcher.cost.add(rows, seconds)
    targets = {rate: batcher._target_rows(rate) for rate in (20, 100, 150, 250, 400, 1000)}
    assert targets[20] == 1 and targets[100] == 1, targets
    assert targets[150] >= 2 and targets[250] > targets[150], targets
    assert 1 < targets[400] < 32, targets  # 2 x 32 / (9 + 4*32) ms = 467 rows/s at most
    for rate in (250, 400):  # every target keeps the load under 1
        n = targets[rate]
        assert rate * batcher.cost.seconds(int(n)) / (2 * n) < 1, (rate, n)
    assert targets[1000] == 32, targets


class Machine:
    """A stand-in for the machine's CPU reading: `busy` cores of `cores`."""

    def __init__(self, busy: float | None, cores: float = 2.0) -> None:
        self.cores = cores
        self._busy = busy

    def busy(self, now: float) -> float | None:
        return self._busy


def minilm_batcher(machine: Machine, *, cpu_reports: bool = True) -> AdaptiveBatcher:
    """Two workers of a model costing 9 ms a batch plus 4 ms a row, in wall time and (where
    workers report it) in CPU."""
    batcher = AdaptiveBatcher("test", "encode", Recorder(),
                              BatchingConfig(max_batch_size=32, max_latency_ms=10.0),
                              concurrency=2, machine=machine)  # type: ignore[arg-type]
    for rows, seconds in [(1, 0.013), (8, 0.041), (4, 0.025), (32, 0.137)] * 5:
        batcher.cost.add(rows, seconds)
        if cpu_reports:
            batcher.cpu_cost.add(rows, seconds)
    return batcher


async def test_a_load_near_the_limit_gets_a_batch_that_leaves_headroom() -> None:
    """At 110 rows/s one-row batches would keep two workers 71.5% busy: the least mean latency,
    but a few percent more cost per batch then multiplies the queueing. The target is the
    smallest size that keeps the load within 0.7."""
    batcher = minilm_batcher(Machine(0.0))
    assert batcher._target_rows(100) == 1  # load 0.65: one row at once
    n = batcher._target_rows(110)
    assert n == 2, n
    assert 110 * batcher.cpu_cost.seconds(int(n)) / (2 * n) <= 0.7


async def test_cores_busy_elsewhere_count_as_fewer_workers_and_make_bigger_batches() -> None:
    """Two workers on two cores are not two free servers when the server's event loop, other
    runners or other processes keep 1.2 cores busy: the batcher counts the 0.8 cores left
    (its own reported CPU is not 'elsewhere') and sends bigger batches, which cost less CPU
    per row. Without CPU reports from the workers (remote runners) it counts its workers."""
    idle = minilm_batcher(Machine(0.0))
    assert idle._servers(time.monotonic()) == 2.0
    busy = minilm_batcher(Machine(1.2))
    assert busy._servers(time.monotonic()) == pytest.approx(0.8)
    assert idle._target_rows(60) == 1
    assert busy._target_rows(60) >= 2, busy._target_rows(60)

    now = time.monotonic()
    busy._own_cpu.add(1.0, now)  # this batcher's batches: 1 core of the 1.2
    assert busy._servers(now) == pytest.approx(1.8, abs=0.01)

    assert minilm_batcher(Machine(1.2), cpu_reports=False)._servers(now) == 2.0
    assert minilm_batcher(Machine(None))._servers(now) == 2.0  # no reading of the machine
    assert minilm_batcher(Machine(5.0))._servers(now) == 0.25  # others take every core
    assert minilm_batcher(Machine(5.0))._target_rows(60) == 32


async def test_the_cpu_workers_report_is_learned_per_batch() -> None:
    from runtime.serving import cpu

    async def encode(rows: list[int]) -> list[int]:
        cpu.charge(0.002 + 0.001 * len(rows))  # what a worker reports with its answer
        await asyncio.sleep(0.005)
        return rows

    batcher = AdaptiveBatcher("cpu", "encode", encode, BatchingConfig(max_batch_size=8))
    assert await batcher.submit([1, 2]) == [1, 2]
    assert batcher.cpu_cost.samples == 1
    assert batcher.cpu_cost.seconds(2) == pytest.approx(0.004)
    assert batcher.cost.seconds(2) >= 0.005  # the wall time is learned apart
    assert batcher.stats()["cpu_cost_b_s"] > 0
    silent = AdaptiveBatcher("cpu", "encode", Recorder(), BatchingConfig(max_batch_size=8))
    await silent.submit([1])
    assert silent.cpu_cost.samples == 0 and silent.cost.samples == 1
    await batcher.aclose(5)
    await silent.aclose(5)


async def test_every_row_argument_is_batched_positional_or_keyword() -> None:
    import torch

    sizes: list[int] = []

    async def forward(*, input_ids: Any, attention_mask: Any, scale: int = 1) -> Any:
        sizes.append(int(input_ids.shape[0]))
        await asyncio.sleep(0.01)
        return {"logits": (input_ids * attention_mask * scale).float()}

    batcher = AdaptiveBatcher("tok", "forward", forward, BatchingConfig(max_batch_size=8))
    calls = [
        {"input_ids": torch.full((n, 4), i), "attention_mask": torch.ones(n, 4, dtype=torch.int64)}
        for i, n in enumerate([1, 2, 3, 1, 2, 3], start=1)
    ]
    results = await asyncio.gather(*(batcher.submit_call((), dict(c, scale=2)) for c in calls))
    for call, result in zip(calls, results, strict=True):
        assert torch.equal(result["logits"], (call["input_ids"] * 2).float())
    assert max(sizes) > 3 and sum(sizes) == 12  # calls shared batches, no row lost
    with pytest.raises(BatchInputError, match="different numbers of rows"):
        await batcher.submit_call((), {"input_ids": torch.ones(2, 4), "attention_mask": torch.ones(3, 4)})
    await batcher.aclose(5)


async def test_frames_batch_and_each_request_gets_its_index_back() -> None:
    import pandas as pd

    seen: list[pd.DataFrame] = []

    async def score(rows: pd.DataFrame) -> pd.Series:
        seen.append(rows)
        await asyncio.sleep(0.01)
        return rows["x"] * 10 + rows["label"].str.len()

    batcher = AdaptiveBatcher("frames", "score", score, BatchingConfig(max_batch_size=4))
    frames = [
        pd.DataFrame({"x": [1.0, 2.0], "label": ["a", "bb"]}, index=[7, 3]),
        pd.DataFrame({"x": [3.0, 4.0, 5.0], "label": ["ccc", "d", "ee"]}),
        pd.DataFrame({"x": [6.0], "label": ["f"]}, index=["p"]),  # a text index: own batch
    ]
    results = await asyncio.gather(*(batcher.submit(frame) for frame in frames))
    for frame, result in zip(frames, results, strict=True):
        pd.testing.assert_series_equal(result, frame["x"] * 10 + frame["label"].str.len())
    assert any(len(rows) > 2 for rows in seen)
    assert all(list(rows.columns) == ["x", "label"] for rows in seen)
    await batcher.aclose(5)
