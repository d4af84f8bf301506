"""The audit log's persistence: an append-only, hash-chained table and its signed digests.

Format of the chain (what `kustos audit verify` recomputes). Every row has a `seq` (1, 2,
3, ... with no gaps), the canonical CloudTrail-shaped JSON in `record`, a few columns copied
from it for lookups, and

    hash = SHA-256( prev_hash "\\n" seq "\\n" columns "\\n" record )

where `columns` joins `HASHED_COLUMNS` with U+001F (NULL written as U+0000) and `prev_hash`
is the previous row's hash (64 zeros before the first row, or the hash carried by the newest
pruning checkpoint). The hash thus covers every column, so editing any of them shows.

Appends are serialised across processes (SQLite's write lock via BEGIN IMMEDIATE; a
PostgreSQL advisory lock), so a batch reads the tail and extends it atomically. On a SQLite
file, appends run on one connection of the raw driver kept for them (`_RawAppender`: the same
PRAGMAs as the engine's, ``synchronous=FULL``, so each commit is fsynced): a batch is then
four statements (BEGIN IMMEDIATE, the tail, one multi-row INSERT, COMMIT) without SQLAlchemy's
checkout, event hooks and statement compilation, which cost more than the batch's SQL; its
WAL is checkpointed by a thread of its own, never inside an append's commit
(`kustos.store.checkpointer`). The caller
may bound how long an append waits for that lock (`lock_timeout`): the store then answers
within that time, committed or not, instead of after the 30 s default busy wait. Digests and
checkpoints (`audit_digests`) are built by a callback inside the same kind of transaction; the
signing lives in the service, which holds the keyring. Nothing here knows about keys.
"""

from __future__ import annotations

import hashlib
import operator
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from kustos.store.append_lock import AppendLock
from kustos.store.audit_query import AuditQuery, where_clause
from kustos.store.audit_tables import audit_digests, audit_log
from kustos.store.checkpointer import Checkpointer
from kustos.store.migrate import BUSY_TIMEOUT_S, WRITE, sqlite_pragmas

__all__ = [
    "GENESIS",
    "HASHED_COLUMNS",
    "AuditQuery",
    "AuditStore",
    "DigestRow",
    "PendingRow",
    "audit_digests",
    "audit_log",
    "chain_hash",
]

GENESIS = "0" * 64
_SEP = "\x1f"
_PG_LOCK_KEY = 0x6B75737461  # "kusta"

HASHED_COLUMNS = (
    "event_id",
    "event_time",
    "event_name",
    "event_type",
    "namespace",
    "secret_arn",
    "secret_name",
    "principal_arn",
    "user_name",
    "read_only",
    "denied",
)
_hashed = operator.attrgetter(*HASHED_COLUMNS)
#: Columns `iter_chain` yields, in order.
CHAIN_COLUMNS = ("seq", *HASHED_COLUMNS, "record", "prev_hash", "hash")


@dataclass(frozen=True)
class PendingRow:
    """A record about to be appended: the lookup columns and the canonical JSON."""

    event_id: str
    event_time: str
    event_name: str
    event_type: str
    namespace: str
    secret_arn: str | None
    secret_name: str | None
    principal_arn: str
    user_name: str
    read_only: bool
    denied: bool
    record: str


@dataclass(frozen=True)
class DigestRow:
    kind: str
    created_at: str
    first_seq: int
    last_seq: int
    chain_hash: str
    prev_signature: str
    key_id: str
    signature: str
    id: int | None = None


def _text(value: object) -> str:
    if value is None:
        return "\x00"
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


_INSERT_COLUMNS = ("seq", *HASHED_COLUMNS, "record", "prev_hash", "hash")


def _insert_sql(paramstyle: str, rows: int = 1) -> str:
    """INSERT of `rows` rows in one statement."""
    mark = "?" if paramstyle == "qmark" else "%s"
    one = f"({', '.join([mark] * len(_INSERT_COLUMNS))})"
    return (
        f"INSERT INTO audit_log ({', '.join(_INSERT_COLUMNS)}) "  # noqa: S608 (constants)
        f"VALUES {', '.join([one] * rows)}"
    )


#: Most rows per INSERT statement on the raw driver. SQLite's limit on bound variables is
#: 32,766 since 3.32 (999 before): 64 rows of 15 columns stay under either.
INSERT_ROWS = 64


