"""`AuditService`: records audit events durably (fail closed, group commit), signs periodic
digests, prunes by retention, and answers lookups, exports and verification.

Group commit: `record()` turns the event into its row in the caller's thread, queues it and
waits; one writer thread drains everything queued into one transaction, so N concurrent
callers pay for one commit (one fsync) instead of N. Each caller returns only after its
batch committed, or raises `AuditUnavailableError` — the caller must then refuse to return
a value or make a change. Listeners (notifications) run after the commit and never block it.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from kustos.crypto import Keyring
from kustos.errors import AuditUnavailableError, KustosError
from kustos.metrics import AUDIT_CHAIN_LENGTH, AUDIT_FAILURES, AUDIT_WRITE_SECONDS
from kustos.models.audit import AuditEvent
from kustos.services.audit_event import AuditRecordRejected, time_text, to_row
from kustos.services.audit_verify import VerifyReport, sign, verify
from kustos.store.audit import GENESIS, AuditQuery, AuditStore, DigestRow, PendingRow

__all__ = ["AuditRecordRejected", "AuditService", "AuditSettings", "Listener"]

log = logging.getLogger(__name__)
#: Called with the rows of each committed batch, in the writer thread; must not block.
Listener = Callable[[Sequence[PendingRow]], None]


@dataclass(frozen=True)
class AuditSettings:
    #: How long record() waits for its commit before failing closed.
    commit_timeout: float = 10.0
    max_batch: int = 2000
    #: A digest is signed when this much time passed or this many records were added.
    digest_seconds: float = 300.0
    digest_records: int = 50_000
    #: Records older than this are pruned (None: keep forever).
    retention: timedelta | None = None

    @classmethod
    def from_env(cls) -> AuditSettings:
        env = os.environ
        days = env.get("KUSTOS_AUDIT_RETENTION_DAYS")
        return cls(
            digest_seconds=float(env.get("KUSTOS_AUDIT_DIGEST_SECONDS", cls.digest_seconds)),
            digest_records=int(env.get("KUSTOS_AUDIT_DIGEST_RECORDS", cls.digest_records)),
            retention=timedelta(days=float(days)) if days else None,
        )


@dataclass
class _Pending:
    rows: list[PendingRow]
    done: threading.Event = field(default_factory=threading.Event)
    error: str | None = None


class AuditService:
    def __init__(
        self, store: AuditStore, cluster: str, keyring: Callable[[], Keyring] | None = None,
        settings: AuditSettings | None = None,
    ) -> None:
        self.store = store
        self.cluster = cluster
        self._keyring = keyring
        self.settings = settings or AuditSettings()
        self._queue: deque[_Pending] = deque()
        self._cond = threading.Condition()
        self._writer: threading.Thread | None = None
        self._maint: threading.Thread | None = None
        self._closing = threading.Event()
        self._listeners: list[Listener] = []
        self._since_digest = 0

    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    # -- recording ----------------------------------------------------------------------
    def record(self, event: AuditEvent) -> None:
        """Returns once `event` is committed; AuditUnavailableError otherwise."""
        self.record_many([event])

    def record_many(self, events: Sequence[AuditEvent]) -> None:
        rows = [to_row(e, self.cluster) for e in events]  # may raise AuditRecordRejected
        if not rows:
            return
        if self._closing.is_set():
            raise AuditUnavailableError("the audit log is closed")
        pending = _Pending(rows)
        started = time.perf_counter()
        with self._cond:
            self._ensure_writer()
            self._queue.append(pending)
            self._cond.notify()
        if not pending.done.wait(self.settings.commit_timeout):
            AUDIT_FAILURES.inc(len(rows))
            raise AuditUnavailableError("the audit record was not committed in time")
        if pending.error is not None:
            AUDIT_FAILURES.inc(len(rows))
            raise AuditUnavailableError(f"the audit record could not be written: {pending.error}")
        AUDIT_WRITE_SECONDS.observe(time.perf_counter() - started)

    def _ensure_writer(self) -> None:
        if self._writer is None or not self._writer.is_alive():
            self._writer = threading.Thread(target=self._write_loop, name="kustos-audit-writer",
                                            daemon=True)
            self._writer.start()

    def _write_loop(self) -> None:
        while True:
            with self._cond:
                while not self._queue:
                    if self._closing.is_set():
                        return
                    self._cond.wait(0.5)
                batch: list[_Pending] = []
                count = 0
                while self._queue and count < self.settings.max_batch:
                    batch.append(self._queue.popleft())
                    count += len(batch[-1].rows)
            self._commit(batch)

    def _commit(self, batch: list[_Pending]) -> None:
        rows = [row for pending in batch for row in pending.rows]
        error: str | None = None
        try:
            written = self.store.append(rows)
        except Exception as exc:  # any failure means: not durable
            error = type(getattr(exc, "orig", None) or exc).__name__
            log.error("audit: a batch of %d records could not be committed: %s", len(rows), error)
            written = []
        for pending in batch:
            pending.error = error
            pending.done.set()
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
            return sign(DigestRow("digest", stamp, covered + 1, tail[0], tail[1],
                                  last.signature if last else "", "", ""), keyring)

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
            return sign(DigestRow("checkpoint", stamp, first, upto[0], upto[1],
                                  last.signature if last else "", "", ""), keyring)

        return self.store.prune(time_text(older_than), build)

    def maintain(self, now: datetime | None = None) -> None:
        """One round of upkeep: a digest when due, pruning when a retention is set."""
        now = now or datetime.now(UTC)
        self.sign_digest(now=now)
        if self.settings.retention is not None:
            deleted = self.prune(now - self.settings.retention, now=now)
            if deleted:
                log.info("audit: pruned %d records older than the retention period", deleted)

    def start_maintenance(self) -> None:
        """Background upkeep (digests every `digest_seconds` or `digest_records`)."""
        if self._maint is not None or self._keyring is None:
            return

        def loop() -> None:
            last = time.monotonic()
            while not self._closing.wait(1.0):
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
    def verify(self, keyring: Keyring | None = None) -> VerifyReport:
        if keyring is None and self._keyring is not None:
            keyring = self._keyring()
        return verify(self.store, keyring)

    def lookup(self, query: AuditQuery) -> list[tuple[int, str]]:
        return self.store.lookup(query)

    def export(self, query: AuditQuery) -> Iterator[str]:
        return self.store.export(query)

    def close(self) -> None:
        """Drain the queue, sign a last digest (best effort), stop the threads."""
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

