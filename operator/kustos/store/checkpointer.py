"""Checkpoints of a SQLite file's write-ahead log, in a thread of their own.

By default SQLite checkpoints inside the COMMIT that pushes the WAL past 1,000 pages: that
commit then copies the WAL into the database file and fsyncs it, while it holds the write
lock. On the audit append connection that is a batch of API calls waiting several times
longer than usual (and, with several API processes, every other process's batch behind it).
The append connection turns that off (`PRAGMA wal_autocheckpoint = 0`) and this thread runs
a PASSIVE checkpoint every `interval` seconds instead: PASSIVE never takes the write lock and
never waits for readers, so it delays no commit. Durability is unchanged: with
``synchronous=FULL`` every commit is durable in the WAL before it returns.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path

__all__ = ["Checkpointer"]

log = logging.getLogger(__name__)


class Checkpointer:
    def __init__(self, database: Path, interval: float = 0.25) -> None:
        self._database = database
        self._interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        #: Checkpoints run, and WAL frames they copied (tests, diagnostics).
        self.runs = 0
        self.copied = 0

    def start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._loop, name="kustos-wal-checkpoint", daemon=True
                )
                self._thread.start()

    def _loop(self) -> None:
        conn: sqlite3.Connection | None = None
        failing = False
        try:
            while not self._stop.wait(self._interval):
                try:
                    if conn is None:
                        conn = sqlite3.connect(
                            self._database, isolation_level=None, check_same_thread=False
                        )
                    _, _, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                except sqlite3.Error as exc:  # the next tick retries; said once per streak
                    if not failing:
                        log.warning("WAL checkpoint failed: %s", type(exc).__name__)
                    failing = True
                    continue
                failing = False
                self.runs += 1
                self.copied += max(0, int(copied))
        finally:
            if conn is not None:
                conn.close()

    def close(self) -> None:
        self._stop.set()
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=5)
