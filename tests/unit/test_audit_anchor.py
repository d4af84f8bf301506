"""The audit chain anchored outside the store: truncation, deleted digests and an emptied log
are named by verify; the publisher only moves forward and never over a loss. The store is a
real SQLite file; the AuditAnchor object is an in-memory stand-in with the apiserver's
resourceVersion rule (tests/integration/test_audit_anchor.py runs the real one)."""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from tests.kube_helpers import present

from kustos.crypto import Keyring
from kustos.errors import ConflictError
from kustos.kube.audit_anchor import StoredAnchor
from kustos.models.audit import AuditEvent
from kustos.models.identity import Principal
from kustos.services.audit.anchor import (
    Anchor,
    AnchorPublisher,
    FileWitness,
    anchor_of,
    read_file_witness,
)
from kustos.services.audit.service import AuditService
from kustos.services.audit.verify import VerifyReport
from kustos.store import SqlStore
from kustos.store.audit import AuditStore

KEYRING = Keyring.generate()
T0 = datetime(2026, 1, 1, tzinfo=UTC)
WHO = Principal.service_account("team-a", "app")


class FakeGateway:
    """An AuditAnchor object: status plus a resourceVersion that every write bumps."""

    ref = "AuditAnchor kustos-system/kustos-audit"

    def __init__(self) -> None:
        self.obj: StoredAnchor | None = None
        self.writes = 0

    def read(self) -> StoredAnchor | None:
        return self.obj

    def create(self) -> StoredAnchor:
        if self.obj is not None:
            raise ConflictError("exists")
        self.obj = StoredAnchor({}, "1")
        return self.obj

    def write_status(self, status: dict[str, Any], resource_version: str) -> None:
        assert self.obj is not None
        if resource_version != self.obj.resource_version:
            raise ConflictError("changed meanwhile")
        self.writes += 1
        self.obj = StoredAnchor(json.loads(json.dumps(status)), str(int(resource_version) + 1))

    def anchor(self) -> Anchor | None:
        return anchor_of(self.obj.status) if self.obj and self.obj.status else None


def event(i: int) -> AuditEvent:
    return AuditEvent(
        event_name="GetSecretValue",
        principal=WHO,
        read_only=True,
        namespace="team-a",
        secret_name=f"db{i % 3}",
        event_id=f"e{i:04d}",
        event_time=T0 + timedelta(minutes=i),
    )


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "audit.db"


@pytest.fixture
def gateway() -> FakeGateway:
    return FakeGateway()


@pytest.fixture
def audit(db: Path, gateway: FakeGateway, tmp_path: Path) -> Iterator[AuditService]:
    store = SqlStore(f"sqlite:///{db}")
    astore = AuditStore(store.engine)
    publisher = AnchorPublisher(
        astore, gateway, writer="replica-1", witnesses=[FileWitness(tmp_path / "anchors.jsonl")]
    )
    service = AuditService(astore, "test", lambda: KEYRING, anchor=publisher)
    yield service
    service.close()
    store.close()


def raw(db: Path, *statements: str) -> None:
    with sqlite3.connect(db) as conn:
        for sql in statements:
            conn.execute(sql)
    conn.close()


def signed_twice_with_a_tail(audit: AuditService) -> None:
    """Records 1..5, digest; 6..10, digest; 11..13 unsigned; the head anchored at 13."""
    audit.record_many([event(i) for i in range(1, 6)])
    audit.sign_digest()
    audit.publish_anchor()
    audit.record_many([event(i) for i in range(6, 11)])
    audit.sign_digest()
    audit.publish_anchor()
    audit.record_many([event(i) for i in range(11, 14)])
    anchored = audit.publish_anchor()
    assert anchored is not None and anchored.head_seq == 13
    assert anchored.digest is not None and anchored.digest.last_seq == 10


def check(audit: AuditService, gateway: FakeGateway) -> VerifyReport:
    return audit.verify(anchors=[(gateway.ref, gateway.anchor())])


def kinds(report: VerifyReport) -> list[tuple[str, int | None]]:
    return [(f.kind, f.seq) for f in report.findings]


def test_an_untouched_log_verifies(audit: AuditService, gateway: FakeGateway) -> None:
    signed_twice_with_a_tail(audit)
    report = check(audit, gateway)
    assert report.ok, report.findings
    assert (report.signed_through, report.anchored_through) == (10, 13)
    assert report.anchors == [gateway.ref]
    audit.record(event(14))  # newer than the anchor: normal
    assert check(audit, gateway).ok


