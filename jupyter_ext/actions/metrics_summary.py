"""Turn a running server's `/metrics` (Prometheus text) into what the panel charts: request
latency p50/p95, requests per second and mean rows per batch over each interval between two
scrapes, kept for a few minutes; plus the batcher's effective settings and, when batches stay
small, the likely reason in one line.

Quantiles come from histogram bucket deltas between two scrapes, interpolated inside the
bucket the way Prometheus' `histogram_quantile` does, so the chart shows recent behaviour
rather than averages since the server started. The first scrape is only the baseline: a point
is what happened between two scrapes, never a since-start total."""

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
# Scrapes closer together than this (two panels polling at once) do not make a point of their
# own: a 20 ms interval would turn one request into "50 requests/s".
MIN_INTERVAL_S = 1.0


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


def window_sample(prev: Snapshot, cur: Snapshot) -> dict[str, Any]:
    """One chart point: what happened between two scrapes, as rates and per-batch figures."""
    def delta(a: float, b: float) -> float:
        return max(0.0, b - a)

    interval = max(cur.at - prev.at, 1e-9)
    buckets = {
        le: delta(prev.latency_buckets.get(le, 0.0), count)
        for le, count in cur.latency_buckets.items()
    }
    p50 = bucket_quantile(0.5, buckets)
    p95 = bucket_quantile(0.95, buckets)
    batches = delta(prev.batch_count, cur.batch_count)
    rows = delta(prev.batch_sum, cur.batch_sum)
    requests = delta(prev.requests, cur.requests)
    return {
        "t": cur.at,
        "interval_s": round(interval, 3),
        "requests": requests,
        "requests_per_s": round(requests / interval, 2),
        "errors": delta(prev.errors, cur.errors),
        "p50_ms": None if p50 is None else round(p50 * 1000, 3),
        "p95_ms": None if p95 is None else round(p95 * 1000, 3),
        "batches": batches,
        "mean_batch_size": round(rows / batches, 3) if batches else None,
        "mean_latency_ms": (
            round(delta(prev.latency_sum, cur.latency_sum) / requests * 1000, 3)
            if requests and cur.latency_count > prev.latency_count else None
        ),
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

    def add(self, snap: Snapshot) -> dict[str, Any] | None:
        """The point for the interval since the previous scrape; None for the first scrape
        (the baseline) and for a scrape too close to the previous one."""
        if self.last is None:
            self.last = snap
            return None
        if snap.at - self.last.at < MIN_INTERVAL_S:
            return None
        point = window_sample(self.last, snap)
        self.last = snap
        self.points.append(point)
        while self.points and self.points[0]["t"] < snap.at - self.horizon:
            self.points.popleft()
        return point


def batching_settings(settings: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The batchers' effective settings from `/_nbento/status` `settings`: one entry per
    batchable runner method and batchable API, with max batch rows, max latency and workers."""
    found: list[dict[str, Any]] = []
    for name, runner in sorted(((settings or {}).get("runners") or {}).items()):
        for method, batching in sorted((runner.get("methods") or {}).items()):
            if batching.get("enabled", True):
                found.append({
                    "name": f"{name}.{method}",
                    "max_batch_size": batching.get("max_batch_size"),
                    "max_latency_ms": batching.get("max_latency_ms"),
                    "workers": runner.get("workers"),
                })
    for name, batching in sorted(((settings or {}).get("apis") or {}).items()):
        if batching.get("enabled", True):
            found.append({
                "name": name,
                "max_batch_size": batching.get("max_batch_size"),
                "max_latency_ms": batching.get("max_latency_ms"),
                "workers": None,
            })
    return found


def small_batch_reason(point: dict[str, Any] | None, batchers: list[dict[str, Any]]) -> str | None:
    """Why the last interval's batches stayed small, in one line (None: they did not, or
    there was no traffic to judge)."""
    if not point or not point.get("mean_batch_size") or not batchers:
        return None
    mean = float(point["mean_batch_size"])
    largest = max(int(b.get("max_batch_size") or 1) for b in batchers)
    if largest <= 1:
        return "max_batch_size is 1, so every batch holds one row"
    if mean >= max(2.0, largest / 4):
        return None
    # Little's law: requests in flight = arrival rate x time in the server
    in_flight = float(point.get("requests_per_s") or 0.0) * float(point.get("mean_latency_ms") or 0.0) / 1000
    if in_flight < 1.5:
        return (f"about {max(in_flight, 1.0):.0f} request in flight (one client): each request "
                f"is dispatched at once, there is nothing to join it with")
    if not point.get("queue_depth"):
        return ("workers idle, so each request is dispatched at once: the model keeps up with "
                "this load (batches grow when requests arrive faster than it computes)")
    return None
