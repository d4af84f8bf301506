"""The change feed's cursor sees an entry that commits after a later one (PostgreSQL)."""

from __future__ import annotations

from kustos.operator.feed import FeedCursor


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def e(seq: int) -> tuple[int, str, str]:
    return (seq, f"arn-{seq}", "version")


def test_in_order_entries_pass_once() -> None:
    cursor = FeedCursor(5, Clock())
    assert cursor.gap_read() is None
    assert cursor.take([e(6), e(7)]) == [e(6), e(7)]
    assert cursor.seq == 7 and not cursor.gaps
    assert cursor.take([e(7)]) == []  # a repeat is not handled twice


def test_an_entry_committed_late_is_handled_when_it_appears() -> None:
    clock = Clock()
    cursor = FeedCursor(10, clock)
    assert cursor.take([e(12)]) == [e(12)]  # 11 took its seq first, commits later
    assert cursor.gaps == {11}
    assert cursor.gap_read() == (10, 1)  # so 11 alone is read again
    clock.now = 1.0
    assert cursor.take([e(11), e(13)]) == [e(11), e(13)]
    assert not cursor.gaps and cursor.gap_read() is None and cursor.seq == 13


def test_a_gap_that_never_fills_is_given_up() -> None:
    clock = Clock()
    cursor = FeedCursor(0, clock, gap_seconds=30)
    cursor.take([e(1), e(4)])
    assert cursor.gaps == {2, 3}
    assert cursor.gap_read() == (1, 2)
    clock.now = 29.0
    cursor.take([e(1), e(4)])
    assert cursor.gaps == {2, 3}
    clock.now = 31.0
    assert cursor.take([e(1), e(4), e(5)]) == [e(5)]
    assert not cursor.gaps and cursor.seq == 5


def test_an_empty_read_changes_nothing() -> None:
    cursor = FeedCursor(3, Clock())
    assert cursor.take([]) == [] and cursor.seq == 3
