"""The audit hub: API processes that hand their records to one group commit. Real SQLite
files, real Unix sockets, the real AuditService on both sides (hub and worker in one test
process: the protocol is the same as across processes; tests/integration/api/test_replicas.py
runs it across real ones)."""

from __future__ import annotations

import json
import os
import socket
import struct
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from tests.unit.test_audit_fail_fast import Lock, event, wait_until

from kustos.errors import AuditUnavailableError
from kustos.services.audit.hub import AuditHub, HubAppender, HubRefused
from kustos.services.audit.service import AuditService, AuditSettings
from kustos.store import SqlStore
from kustos.store.audit import AuditStore, PendingRow

FAST = AuditSettings(stall_seconds=1.0, probe_seconds=0.1, commit_timeout=10.0)


class GatedStore(AuditStore):
    """The hub's store, counting its appends; `gate` (when set) holds the next append until
    released, so a test can queue records behind a commit in progress."""

    def __init__(self, engine: sa.Engine) -> None:
        super().__init__(engine)
        self.batches: list[list[str]] = []
        self.gate: threading.Event | None = None
        self.entered = threading.Event()

    def append(
        self, rows: Sequence[PendingRow], lock_timeout: float | None = None
    ) -> list[tuple[int, str]]:
        self.entered.set()
        if self.gate is not None:
            gate, self.gate = self.gate, None
            assert gate.wait(10)
        out = super().append(rows, lock_timeout)
        self.batches.append([row.event_id for row in rows])
        return out


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlStore]:
    opened = SqlStore(f"sqlite:///{tmp_path / 'kustos.db'}")
    yield opened
    opened.close()


@pytest.fixture
def hub_store(store: SqlStore) -> GatedStore:
    return GatedStore(store.engine)


@pytest.fixture
def hub(hub_store: GatedStore, tmp_path: Path) -> Iterator[AuditHub]:
    audit = AuditService(hub_store, "test", settings=FAST)
    served = AuditHub(audit, tmp_path / "hub" / "hub.sock")
    served.start()
    yield served
    served.close()
    audit.close()


def worker_of(store: SqlStore, path: Path, reply_timeout: float = 30.0) -> AuditService:
    return AuditService(
        AuditStore(store.engine),
        "test",
        settings=FAST,
        appender=HubAppender(path, reply_timeout=reply_timeout),
    )


def event_ids(store: SqlStore) -> list[str]:
    with store.engine.connect() as conn:
        return [r[0] for r in conn.execute(sa.text("SELECT event_id FROM audit_log ORDER BY seq"))]


def test_workers_records_join_the_hubs_batch_in_one_chain(
    store: SqlStore, hub_store: GatedStore, tmp_path: Path
) -> None:
    # a commit held for a while must not count as a stalled store here
    patient = AuditSettings(stall_seconds=30.0, probe_seconds=0.1, commit_timeout=30.0)
    hub = AuditHub(AuditService(hub_store, "test", settings=patient), tmp_path / "h" / "s")
    hub.start()
    worker = AuditService(
        AuditStore(store.engine), "test", settings=patient, appender=HubAppender(hub.path)
    )
    hub.audit.record(event("first"))
    release = hub_store.gate = threading.Event()
    hub_store.entered.clear()
    held = threading.Thread(target=hub.audit.record, args=(event("held"),))
    held.start()
    assert hub_store.entered.wait(5)  # the hub is inside a commit
    done: list[str] = []

    def from_worker() -> None:
        worker.record_many([event(f"w{i}") for i in range(3)])
        done.append("worker")

    callers = [
        threading.Thread(target=from_worker),
        threading.Thread(target=hub.audit.record, args=(event("h"),)),
    ]
    for t in callers:
        t.start()
    # the worker's batch and the hub's own record wait behind the commit in progress
    wait_until(lambda: sum(len(t.rows) for t in list(hub.audit._queue)) == 4)
    assert done == []  # nothing is durable yet, so the worker's caller has no answer
    release.set()
    for t in [*callers, held]:
        t.join(10)
    assert done == ["worker"]
    # one commit (one fsync) for the worker's records and the hub's own
    assert sorted(hub_store.batches[-1]) == ["h", "w0", "w1", "w2"]
    assert event_ids(store)[:2] == ["first", "held"]
    report = hub.audit.verify()
    assert report.ok and report.records == 6
    worker.close()
    hub.close()
    hub.audit.close()


def test_the_worker_learns_each_rows_place_in_the_chain(store: SqlStore, hub: AuditHub) -> None:
    appender = HubAppender(hub.path)
    hub.audit.record(event("a"))
    written = appender.append(_rows("b", "c"))
    assert [seq for seq, _ in written] == [2, 3]
    with store.engine.connect() as conn:
        hashes = [r[0] for r in conn.execute(sa.text("SELECT hash FROM audit_log ORDER BY seq"))]
    assert [h for _, h in written] == hashes[1:]
    appender.close()


