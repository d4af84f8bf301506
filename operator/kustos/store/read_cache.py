"""Repeated reads of secrets and versions from memory, never older than the last write.

`ReadCache` keeps what `SqlStore` read (a secret record by ARN or by name, a version by
label or id: still sealed, so every answer is decrypted from what the store holds) tagged
with the store's *read epoch* (migration 0005): a counter that triggers move inside every
transaction that changes `secrets`, `versions` or `stages`, whichever process or replica
wrote. Each lookup first reads the epoch (one indexed row, on a per-thread connection of the
raw driver, outside SQLAlchemy, a few microseconds); an entry tagged with another epoch is
discarded. So a read that starts after a write committed anywhere sees that write, as
without the cache; what a cache hit saves is SQLAlchemy's per-query work (connection
checkout, BEGIN, four statements, row processing).

The epoch is read *before* loading (`epoch()` then `put`), so an entry is never tagged newer
than its contents; a write that lands in between only makes the next lookup miss. The epoch
only grows, so an entry tagged with an older one can never be answered again: the first
`put` of a newer epoch drops them all, and a `put` of an older one keeps nothing. The cache
holds what was read since the last write, at most `max_entries` of it.

**Admission on the second load.** A key is kept only when it is loaded again within
`ADMIT_WINDOW_SECONDS` of its last load (at any epoch: a write anywhere empties the cache,
and a key the API keeps reading is kept again from its next load). The operator's periodic
pass reads every secret and its current version once per pass (every 30 s by default): at
10,000 objects that filled the cache with 20,000 entries (about 1.5 KiB each) that no one
read again, in the process that also serves the API. The keys last loaded (at most
`max_entries` of them, about 0.2 KiB each) are all that such a pass leaves.

**One epoch read per call** (`pinned()`): inside the block, the lookups of one context (an
API call: the secret, then its version) share the epoch read by the first of them. The block
starts before any of its reads, so each still sees every write committed before it began, as
the reads without a pin would. A write through the store inside the block (`unpin()`, from
every write transaction) drops the pinned epoch, so a call reads its own writes. The pin
lives in a `ContextVar`: another asyncio task or thread never sees it.
SQLite only (PostgreSQL has no triggers for it: `SqlStore` does not build the cache there).
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Callable, Hashable, Iterator
from contextvars import ContextVar
from pathlib import Path
from typing import Any

__all__ = ["ReadCache", "unpin"]

_EPOCH = "SELECT n FROM kustos_read_epoch WHERE id = 1"
#: The page cache of each thread's epoch connection, KiB: the epoch row and its few pages.
EPOCH_CACHE_KIB = 64
#: A key loaded again within this long of its last load is kept (below the periodic pass's
#: interval, so one pass over every object keeps nothing).
ADMIT_WINDOW_SECONDS = 10.0


class _Pin:
    """The epoch shared by the lookups of one `ReadCache.pinned` block (None: not read yet)."""

    __slots__ = ("cache", "epoch")

    def __init__(self, cache: ReadCache) -> None:
        self.cache = cache
        self.epoch: int | None = None


_PIN: ContextVar[_Pin | None] = ContextVar("kustos_read_epoch_pin", default=None)


def unpin() -> None:
    """Forget the current context's pinned epoch (after a write: read your own writes)."""
    pin = _PIN.get()
    if pin is not None:
        pin.epoch = None


class ReadCache:
    """Entries keyed by any hashable, each valid while the store's read epoch is unchanged."""

    def __init__(
        self,
        path: Path,
        *,
        max_entries: int = 20_000,
        busy_ms: int = 30_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._path = path
        self._clock = clock
        self._busy_ms = busy_ms
        self._max = max_entries
        self._local = threading.local()
        self._entries: dict[Hashable, tuple[int, Any]] = {}
        #: When each key not kept was last loaded (kept on a load within the window).
        self._seen: dict[Hashable, float] = {}
        self._epoch = -1  # the newest epoch an entry was put with
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        #: Lookups answered from memory and lookups that went to the store (tests, metrics).
        self.hits = 0
        self.misses = 0

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
            conn.execute(f"PRAGMA busy_timeout = {int(self._busy_ms)}")
            conn.execute(f"PRAGMA cache_size = -{EPOCH_CACHE_KIB}")  # it reads one row
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    def epoch(self) -> int:
        """The store's read epoch now (a fresh snapshot: autocommit, no open transaction)."""
        rows = self._conn().execute(_EPOCH).fetchall()  # to the end: no snapshot left open
        return int(rows[0][0]) if rows else -1

    @contextlib.contextmanager
    def pinned(self) -> Iterator[None]:
        """Lookups in this block (this context only) share one epoch read (module docstring)."""
        token = _PIN.set(_Pin(self))
        try:
            yield
        finally:
            _PIN.reset(token)

    def _now(self) -> int:
        pin = _PIN.get()
        if pin is None or pin.cache is not self:
            return self.epoch()
        if pin.epoch is None:
            pin.epoch = self.epoch()
        return pin.epoch

    def get(self, key: Hashable) -> tuple[int, Any, bool]:
        """(epoch now, cached value, hit?) for `key`."""
        now = self._now()
        entry = self._entries.get(key)
        if entry is not None and entry[0] == now:
            self.hits += 1
            return now, entry[1], True
        self.misses += 1
        return now, None, False

    def put(self, key: Hashable, epoch: int, value: Any) -> None:
        """Remember `value`, loaded after the epoch read returned `epoch`."""
        now = self._clock()
        with self._lock:
            if epoch < self._epoch:
                return  # loaded before a write: the next lookup misses anyway
            if epoch > self._epoch:
                for old in self._entries:  # kept before: kept again from its next load
                    self._seen[old] = now
                self._entries = {}  # none of them can hit again
                self._epoch = epoch
            last = self._seen.pop(key, None)
            if last is None or now - last > ADMIT_WINDOW_SECONDS:
                if len(self._seen) >= self._max:
                    self._seen = {}
                self._seen[key] = now  # kept if it is loaded again soon
                return
            if len(self._entries) >= self._max:
                self._entries = {}
            self._entries[key] = (epoch, value)

    def clear(self) -> None:
        with self._lock:
            self._entries, self._seen = {}, {}

    def __len__(self) -> int:
        return len(self._entries)

    def close(self) -> None:
        with self._lock:
            connections, self._connections = self._connections, []
        for conn in connections:
            with contextlib.suppress(sqlite3.ProgrammingError):  # another thread still uses it
                conn.close()