def test_deleting_the_unsigned_tail_is_named(
    audit: AuditService, gateway: FakeGateway, db: Path
) -> None:
    signed_twice_with_a_tail(audit)
    raw(db, "DELETE FROM audit_log WHERE seq > 10")
    assert audit.verify().ok  # what verify said before anchors: nothing
    report = check(audit, gateway)
    assert kinds(report) == [("deleted", 11), ("deleted", 12), ("deleted", 13)]
    assert "anchored through seq 13" in report.findings[0].message


@pytest.mark.parametrize("kept", [5, 1])  # every record after the first digest / record
def test_deleting_the_newest_digest_and_every_record_after_the_first_is_named(
    audit: AuditService, gateway: FakeGateway, db: Path, kept: int
) -> None:
    signed_twice_with_a_tail(audit)
    raw(
        db,
        "DELETE FROM audit_digests WHERE id = (SELECT max(id) FROM audit_digests)",
        f"DELETE FROM audit_log WHERE seq > {kept}",  # noqa: S608
    )
    if kept == 5:
        assert audit.verify().ok  # a shorter log, consistent with its first digest
    report = check(audit, gateway)
    assert kinds(report) == [("anchor", 10)] + [("deleted", s) for s in range(kept + 1, 14)]
    assert "missing from the store" in report.findings[0].message
    assert "seq 6..10" in report.findings[0].message


def test_an_emptied_log_is_named(audit: AuditService, gateway: FakeGateway, db: Path) -> None:
    signed_twice_with_a_tail(audit)
    raw(db, "DELETE FROM audit_digests", "DELETE FROM audit_log")
    assert audit.verify().ok
    report = check(audit, gateway)
    assert kinds(report) == [("emptied", None)]
    assert "head seq 13" in report.findings[0].message


def test_a_deleted_anchor_is_named_when_the_store_has_digests(
    audit: AuditService, gateway: FakeGateway
) -> None:
    signed_twice_with_a_tail(audit)
    report = audit.verify(anchors=[(gateway.ref, None)])
    assert kinds(report) == [("anchor", None)]
    assert "anchors nothing" in report.findings[0].message
    assert audit.verify(anchors=[(gateway.ref, None)]).anchors == [gateway.ref]


def test_a_new_log_without_an_anchor_is_fine(audit: AuditService) -> None:
    assert audit.verify(anchors=[("AuditAnchor x/y", None)]).ok
    audit.record(event(1))
    assert audit.verify(anchors=[("AuditAnchor x/y", None)]).ok  # nothing signed yet


def test_a_rewritten_chain_at_the_anchored_head_is_named(
    audit: AuditService, gateway: FakeGateway, db: Path
) -> None:
    signed_twice_with_a_tail(audit)
    status = dict(present(gateway.obj).status)
    status["head"] = {"seq": 12, "hash": "ab" * 32}  # as if the store's seq 12 were rewritten
    report = audit.verify(anchors=[(gateway.ref, anchor_of(status))])
    assert kinds(report) == [("anchor", 12)]


def test_the_anchor_does_not_move_over_a_loss(
    audit: AuditService, gateway: FakeGateway, db: Path, caplog: Any
) -> None:
    signed_twice_with_a_tail(audit)
    raw(db, "DELETE FROM audit_log WHERE seq > 10")
    for i in range(20, 26):  # the writer goes on; seq 11.. now hold other records
        audit.record(event(i))
    audit.sign_digest()
    with caplog.at_level(logging.ERROR, logger="kustos.services.audit.anchor"):
        after = audit.publish_anchor()
    assert after is not None and after.head_seq == 13 and after.digest is not None
    assert after.digest.last_seq == 10  # kept, so verify still sees the loss
    assert "no longer holds" in caplog.text
    report = check(audit, gateway)
    assert ("anchor", 13) in kinds(report)


def test_publishing_only_moves_forward_with_two_writers(
    audit: AuditService, gateway: FakeGateway
) -> None:
    signed_twice_with_a_tail(audit)
    other = AnchorPublisher(audit.store, gateway, writer="replica-2")
    audit.record(event(14))
    assert present(other.publish()).head_seq == 14
    stale = Anchor(present(gateway.anchor()).digest, 13, audit.store.hash_at(13) or "")
    assert AnchorPublisher._merge(present(gateway.anchor()), stale).head_seq == 14
    writes = gateway.writes
    assert present(audit.publish_anchor()).head_seq == 14
    assert gateway.writes == writes  # nothing newer: no write
    assert gateway.obj is not None and gateway.obj.status["writer"] == "replica-2"