def _rows(*ids: str) -> list[PendingRow]:
    from kustos.services.audit.event import to_row

    return [to_row(event(eid), "test") for eid in ids]


def test_a_gone_hub_refuses_the_workers_records_and_they_resume_when_it_is_back(
    store: SqlStore, hub_store: GatedStore, tmp_path: Path
) -> None:
    path = tmp_path / "hub" / "hub.sock"
    first = AuditHub(AuditService(hub_store, "test", settings=FAST), path)
    first.start()
    worker = worker_of(store, path)
    worker.record(event("before"))
    first.close()
    with pytest.raises(AuditUnavailableError):
        worker.record(event("refused"))
    assert worker.down() is not None  # refused at once from now on, and probed
    with pytest.raises(AuditUnavailableError, match="not answering"):
        worker.record(event("refused-at-once"))
    second = AuditHub(AuditService(hub_store, "test", settings=FAST), path)
    second.start()
    try:
        wait_until(lambda: worker.down() is None)
        worker.record(event("after"))
    finally:
        second.close()
        worker.close()
    assert event_ids(store) == ["before", "after"]


def test_a_store_the_hub_cannot_write_refuses_the_workers_records_and_writes_none_later(
    store: SqlStore, hub: AuditHub, tmp_path: Path
) -> None:
    worker = worker_of(store, hub.path)
    worker.record(event("before"))
    lock = Lock(tmp_path / "kustos.db")
    try:
        started = time.monotonic()
        with pytest.raises(AuditUnavailableError):
            worker.record(event("refused"))
        assert time.monotonic() - started < FAST.stall_seconds + 3.0
    finally:
        lock.release()
    wait_until(lambda: worker.down() is None and hub.audit.down() is None)
    worker.record(event("after"))
    worker.close()
    hub.audit.close()
    assert event_ids(store) == ["before", "after"]


def test_a_worker_that_gets_no_answer_in_time_fails_closed(
    store: SqlStore, hub_store: GatedStore, hub: AuditHub
) -> None:
    worker = worker_of(store, hub.path, reply_timeout=0.5)
    release = hub_store.gate = threading.Event()  # the hub's next commit hangs
    try:
        with pytest.raises(AuditUnavailableError):
            worker.record(event("unanswered"))
        assert worker.down() is not None
    finally:
        release.set()
    worker.close()


def _frame(sock: socket.socket, message: Any) -> dict[str, Any]:
    body = json.dumps(message).encode()
    sock.sendall(struct.pack(">I", len(body)) + body)
    size = struct.unpack(">I", sock.recv(4))[0]
    data = b""
    while len(data) < size:
        data += sock.recv(size - len(data))
    reply = json.loads(data)
    assert isinstance(reply, dict)
    return reply


@pytest.mark.parametrize(
    "rows",
    [
        "not a list",
        [["too", "few"]],
        [[1] * 12],
        [["e", "t", "n", "type", "ns", None, None, "p", "u", "yes", False, "{}"]],
    ],
)
def test_a_malformed_batch_is_refused_and_the_hub_serves_on(
    store: SqlStore, hub: AuditHub, rows: Any
) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as raw:
        raw.settimeout(5)
        raw.connect(str(hub.path))
        reply = _frame(raw, {"id": 1, "op": "append", "rows": rows})
        assert reply["id"] == 1 and reply["error"].startswith("refused")
        assert reply["outage"] is False
    worker = worker_of(store, hub.path)
    worker.record(event("fine"))
    worker.close()
    assert event_ids(store) == ["fine"]


def test_a_connection_from_another_user_is_refused(
    store: SqlStore, hub: AuditHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = os.getuid()
    monkeypatch.setattr(os, "getuid", lambda: real + 1)  # the hub sees its peer as another user
    appender = HubAppender(hub.path, reply_timeout=2)
    with pytest.raises(ConnectionError):
        appender.append(_rows("x"))
    assert HubAppender.is_outage(ConnectionError())
    assert event_ids(store) == []


def test_only_the_hub_notifies(store: SqlStore, hub: AuditHub) -> None:
    seen: list[str] = []
    hub.audit.add_listener(lambda rows: seen.extend(r.event_id for r in rows))
    worker = worker_of(store, hub.path)
    worker.add_listener(lambda rows: seen.extend(f"worker:{r.event_id}" for r in rows))
    worker.record(event("w"))
    hub.audit.record(event("h"))
    worker.close()
    assert seen == ["w", "h"]


def test_refusal_kinds() -> None:
    assert HubAppender.is_outage(HubRefused("x", outage=True))
    assert not HubAppender.is_outage(HubRefused("refused: bad row", outage=False))
