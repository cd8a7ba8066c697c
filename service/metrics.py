"""Prometheus metrics of the service, and the `/metrics` exposition (multi-process aware).

With several worker processes, set `PROMETHEUS_MULTIPROC_DIR` (`nba serve` does it for
you) so that every worker writes its samples there and `/metrics` adds them up.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

LATENCY_BUCKETS = (0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)

REQUEST_SECONDS = Histogram(
    "nba_http_request_duration_seconds",
    "HTTP request latency by route template, method and status",
    ["route", "method", "status"],
    buckets=LATENCY_BUCKETS,
)
DECISIONS = Counter(
    "nba_decisions_total",
    "Decisions served, by touchpoint, shown action and the model role that served them",
    ["touchpoint", "action", "role"],
)
FALLBACKS = Counter(
    "nba_fallbacks_total",
    "Non-personalised or degraded answers, by reason (unknown_customer, no_profiling, "
    "feature_store_unavailable, decision_log_unavailable)",
    ["reason"],
)
FEATURE_READ_SECONDS = Histogram(
    "nba_feature_read_seconds",
    "Latency of one online feature read from Feast",
    buckets=LATENCY_BUCKETS,
)
DEPENDENCY_UP = Gauge(
    "nba_dependency_up",
    "1 while calls to a dependency (feature_store, decision_log) go through, 0 while failing fast",
    ["dependency"],
    multiprocess_mode="liveall",
)
MODEL_VERSION = Gauge(
    "nba_model_version",
    "Registered model version each worker serves, by role (champion, challenger)",
    ["role"],
    multiprocess_mode="liveall",
)
MODEL_RELOADS = Counter(
    "nba_model_reloads_total",
    "Model loads after start-up, by result (swapped, refused, registry_unreachable)",
    ["result"],
)


def exposition() -> tuple[bytes, str]:
    """The current samples in the Prometheus text format, and its content type."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST
