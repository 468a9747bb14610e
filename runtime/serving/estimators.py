"""Online estimates the batcher's dispatch policy decides with: what a batch of n rows costs,
and how fast rows arrive. Both forget the past quickly, so they follow a model whose speed
changes with CPU contention and traffic that comes in waves."""

from __future__ import annotations

import math
import time


class CostModel:
    """`seconds(n) = a + b*n`, fitted by exponentially weighted least squares on recent batches,
    so it follows the model as load (and CPU contention) changes.

    The fit needs batch sizes that vary. While they do not (a steady trickle of one-row
    batches), the intercept cannot be told from the slope, so the model keeps the shape `a/b`
    of its last fit that could (before any: `a = b`, a batch of one row costing twice a row)
    and scales it to what batches cost now. Assuming `a = 0` instead would be a trap: a
    batcher that believes batching saves nothing never batches, so it never learns otherwise."""

    PRIOR_RATIO = 1.0  # a/b before sizes have varied

    def __init__(self, decay: float = 0.95) -> None:
        self.decay = decay
        self._s = self._sn = self._st = self._snn = self._snt = 0.0
        self.a = 0.0
        self.b = 0.0
        self.samples = 0
        self.fitted = False  # the current a, b come from sizes that varied
        self._ratio = self.PRIOR_RATIO

    def add(self, rows: int, seconds: float) -> None:
        d = self.decay
        self._s = self._s * d + 1.0
        self._sn = self._sn * d + rows
        self._st = self._st * d + seconds
        self._snn = self._snn * d + rows * rows
        self._snt = self._snt * d + rows * seconds
        self.samples += 1
        mean_n, mean_t = self._sn / self._s, self._st / self._s
        var_n = self._snn / self._s - mean_n * mean_n
        slope = (self._snt / self._s - mean_n * mean_t) / var_n if var_n > 0.25 else 0.0
        intercept = mean_t - slope * mean_n
        self.fitted = slope > 0 and intercept >= 0
        if self.fitted:
            self.a, self.b = intercept, slope
            self._ratio = intercept / slope
        else:  # sizes too alike, or noise tilted the line: the last good shape, scaled
            self.b = mean_t / (self._ratio + max(mean_n, 1.0))
            self.a = self._ratio * self.b

    def seconds(self, rows: int) -> float:
        return self.a + self.b * rows


class ArrivalRate:
    """An amount per second (rows; CPU-seconds, i.e. cores), decayed with time constant `tau`,
    so an arrival rate falls to ~0 within a second of idleness (a lone request after quiet is
    then dispatched at once)."""

    def __init__(self, tau: float = 0.2) -> None:
        self.tau = tau
        self._rate = 0.0
        self._at = time.monotonic()

    def add(self, amount: float, now: float) -> None:
        self._rate = self.rate(now) + amount / self.tau
        self._at = now

    def rate(self, now: float) -> float:
        return self._rate * math.exp(-max(0.0, now - self._at) / self.tau)
