"""Fail fast on a real PostgreSQL: with the audit append lock held by another session, the
first record is refused within seconds, the next ones at once, and recording resumes when
the lock is released; no refused record is written."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa
from tests.integration.test_store_postgres import pg_admin_url, pg_url, store  # noqa: F401

from kustos.errors import AuditUnavailableError
from kustos.models.audit import AuditEvent
from kustos.models.identity import Principal
from kustos.services.audit.service import AuditService, AuditSettings
from kustos.store import SqlStore
from kustos.store.audit import _PG_LOCK_KEY, AuditStore

pytestmark = pytest.mark.db


def event(eid: str) -> AuditEvent:
    return AuditEvent(
        event_name="GetSecretValue",
        principal=Principal.service_account("a", "b"),
        read_only=True,
        namespace="a",
        event_id=eid,
    )


def test_a_locked_audit_store_is_refused_fast_and_recovers(store: SqlStore) -> None:  # noqa: F811
    audit = AuditService(
        AuditStore(store.engine),
        "test",
        settings=AuditSettings(stall_seconds=1.0, probe_seconds=0.1),
    )
    audit.record(event("before"))
    holder = store.engine.connect()
    tx = holder.begin()
    holder.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})
    try:
        started = time.monotonic()
        with pytest.raises(AuditUnavailableError):
            audit.record(event("refused-first"))
        assert time.monotonic() - started < 3.0
        started = time.monotonic()
        with pytest.raises(AuditUnavailableError, match="not answering"):
            audit.record(event("refused-next"))
        assert time.monotonic() - started < 1.0  # less than the 1 s stall: no wait at all
    finally:
        tx.rollback()
        holder.close()
    deadline = time.monotonic() + 15
    while audit.down() is not None:
        assert time.monotonic() < deadline, "the probe never saw the store answer"
        time.sleep(0.05)
    audit.record(event("after"))
    audit.close()
    with store.engine.connect() as conn:
        ids = conn.execute(sa.text("SELECT event_id FROM audit_log ORDER BY seq")).scalars()
        assert list(ids) == ["before", "after"]


def test_concurrent_writers_on_postgresql_keep_one_verifiable_chain(
    store: SqlStore,  # noqa: F811
    pg_url: str,  # noqa: F811
) -> None:
    """Four writers, each with its own engine and AuditService (as four API replicas have),
    append at once; the log is one hash chain that `verify` (what `kustos audit verify`
    runs) passes, every record once, with a signed digest over all of them."""
    from concurrent.futures import ThreadPoolExecutor

    from kustos.crypto import Keyring
    from kustos.services.audit.verify import verify

    keyring = Keyring.generate()
    writers = [SqlStore(pg_url) for _ in range(4)]
    services = [AuditService(AuditStore(w.engine), "test", lambda: keyring) for w in writers]

    def write(i: int) -> None:
        for n in range(50):
            services[i].record(event(f"w{i}-{n}"))

    try:
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(write, range(4)))
        services[0].sign_digest()
    finally:
        for service in services:
            service.close()
        for writer in writers:
            writer.close()
    report = verify(AuditStore(store.engine), keyring, ())
    assert report.ok, report.findings
    assert report.records == 200 and report.signed_through == report.last_seq
    with store.engine.connect() as conn:
        ids = list(conn.execute(sa.text("SELECT event_id FROM audit_log")).scalars())
    assert sorted(ids) == sorted(f"w{i}-{n}" for i in range(4) for n in range(50))
