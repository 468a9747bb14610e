"""The adaptive micro-batcher: rows from concurrent requests wait in one bounded queue and go to
the model together, so one forward pass serves many requests.

When to dispatch (see docs/batching.md): the batcher learns what a batch costs as it runs
(`cost(n) = a + b*n`, exponentially weighted least-squares fits of its wall time and of the CPU
its workers report), how fast rows arrive (a time-decayed rate) and how many cores the rest of
the machine leaves its workers (runtime.serving.cpu). With a free worker and rows queued it
dispatches at once when the queue holds `max_batch_size` rows, when no further row is expected
before the oldest row's deadline (`max_latency_ms`), or when the queue already holds the target
size (the least expected latency, leaving the workers or their cores headroom); otherwise it
waits for companions, never past the deadline. While every
worker is busy rows keep queuing (free batching); only a full queue (`max_queue_rows`) refuses.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

from runtime.errors import QueueFull, RequestTooLarge, RunnerClosed
from runtime.serving import cpu, metrics
from runtime.serving.estimators import ArrivalRate, CostModel
from runtime.serving.rows import RowCall, join_outputs, plan_call, split_output
from runtime.settings import BatchingConfig

logger = logging.getLogger("nbento.batching")

HEADROOM = 0.7
"""The load the target batch size aims to keep the workers (or their cores) under, when some
size can: near 1 a few percent more cost per batch multiplies the queueing delay, so a
slightly larger batch buys a steady p95 (docs/batching.md, "CPU-aware dispatch")."""

MIN_SERVERS = 0.25
"""The fewest cores a runner's workers are counted as having when the rest of the machine
keeps the cores busy (the batcher then sends its largest batches)."""

RunBatch = Callable[..., Awaitable[Any]]
"""`await run_batch(*args, **kwargs)`: the model call on one batch (every row argument joined)."""


@dataclass(eq=False)
class _Request:
    call: RowCall
    n: int
    key: Hashable
    arrival: float
    future: asyncio.Future[Any]
    parts: dict[int, Any] = field(default_factory=dict)
    pending: int = 0


@dataclass(eq=False)
class _Segment:
    request: _Request
    start: int
    end: int

    @property
    def size(self) -> int:
        return self.end - self.start


class AdaptiveBatcher:
    """Batches rows of concurrent `submit` calls for one runner method.

    `run_batch(*args, **kwargs)` runs the model (off the event loop; see runners.py);
    up to `concurrency` batches run at once (one per worker)."""

    def __init__(
        self,
        name: str,
        method: str,
        run_batch: RunBatch,
        config: BatchingConfig,
        *,
        batch_dim: int = 0,
        concurrency: int = 1,
        machine: cpu.MachineCpu | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        self.name = name
        self.method = method
        self.run_batch = run_batch
        self.config = config
        self.batch_dim = batch_dim
        self.concurrency = concurrency
        self.cost = CostModel()  # wall seconds of a batch, as the caller waits for it
        self.cpu_cost = CostModel()  # CPU-seconds of a batch, where workers report them
        self._own_cpu = ArrivalRate(tau=1.0)  # cores this batcher's batches keep busy
        self.machine = machine or cpu.machine_cpu()
        self.arrivals = ArrivalRate(tau=max(0.1, 20 * config.max_latency_ms / 1000))
        self._queue: deque[_Segment] = deque()
        self.queued_rows = 0
        self.inflight = 0
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._running: set[asyncio.Task[None]] = set()
        self._closing = False
        self._arrived = 0  # submissions so far; tells a fruitful wait from a stalled one
        # Plain counters for status pages and tests (the Prometheus metrics are process-wide).
        self.batches = 0
        self.rows_done = 0
        self.rejected = 0
        self.last_wait = 0.0
        self.max_batch_seen = 0
        labels = {"runner": name, "method": method}
        self._m_depth = metrics.QUEUE_DEPTH.labels(**labels)
        self._m_size = metrics.BATCH_SIZE.labels(**labels)
        self._m_wait = metrics.BATCH_WAIT.labels(**labels)
        self._m_compute = metrics.BATCH_COMPUTE.labels(**labels)
        self._m_rejected = metrics.REJECTED.labels(**labels)

    # -- public -----------------------------------------------------------------------------

    async def submit(
        self, rows: Any, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None
    ) -> Any:
        """`submit_call((rows, *args), kwargs)`: queue `rows` and return the model's output
        for exactly these rows, in order."""
        return await self.submit_call((rows, *args), kwargs or {})

    async def submit_call(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Queue one call's rows and return the model's output for exactly these rows, in order.

        Every row argument (the first positional one, and any array, tensor, frame, sparse
        matrix or dict of arrays, positional or keyword: see `runtime.rows.calls`) is joined
        with other calls' along `batch_dim`; calls share a batch only when their other arguments
        are equal and their rows join cleanly."""
        call = plan_call(args, kwargs, self.batch_dim)
        n = call.rows
        if self._closing:
            raise RunnerClosed(
                f"runner '{self.name}' is shutting down; retry on another replica", 1.0
            )
        if n == 0:  # zero rows, zero outputs; models often refuse an empty batch (scikit-learn)
            slot, kind = call.slots[0]
            empty = call.args[slot] if isinstance(slot, int) else call.kwargs[slot]
            return kind.take(empty, 0, 0, self.batch_dim)
        limit = self.config.max_queue_rows
        if n > limit:
            raise RequestTooLarge(
                f"request holds {n} rows for {self.name}.{self.method}, more than the queue "
                f"bound max_queue_rows={limit}; send at most {limit} rows per request or raise "
                f"max_queue_rows in the runner config"
            )
        if self.queued_rows + n > limit:
            self.rejected += n
            self._m_rejected.inc(n)
            retry = self.retry_after()
            raise QueueFull(
                f"runner '{self.name}' queue is full ({self.queued_rows} rows waiting, bound "
                f"{limit}); retry in {retry:.1f}s",
                retry,
            )
        loop = asyncio.get_running_loop()
        now = time.monotonic()
        request = _Request(call, n, call.key, now, loop.create_future(), pending=n)
        step = self.config.max_batch_size
        for start in range(0, n, step):
            self._queue.append(_Segment(request, start, min(n, start + step)))
        self.queued_rows += n
        self._m_depth.set(self.queued_rows)
        self.arrivals.add(n, now)
        self._arrived += 1
        self._ensure_dispatcher()
        assert self._wakeup is not None
        self._wakeup.set()
        return await request.future

    def retry_after(self) -> float:
        """Seconds until the queue has drained, by the learned cost (at least 1)."""
        size = self.config.max_batch_size
        per_batch = self.cost.seconds(size) or self.config.max_latency_ms / 1000
        batches = math.ceil(self.queued_rows / size)
        return max(1.0, per_batch * batches / self.concurrency)

    def stats(self) -> dict[str, Any]:
        return {
            "queued_rows": self.queued_rows,
            "inflight": self.inflight,
            "batches": self.batches,
            "rows": self.rows_done,
            "mean_batch_size": self.rows_done / self.batches if self.batches else 0.0,
            "max_batch_size_seen": self.max_batch_seen,
            "last_wait_s": self.last_wait,
            "rejected_rows": self.rejected,
            "cost_a_s": self.cost.a,
            "cost_b_s": self.cost.b,
            "cpu_cost_a_s": self.cpu_cost.a,
            "cpu_cost_b_s": self.cpu_cost.b,
            "servers": self._servers(time.monotonic()),
            "arrival_rows_per_s": self.arrivals.rate(time.monotonic()),
        }

    async def aclose(self, timeout: float) -> None:
        """Take no new rows; dispatch what is queued without waiting for companions and let
        in-flight batches finish, up to `timeout` seconds. Rows still waiting then fail with
        RunnerClosed."""
        self._closing = True
        if self._task is None:
            return
        assert self._wakeup is not None
        self._wakeup.set()
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout)
        except TimeoutError:
            self._task.cancel()
            for task in list(self._running):
                task.cancel()
            error = RunnerClosed(f"runner '{self.name}' stopped before these rows ran", 1.0)
            while self._queue:
                self._fail(self._queue.popleft().request, error)
            for task in list(self._running):
                with contextlib.suppress(BaseException):
                    await task
        self.queued_rows = 0
        self._m_depth.set(0)

    # -- dispatch ---------------------------------------------------------------------------

    def _ensure_dispatcher(self) -> None:
        if self._task is None or self._task.done():
            self._wakeup = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(
                self._dispatch_loop(), name=f"batcher {self.name}.{self.method}"
            )

    async def _dispatch_loop(self) -> None:
        try:
            await self._dispatch_forever()
        except Exception as exc:  # a bug here must not leave callers waiting forever
            logger.exception("batcher %s.%s stopped", self.name, self.method)
            while self._queue:
                self._fail(self._queue.popleft().request, exc)
            self.queued_rows = 0
            self._m_depth.set(0)

    async def _dispatch_forever(self) -> None:
        wakeup = self._wakeup
        assert wakeup is not None
        while True:
            self._drop_cancelled()
            if not self._queue:
                if self._closing:
                    if self._running:
                        await asyncio.gather(*self._running, return_exceptions=True)
                    return
                wakeup.clear()
                await wakeup.wait()
                continue
            if self.inflight >= self.concurrency:
                wakeup.clear()
                await wakeup.wait()
                continue
            delay = self._delay(time.monotonic())
            if delay > 0:
                arrived = self._arrived
                wakeup.clear()
                try:
                    await asyncio.wait_for(wakeup.wait(), delay)
                    continue  # rows arrived or a batch finished: decide again
                except TimeoutError:
                    # Waited the time the rate promised and nobody came: the callers are
                    # probably all waiting on us (a closed loop), so stop waiting.
                    if self._arrived != arrived or self.inflight >= self.concurrency:
                        continue
            self._launch(self._take())

    def _delay(self, now: float) -> float:
        """Seconds to keep waiting for companions before dispatching (0: dispatch now)."""
        config = self.config
        n = self.queued_rows
        if self._closing or n >= config.max_batch_size:
            return 0.0
        remaining = self._queue[0].request.arrival + config.max_latency_ms / 1000 - now
        if remaining <= 0:
            return 0.0
        rate = self.arrivals.rate(now)
        if rate * remaining < 1.0:  # no companion expected before the deadline
            return 0.0
        target = self._target_rows(rate, now)
        if n >= target:
            return 0.0
        return min(remaining, (target - n) / rate)

    def _servers(self, now: float) -> float:
        """How many batches can run at full speed at once: `concurrency` workers, but no more
        than the cores the rest of the machine leaves them (the server's event loop, other
        runners, other processes: the busy cores less this batcher's own reported CPU).
        Without CPU reports (remote runners, test doubles) or a reading of the machine,
        `concurrency`."""
        servers = float(self.concurrency)
        if not self.cpu_cost.samples:
            return servers
        busy = self.machine.busy(now)
        if busy is None:
            return servers
        others = max(0.0, busy - self._own_cpu.rate(now))
        return max(MIN_SERVERS, min(servers, self.machine.cores - others))

    def _target_rows(self, rate: float, now: float | None = None) -> float:
        """The batch size with the least expected latency at `rate` rows/s among those that
        keep the load within HEADROOM, else among those under load 1 (see docs/batching.md):
        filling the batch takes `(n-1)/(2*rate)` on average, the batch runs `a + b*n` (wall
        time), and it queues for a server by the Allen-Cunneen approximation of a queue with
        `_servers()` servers at load `rate*work(n)/(n*servers)`, batches arriving as regularly
        as `n` Poisson rows make them; `work(n)` is the batch's CPU cost where workers report
        it, else its wall time. At a low rate that is one row (waiting costs more than it
        saves); near the limit of the workers or of the cores it is a size that leaves them
        headroom. With no size under load 1, `max_batch_size`."""
        servers = self._servers(time.monotonic() if now is None else now)
        work = self.cpu_cost if self.cpu_cost.samples else self.cost
        limit = self.config.max_batch_size
        room = HEADROOM * servers - rate * work.b  # n*room >= rate*a: load within HEADROOM
        if room > 0:
            smallest = max(1, math.ceil(rate * work.a / room))
            if smallest <= limit:
                found = self._least_latency(rate, servers, work, smallest, HEADROOM)
                if found is not None:
                    return float(found)
        found = self._least_latency(rate, servers, work, 1, 1.0)
        return float(limit if found is None else found)

    def _least_latency(
        self, rate: float, servers: float, work: CostModel, start: int, max_load: float
    ) -> int | None:
        """The n from `start` up with the least expected latency, its load at most `max_load`
        (and under 1)."""
        a, b = self.cost.a, self.cost.b
        power = math.sqrt(2.0 * (servers + 1)) - 1.0
        best_n, best = None, math.inf
        for n in range(start, self.config.max_batch_size + 1):
            fill = (n - 1) / (2.0 * rate)
            service = a + b * n
            if fill + service >= best:  # both grow with n: no larger batch can do better
                break
            load = rate * work.seconds(n) / (n * servers)
            if load > max_load or load >= 1.0:
                continue
            queueing = service * load**power / (servers * (1.0 - load)) / (2.0 * n)
            latency = fill + queueing + service
            if latency < best:
                best_n, best = n, latency
        return best_n

    def _drop_cancelled(self) -> None:
        while self._queue and self._queue[0].request.future.done():
            self.queued_rows -= self._queue.popleft().size
            self._m_depth.set(self.queued_rows)

    def _take(self) -> list[_Segment]:
        """Up to max_batch_size rows from the head of the queue, all with the head's key; the
        last segment is split when only part of it fits."""
        room = self.config.max_batch_size
        key = self._queue[0].request.key
        batch: list[_Segment] = []
        while self._queue and room > 0:
            segment = self._queue[0]
            if segment.request.future.done():
                self._queue.popleft()
                self.queued_rows -= segment.size
                continue
            if segment.request.key != key:
                break
            if segment.size > room:
                head = _Segment(segment.request, segment.start, segment.start + room)
                segment.start += room
                batch.append(head)
                self.queued_rows -= room
                break
            self._queue.popleft()
            batch.append(segment)
            room -= segment.size
            self.queued_rows -= segment.size
        self._m_depth.set(self.queued_rows)
        return batch

    def _launch(self, batch: list[_Segment]) -> None:
        if not batch:
            return
        self.inflight += 1
        task = asyncio.get_running_loop().create_task(self._execute(batch))
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _execute(self, batch: list[_Segment]) -> None:
        start = time.monotonic()
        wait = start - min(segment.request.arrival for segment in batch)
        sizes = [segment.size for segment in batch]
        total = sum(sizes)
        first = batch[0].request
        try:
            args, kwargs = first.call.join([s.request.call.slice(s.start, s.end) for s in batch])
            with cpu.metering() as meter:
                output = await self.run_batch(*args, **kwargs)
            pieces = split_output(output, sizes, self.batch_dim)
        except Exception as exc:  # one failing batch fails exactly its own requests
            for segment in batch:
                self._fail(segment.request, exc)
        else:
            done = time.monotonic()
            elapsed = done - start
            self.cost.add(total, elapsed)
            if meter.reported:
                self.cpu_cost.add(total, meter.seconds)
                self._own_cpu.add(meter.seconds, done)
            self._m_compute.observe(elapsed)
            for segment, piece in zip(batch, pieces, strict=True):
                self._deliver(segment, piece)
        finally:
            self.inflight -= 1
            self.batches += 1
            self.rows_done += total
            self.last_wait = wait
            self.max_batch_seen = max(self.max_batch_seen, total)
            self._m_size.observe(total)
            self._m_wait.observe(wait)
            if self._wakeup is not None:
                self._wakeup.set()

    def _deliver(self, segment: _Segment, piece: Any) -> None:
        request = segment.request
        if request.future.done():
            return
        request.parts[segment.start] = piece
        request.pending -= segment.size
        if request.pending == 0:
            ordered = [request.parts[start] for start in sorted(request.parts)]
            try:
                request.future.set_result(join_outputs(ordered, self.batch_dim))
            except Exception as exc:
                request.future.set_exception(exc)

    @staticmethod
    def _fail(request: _Request, exc: BaseException) -> None:
        if not request.future.done():
            request.future.set_exception(exc)



