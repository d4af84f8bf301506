"""AuditService on a real SQLite file: CloudTrail shape, value rejection, fail closed, group
commit under concurrency, lookups, export, usage, and the lifecycle sink with a canary."""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from tests.unit.fakes import stand_in

from kustos.crypto import Keyring
from kustos.errors import AuditUnavailableError
from kustos.kube.events import ObjectRef
from kustos.kube.secrets import SecretGateway
from kustos.models.audit import AuditEvent
from kustos.models.identity import KUSTOS_SYSTEM, Principal
from kustos.models.reasons import EventType, Reason
from kustos.models.sensitive import SecretValue
from kustos.services.audit.event import AuditRecordRejected, parse_when
from kustos.services.audit.service import AuditService
from kustos.services.audit.sink import AuditingEventSink
from kustos.services.audit.usage import usage_by_namespace
from kustos.services.controller.projection import ProjectionService
from kustos.services.controller.reconcile import ManagedSecretService
from kustos.services.controller.sources import SourceService
from kustos.services.core.objects import ManagedObject
from kustos.services.core.secrets import SecretService
from kustos.store import SqlStore
from kustos.store.audit import AuditQuery, AuditStore

KEYRING = Keyring.generate()
CANARY = "canary-Zq8v-" + base64.b32encode(os.urandom(10)).decode()
WHO = Principal.service_account(
    "team-a", "app", uid="u-1", pod_name="app-7d9f", auth_method="ServiceAccountToken"
)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "kustos.db"


@pytest.fixture
def store(db: Path) -> Iterator[SqlStore]:
    s = SqlStore(f"sqlite:///{db}")
    yield s
    s.close()


@pytest.fixture
def audit(store: SqlStore) -> Iterator[AuditService]:
    service = AuditService(AuditStore(store.engine), "test", lambda: KEYRING)
    yield service
    service.close()


def call(name: str = "GetSecretValue", **kw: Any) -> AuditEvent:
    fields: dict[str, Any] = dict(
        event_name=name,
        principal=WHO,
        read_only=True,
        namespace="team-a",
        secret_arn="arn:kustos:secretsmanager:test:team-a:secret:prod/db-AbCdEf",
        secret_name="prod/db",
        source_ip="10.0.0.7",
        user_agent="aws-cli/2",
        request_parameters={"SecretId": "prod/db", "VersionStage": "AWSCURRENT"},
        response_elements=None,
    )
    fields.update(kw)
    return AuditEvent(**fields)


def all_records(store: SqlStore) -> list[dict[str, Any]]:
    return [json.loads(r[-3]) for r in AuditStore(store.engine).iter_chain()]


def test_record_is_cloudtrail_shaped(audit: AuditService, store: SqlStore) -> None:
    audit.record(call(error_code="AccessDeniedException", error_message="not allowed"))
    (rec,) = all_records(store)
    assert rec["eventVersion"] == "1.08" and rec["eventSource"] == "secretsmanager.kustos.io"
    assert rec["eventName"] == "GetSecretValue" and rec["awsRegion"] == "test"
    ident = rec["userIdentity"]
    assert ident == {
        "type": "ServiceAccount",
        "principalId": "u-1",
        "arn": "arn:kustos:iam::team-a:serviceaccount/app",
        "accountId": "team-a",
        "userName": "system:serviceaccount:team-a:app",
        "groups": [],
        "serviceAccount": {"namespace": "team-a", "name": "app"},
        "pod": "app-7d9f",
        "authMethod": "ServiceAccountToken",
    }
    assert rec["resources"] == [
        {
            "ARN": "arn:kustos:secretsmanager:test:team-a:secret:prod/db-AbCdEf",
            "type": "AWS::SecretsManager::Secret",
            "accountId": "team-a",
        }
    ]
    assert (rec["errorCode"], rec["errorMessage"]) == ("AccessDeniedException", "not allowed")
    assert rec["readOnly"] is True and rec["recipientAccountId"] == "team-a"
    assert rec["sourceIPAddress"] == "10.0.0.7" and rec["eventType"] == "AwsApiCall"
    assert {"requestID", "eventID", "eventTime", "requestParameters"} <= set(rec)
    assert audit.lookup(AuditQuery(denied=True))[0][0] == 1


@pytest.mark.parametrize(
    "params",
    [
        {"SecretId": "x", "SecretString": "v"},
        {"secretbinary": "v"},
        {"Nested": {"Password": "v"}},
        {"List": [{"RandomPassword": "v"}]},
        {"Value": SecretValue("v")},
    ],
)
def test_values_are_refused(audit: AuditService, store: SqlStore, params: Any) -> None:
    with pytest.raises(AuditRecordRejected):
        audit.record(call(request_parameters=params))
    with pytest.raises(AuditRecordRejected):
        audit.record(call(response_elements=params))
    assert all_records(store) == []