def test_a_conflicting_write_is_retried(audit: AuditService, gateway: FakeGateway) -> None:
    audit.record(event(1))
    real = gateway.write_status
    calls: list[int] = []

    def racing(status: dict[str, Any], resource_version: str) -> None:
        rv = resource_version
        calls.append(1)
        if len(calls) == 1:  # another replica wrote between our read and our write
            assert gateway.obj is not None
            gateway.obj = StoredAnchor(gateway.obj.status, str(int(rv) + 1))
        real(status, present(gateway.obj).resource_version if len(calls) > 1 else rv)

    gateway.write_status = racing  # type: ignore[method-assign]  # patched for this test
    assert present(audit.publish_anchor()).head_seq == 1
    assert len(calls) == 2


def test_the_file_witness_records_each_anchor_and_verify_reads_it(
    audit: AuditService, gateway: FakeGateway, db: Path, tmp_path: Path
) -> None:
    signed_twice_with_a_tail(audit)
    path = tmp_path / "anchors.jsonl"
    lines = path.read_text().splitlines()
    assert len(lines) == 3 and json.loads(lines[-1])["head"]["seq"] == 13
    witness = read_file_witness(path)
    assert witness is not None and witness.same_as(present(gateway.anchor()))
    raw(db, "DELETE FROM audit_log WHERE seq > 12")
    report = audit.verify(anchors=[(f"witness {path}", witness)])
    assert kinds(report) == [("deleted", 13)]


def test_pruning_is_anchored_and_still_verifies(audit: AuditService, gateway: FakeGateway) -> None:
    signed_twice_with_a_tail(audit)
    assert audit.prune(T0 + timedelta(minutes=12, seconds=30)) == 12
    audit.record(event(14))
    anchored = audit.publish_anchor()
    assert anchored is not None and anchored.head_seq == 14
    report = check(audit, gateway)
    assert report.ok, report.findings
    assert report.checkpoint_seq == 12


def test_the_operator_log_names_each_anchored_digest(audit: AuditService, caplog: Any) -> None:
    audit.record(event(1))
    with caplog.at_level(logging.INFO, logger="kustos.services.audit.anchor"):
        digest = audit.sign_digest()
        audit.publish_anchor()
    assert digest is not None
    assert f"signature {digest.signature}" in caplog.text
    assert f"chain {digest.chain_hash}" in caplog.text


def test_anchor_status_round_trips_and_bad_status_is_refused() -> None:
    with pytest.raises(ValueError, match="not an audit anchor"):
        anchor_of({"digest": {"kind": "digest"}})
    with pytest.raises(ValueError, match="integer"):
        anchor_of({"head": {"seq": "12"}})
    assert anchor_of({}).empty


def test_a_deleted_anchor_is_recreated_by_an_idle_publisher(
    audit: AuditService, gateway: FakeGateway, monkeypatch: Any
) -> None:
    signed_twice_with_a_tail(audit)
    gateway.obj = None  # an admin deleted it (e.g. to re-anchor after a restore)
    assert present(audit.publish_anchor()).head_seq == 13
    assert gateway.obj is None  # idle: not re-read yet
    monkeypatch.setattr("kustos.services.audit.anchor.RECHECK_SECONDS", 0.0)
    assert present(audit.publish_anchor()).head_seq == 13
    assert gateway.anchor() is not None and check(audit, gateway).ok


def test_the_webhook_witness_receives_each_anchor(
    audit: AuditService, gateway: FakeGateway
) -> None:
    import http.server
    import threading

    from kustos.services.audit.anchor import WebhookWitness

    got: list[dict[str, Any]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            got.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *_: Any) -> None:
            return None

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        publisher = AnchorPublisher(
            audit.store,
            gateway,
            witnesses=[WebhookWitness(f"http://127.0.0.1:{server.server_port}/anchor")],
        )
        audit.record(event(1))
        publisher.publish()
    finally:
        server.shutdown()
        server.server_close()
    assert len(got) == 1 and got[0]["head"]["seq"] == 1
    assert anchor_of(got[0]).same_as(present(gateway.anchor()))
    with pytest.raises(ValueError, match="http"):
        WebhookWitness("file:///etc/passwd")
