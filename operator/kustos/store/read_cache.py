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
SQLite only (PostgreSQL has no triggers for it: `SqlStore` does not build the cache there).
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Hashable
from pathlib import Path
from typing import Any

__all__ = ["ReadCache"]

_EPOCH = "SELECT n FROM kustos_read_epoch WHERE id = 1"
#: The page cache of each thread's epoch connection, KiB: the epoch row and its few pages.
EPOCH_CACHE_KIB = 64


class ReadCache:
    """Entries keyed by any hashable, each valid while the store's read epoch is unchanged."""

    def __init__(self, path: Path, *, max_entries: int = 20_000, busy_ms: int = 30_000) -> None:
        self._path = path
        self._busy_ms = busy_ms
        self._max = max_entries
        self._local = threading.local()
        self._entries: dict[Hashable, tuple[int, Any]] = {}
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

    def get(self, key: Hashable) -> tuple[int, Any, bool]:
        """(epoch now, cached value, hit?) for `key`."""
        now = self.epoch()
        entry = self._entries.get(key)
        if entry is not None and entry[0] == now:
            self.hits += 1
            return now, entry[1], True
        self.misses += 1
        return now, None, False

    def put(self, key: Hashable, epoch: int, value: Any) -> None:
        """Remember `value`, loaded after the epoch read returned `epoch`."""
        with self._lock:
            if epoch < self._epoch:
                return  # loaded before a write: the next lookup misses anyway
            if epoch > self._epoch or len(self._entries) >= self._max:
                self._entries = {}  # none of them can hit again (or the cache is full)
                self._epoch = epoch
            self._entries[key] = (epoch, value)

    def clear(self) -> None:
        with self._lock:
            self._entries = {}

    def __len__(self) -> int:
        return len(self._entries)

    def close(self) -> None:
        with self._lock:
            connections, self._connections = self._connections, []
        for conn in connections:
            with contextlib.suppress(sqlite3.ProgrammingError):  # another thread still uses it
                conn.close()
