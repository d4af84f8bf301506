"""A per-source budget for refused, unauthenticated requests, so a flood cannot exhaust the
audit store or the Kubernetes API server.

`RefusalBudget` counts refusals per source (the client's IP address) in fixed windows of
`interval` seconds. The first `limit` refusals of a window are *admitted*: each gets its own
audit record (and, for bearer tokens, its own TokenReview). Past the limit a source is
*over*: its refusals are only counted, and when the window ends `due()` hands out one
`Suppressed` tally per source (count and AWS error codes) for one aggregate audit record.
Memory is bounded: beyond `max_sources` sources in a window, new sources share one tally
under the source ``other``.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

__all__ = ["OTHER_SOURCES", "RefusalBudget", "Suppressed"]

OTHER_SOURCES = "other"


@dataclass(frozen=True)
class Suppressed:
    """Refusals of one source in one window that were not audited one by one."""

    source: str
    count: int
    codes: dict[str, int]
    window_start: datetime
    window_end: datetime


@dataclass
class _Window:
    started: float  # monotonic
    wall: datetime
    refused: int = 0
    suppressed: Counter[str] = field(default_factory=Counter)


class RefusalBudget:
    def __init__(
        self,
        *,
        limit: int = 20,
        interval: float = 10.0,
        max_sources: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.limit = limit
        self.interval = interval
        self._max_sources = max_sources
        self._clock = clock
        self._wall = wall
        self._windows: dict[str, _Window] = {}
        self._ended: list[Suppressed] = []
        self._swept = clock()
        self._lock = threading.Lock()

    def over(self, source: str) -> bool:
        """Whether `source` spent its budget in the current window (nothing is counted)."""
        with self._lock:
            window = self._windows.get(source)
            return (
                window is not None
                and self._clock() - window.started < self.interval
                and window.refused >= self.limit
            )

    def admit(self, source: str, code: str) -> bool:
        """Count one refusal; True when it is within the budget (audit it on its own)."""
        now = self._clock()
        with self._lock:
            window = self._windows.get(source)
            if window is not None and now - window.started >= self.interval:
                self._end(source, window)
                window = None
            if window is None:
                if len(self._windows) >= self._max_sources:
                    self._expire(now)
                if len(self._windows) >= self._max_sources and source != OTHER_SOURCES:
                    return self._admit_other(now, code)
                window = self._windows[source] = _Window(now, self._wall())
            window.refused += 1
            if window.refused <= self.limit:
                return True
            window.suppressed[code] += 1
            return False

    def _admit_other(self, now: float, code: str) -> bool:
        window = self._windows.get(OTHER_SOURCES)
        if window is None:
            window = self._windows[OTHER_SOURCES] = _Window(now, self._wall())
        window.refused += 1
        window.suppressed[code] += 1  # a crowd of sources: counted, never one by one
        return False

    def due(self) -> list[Suppressed]:
        """Tallies of windows that ended with suppressed refusals (each handed out once).
        Cheap to call often: the windows are swept at most ten times per interval."""
        with self._lock:
            now = self._clock()
            if now - self._swept >= self.interval / 10:
                self._swept = now
                self._expire(now)
            out, self._ended = self._ended, []
        return out

    def drain(self) -> list[Suppressed]:
        """Every tally, ended or not (at shutdown)."""
        with self._lock:
            for source, window in list(self._windows.items()):
                self._end(source, window)
            out, self._ended = self._ended, []
        return out

    def _expire(self, now: float) -> None:
        for source, window in list(self._windows.items()):
            if now - window.started >= self.interval:
                self._end(source, window)

    def _end(self, source: str, window: _Window) -> None:
        del self._windows[source]
        if window.suppressed:
            elapsed = min(self._clock() - window.started, self.interval)
            self._ended.append(
                Suppressed(
                    source,
                    sum(window.suppressed.values()),
                    dict(window.suppressed),
                    window.wall,
                    window.wall + timedelta(seconds=elapsed),
                )
            )
