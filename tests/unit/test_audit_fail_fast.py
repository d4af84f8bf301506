"""Fail closed, fast: a store that stops answering (locked by another process) is detected
within seconds, calls are refused at once until it answers again, a busy store is not an
outage, and a record whose caller was refused is never committed later. Real SQLite files;
the lock is held by a real second process."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from tests.unit.fakes import stand_in

from kustos.crypto import Keyring
from kustos.errors import AuditUnavailableError
from kustos.kube.managed_objects import ManagedObjectGateway
from kustos.kube.secrets import SecretGateway
from kustos.models.audit import AuditEvent
from kustos.models.identity import Principal
from kustos.services.api.call import CallMeta
from kustos.services.api.service import SecretsApi
from kustos.services.audit.service import AuditService, AuditSettings
from kustos.services.core.deletion import DeletionService
from kustos.services.core.secrets import SecretService
from kustos.store import SqlStore
from kustos.store.audit import AuditStore

WHO = Principal.service_account("team", "app")
FAST = AuditSettings(stall_seconds=1.0, probe_seconds=0.1, commit_timeout=10.0)
_HOLD = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.read()
conn.rollback()
"""


def event(eid: str) -> AuditEvent:
    return AuditEvent(
        event_name="GetSecretValue", principal=WHO, read_only=True, namespace="team", event_id=eid
    )


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "kustos.db"


@pytest.fixture
def store(db: Path) -> Iterator[SqlStore]:
    opened = SqlStore(f"sqlite:///{db}")
    yield opened
    opened.close()


def audit_of(store: SqlStore, settings: AuditSettings = FAST) -> AuditService:
    return AuditService(AuditStore(store.engine), "test", settings=settings)


class Lock:
    """Another process holding the database's write lock until released."""

    def __init__(self, db: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _HOLD, str(db)],
            text=True,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert self.proc.stdout is not None
        assert self.proc.stdout.readline().strip() == "locked"

    def release(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


def event_ids(store: SqlStore) -> list[str]:
    with store.engine.connect() as conn:
        return [r[0] for r in conn.execute(sa.text("SELECT event_id FROM audit_log ORDER BY seq"))]


def wait_until(predicate: Any, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.05)


def test_a_locked_store_is_refused_within_seconds_then_at_once(store: SqlStore, db: Path) -> None:
    audit = audit_of(store)
    audit.record(event("before"))
    lock = Lock(db)
    try:
        started = time.monotonic()
        with pytest.raises(AuditUnavailableError):
            audit.record(event("first-refused"))
        assert time.monotonic() - started < FAST.stall_seconds + 2.0  # not 10 s, not 30 s
        assert audit.down() is not None
        started = time.monotonic()
        for i in range(20):
            with pytest.raises(AuditUnavailableError, match="not answering"):
                audit.record(event(f"refused-{i}"))
        # at once: all 20 together take less than the one stall a single wait would cost
        assert time.monotonic() - started < FAST.stall_seconds
    finally:
        lock.release()
    wait_until(lambda: audit.down() is None)  # the probe sees it answer again
    audit.record(event("after"))
    audit.close()
    assert event_ids(store) == ["before", "after"]  # no refused call was written


def test_a_busy_store_is_not_an_outage(store: SqlStore, monkeypatch: Any) -> None:
    audit = audit_of(store)
    real = audit.store.append

    def slow(rows: Any, **kw: Any) -> Any:
        time.sleep(0.3)  # a slow but answering store (the point of the test, not a race)
        return real(rows, **kw)

    monkeypatch.setattr(audit.store, "append", slow)
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            for i in range(4):
                audit.record(event(f"w{n}-{i}"))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and audit.down() is None
    audit.close()
    assert len(event_ids(store)) == 32


def test_a_withdrawn_record_is_never_written(store: SqlStore, monkeypatch: Any) -> None:
    audit = audit_of(store, AuditSettings(stall_seconds=30, commit_timeout=0.3))
    gate, inside = threading.Event(), threading.Event()
    real = audit.store.append

    def gated(rows: Any, **kw: Any) -> Any:
        inside.set()
        assert gate.wait(30)
        return real(rows, **kw)

    monkeypatch.setattr(audit.store, "append", gated)
    first = threading.Thread(target=audit.record, args=(event("in-the-commit"),))
    first.start()
    assert inside.wait(10)  # the writer is committing the first record
    with pytest.raises(AuditUnavailableError, match="in time"):
        audit.record(event("queued-then-refused"))  # still queued when its caller gave up
    gate.set()
    first.join(30)
    audit.record(event("later"))
    audit.close()
    assert event_ids(store) == ["in-the-commit", "later"]


def test_a_record_being_committed_waits_for_the_verdict(store: SqlStore, monkeypatch: Any) -> None:
    audit = audit_of(store, AuditSettings(stall_seconds=30, commit_timeout=0.2))
    real = audit.store.append
    gate = threading.Event()
    outcome: list[str] = []

    def gated(rows: Any, **kw: Any) -> Any:
        assert gate.wait(30)
        return real(rows, **kw)

    monkeypatch.setattr(audit.store, "append", gated)

    def caller() -> None:
        try:
            audit.record(event("slow-commit"))
            outcome.append("committed")
        except AuditUnavailableError:
            outcome.append("refused")

    thread = threading.Thread(target=caller)
    thread.start()
    wait_until(lambda: audit._commit_started is not None)
    thread.join(0.6)  # three commit timeouts: the caller must still wait for the store
    assert thread.is_alive() and outcome == []
    gate.set()
    thread.join(30)
    audit.close()
    assert outcome == ["committed"] and event_ids(store) == ["slow-commit"]


def test_a_read_is_refused_fast_when_the_store_is_locked(store: SqlStore, db: Path) -> None:
    keyring = Keyring.generate()
    audit = audit_of(store)

    class Objects:
        def get(self, *_: Any) -> None:
            return None

        def create(self, namespace: str, name: str, *_: Any) -> dict[str, Any]:
            return {"metadata": {"name": name, "namespace": namespace}}

    class Allow:
        def authorize(self, *_: Any) -> None:
            return None

    api = SecretsApi(
        SecretService(store, lambda: keyring, "c"),
        stand_in(ManagedObjectGateway, Objects()),
        stand_in(SecretGateway, None),
        Allow(),
        audit,
        stand_in(DeletionService, None),
    )
    meta = CallMeta(request_id="r1")
    api.call("CreateSecret", {"Name": "db", "SecretString": "v"}, WHO, meta)
    lock = Lock(db)
    try:
        started = time.monotonic()
        with pytest.raises(AuditUnavailableError):
            api.call("GetSecretValue", {"SecretId": "db"}, WHO, meta)
        first = time.monotonic() - started
        assert first < FAST.stall_seconds + 2.0  # one short wait, not two commit timeouts
        started = time.monotonic()
        with pytest.raises(AuditUnavailableError):
            api.call("GetSecretValue", {"SecretId": "db"}, WHO, meta)
        assert time.monotonic() - started < FAST.stall_seconds  # no wait at all this time
    finally:
        lock.release()
    wait_until(lambda: audit.down() is None)
    assert api.call("GetSecretValue", {"SecretId": "db"}, WHO, meta)["SecretString"] == "v"
    audit.close()
    with store.engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT event_name, denied, record FROM audit_log ORDER BY seq")
        ).all()
    assert [r[0] for r in rows] == ["CreateSecret", "GetSecretValue"]
    assert '"errorCode"' not in rows[1][2]
