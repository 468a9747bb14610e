"""Prometheus metrics, defined once. The HTTP layer counts requests; runners and batchers
record queue depth, batch sizes, wait and compute time."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)

REQUESTS = Counter(
    "nbento_requests_total", "HTTP requests by endpoint and status", ["endpoint", "status"]
)
REQUEST_LATENCY = Histogram(
    "nbento_request_duration_seconds", "HTTP request latency", ["endpoint"],
    buckets=_LATENCY_BUCKETS,
)
IN_PROGRESS = Gauge("nbento_requests_in_progress", "HTTP requests being served", ["endpoint"])

QUEUE_DEPTH = Gauge(
    "nbento_runner_queue_depth", "rows waiting to be batched", ["runner", "method"]
)
BATCH_SIZE = Histogram(
    "nbento_runner_batch_size", "rows per dispatched batch", ["runner", "method"],
    buckets=_BATCH_BUCKETS,
)
BATCH_WAIT = Histogram(
    "nbento_runner_batch_wait_seconds", "time the oldest row of a batch waited before dispatch",
    ["runner", "method"], buckets=_LATENCY_BUCKETS,
)
BATCH_COMPUTE = Histogram(
    "nbento_runner_batch_compute_seconds", "model time per batch", ["runner", "method"],
    buckets=_LATENCY_BUCKETS,
)
REJECTED = Counter(
    "nbento_runner_rejected_total", "rows refused because the queue was full", ["runner", "method"]
)
RELOADS = Counter("nbento_reloads_total", "service code reloads", ["result"])
RELOAD_CPU = Counter(
    "nbento_reload_cpu_seconds",
    "CPU time reloads spent importing, compiling and resolving settings (thread CPU time)",
)
# The split layout's API server, per runner replica it calls (runtime.serving.balancer).
REPLICA_CALLS = Counter(
    "nbento_runner_replica_calls_total",
    "runner calls this API server sent to each replica, by outcome (answered, unreachable)",
    ["runner", "replica", "outcome"],
)
REPLICA_OUTSTANDING = Gauge(
    "nbento_runner_replica_outstanding_rows",
    "rows this API server sent to a runner replica and has no answer for yet",
    ["runner", "replica"],
)