class Batchers:
    """The batchers of one owner: a runner's batchable methods, or one service generation's
    batchable APIs. The one place batchers are made (on first use, on the event loop), and
    the one place they are retuned, measured and closed."""

    def __init__(self, owner: str, *, concurrency: int = 1) -> None:
        self.owner = owner
        self.concurrency = concurrency
        self._by_method: dict[str, AdaptiveBatcher] = {}

    def get(
        self, method: str, run_batch: RunBatch, config: BatchingConfig, *, batch_dim: int = 0
    ) -> AdaptiveBatcher:
        """The batcher of `method`, made with these settings the first time it is asked for."""
        batcher = self._by_method.get(method)
        if batcher is None:
            batcher = self._by_method[method] = AdaptiveBatcher(
                self.owner, method, run_batch, config,
                batch_dim=batch_dim, concurrency=self.concurrency,
            )
        return batcher

    def values(self) -> list[AdaptiveBatcher]:
        return list(self._by_method.values())

    def retune(self, settings_for: Callable[[str], BatchingConfig]) -> None:
        """New settings (a reload changed the code's or the file's batching); running batchers
        use them from their next decision on."""
        for batcher in self._by_method.values():
            batcher.config = settings_for(batcher.method)

    @property
    def queued_rows(self) -> int:
        return sum(b.queued_rows for b in self._by_method.values())

    def stats(self) -> dict[str, dict[str, Any]]:
        return {method: b.stats() for method, b in self._by_method.items()}

    async def aclose(self, timeout: float) -> None:
        """Close every batcher (see `AdaptiveBatcher.aclose`); one that fails to close is
        logged, the others still close."""
        results = await asyncio.gather(
            *(b.aclose(timeout) for b in self._by_method.values()), return_exceptions=True
        )
        for result in results:
            if isinstance(result, BaseException):
                logger.warning("a batcher of %s did not close cleanly: %s", self.owner, result)
