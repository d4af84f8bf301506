"""`AuditService`: records audit events durably (fail closed, group commit), signs periodic
digests, prunes by retention, and answers lookups, exports and verification.

Group commit: `record()` turns the event into its row in the caller's thread, queues it and
waits; one writer thread drains everything queued into one transaction, so N concurrent
callers pay for one commit (one fsync) instead of N. Each caller returns only after its
batch committed, or raises `AuditUnavailableError` — the caller must then refuse to return
a value or make a change. A caller that may not block (the API's event loop) uses `submit`
instead: it is called back when the batch's verdict is in, and settles its ticket then.
Listeners (notifications) run after the commit and never block it.

A refused call never shows as succeeded: a record is either still queued, and then the
caller that gives up takes it out of the queue (it is never written), or it is in the batch
being committed, and then its caller waits for the store's verdict. That verdict comes
within `stall_seconds`: the append waits that long at most for the store's write lock.

Fail fast: when a commit fails or has run for longer than `stall_seconds`, the store is
*down*: every record is refused at once (no queueing, no waiting), and the writer probes the
store every `probe_seconds` until it answers again. A merely busy store (commits that keep
completing, however full) is not down. The check costs one attribute read per record.

Maintenance (a background thread) signs digests, prunes, and publishes the chain head and
each digest to the anchor outside the store (`kustos.services.audit.anchor`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from kustos import metrics
from kustos.config import AuditSettings
from kustos.crypto import Keyring
from kustos.errors import AuditUnavailableError, KustosError
from kustos.metrics import AUDIT_CHAIN_LENGTH, AUDIT_FAILURES, AUDIT_WRITE_SECONDS
from kustos.models.audit import AuditEvent
from kustos.models.nonblocking import must_not_block
from kustos.services.audit.anchor import Anchor, AnchorPublisher, publish_safely
from kustos.services.audit.event import AuditRecordRejected, time_text, to_row
from kustos.services.audit.verify import VerifyReport, sign, verify
from kustos.store.audit import GENESIS, AuditQuery, AuditStore, DigestRow, PendingRow

__all__ = ["AuditRecordRejected", "AuditService", "AuditSettings", "AuditTicket", "Listener"]

log = logging.getLogger(__name__)
#: Called with the rows of each committed batch, in the writer thread; must not block.
Listener = Callable[[Sequence[PendingRow]], None]


@dataclass(eq=False)
class AuditTicket:
    """Records queued for the writer. Settled once the store's verdict is in: `done` is
    set (a waiting caller) or `on_done` is called in the writer thread (a caller that does
    not wait, e.g. the API's event loop); then `error` says whether they are durable."""

    rows: list[PendingRow]
    started: float
    done: threading.Event | None = None
    on_done: Callable[[], None] | None = None
    error: str | None = None
    settled: bool = False
    claimed: bool = False  # taken by the writer: only the store's verdict settles it
    #: (seq, hash) of each row, once committed.
    written: list[tuple[int, str]] = field(default_factory=list)

    def _settle(self, error: str | None) -> None:
        self.error, self.settled = error, True
        if self.done is not None:
            self.done.set()
        if self.on_done is not None:
            try:
                self.on_done()
            except Exception:  # e.g. the waiting event loop has closed
                log.exception("audit: a waiter could not be woken")


class Appender(Protocol):
    """Where the writer commits its batches: the store itself, or the audit hub of the
    process that commits for every API process (`kustos.services.audit.hub`)."""

    def append(
        self, rows: Sequence[PendingRow], lock_timeout: float | None = None
    ) -> list[tuple[int, str]]: ...

    def probe(self, lock_timeout: float) -> None: ...

    def is_outage(self, exc: BaseException) -> bool: ...

    def close(self) -> None: ...


class AuditService:
    def __init__(
        self,
        store: AuditStore,
        cluster: str,
        keyring: Callable[[], Keyring] | None = None,
        settings: AuditSettings | None = None,
        anchor: AnchorPublisher | None = None,
        appender: Appender | None = None,
    ) -> None:
        self.store = store
        #: Commits the batches (the store, or another process's hub: then that process
        #: also runs the listeners, so this one runs none).
        self.appender: Appender = appender or store
        self.cluster = cluster
        self._keyring = keyring
        self.settings = settings or AuditSettings()
        self.anchor = anchor
        self._queue: deque[AuditTicket] = deque()
        self._cond = threading.Condition()
        self._writer: threading.Thread | None = None
        self._maint: threading.Thread | None = None
        self._closing = threading.Event()
        self._listeners: list[Listener] = []
        self._flushers: list[Callable[[bool], None]] = []
        self._since_digest = 0
        #: monotonic start of the commit in progress; why the store is down (None: up).
        self._commit_started: float | None = None
        self._down: str | None = None

    def add_listener(self, listener: Listener) -> None:
        if self.appender is self.store:
            self._listeners.append(listener)

    def add_flusher(self, flush: Callable[[bool], None]) -> None:
        """`flush(final)` runs on every maintenance tick (final=False) and once at close,
        before the log closes (final=True): for producers that aggregate records."""
        self._flushers.append(flush)

    def _flush(self, final: bool) -> None:
        for flush in self._flushers:
            try:
                flush(final)
            except Exception:
                log.exception("audit: a flusher failed")

    # -- recording ----------------------------------------------------------------------
    def record(self, event: AuditEvent) -> None:
        """Returns once `event` is committed; AuditUnavailableError otherwise."""
        self.record_many([event])

    def record_many(self, events: Sequence[AuditEvent]) -> None:
        must_not_block("an audit commit")
        ticket = self._enqueue(events, threading.Event(), None)
        if ticket is None:
            return
        assert ticket.done is not None
        if not ticket.done.wait(min(self.settings.stall_seconds, self.settings.commit_timeout)):
            while not ticket.done.wait(0.1):
                if not self.keep_waiting(ticket):
                    ticket.done.wait()
                    break
        self.settle(ticket)

    def submit(self, events: Sequence[AuditEvent], on_done: Callable[[], None]) -> AuditTicket:
        """Queue `events` without waiting. `on_done()` is called in the writer thread once
        the store's verdict is in (it must not block); the caller then calls `settle`.
        While it waits, it calls `keep_waiting` now and then (every 0.1 s after the first
        `first_wait_seconds`). AuditUnavailableError at once if the log cannot take them."""
        ticket = self._enqueue(events, None, on_done)
        if ticket is None:  # nothing to record
            ticket = AuditTicket([], time.perf_counter(), settled=True)
            on_done()
        return ticket

    @property
    def first_wait_seconds(self) -> float:
        return min(self.settings.stall_seconds, self.settings.commit_timeout)

    def submit_rows(
        self, rows: list[PendingRow], on_done: Callable[[AuditTicket], None]
    ) -> AuditTicket:
        """`submit` for rows built elsewhere (another API process's, through the hub):
        `on_done(ticket)` once their verdict is in; AuditUnavailableError at once if the
        log cannot take them."""
        holder: list[AuditTicket] = []
        ticket = self._queue_rows(rows, None, lambda: on_done(holder[0]), holder)
        assert ticket is not None
        return ticket

    def _enqueue(
        self,
        events: Sequence[AuditEvent],
        done: threading.Event | None,
        on_done: Callable[[], None] | None,
    ) -> AuditTicket | None:
        rows = [to_row(e, self.cluster) for e in events]  # may raise AuditRecordRejected
        return self._queue_rows(rows, done, on_done)

    def _queue_rows(
        self,
        rows: list[PendingRow],
        done: threading.Event | None,
        on_done: Callable[[], None] | None,
        holder: list[AuditTicket] | None = None,
    ) -> AuditTicket | None:
        if not rows:
            return None
        if self._closing.is_set():
            raise AuditUnavailableError("the audit log is closed")
        down = self.down()
        if down is not None:
            AUDIT_FAILURES.inc(len(rows))
            raise AuditUnavailableError(f"the audit store is not answering ({down})")
        ticket = AuditTicket(rows, time.perf_counter(), done, on_done)
        if holder is not None:
            holder.append(ticket)
        with self._cond:
            self._ensure_writer()
            self._queue.append(ticket)
            self._cond.notify()
        return ticket

    def settle(self, ticket: AuditTicket) -> None:
        """After the verdict: returns if the records are durable, else AuditUnavailableError."""
        if not ticket.rows:
            return
        if ticket.error is not None:
            AUDIT_FAILURES.inc(len(ticket.rows))
            raise AuditUnavailableError(f"the audit record could not be written: {ticket.error}")
        AUDIT_WRITE_SECONDS.observe(time.perf_counter() - ticket.started)

    @staticmethod
    def settled(ticket: AuditTicket) -> bool:
        """Whether the store's verdict on `ticket` is in."""
        return ticket.settled

    def keep_waiting(self, ticket: AuditTicket) -> bool:
        """Whether a caller past `first_wait_seconds` should wait on. Once the store is down
        or the commit timeout passed, a record still queued is withdrawn (it is then never
        written: AuditUnavailableError); one being committed waits for the store's verdict
        (False: wait for it, however long)."""
        if ticket.settled:
            return False
        deadline = ticket.started + self.settings.commit_timeout
        if self.down() is None and time.perf_counter() < deadline:
            return True
        with self._cond:
            if not ticket.claimed:
                self._queue.remove(ticket)
                AUDIT_FAILURES.inc(len(ticket.rows))
                raise AuditUnavailableError("the audit record was not committed in time")
        return False

    def down(self) -> str | None:
        """Why the store counts as not answering (None: it answers)."""
        if self._down is not None:
            return self._down
        began = self._commit_started
        if began is not None and time.monotonic() - began > self.settings.stall_seconds:
            return f"a commit has been running for over {self.settings.stall_seconds:g} s"
        return None

    def _ensure_writer(self) -> None:
        if self._writer is None or not self._writer.is_alive():
            self._writer = threading.Thread(
                target=self._write_loop, name="kustos-audit-writer", daemon=True
            )
            self._writer.start()

    def _write_loop(self) -> None:
        while True:
            with self._cond:
                while not self._queue:
                    if self._closing.is_set():
                        return
                    self._cond.wait(self.settings.probe_seconds if self._down else 0.5)
                    if self._down is not None and not self._queue:
                        break
                batch: list[AuditTicket] = []
                count = 0
                while self._queue and count < self.settings.max_batch:
                    batch.append(self._queue.popleft())
                    batch[-1].claimed = True
                    count += len(batch[-1].rows)
            if batch:
                self._commit(batch)
            elif self._down is not None:
                self._probe()

    def _probe(self) -> None:
        try:
            self.appender.probe(self.settings.stall_seconds)
        except Exception:  # still down
            return
        log.warning(
            "audit: the store answers again; recording resumes (it was down: %s)", self._down
        )
        self._down = None

    def _commit(self, batch: list[AuditTicket]) -> None:
        rows = [row for pending in batch for row in pending.rows]
        error: str | None = None
        self._commit_started = began = time.monotonic()
        try:
            written = self.appender.append(rows, lock_timeout=self.settings.stall_seconds)
        except Exception as exc:  # any failure means: not durable
            error = type(getattr(exc, "orig", None) or exc).__name__
            log.error("audit: a batch of %d records could not be committed: %s", len(rows), error)
            written = []
            took = time.monotonic() - began
            if self.appender.is_outage(exc) or took >= self.settings.stall_seconds:
                # Down before the callers wake, so that their failure records are refused
                # at once; whatever is queued behind is refused now (it was never written).
                self._down = f"{error} after {took:.1f} s"
                with self._cond:
                    for queued in self._queue:
                        queued.claimed = True  # settled here, with this batch's verdict
                    batch.extend(self._queue)
                    self._queue.clear()
        finally:
            self._commit_started = None
        at = 0
        for ticket in batch:
            if error is None:
                ticket.written = written[at : at + len(ticket.rows)]
                at += len(ticket.rows)
            ticket._settle(error)
        if error is not None:
            return
        AUDIT_CHAIN_LENGTH.set(written[-1][0])
        self._since_digest += len(rows)
        for listener in self._listeners:
            try:
                listener(rows)
            except Exception:
                log.exception("audit: a listener failed")

    # -- digests, retention, maintenance --------------------------------------------------
    def sign_digest(self, *, now: datetime | None = None) -> DigestRow | None:
        """Sign a digest over everything since the previous one (None: nothing new)."""
        if self._keyring is None:
            raise AuditUnavailableError("no keyring to sign audit digests with")
        keyring = self._keyring()
        stamp = time_text(now or datetime.now(UTC))

        def build(last: DigestRow | None, tail: tuple[int, str]) -> DigestRow | None:
            covered = last.last_seq if last else 0
            if tail[0] <= covered or tail[1] == GENESIS:
                return None
            return sign(
                DigestRow(
                    "digest",
                    stamp,
                    covered + 1,
                    tail[0],
                    tail[1],
                    last.signature if last else "",
                    "",
                    "",
                ),
                keyring,
            )

        made = self.store.add_digest(build)
        self._since_digest = 0
        return made

    def prune(self, older_than: datetime, *, now: datetime | None = None) -> int:
        """Delete records before `older_than`, leaving a signed checkpoint so the rest of
        the chain still verifies. Returns the number of records deleted."""
        if self._keyring is None:
            raise AuditUnavailableError("no keyring to sign the pruning checkpoint with")
        keyring = self._keyring()
        stamp = time_text(now or datetime.now(UTC))

        def build(last: DigestRow | None, upto: tuple[int, str], first: int) -> DigestRow:
            return sign(
                DigestRow(
                    "checkpoint",
                    stamp,
                    first,
                    upto[0],
                    upto[1],
                    last.signature if last else "",
                    "",
                    "",
                ),
                keyring,
            )

        return self.store.prune(time_text(older_than), build)

    def maintain(self, now: datetime | None = None) -> None:
        """One round of upkeep: a digest when due, pruning when a retention is set."""
        now = now or datetime.now(UTC)
        self.sign_digest(now=now)
        if self.settings.retention is not None:
            deleted = self.prune(now - self.settings.retention, now=now)
            if deleted:
                log.info("audit: pruned %d records older than the retention period", deleted)
        if self.anchor is not None:
            publish_safely(self.anchor)

    def publish_anchor(self) -> Anchor | None:
        """Publish the head and newest digest now (None: no anchor configured or readable)."""
        return None if self.anchor is None else self.anchor.publish()

    def start_maintenance(self) -> None:
        """Background upkeep (digests every `digest_seconds` or `digest_records`)."""
        if self._maint is not None or self._keyring is None:
            return

        tick = min(1.0, max(0.05, self.settings.anchor_seconds))

        def loop() -> None:
            last = anchored = time.monotonic()
            while not self._closing.wait(tick):
                self._flush(False)
                if (
                    self.anchor is not None
                    and time.monotonic() - anchored >= self.settings.anchor_seconds
                ):
                    publish_safely(self.anchor)
                    anchored = time.monotonic()
                due = time.monotonic() - last >= self.settings.digest_seconds
                if due or self._since_digest >= self.settings.digest_records:
                    try:
                        self.maintain()
                    except (KustosError, OSError) as exc:
                        log.error("audit: maintenance failed: %s", getattr(exc, "message", exc))
                    except Exception:
                        log.exception("audit: maintenance failed")
                    last = time.monotonic()

        self._maint = threading.Thread(target=loop, name="kustos-audit-maint", daemon=True)
        self._maint.start()

    # -- reading ------------------------------------------------------------------------
    def verify(
        self, keyring: Keyring | None = None, anchors: Sequence[tuple[str, Anchor | None]] = ()
    ) -> VerifyReport:
        if keyring is None and self._keyring is not None:
            keyring = self._keyring()
        report = verify(self.store, keyring, anchors)
        metrics.AUDIT_VERIFY_OK.set(1 if report.ok else 0)
        if not report.ok:
            metrics.AUDIT_VERIFY_FAILURES.inc()
        return report

    def lookup(self, query: AuditQuery) -> list[tuple[int, str]]:
        return self.store.lookup(query)

    def export(self, query: AuditQuery) -> Iterator[str]:
        return self.store.export(query)

    def close(self) -> None:
        """Drain the queue, sign a last digest (best effort), stop the threads."""
        self._flush(True)
        self._closing.set()
        with self._cond:
            self._cond.notify_all()
        if self._writer is not None:
            self._writer.join(timeout=self.settings.commit_timeout)
        if self._maint is not None:
            self._maint.join(timeout=5)
            try:
                self.sign_digest()
            except (KustosError, OSError) as exc:
                log.warning("audit: no final digest: %s", getattr(exc, "message", exc))
            except Exception:
                log.exception("audit: no final digest")
            if self.anchor is not None:
                publish_safely(self.anchor)
        if self.appender is not self.store:
            self.appender.close()
        self.store.close()
