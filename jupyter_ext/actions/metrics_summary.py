"""Turn a running server's `/metrics` (Prometheus text) into what the panel charts: request
latency p50/p95 and mean batch size over the last poll interval, kept for a few minutes.

Quantiles come from histogram bucket deltas between two scrapes, interpolated inside the
bucket the way Prometheus' `histogram_quantile` does, so the chart shows recent behaviour
rather than averages since the server started."""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

# Endpoint labels that are not API traffic (probes, scrapes, docs, unknown paths: see
# runtime/app.py) stay out of the latency chart and the request counts.
_INFRA_ENDPOINTS = frozenset({"livez", "readyz", "metrics", "status", "docs", "openapi", "other"})
HISTORY_SECONDS = 300.0


@dataclass
class Snapshot:
    """Cumulative counters of one scrape, summed over endpoints / runners."""

    at: float
    latency_buckets: dict[float, float] = field(default_factory=dict)  # le -> cumulative count
    latency_count: float = 0.0
    latency_sum: float = 0.0
    batch_count: float = 0.0
    batch_sum: float = 0.0
    requests: float = 0.0
    errors: float = 0.0
    rejected: float = 0.0
    queue_depth: float = 0.0


def _is_api_endpoint(labels: dict[str, str]) -> bool:
    endpoint = labels.get("endpoint", "")
    return endpoint not in _INFRA_ENDPOINTS and not endpoint.startswith("/")


def parse_metrics(text: str, at: float | None = None) -> Snapshot:
    """Read the nbento metric families out of a Prometheus text exposition."""
    snap = Snapshot(at=time.time() if at is None else at)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            name, labels, value = sample.name, sample.labels, float(sample.value)
            if name == "nbento_request_duration_seconds_bucket" and _is_api_endpoint(labels):
                le = math.inf if labels["le"] in ("+Inf", "inf") else float(labels["le"])
                snap.latency_buckets[le] = snap.latency_buckets.get(le, 0.0) + value
            elif name == "nbento_request_duration_seconds_count" and _is_api_endpoint(labels):
                snap.latency_count += value
            elif name == "nbento_request_duration_seconds_sum" and _is_api_endpoint(labels):
                snap.latency_sum += value
            elif name == "nbento_runner_batch_size_count":
                snap.batch_count += value
            elif name == "nbento_runner_batch_size_sum":
                snap.batch_sum += value
            elif name == "nbento_requests_total" and _is_api_endpoint(labels):
                snap.requests += value
                if labels.get("status", "").startswith("5"):
                    snap.errors += value
            elif name == "nbento_runner_rejected_total":
                snap.rejected += value
            elif name == "nbento_runner_queue_depth":
                snap.queue_depth += value
    return snap


def bucket_quantile(q: float, buckets: dict[float, float]) -> float | None:
    """Estimate quantile `q` from cumulative buckets {upper bound: count}; None if empty."""
    bounds = sorted(buckets)
    if not bounds:
        return None
    total = buckets[bounds[-1]]
    if total <= 0:
        return None
    rank = q * total
    lower, below = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if math.isinf(bound):
                return lower  # beyond the last finite bucket: report its bound
            inside = count - below
            if inside <= 0:
                return bound
            return lower + (bound - lower) * (rank - below) / inside
        lower, below = bound, count
    return lower


def window_sample(prev: Snapshot | None, cur: Snapshot) -> dict[str, Any]:
    """One chart point: what happened between two scrapes (or since start if no previous)."""
    def delta(a: float, b: float) -> float:
        return max(0.0, b - a)

    if prev is None:
        prev = Snapshot(at=cur.at)
    buckets = {
        le: delta(prev.latency_buckets.get(le, 0.0), count)
        for le, count in cur.latency_buckets.items()
    }
    p50 = bucket_quantile(0.5, buckets)
    p95 = bucket_quantile(0.95, buckets)
    batches = delta(prev.batch_count, cur.batch_count)
    rows = delta(prev.batch_sum, cur.batch_sum)
    return {
        "t": cur.at,
        "requests": delta(prev.requests, cur.requests),
        "errors": delta(prev.errors, cur.errors),
        "p50_ms": None if p50 is None else round(p50 * 1000, 3),
        "p95_ms": None if p95 is None else round(p95 * 1000, 3),
        "batches": batches,
        "mean_batch_size": round(rows / batches, 3) if batches else None,
        "queue_depth": cur.queue_depth,
    }


def totals(snap: Snapshot) -> dict[str, Any]:
    """Since-start figures for the Server section."""
    p50 = bucket_quantile(0.5, snap.latency_buckets)
    p95 = bucket_quantile(0.95, snap.latency_buckets)
    return {
        "requests": snap.requests,
        "errors": snap.errors,
        "rejected": snap.rejected,
        "p50_ms": None if p50 is None else round(p50 * 1000, 3),
        "p95_ms": None if p95 is None else round(p95 * 1000, 3),
        "mean_batch_size": round(snap.batch_sum / snap.batch_count, 3) if snap.batch_count else None,
        "queue_depth": snap.queue_depth,
    }


class MetricsHistory:
    """Chart points of one server over the last `HISTORY_SECONDS`."""

    def __init__(self, horizon: float = HISTORY_SECONDS) -> None:
        self.horizon = horizon
        self.last: Snapshot | None = None
        self.points: deque[dict[str, Any]] = deque()

    def add(self, snap: Snapshot) -> dict[str, Any]:
        point = window_sample(self.last, snap)
        self.last = snap
        self.points.append(point)
        while self.points and self.points[0]["t"] < snap.at - self.horizon:
            self.points.popleft()
        return point
