"""Schedule parsing: AWS rate/cron, plain cron, windows, next-rotation computation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from kustos.errors import InvalidParameterError
from kustos.rotation.schedule import parse_duration, parse_schedule

T0 = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)  # a Wednesday


@pytest.mark.parametrize(
    ("expression", "interval"),
    [
        ("rate(30 days)", timedelta(days=30)),
        ("rate(1 day)", timedelta(days=1)),
        ("rate(4 hours)", timedelta(hours=4)),
        ("rate(5 minutes)", timedelta(minutes=5)),
        ("rate( 2  hours )", timedelta(hours=2)),
    ],
)
def test_rate(expression: str, interval: timedelta) -> None:
    schedule = parse_schedule(expression)
    assert schedule.kind == "rate"
    assert schedule.next_after(T0) == T0 + interval
    assert schedule.next_rotation(base=T0, now=T0 + 10 * interval) == T0 + interval


def test_aws_cron_day_of_week_counts_from_sunday_as_one() -> None:
    sunday = parse_schedule("cron(0 4 ? * SUN *)")
    same = parse_schedule("cron(0 4 ? * 1 *)")
    assert sunday.next_after(T0) == same.next_after(T0) == datetime(2025, 1, 5, 4, tzinfo=UTC)
    friday = parse_schedule("cron(30 2 ? * 6 *)")
    assert friday.next_after(T0) == datetime(2025, 1, 3, 2, 30, tzinfo=UTC)


def test_aws_cron_last_and_nth_weekday_and_days_of_month() -> None:
    last_friday = parse_schedule("cron(0 4 ? * 6L *)")
    assert last_friday.next_after(T0) == datetime(2025, 1, 31, 4, tzinfo=UTC)
    first_monday = parse_schedule("cron(0 4 ? * 2#1 *)")
    assert first_monday.next_after(T0) == datetime(2025, 1, 6, 4, tzinfo=UTC)
    monthly = parse_schedule("cron(0 0 15 * ? *)")
    assert monthly.next_after(T0) == datetime(2025, 1, 15, tzinfo=UTC)


def test_aws_cron_year_field() -> None:
    schedule = parse_schedule("cron(0 4 1 1 ? 2027)")
    assert schedule.next_after(T0) == datetime(2027, 1, 1, 4, tzinfo=UTC)
    with pytest.raises(InvalidParameterError, match="never occurs again"):
        schedule.next_after(datetime(2028, 1, 1, tzinfo=UTC))


def test_plain_cron_five_fields_bare_or_wrapped() -> None:
    bare = parse_schedule("0 4 * * 0")
    wrapped = parse_schedule("cron(0 4 * * 0)")
    assert bare.next_after(T0) == wrapped.next_after(T0) == datetime(2025, 1, 5, 4, tzinfo=UTC)


def test_window_and_missed_occurrences() -> None:
    schedule = parse_schedule("cron(0 4 ? * SUN *)", "2h")
    base = datetime(2025, 1, 1, tzinfo=UTC)
    first = datetime(2025, 1, 5, 4, tzinfo=UTC)
    # Inside the window: still due at the occurrence.
    assert schedule.next_rotation(base=base, now=first + timedelta(hours=1)) == first
    # The window closed: the next Sunday is waited for.
    later = schedule.next_rotation(base=base, now=first + timedelta(hours=3))
    assert later == first + timedelta(days=7)


@pytest.mark.parametrize(
    ("expression", "window", "message"),
    [
        ("", None, "empty"),
        ("rate(0 days)", None, "at least 1"),
        ("rate(3 weeks)", None, "is not rate"),
        ("rate(2000 days)", None, "at most 1000 days"),
        ("cron(0 4 * * SUN *)", None, r"needs '\?'"),
        ("cron(0 4 ? * ? *)", None, "cannot both"),
        ("cron(0 4 ? * 9 *)", None, "out of range"),
        ("cron(0 4 * *)", None, "6 fields"),
        ("cron(99 4 ? * SUN *)", None, "not a valid cron"),
        ("every sunday", None, "is not rate"),
        ("rate(1 hour)", "2h", "longer than the interval"),
        ("cron(0 * ? * * *)", "90m", "longer than the interval"),
        ("rate(1 day)", "soon", "not a duration"),
        ("rate(1 day)", "10s", "at least 1 minute"),
    ],
)
def test_bad_expressions(expression: str, window: str | None, message: str) -> None:
    with pytest.raises(InvalidParameterError, match=message):
        parse_schedule(expression, window)


def test_window_equal_to_interval_is_allowed() -> None:
    assert parse_schedule("rate(2 hours)", "2h").window == timedelta(hours=2)
    assert parse_schedule("cron(0 4 ? * SUN *)", "1d").window == timedelta(days=1)


def test_durations() -> None:
    assert parse_duration("1h30m") == timedelta(minutes=90)
    assert parse_duration("1d") == timedelta(days=1)
    assert parse_duration("90m") == timedelta(minutes=90)
