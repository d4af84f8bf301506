"""Notifications to a real local HTTP server (fails first, then succeeds), and metrics."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from kustos import metrics
from kustos.crypto import Keyring
from kustos.errors import InvalidParameterError
from kustos.models.audit import AuditEvent
from kustos.models.identity import Principal
from kustos.models.records import SecretRecord
from kustos.services.audit.notify import Notifier, load_subscribers
from kustos.services.audit.service import AuditService
from kustos.store import SqlStore
from kustos.store.audit import AuditStore


class Hook:
    """A webhook receiver on 127.0.0.1 that answers 503 to the first `fail` requests."""

    def __init__(self, fail: int) -> None:
        self.fail = fail
        self.received: list[tuple[dict[str, str], dict[str, Any]]] = []
        self.attempts = 0
        self.gate = threading.Event()  # cleared: requests wait before they are answered
        self.gate.set()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                hook.gate.wait(30)
                hook.attempts += 1
                if hook.attempts <= hook.fail:
                    self.send_response(503)
                else:
                    hook.received.append((dict(self.headers), body))
                    self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook/TOKEN-IN-PATH"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait(self, n: int, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.received) < n and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(self.received) >= n, f"got {len(self.received)} after {self.attempts} tries"


@pytest.fixture
def hook() -> Iterator[Hook]:
    h = Hook(fail=2)
    yield h
    h.server.shutdown()


@pytest.fixture
def audit(tmp_path: Path) -> Iterator[AuditService]:
    store = SqlStore(f"sqlite:///{tmp_path / 'k.db'}")
    service = AuditService(AuditStore(store.engine), "test", lambda: Keyring.generate())
    yield service
    service.close()
    store.close()


def event(name: str, **kw: Any) -> AuditEvent:
    return AuditEvent(
        event_name=name,
        principal=Principal.user("alice"),
        namespace="team-a",
        secret_name="prod/db",
        **kw,
    )


def config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "notify.yaml"
    path.write_text(text)
    return path


def test_retried_until_delivered_never_blocking(
    hook: Hook, audit: AuditService, tmp_path: Path, caplog: Any
) -> None:
    path = config(
        tmp_path,
        f"""
- url: {hook.url}
  events: [DeleteSecret, AccessDenied]
  secretHeader: {{name: X-Kustos-Token, env: HOOK_TOKEN}}
- url: {hook.url}
  events: [RotationFailed]
  format: slack
""",
    )
    # the header's value from the settings' snapshot of the environment, named by the file
    notifier = Notifier(load_subscribers(path, {"HOOK_TOKEN": "s3cr3t-header"}), backoff=0.05)
    audit.add_listener(notifier.offer)

    def record_all() -> None:
        audit.record(event("DeleteSecret"))
        audit.record(event("GetSecretValue"))  # not subscribed
        audit.record(event("GetSecretValue", error_code="AccessDeniedException"))
        audit.record(event("RotationFailed", error_code="RotationFailed", error_message="step 2"))

    hook.gate.clear()  # the receiver holds every request: a caller that delivered would wait
    recorder = threading.Thread(target=record_all)
    recorder.start()
    recorder.join(20)
    assert not recorder.is_alive()  # delivery and its retries are elsewhere
    assert hook.received == []
    hook.gate.set()
    hook.wait(3)
    notifier.close()
    assert hook.attempts == 5  # two 503s, then three deliveries
    (h1, first), (_, second), (h3, third) = hook.received
    assert first["eventName"] == "DeleteSecret" and first["eventSource"]
    assert h1["X-Kustos-Token"] == "s3cr3t-header"
    assert second["errorCode"] == "AccessDeniedException"
    assert set(third) == {"text"}
    assert third["text"].startswith("*RotationFailed* on `team-a/prod/db` by `alice`")
    assert "RotationFailed: step 2" in third["text"]
    assert "X-Kustos-Token" not in h3
    assert "TOKEN-IN-PATH" not in caplog.text  # webhook URLs carry tokens: never logged


def test_full_queue_drops_instead_of_blocking(tmp_path: Path) -> None:
    path = config(tmp_path, "- {url: 'http://127.0.0.1:9/', events: [X]}\n")
    notifier = Notifier(load_subscribers(path), max_queue=1, attempts=1)
    notifier._thread = threading.Thread(target=lambda: None)  # no consumer: the queue fills
    from kustos.services.audit.event import to_row

    rows = [to_row(event("X"), "test") for _ in range(5)]
    before = metrics.NOTIFICATIONS.labels("dropped")._value.get()
    started = time.perf_counter()
    notifier.offer(rows)
    assert time.perf_counter() - started < 5.0  # a blocking offer would never return
    assert metrics.NOTIFICATIONS.labels("dropped")._value.get() - before >= 3


@pytest.mark.parametrize(
    "text", ["{}", "- {url: x}", "- {url: x, events: [A], format: xml}", ":::"]
)
def test_bad_config_is_refused(tmp_path: Path, text: str) -> None:
    with pytest.raises(InvalidParameterError):
        load_subscribers(config(tmp_path, text))


def test_metrics_render_without_values(audit: AuditService) -> None:
    from datetime import UTC, datetime, timedelta

    now = datetime.now(UTC)
    records = [
        SecretRecord(
            "arn:1",
            "team-a",
            "db",
            now - timedelta(days=3),
            now,
            rotation_enabled=True,
            last_rotated_at=now - timedelta(days=2),
            next_rotation_at=now + timedelta(hours=5),
        ),
        SecretRecord("arn:2", "team-a", "cache", now, now),
    ]
    metrics.register_store_collector(lambda: records)
    audit.record(event("GetSecretValue"))
    metrics.observe_api("GetSecretValue", "success", 0.004)
    metrics.observe_rotation("postgresql", "succeeded", 3.2)
    text = metrics.render_metrics().decode()
    assert 'kustos_secrets{namespace="team-a"} 2.0' in text
    since = next(
        line
        for line in text.splitlines()
        if line.startswith("kustos_secret_seconds_since_last_rotation_max{")
    )
    assert float(since.split()[-1]) == pytest.approx(2 * 86400, rel=0.01)
    assert 'kustos_secret_seconds_until_next_rotation_min{namespace="team-a"}' in text
    assert 'kustos_api_requests_total{operation="GetSecretValue",outcome="success"}' in text
    assert 'kustos_rotations_total{result="succeeded",rotator="postgresql"}' in text
    assert "kustos_audit_chain_length " in text and "kustos_audit_write_seconds_bucket" in text
    assert "arn:1" not in text and 'secret="db"' not in text  # no ARNs, names only opt-in


def test_dashboard_queries_only_metrics_that_exist() -> None:
    import re

    metrics.register_store_collector(lambda: [])
    metrics.observe_api("GetSecretValue", "success", 0.001)
    metrics.observe_rotation("generated", "succeeded", 1.0)
    metrics.NOTIFICATIONS.labels("delivered").inc(0)
    metrics.STORE_ERRORS.labels("read a secret").inc(0)
    exposed = set(re.findall(r"^# TYPE (\w+) ", metrics.render_metrics().decode(), re.M))
    series = {re.sub(r"_(bucket|total)$", "", name) for name in exposed} | exposed
    path = Path(__file__).resolve().parents[2] / "manifests" / "grafana-dashboard.json"
    dashboard = json.loads(path.read_text())
    used = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"kustos_\w+", target["expr"])
    }
    assert used, "the dashboard queries nothing"
    for name in used:
        base = re.sub(r"_(bucket|total)$", "", name)
        assert base in series, f"dashboard queries {name}, which Kustos does not expose"
