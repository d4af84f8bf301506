"""The audit append connection never checkpoints the WAL inside its commits; a thread of its
own does (kustos.store.checkpointer), so the log's WAL stays bounded and the chain intact."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kustos.models.audit import AuditEvent
from kustos.models.identity import Principal
from kustos.services.audit.service import AuditService
from kustos.store import SqlStore
from kustos.store.audit import AuditStore
from kustos.store.checkpointer import Checkpointer

WHO = Principal.user("system:serviceaccount:team:app")


@pytest.fixture
def audit(tmp_path: Path) -> Iterator[tuple[AuditService, Path]]:
    db = tmp_path / "k.db"
    store = SqlStore(f"sqlite:///{db}")
    service = AuditService(AuditStore(store.engine), "test")
    yield service, db
    service.close()
    store.close()


def _wait(check: object, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "not within the deadline"
        time.sleep(0.02)


def test_appends_leave_checkpointing_to_the_thread_which_copies_every_frame(
    audit: tuple[AuditService, Path],
) -> None:
    service, db = audit
    for i in range(300):
        service.record(AuditEvent(event_name=f"Op{i}", principal=WHO, request_id=str(i)))
    raw = service.store._raw
    assert raw is not None and raw._conn is not None
    assert raw._conn.execute("PRAGMA wal_autocheckpoint").fetchone() == (0,)
    checkpointer = raw.checkpointer
    _wait(lambda: checkpointer.copied > 0)
    # Once the thread has run after the last append, nothing is left to copy.
    runs = checkpointer.runs
    _wait(lambda: checkpointer.runs > runs)
    probe = sqlite3.connect(db)
    try:
        busy, frames, copied = probe.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        assert busy == 0 and frames == copied
        assert probe.execute("SELECT count(*) FROM audit_log").fetchone() == (300,)
    finally:
        probe.close()
    assert service.verify().ok


def test_a_closed_checkpointer_stops_and_a_failing_one_keeps_going(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "k.db"  # cannot be opened: every tick fails
    checkpointer = Checkpointer(missing, interval=0.01)
    checkpointer.start()
    time.sleep(0.1)
    assert checkpointer.runs == 0
    checkpointer.close()
    assert checkpointer._thread is None
