"""Prometheus metrics of Kustos, in one dedicated registry (`REGISTRY`).

Owns the metric definitions, the store-reading collector for per-namespace gauges, and how
they are exposed: `start_metrics_server(port)`, a port of their own (the operator and the
standalone API server each start one), never the API port, which every caller can reach;
`render_metrics()` gives the exposition text (tests, tools). Imports nothing of Kustos but models,
so every layer may record into it.

Label policy: only low-cardinality, value-free labels — operation, outcome, rotator, result,
namespace. Secret names appear only when `KUSTOS_METRICS_PER_SECRET=1` (`per_secret`, from the
settings) asks for per-secret rotation gauges (names, never values or ARNs); the default is one
series per namespace.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from kustos.models.records import SecretRecord

__all__ = [
    "API_REQUESTS",
    "API_SECONDS",
    "AUDIT_CHAIN_LENGTH",
    "AUDIT_FAILURES",
    "AUDIT_VERIFY_FAILURES",
    "AUDIT_VERIFY_OK",
    "AUDIT_WRITE_SECONDS",
    "CONTENT_TYPE",
    "LEADER",
    "NOTIFICATIONS",
    "REGISTRY",
    "ROTATIONS",
    "ROTATION_SECONDS",
    "STORE_ERRORS",
    "StoreCollector",
    "observe_api",
    "observe_rotation",
    "register_store_collector",
    "render_metrics",
    "start_metrics_server",
]

log = logging.getLogger(__name__)
REGISTRY = CollectorRegistry(auto_describe=True)
CONTENT_TYPE = CONTENT_TYPE_LATEST
_FAST = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_SLOW = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)

API_REQUESTS = Counter(
    "kustos_api_requests",
    "Secrets Manager API requests.",
    ["operation", "outcome"],
    registry=REGISTRY,
)
API_SECONDS = Histogram(
    "kustos_api_request_seconds",
    "API request latency.",
    ["operation"],
    buckets=_FAST,
    registry=REGISTRY,
)
ROTATIONS = Counter(
    "kustos_rotations",
    "Rotations finished, by rotator and result.",
    ["rotator", "result"],
    registry=REGISTRY,
)
ROTATION_SECONDS = Histogram(
    "kustos_rotation_seconds",
    "Rotation duration, all four steps.",
    ["rotator"],
    buckets=_SLOW,
    registry=REGISTRY,
)
AUDIT_CHAIN_LENGTH = Gauge(
    "kustos_audit_chain_length", "Sequence number of the newest audit record.", registry=REGISTRY
)
AUDIT_WRITE_SECONDS = Histogram(
    "kustos_audit_write_seconds",
    "Time from record() to its durable commit.",
    buckets=_FAST,
    registry=REGISTRY,
)
AUDIT_FAILURES = Counter(
    "kustos_audit_write_failures",
    "Audit records that could not be made durable (requests refused).",
    registry=REGISTRY,
)
AUDIT_VERIFY_OK = Gauge(
    "kustos_audit_verify_ok",
    "1 when the last audit verification in this process passed, 0 when it found a break.",
    registry=REGISTRY,
)
AUDIT_VERIFY_FAILURES = Counter(
    "kustos_audit_verify_failures",
    "Audit verifications that found the log broken or tampered.",
    registry=REGISTRY,
)
LEADER = Gauge(
    "kustos_operator_leader",
    "1 while this operator replica holds the leader Lease.",
    registry=REGISTRY,
)
STORE_ERRORS = Counter(
    "kustos_store_errors", "Store operations that failed.", ["operation"], registry=REGISTRY
)
NOTIFICATIONS = Counter(
    "kustos_notifications",
    "Webhook notifications, by result (delivered, retried, failed, dropped).",
    ["result"],
    registry=REGISTRY,
)


def observe_api(operation: str, outcome: str, seconds: float) -> None:
    """One API request: `outcome` is "success" or the AWS error code."""
    API_REQUESTS.labels(operation, outcome).inc()
    API_SECONDS.labels(operation).observe(seconds)


def observe_rotation(rotator: str, result: str, seconds: float) -> None:
    """One finished rotation: `result` is succeeded | failed | abandoned."""
    ROTATIONS.labels(rotator, result).inc()
    ROTATION_SECONDS.labels(rotator).observe(seconds)


class StoreCollector(Collector):
    """Per-namespace secret gauges read from the store at scrape time (cached briefly)."""

    def __init__(
        self,
        list_secrets: Callable[[], list[SecretRecord]],
        cache_seconds: float = 15.0,
        per_secret: bool = False,
    ) -> None:
        self._list = list_secrets
        self._cache_seconds = cache_seconds
        self._cached: tuple[float, list[SecretRecord]] | None = None
        self._lock = threading.Lock()
        self._per_secret = per_secret

    def describe(self) -> list[GaugeMetricFamily]:
        """Nothing up front: without this, registering would run `collect` (and cache an
        empty store for `cache_seconds`) before the operator has reconciled anything."""
        return []

    def _records(self) -> list[SecretRecord]:
        with self._lock:
            if self._cached is None or time.monotonic() - self._cached[0] > self._cache_seconds:
                self._cached = (time.monotonic(), self._list())
            return self._cached[1]

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            records = self._records()
        except Exception:  # a scrape must not fail because the store is down
            STORE_ERRORS.labels("metrics scrape").inc()
            log.warning("metrics: cannot list secrets", exc_info=False)
            return
        now = datetime.now(UTC)
        count = GaugeMetricFamily("kustos_secrets", "Secrets in the store.", labels=["namespace"])
        since = GaugeMetricFamily(
            "kustos_secret_seconds_since_last_rotation_max",
            "Largest time since the last rotation (or creation) among rotation-enabled secrets.",
            labels=["namespace"],
        )
        until = GaugeMetricFamily(
            "kustos_secret_seconds_until_next_rotation_min",
            "Smallest time until a scheduled rotation (negative: overdue).",
            labels=["namespace"],
        )
        per_since = GaugeMetricFamily(
            "kustos_secret_seconds_since_last_rotation",
            "Per secret (opt-in).",
            labels=["namespace", "secret"],
        )
        per_until = GaugeMetricFamily(
            "kustos_secret_seconds_until_next_rotation",
            "Per secret (opt-in).",
            labels=["namespace", "secret"],
        )
        counts: dict[str, int] = {}
        oldest: dict[str, float] = {}
        soonest: dict[str, float] = {}
        for rec in records:
            counts[rec.namespace] = counts.get(rec.namespace, 0) + 1
            if rec.rotation_enabled:
                age = (now - (rec.last_rotated_at or rec.created_at)).total_seconds()
                oldest[rec.namespace] = max(age, oldest.get(rec.namespace, age))
                if self._per_secret:
                    per_since.add_metric([rec.namespace, rec.name], age)
            if rec.next_rotation_at is not None:
                left = (rec.next_rotation_at - now).total_seconds()
                soonest[rec.namespace] = min(left, soonest.get(rec.namespace, left))
                if self._per_secret:
                    per_until.add_metric([rec.namespace, rec.name], left)
        for family, values in ((count, counts), (since, oldest), (until, soonest)):
            for namespace, value in sorted(values.items()):
                family.add_metric([namespace], float(value))
            yield family
        if self._per_secret:
            yield per_since
            yield per_until


_collector: StoreCollector | None = None
_server_started = False


def register_store_collector(
    list_secrets: Callable[[], list[SecretRecord]], *, per_secret: bool = False
) -> StoreCollector:
    """(Re)register the store collector; the newest registration wins."""
    global _collector
    if _collector is not None:
        REGISTRY.unregister(_collector)
    _collector = StoreCollector(list_secrets, per_secret=per_secret)
    REGISTRY.register(_collector)
    return _collector


def render_metrics() -> bytes:
    """The exposition text of `REGISTRY` (serve with `CONTENT_TYPE`)."""
    return bytes(generate_latest(REGISTRY))


def start_metrics_server(port: int, addr: str = "0.0.0.0") -> bool:  # noqa: S104
    """Serve `REGISTRY` on http://addr:port/metrics in a daemon thread; port 0 disables.
    Returns False (and logs) when the port is taken: metrics never stop the operator."""
    global _server_started
    if port <= 0 or _server_started:
        return False
    try:
        start_http_server(port, addr=addr, registry=REGISTRY)
    except OSError as exc:
        log.warning("metrics: cannot listen on %s:%s: %s", addr, port, exc.strerror)
        return False
    _server_started = True
    return True
