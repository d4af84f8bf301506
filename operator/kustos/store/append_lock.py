"""A blocking cross-process lock that queues the audit log's appenders on one SQLite file.

SQLite serialises writers with its own lock, but a writer that finds it taken *polls*: the
busy handler sleeps 1, 2, 5, ... up to 100 ms between tries. With several API processes each
committing a batch of audit records every few milliseconds (group commit), those sleeps,
not the fsyncs, would set the latency. `AppendLock` makes the appenders of all processes
wait on an `flock` of ``<database>-append.lock`` instead: the kernel wakes the next one as
soon as the previous commit is done, so batches from different processes follow each other
back to back. It only orders Kustos's own appenders; SQLite's lock still guards the data.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["AppendLock"]


class AppendLock:
    def __init__(self, database: Path) -> None:
        self._path = Path(f"{database}-append.lock")
        self._fd: int | None = None
        self._local = threading.Lock()  # flock is per open file: threads queue here first

    @contextmanager
    def held(self, timeout: float | None = None) -> Iterator[None]:
        """Hold the lock; TimeoutError after `timeout` seconds (None: wait as long as it takes,
        as SQLite's own busy timeout would). A holder that dies releases it (the kernel
        drops the flock with the file descriptor)."""
        with self._local:
            if self._fd is None:
                self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
            if timeout is None:
                fcntl.flock(self._fd, fcntl.LOCK_EX)
            else:
                self._acquire_within(self._fd, timeout)
            try:
                yield
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)

    @staticmethod
    def _acquire_within(fd: int, timeout: float) -> None:
        """flock has no timeout: try, then retry every 0.2-2 ms (SQLite's busy handler
        sleeps up to 100 ms between tries) until `timeout`, so fail-fast callers stay fast."""
        deadline = time.monotonic() + timeout
        pause = 0.0002
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise TimeoutError("the audit append lock is held elsewhere") from None
                time.sleep(pause)
                pause = min(pause * 2, 0.002)

    def close(self) -> None:
        with self._local:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