def test_fail_closed_on_a_read_only_database(db: Path, store: SqlStore) -> None:
    AuditService(AuditStore(store.engine), "test").record(call())  # migrated, one record
    store.close()
    readonly = sa.create_engine(
        "sqlite://",
        creator=lambda: sqlite3.connect(f"file:{db}?mode=ro", uri=True, check_same_thread=False),
    )
    audit = AuditService(AuditStore(readonly), "test")
    try:
        with pytest.raises(AuditUnavailableError, match="could not be written"):
            audit.record(call())
    finally:
        audit.close()
        readonly.dispose()
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM audit_log").fetchone() == (1,)
    conn.close()


def test_fail_closed_when_the_store_breaks(audit: AuditService, monkeypatch: Any) -> None:
    def broken(rows: Any, **_: Any) -> Any:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(audit.store, "append", broken)
    with pytest.raises(AuditUnavailableError):
        audit.record(call())


def test_group_commit_under_16_threads(
    audit: AuditService, store: SqlStore, monkeypatch: Any
) -> None:
    batches: list[int] = []
    real = audit.store.append

    def counted(rows: Any, **kw: Any) -> Any:
        batches.append(len(rows))
        return real(rows, **kw)

    monkeypatch.setattr(audit.store, "append", counted)
    ids: list[list[str]] = [[] for _ in range(16)]
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            for i in range(40):
                ev = call(event_id=f"t{n}-{i}")
                audit.record(ev)
                ids[n].append(ev.event_id)
                # durable when record() returns: visible to a fresh connection at once
                assert audit.lookup(AuditQuery(limit=1))[0][0] >= 1
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    records = all_records(store)
    assert len(records) == 640 == sum(batches)
    assert sorted(r["eventID"] for r in records) == sorted(i for b in ids for i in b)
    assert len(batches) < 640 and max(batches) > 1  # grouped
    assert audit.verify().ok


def test_lookup_filters_and_export(audit: AuditService) -> None:
    t0 = datetime(2026, 3, 1, tzinfo=UTC)
    other = Principal.user("alice", ("devs",))
    audit.record_many(
        [
            call(event_time=t0),
            call("PutSecretValue", principal=other, read_only=False, event_time=t0 + timedelta(1)),
            call(
                namespace="team-b",
                secret_arn="arn:b",
                secret_name="prod/db",
                event_time=t0 + timedelta(2),
                error_code="AccessDeniedException",
            ),
        ]
    )

    def names(q: AuditQuery) -> list[str]:
        return [json.loads(t)["eventName"] for _, t in audit.lookup(q)]

    assert names(AuditQuery(event_name="PutSecretValue")) == ["PutSecretValue"]
    assert names(AuditQuery(user="alice")) == ["PutSecretValue"]
    assert names(AuditQuery(user="arn:kustos:iam::cluster:user/alice")) == ["PutSecretValue"]
    assert len(audit.lookup(AuditQuery(secret_name="prod/db"))) == 3
    assert len(audit.lookup(AuditQuery(secret_name="prod/db", namespace="team-b"))) == 1
    assert len(audit.lookup(AuditQuery(secret_arn="arn:b"))) == 1
    assert len(audit.lookup(AuditQuery(denied=True))) == 1
    since = AuditQuery(since="2026-03-02T00:00:00.000000Z")
    assert [s for s, _ in audit.lookup(since)] == [3, 2]
    assert len(audit.lookup(AuditQuery(limit=2))) == 2
    assert [s for s, _ in audit.lookup(AuditQuery(before_seq=3))] == [2, 1]
    lines = list(audit.export(AuditQuery(until="2026-03-02T00:00:00.000000Z")))
    assert len(lines) == 1 and json.loads(lines[0])["eventName"] == "GetSecretValue"


def test_parse_when() -> None:
    now = datetime(2026, 5, 1, tzinfo=UTC)
    assert parse_when("24h", now) == now - timedelta(hours=24)
    assert parse_when("1w2d", now) == now - timedelta(days=9)
    assert parse_when("2026-04-01", now) == datetime(2026, 4, 1, tzinfo=UTC)
    with pytest.raises(ValueError, match="duration"):
        parse_when("yesterday", now)


def test_usage_by_namespace(audit: AuditService, store: SqlStore) -> None:
    now = datetime.now(UTC)
    secrets = SecretService(store, lambda: KEYRING, "test", clock=lambda: now - timedelta(hours=10))
    secrets.create("team-a", "one")
    secrets.create("team-b", "two")
    audit.record_many([call(event_time=now - timedelta(hours=1)) for _ in range(3)])
    audit.record(
        call(
            namespace="team-b",
            event_time=now - timedelta(hours=1),
            error_code="AccessDeniedException",
        )
    )
    gone = call(
        "Created",
        event_type="AwsServiceEvent",
        principal=KUSTOS_SYSTEM,
        secret_arn="arn:gone",
        namespace="team-b",
        event_time=now - timedelta(hours=6),
    )
    audit.record_many(
        [
            gone,
            call(
                "Deleted",
                event_type="AwsServiceEvent",
                principal=KUSTOS_SYSTEM,
                secret_arn="arn:gone",
                namespace="team-b",
                event_time=now - timedelta(hours=2),
            ),
        ]
    )
    rows = {
        u.namespace: u
        for u in usage_by_namespace(
            store.list_secrets(), audit.store, now - timedelta(hours=24), now
        )
    }
    assert (rows["team-a"].secrets, rows["team-a"].api_calls) == (1, 3)
    assert rows["team-a"].secret_hours == pytest.approx(10, abs=0.01)
    assert (rows["team-b"].api_calls, rows["team-b"].denied_calls) == (1, 1)
    assert rows["team-b"].secret_hours == pytest.approx(14, abs=0.01)  # 10 + purged 4