def _chunks(n: int) -> list[int]:
    """Sizes of the statements that insert `n` rows: `INSERT_ROWS` while that many are
    left, then the powers of two of the rest, largest first (23 -> 16, 4, 2, 1)."""
    sizes = [INSERT_ROWS] * (n // INSERT_ROWS)
    rest = n % INSERT_ROWS
    bit = INSERT_ROWS
    while rest:
        bit >>= 1
        if rest & bit:
            sizes.append(bit)
            rest -= bit
    return sizes


def _insert_rows(conn: sqlite3.Connection, values: Sequence[tuple[object, ...]]) -> None:
    """Insert `values` in a few multi-row statements (`_chunks`).

    The driver lets go of the GIL around every step of a statement, and an executemany steps
    once per row: with the event loop busy, each step's return waited for the interpreter's
    switch interval, a few milliseconds per batch that every caller in it waited too
    (`bench/gil_batch.py`). A multi-row statement steps once. Its sizes are powers of two,
    so the driver's statement cache holds at most seven shapes, not one per batch size (64
    shapes of 1 to 64 rows took 4.7 MiB prepared, the seven 0.3 MiB)."""
    start = 0
    for size in _chunks(len(values)):
        chunk = values[start : start + size]
        start += size
        conn.execute(_insert_sql("qmark", size), [field for row in chunk for field in row])


def chain_hash(prev_hash: str, seq: int, columns: Sequence[object], record: str) -> str:
    """The hash of one row (see the module docstring)."""
    head = f"{prev_hash}\n{seq}\n{_SEP.join(map(_text, columns))}\n"
    return hashlib.sha256(head.encode() + record.encode()).hexdigest()


_TAIL_SQL = "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1"
_CHECKPOINT_SQL = (
    "SELECT last_seq, chain_hash FROM audit_digests WHERE kind = 'checkpoint' "
    "ORDER BY id DESC LIMIT 1"
)


class _RawAppender:
    """Appends on a SQLite file through one connection of the raw driver (see the module
    docstring). Callers hold the `AppendLock`, which also serialises this process's threads."""

    def __init__(self, database: Path) -> None:
        self._database = database
        self._conn: sqlite3.Connection | None = None
        self._busy_ms: int | None = None
        self._guard = threading.Lock()
        #: Checkpoints the WAL outside the appends' commits (`kustos.store.checkpointer`).
        self.checkpointer = Checkpointer(database)

    def _connection(self, busy_ms: int) -> sqlite3.Connection:
        if self._conn is None:
            conn = sqlite3.connect(
                self._database,
                isolation_level=None,
                check_same_thread=False,
                timeout=BUSY_TIMEOUT_S,
            )
            sqlite_pragmas(conn)
            conn.execute("PRAGMA wal_autocheckpoint = 0")  # the checkpointer's job
            self.checkpointer.start()
            self._conn, self._busy_ms = conn, BUSY_TIMEOUT_S * 1000
        if busy_ms != self._busy_ms:
            self._conn.execute(f"PRAGMA busy_timeout = {busy_ms}")
            self._busy_ms = busy_ms
        return self._conn

    def append(
        self, rows: Sequence[PendingRow], lock_timeout: float | None
    ) -> list[tuple[int, str]]:
        busy_ms = BUSY_TIMEOUT_S * 1000 if lock_timeout is None else int(lock_timeout * 1000)
        with self._guard:
            conn = self._connection(busy_ms)
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    tail = (
                        conn.execute(_TAIL_SQL).fetchone()
                        or conn.execute(_CHECKPOINT_SQL).fetchone()
                    )
                    seq, prev = (int(tail[0]), str(tail[1])) if tail else (0, GENESIS)
                    out, values = _chained(seq, prev, rows)
                    if values:
                        _insert_rows(conn, values)
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
            except sqlite3.Error:
                self._close()  # a connection in doubt is not reused
                raise
        return out

    def _close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            with suppress(sqlite3.Error):
                conn.close()

    def close(self) -> None:
        with self._guard:
            self._close()
        self.checkpointer.close()


def _chained(
    seq: int, prev: str, rows: Sequence[PendingRow]
) -> tuple[list[tuple[int, str]], list[tuple[object, ...]]]:
    """(seq, hash) of each row after the tail (seq, prev), and the rows' insert values."""
    out: list[tuple[int, str]] = []
    values: list[tuple[object, ...]] = []
    for row in rows:
        seq += 1
        fields = _hashed(row)
        digest = chain_hash(prev, seq, fields, row.record)
        values.append((seq, *fields, row.record, prev, digest))
        out.append((seq, digest))
        prev = digest
    return out, values


class AuditStore:
    """The audit tables on the store's engine (SQLite or PostgreSQL)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._writer = engine.execution_options(**{WRITE: True})
        database = engine.url.database
        on_file = engine.dialect.name == "sqlite" and database not in (None, "", ":memory:")
        #: Queues appenders of every process on a SQLite file without SQLite's polling.
        self._append_lock = AppendLock(Path(database or "")) if on_file else None
        self._raw = _RawAppender(Path(database or "")) if on_file else None

    def _lock(self, conn: Connection) -> None:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})

    # -- appending ----------------------------------------------------------------------
    def _tail(self, conn: Connection) -> tuple[int, str]:
        row = conn.execute(
            sa.select(audit_log.c.seq, audit_log.c.hash).order_by(audit_log.c.seq.desc()).limit(1)
        ).first()
        if row is not None:
            return int(row.seq), str(row.hash)
        checkpoint = self._last_digest(conn, kind="checkpoint")
        if checkpoint is not None:
            return checkpoint.last_seq, checkpoint.chain_hash
        return 0, GENESIS

    def tail(self) -> tuple[int, str]:
        """(seq, hash) of the newest record; (0, GENESIS) for an empty log."""
        with self._engine.connect() as conn:
            return self._tail(conn)

    @contextmanager
    def _write(self, lock_timeout: float | None) -> Iterator[Connection]:
        """A write transaction holding the append lock, waiting at most `lock_timeout`
        seconds for it (None: the engine's default)."""
        with self._writer.connect() as conn:
            sqlite = conn.dialect.name == "sqlite"
            if sqlite and lock_timeout is not None:  # before BEGIN IMMEDIATE waits
                conn.connection.driver_connection.execute(  # type: ignore[union-attr]
                    f"PRAGMA busy_timeout = {int(lock_timeout * 1000)}"
                )
            try:
                with conn.begin():
                    if not sqlite and lock_timeout is not None:
                        conn.execute(
                            sa.text("SELECT set_config('lock_timeout', :v, true)"),
                            {"v": f"{int(lock_timeout * 1000)}ms"},
                        )
                    self._lock(conn)
                    yield conn
            finally:
                if sqlite and lock_timeout is not None and not conn.invalidated:
                    conn.connection.driver_connection.execute(  # type: ignore[union-attr]
                        f"PRAGMA busy_timeout = {BUSY_TIMEOUT_S * 1000}"
                    )

    @staticmethod
    def is_outage(exc: BaseException) -> bool:
        """Whether `exc` from an append means the store is not answering (locked past the
        timeout, unreachable, I/O failure), as opposed to a refused row."""
        return isinstance(
            exc,
            sa.exc.OperationalError
            | sa.exc.InterfaceError
            | OSError
            | TimeoutError
            | sqlite3.OperationalError
            | sqlite3.InterfaceError,
        )

    def probe(self, lock_timeout: float) -> None:
        """Take the append lock and let it go (raises when the store does not answer)."""
        with self._write(lock_timeout) as conn:
            conn.execute(sa.select(sa.literal(1)))

    def append(
        self, rows: Sequence[PendingRow], lock_timeout: float | None = None
    ) -> list[tuple[int, str]]:
        """Chain and insert `rows` in one transaction; (seq, hash) of each, once committed."""
        if self._raw is not None and self._append_lock is not None:
            with self._append_lock.held(lock_timeout):
                return self._raw.append(rows, lock_timeout)
        with self._write(lock_timeout) as conn:
            out, values = _chained(*self._tail(conn), rows)
            if values:  # the driver's executemany: SQLAlchemy's insert costs more per row
                conn.exec_driver_sql(_insert_sql(conn.dialect.paramstyle), values)
        return out

    def close(self) -> None:
        """Let go of the raw append connection and the lock file (the engine is the
        store's to dispose of)."""
        if self._raw is not None:
            self._raw.close()
        if self._append_lock is not None:
            self._append_lock.close()

    # -- reading ------------------------------------------------------------------------
    def iter_chain(self, after_seq: int = 0, batch: int = 5000) -> Iterator[tuple[Any, ...]]:
        """Every row with seq > after_seq, in seq order, as tuples of `CHAIN_COLUMNS`;
        one read transaction (one snapshot) for the whole walk."""
        cols = [audit_log.c[name] for name in CHAIN_COLUMNS]
        query = sa.select(*cols).where(audit_log.c.seq > after_seq).order_by(audit_log.c.seq)
        with self._engine.connect() as conn:
            result = conn.execution_options(yield_per=batch).execute(query)
            for row in result:
                yield tuple(row)

    def find_seq_by_hash(self, digest: str) -> int | None:
        with self._engine.connect() as conn:
            found = conn.execute(
                sa.select(audit_log.c.seq).where(audit_log.c.hash == digest).limit(1)
            ).scalar_one_or_none()
        return None if found is None else int(found)

    def lookup(self, q: AuditQuery) -> list[tuple[int, str]]:
        """(seq, record JSON) of matching records, newest first, at most `q.limit`."""
        query = (
            sa.select(audit_log.c.seq, audit_log.c.record)
            .where(*where_clause(q))
            .order_by(audit_log.c.seq.desc())
            .limit(q.limit)
        )
        with self._engine.connect() as conn:
            return [(int(r.seq), str(r.record)) for r in conn.execute(query)]

    def export(self, q: AuditQuery, batch: int = 5000) -> Iterator[str]:
        """Record JSON of matching records, oldest first, streamed (q.limit ignored)."""
        query = sa.select(audit_log.c.record).where(*where_clause(q)).order_by(audit_log.c.seq)
        with self._engine.connect() as conn:
            for row in conn.execution_options(yield_per=batch).execute(query):
                yield str(row.record)

    def count_by(self, column: str, q: AuditQuery, **equal: object) -> dict[str, int]:
        col = audit_log.c[column]
        where = where_clause(q) + [audit_log.c[k] == v for k, v in equal.items()]
        query = sa.select(col, sa.func.count()).where(*where).group_by(col)
        with self._engine.connect() as conn:
            return {str(k): int(n) for k, n in conn.execute(query)}

    def secret_spans(self, event_names: Sequence[str]) -> dict[str, tuple[str, str, str]]:
        """secret_arn -> (namespace, first, last event_time) over records named `event_names`."""
        c = audit_log.c
        query = (
            sa.select(
                c.secret_arn,
                sa.func.min(c.namespace),
                sa.func.min(c.event_time),
                sa.func.max(c.event_time),
            )
            .where(c.event_name.in_(list(event_names)), c.secret_arn.is_not(None))
            .group_by(c.secret_arn)
        )
        with self._engine.connect() as conn:
            return {str(r[0]): (str(r[1]), str(r[2]), str(r[3])) for r in conn.execute(query)}

    # -- digests and checkpoints -----------------------------------------------------------
    def _last_digest(self, conn: Connection, kind: str | None = None) -> DigestRow | None:
        query = sa.select(audit_digests).order_by(audit_digests.c.id.desc()).limit(1)
        if kind is not None:
            query = query.where(audit_digests.c.kind == kind)
        row = conn.execute(query).mappings().first()
        return None if row is None else DigestRow(**dict(row))

    def newest_digest(self) -> DigestRow | None:
        """The newest digest or checkpoint (by id), or None."""
        with self._engine.connect() as conn:
            return self._last_digest(conn)

    def digest_by_signature(self, signature: str) -> DigestRow | None:
        with self._engine.connect() as conn:
            row = (
                conn.execute(
                    sa.select(audit_digests).where(audit_digests.c.signature == signature).limit(1)
                )
                .mappings()
                .first()
            )
        return None if row is None else DigestRow(**dict(row))

    def pruned_through(self) -> int:
        """The last seq the newest pruning checkpoint removed (0: never pruned)."""
        with self._engine.connect() as conn:
            checkpoint = self._last_digest(conn, kind="checkpoint")
        return 0 if checkpoint is None else checkpoint.last_seq

    def hash_at(self, seq: int) -> str | None:
        """The stored hash of the row at `seq` (None: no such row)."""
        with self._engine.connect() as conn:
            found = conn.execute(
                sa.select(audit_log.c.hash).where(audit_log.c.seq == seq)
            ).scalar_one_or_none()
        return None if found is None else str(found)

    def digests(self) -> list[DigestRow]:
        with self._engine.connect() as conn:
            rows = conn.execute(sa.select(audit_digests).order_by(audit_digests.c.id)).mappings()
            return [DigestRow(**dict(r)) for r in rows]

    def add_digest(
        self, build: Callable[[DigestRow | None, tuple[int, str]], DigestRow | None]
    ) -> DigestRow | None:
        """Insert what `build(last digest, tail)` returns (None: nothing to sign)."""
        with self._writer.begin() as conn:
            self._lock(conn)
            made = build(self._last_digest(conn), self._tail(conn))
            if made is not None:
                self._insert_digest(conn, made)
        return made

    def _insert_digest(self, conn: Connection, row: DigestRow) -> None:
        values = {k: v for k, v in row.__dict__.items() if k != "id"}
        conn.execute(sa.insert(audit_digests).values(**values))

    def prune(
        self,
        before: str,
        build: Callable[[DigestRow | None, tuple[int, str], int], DigestRow],
    ) -> int:
        """Delete the records older than `before` (a prefix of the chain: everything up to
        the newest such seq) and insert the checkpoint `build(last digest, (seq, hash) of
        the last pruned record, first pruned seq)` in the same transaction. Returns how many
        records were deleted."""
        c = audit_log.c
        with self._writer.begin() as conn:
            self._lock(conn)
            upto = conn.execute(sa.select(sa.func.max(c.seq)).where(c.event_time < before))
            last = upto.scalar_one_or_none()
            if last is None:
                return 0
            first = conn.execute(sa.select(sa.func.min(c.seq))).scalar_one()
            digest = conn.execute(sa.select(c.hash).where(c.seq == last)).scalar_one()
            self._insert_digest(
                conn, build(self._last_digest(conn), (int(last), digest), int(first))
            )
            deleted = conn.execute(sa.delete(audit_log).where(c.seq <= last)).rowcount
        return int(deleted)
