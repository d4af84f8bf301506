"""A reader's position in the store's change feed, safe against commits out of order.

The feed's `seq` comes from the database (SQLite's rowid under its single writer, a
PostgreSQL sequence). On PostgreSQL two transactions can take seq 10 and 11 and commit in
the order 11, 10: a reader that saw 11 and then asks for `seq > 11` would never see 10, and
the secret it names would be re-projected only by the periodic safety net. So the cursor
remembers the numbers it skipped over (a *gap*) and has them read again (`gap_read`) until
they appear or `gap_seconds` have passed (a rolled-back transaction leaves a gap for good).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

__all__ = ["Entry", "FeedCursor"]

#: (seq, arn, kind) as `Store.changes_since` returns them.
Entry = tuple[int, str, str]


class FeedCursor:
    def __init__(self, start: int, clock: Callable[[], float], gap_seconds: float = 30.0) -> None:
        self.seq = start  # the highest seq handled
        self._clock = clock
        self._gap_seconds = gap_seconds
        self._gaps: dict[int, float] = {}  # a seq not seen yet -> when to stop waiting for it

    @property
    def gaps(self) -> frozenset[int]:
        return frozenset(self._gaps)

    def gap_read(self) -> tuple[int, int] | None:
        """(after, limit) of a second read, `changes_since(after, limit)`, covering exactly
        the gaps' range; None without gaps. The main read is `changes_since(seq)`."""
        if not self._gaps:
            return None
        low, high = min(self._gaps), max(self._gaps)
        return low - 1, high - low + 1

    def take(self, entries: Sequence[Entry]) -> list[Entry]:
        """The entries not handled yet, in order; moves the cursor past them."""
        now = self._clock()
        fresh = [e for e in entries if e[0] > self.seq or e[0] in self._gaps]
        for seq, _arn, _kind in fresh:
            self._gaps.pop(seq, None)
        top = max((e[0] for e in entries), default=self.seq)
        if top > self.seq:
            present = {e[0] for e in entries}
            for missing in range(self.seq + 1, top):
                if missing not in present:
                    self._gaps[missing] = now + self._gap_seconds
            self.seq = top
        for seq, give_up in list(self._gaps.items()):
            if give_up <= now:
                del self._gaps[seq]
        return fresh
