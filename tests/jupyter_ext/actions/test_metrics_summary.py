"""Chart points from Prometheus text: window quantiles from bucket deltas, probes excluded."""

from __future__ import annotations

import math

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from jupyter_ext.actions.metrics_summary import (
    MetricsHistory,
    batching_settings,
    bucket_quantile,
    parse_metrics,
    small_batch_reason,
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
    # traffic before the first scrape is the baseline, never a "since start" point
    assert history.add(parse_metrics(generate_latest(reg).decode(), at=98.0)) is None
    for _ in range(10):
        latency.labels("classify").observe(0.005)
        requests.labels("classify", "200").inc()
    size.labels("clf", "predict").observe(4)
    first = history.add(parse_metrics(generate_latest(reg).decode(), at=100.0))
    assert first is not None
    assert first["requests"] == 10 and first["errors"] == 0
    assert first["requests_per_s"] == 5.0  # 10 requests in the 2 s interval
    assert first["mean_latency_ms"] == pytest.approx(5.0)
    assert first["p95_ms"] is not None and first["p95_ms"] <= 10.0
    assert first["mean_batch_size"] == 4.0

    for _ in range(10):  # the next window is slow: the chart must show it, not the average
        latency.labels("classify").observe(0.5)
        requests.labels("classify", "500").inc()
    size.labels("clf", "predict").observe(16)
    snap = parse_metrics(generate_latest(reg).decode(), at=102.0)
    second = history.add(snap)
    assert second is not None
    assert second["requests"] == 10 and second["errors"] == 10
    assert 100.0 < second["p50_ms"] <= 1000.0
    assert second["mean_batch_size"] == 16.0
    assert totals(snap)["requests"] == 30 and totals(snap)["mean_batch_size"] == 8.0
    # a second panel scraping 0.1 s later adds no point of its own
    assert history.add(parse_metrics(generate_latest(reg).decode(), at=102.1)) is None

    history.add(parse_metrics(generate_latest(reg).decode(), at=102.0 + 400))
    assert [p["t"] for p in history.points] == [502.0]  # older than 5 minutes: dropped


SETTINGS = {
    "runners": {"support_classifier": {
        "workers": 2, "methods": {"predict_proba": {"enabled": True, "max_batch_size": 32,
                                                    "max_latency_ms": 10.0}}}},
    "apis": {},
}


def test_batching_settings_name_each_batcher() -> None:
    assert batching_settings(SETTINGS) == [{"name": "support_classifier.predict_proba",
                                            "max_batch_size": 32, "max_latency_ms": 10.0,
                                            "workers": 2}]
    assert batching_settings(None) == []


def test_small_batches_get_a_one_line_reason() -> None:
    batchers = batching_settings(SETTINGS)
    one_client = {"mean_batch_size": 1.0, "requests_per_s": 50.0, "mean_latency_ms": 4.0,
                  "queue_depth": 0.0}
    assert "one client" in (small_batch_reason(one_client, batchers) or "")
    idle = dict(one_client, requests_per_s=400.0, mean_latency_ms=8.0)  # ~3 in flight
    assert "workers idle" in (small_batch_reason(idle, batchers) or "")
    full = dict(idle, mean_batch_size=24.0)
    assert small_batch_reason(full, batchers) is None
    single = [dict(batchers[0], max_batch_size=1)]
    assert "max_batch_size is 1" in (small_batch_reason(full, single) or "")
    assert small_batch_reason(None, batchers) is None
