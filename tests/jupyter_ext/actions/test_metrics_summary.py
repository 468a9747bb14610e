"""Chart points from Prometheus text: window quantiles from bucket deltas, probes excluded."""

from __future__ import annotations

import math

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from jupyter_ext.actions.metrics_summary import (
    MetricsHistory,
    bucket_quantile,
    parse_metrics,
    totals,
)


def _registry() -> tuple[CollectorRegistry, Histogram, Histogram, Counter]:
    reg = CollectorRegistry()
    latency = Histogram("nbento_request_duration_seconds", "", ["endpoint"], registry=reg,
                        buckets=(0.01, 0.1, 1.0))
    size = Histogram("nbento_runner_batch_size", "", ["runner", "method"], registry=reg,
                     buckets=(1, 4, 16))
    requests = Counter("nbento_requests", "", ["endpoint", "status"], registry=reg)
    return reg, latency, size, requests


def test_bucket_quantile_interpolates_inside_the_bucket() -> None:
    buckets = {0.01: 0.0, 0.1: 10.0, 1.0: 10.0, math.inf: 10.0}
    assert bucket_quantile(0.5, buckets) == pytest.approx(0.055)
    assert bucket_quantile(0.5, {0.1: 0.0, math.inf: 0.0}) is None
    assert bucket_quantile(0.99, {0.1: 0.0, math.inf: 5.0}) == 0.1  # past the last bound


def test_window_points_follow_recent_traffic_and_skip_probes() -> None:
    reg, latency, size, requests = _registry()
    for _ in range(10):
        latency.labels("classify").observe(0.005)
        requests.labels("classify", "200").inc()
    for _ in range(50):
        latency.labels("readyz").observe(0.9)  # probes never reach the chart
        requests.labels("readyz", "503").inc()
    size.labels("clf", "predict").observe(4)
    history = MetricsHistory()
    first = history.add(parse_metrics(generate_latest(reg).decode(), at=100.0))
    assert first["requests"] == 10 and first["errors"] == 0
    assert first["p95_ms"] is not None and first["p95_ms"] <= 10.0
    assert first["mean_batch_size"] == 4.0

    for _ in range(10):  # the next window is slow: the chart must show it, not the average
        latency.labels("classify").observe(0.5)
        requests.labels("classify", "500").inc()
    size.labels("clf", "predict").observe(16)
    snap = parse_metrics(generate_latest(reg).decode(), at=102.0)
    second = history.add(snap)
    assert second["requests"] == 10 and second["errors"] == 10
    assert 100.0 < second["p50_ms"] <= 1000.0
    assert second["mean_batch_size"] == 16.0
    assert totals(snap)["requests"] == 20 and totals(snap)["mean_batch_size"] == 10.0

    history.add(parse_metrics(generate_latest(reg).decode(), at=102.0 + 400))
    assert [p["t"] for p in history.points] == [502.0]  # older than 5 minutes: dropped