class FakeEvents:
    def __init__(self) -> None:
        self.emitted: list[tuple[str, str, str]] = []

    def emit(
        self, ref: ObjectRef, reason: Reason, message: str, type: EventType = EventType.NORMAL
    ) -> None:
        self.emitted.append((ref.name, str(reason), message))


class FakeSecrets:
    """In-memory stand-in for the Kubernetes Secret gateway (unit tests only)."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.rv = 0

    def get(self, ns: str, name: str) -> dict[str, Any] | None:
        obj = self.objects.get((ns, name))
        return json.loads(json.dumps(obj)) if obj else None

    def create(self, ns: str, body: dict[str, Any]) -> dict[str, Any]:
        self.rv += 1
        body = json.loads(json.dumps(body))
        body["metadata"].update(resourceVersion=str(self.rv), uid=f"uid-{self.rv}")
        self.objects[(ns, body["metadata"]["name"])] = body
        return body

    def replace(self, ns: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        return self.create(ns, body)

    def delete(self, ns: str, name: str, uid: str | None = None) -> bool:
        return self.objects.pop((ns, name), None) is not None


def test_lifecycle_is_audited_and_the_canary_never_is(
    audit: AuditService, store: SqlStore, db: Path
) -> None:
    kube = FakeSecrets()
    kube.create(
        "team-a",
        {
            "metadata": {"name": "src", "annotations": {"kustos.io/allow-import-by": "orders-db"}},
            "data": {"password": base64.b64encode(CANARY.encode()).decode()},
        },
    )
    events = FakeEvents()
    secrets = SecretService(store, lambda: KEYRING, "test")
    sink = AuditingEventSink(
        events,
        audit,
        lambda ns, n: next((s for s in store.list_secrets(ns) if s.object_name == n), None),
    )
    managed = ManagedSecretService(
        secrets,
        SourceService(stand_in(SecretGateway, kube)),
        ProjectionService(stand_in(SecretGateway, kube)),
        sink,
    )
    obj = ManagedObject(
        "team-a",
        "orders-db",
        "uid-ms",
        1,
        {"name": "prod/orders-db", "valueFrom": {"secretRef": {"name": "src"}}},
    )
    result = managed.reconcile(obj)
    assert result.error is None
    projected = kube.get("team-a", "orders-db")
    assert projected is not None  # the value reached its Secret: the canary is in play
    assert CANARY in base64.b64decode(projected["data"]["password"]).decode()
    kube.objects[("team-a", "orders-db")]["data"] = {}  # drift
    managed.reconcile(obj)
    records = all_records(store)
    names = [r["eventName"] for r in records]
    assert names == ["Created", "DriftCorrected"]  # a new object's first story is one record
    assert [e[1] for e in events.emitted] == names  # every Event was audited, in order
    created = records[0]
    assert created["userIdentity"]["arn"] == KUSTOS_SYSTEM.arn
    assert created["eventType"] == "AwsServiceEvent"
    assert created["resources"][0]["ARN"].startswith("arn:kustos:secretsmanager:test:team-a:")
    assert created["additionalEventData"]["secretName"] == "prod/orders-db"
    # the canary: never in an audit record, nor anywhere in the database file's bytes
    for record in records:
        assert CANARY not in json.dumps(record)
    store.close()
    for path in db.parent.glob("kustos.db*"):
        assert CANARY.encode() not in path.read_bytes()
    assert audit.verify().ok


def test_sink_fails_closed_for_success_events(audit: AuditService, monkeypatch: Any) -> None:
    monkeypatch.setattr(audit.store, "append", lambda rows, **_: 1 / 0)
    events = FakeEvents()
    sink = AuditingEventSink(events, audit, lambda ns, n: None)
    ref = ObjectRef("kustos.io/v1alpha1", "ManagedSecret", "team-a", "x", "u")
    with pytest.raises(AuditUnavailableError):
        sink.emit(ref, Reason.CREATED, "secret x created")
    sink.emit(ref, Reason.STORE_ERROR, "store failed", EventType.WARNING)  # logged, no raise
    assert [e[1] for e in events.emitted] == ["Created", "StoreError"]
