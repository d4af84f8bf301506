"""Rotation schedules: parsing `rate(...)` / `cron(...)` expressions and windows; no I/O.

Accepted expressions:

- AWS `rate(N minutes|hours|days)` (singular units accepted too). Due `N` units after the
  last rotation (or after rotation was enabled). A rate has no calendar anchor, so a rotation
  missed while the operator was down happens as soon as it is back.
- AWS `cron(Minutes Hours Day-of-month Month Day-of-week Year)`, six fields, in UTC. Either
  Day-of-month or Day-of-week is `?`; Day-of-week counts 1-7 from SUN (or names SUN-SAT) and
  supports `L` (e.g. `6L`, last Friday) and `#` (e.g. `2#1`, first Monday).
- A plain 5-field Unix cron (`0 4 * * 0`), bare or inside `cron(...)`.

Cron expressions are evaluated with croniter. `window` (e.g. `2h`, `90m`, `1h30m`, `1d`) is
how long after the scheduled moment a rotation may still start; a cron occurrence whose
window was missed entirely is skipped (the next one is waited for). A window must not be
longer than the shortest interval between two scheduled rotations. Every problem raises
`InvalidParameterError` with a message that names it.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from croniter import croniter

from kustos.errors import InvalidParameterError

__all__ = ["Schedule", "parse_duration", "parse_schedule"]

_RATE = re.compile(r"^rate\(\s*(\d+)\s+(minute|minutes|hour|hours|day|days)\s*\)$")
_CRON = re.compile(r"^cron\((.*)\)$")
_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_UNITS = {"minute": 60, "hour": 3600, "day": 86400}
_DOW_TOKEN = re.compile(r"^(\d+|[A-Z]{3})(?:-(\d+|[A-Z]{3}))?(L|#\d)?(/\d+)?$")
#: How many occurrences are sampled to find a cron expression's shortest interval.
_SAMPLES = 400
_MIN_YEAR, _MAX_YEAR = 1970, 2199


def parse_duration(text: str) -> timedelta:
    """`2h`, `90m`, `1h30m`, `1d`, `45s` (at least one minute); InvalidParameterError else."""
    match = _DURATION.match(text.strip().lower()) if text else None
    if match is None or not any(match.groups()):
        raise InvalidParameterError(
            f"rotation window {text!r} is not a duration like 2h, 90m, 1h30m or 1d"
        )
    days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
    value = timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
    if value < timedelta(minutes=1):
        raise InvalidParameterError(f"rotation window {text!r} must be at least 1 minute")
    return value


def _aws_dow(field: str) -> str:
    """AWS Day-of-week (1-7 from SUN) in croniter's numbering (0-6 from SUN)."""
    if field in ("*", "?"):
        return "*"
    if field == "L":
        return "6"
    out = []
    for item in field.split(","):
        match = _DOW_TOKEN.match(item)
        if match is None:
            raise InvalidParameterError(f"cron Day-of-week item {item!r} is not valid")
        first, last, suffix, step = match.groups()

        def number(token: str) -> str:
            if token.isdigit():
                if not 1 <= int(token) <= 7:
                    raise InvalidParameterError(
                        f"cron Day-of-week {token} is out of range 1-7 (1 is SUN)"
                    )
                return str(int(token) - 1)
            return token

        converted = number(first) + (f"-{number(last)}" if last else "")
        if suffix == "L":
            converted = f"L{converted}"
        elif suffix:
            converted += suffix
        out.append(converted + (step or ""))
    return ",".join(out)


def _years(field: str) -> frozenset[int] | None:
    """The years an AWS Year field allows (None: any year)."""
    if field in ("*", "?"):
        return None
    years: set[int] = set()
    for item in field.split(","):
        match = re.match(r"^(\*|\d{4})(?:-(\d{4}))?(?:/(\d+))?$", item)
        if match is None:
            raise InvalidParameterError(f"cron Year item {item!r} is not valid")
        start, end, step = match.groups()
        low = _MIN_YEAR if start == "*" else int(start)
        high = int(end) if end else (_MAX_YEAR if start == "*" or step else low)
        if not _MIN_YEAR <= low <= high <= _MAX_YEAR:
            raise InvalidParameterError(f"cron Year item {item!r} is out of range")
        years.update(range(low, high + 1, int(step or 1)))
    return frozenset(years)


@dataclass(frozen=True)
class Schedule:
    """A parsed schedule. `next_after(t)` is the first scheduled moment strictly after t."""

    expression: str
    kind: str  # "rate" | "cron"
    window: timedelta | None
    rate: timedelta | None = None
    cron: str | None = None  # croniter form (5 fields)
    years: frozenset[int] | None = None

    def next_after(self, moment: datetime) -> datetime:
        if self.rate is not None:
            return moment + self.rate
        assert self.cron is not None
        start = moment.astimezone(UTC)
        for _ in range(_MAX_YEAR - _MIN_YEAR):
            found: datetime = croniter(self.cron, start).get_next(datetime)
            if self.years is None or found.year in self.years:
                return found
            later = [y for y in self.years if y > found.year]
            if not later:
                break
            start = datetime(min(later), 1, 1, tzinfo=UTC) - timedelta(seconds=1)
        raise InvalidParameterError(f"schedule {self.expression!r} never occurs again")

    def next_rotation(self, *, base: datetime, now: datetime) -> datetime:
        """When the rotation after the one at `base` (last rotation or enablement) is due.

        For cron, an occurrence whose window had closed by `now` is skipped.
        """
        due = self.next_after(base)
        if self.kind == "cron" and self.window is not None:
            while due + self.window < now:
                due = self.next_after(max(due, now - self.window))
        return due

    def shortest_interval(self, sample_from: datetime) -> timedelta:
        if self.rate is not None:
            return self.rate
        moments = [self.next_after(sample_from)]
        for _ in range(_SAMPLES):
            try:
                moments.append(self.next_after(moments[-1]))
            except InvalidParameterError:
                break
        gaps = [b - a for a, b in itertools.pairwise(moments)]
        return min(gaps) if gaps else timedelta.max


def _parse_rate(expression: str, count: str, unit: str) -> timedelta:
    n = int(count)
    if n < 1:
        raise InvalidParameterError(f"schedule {expression!r}: the rate must be at least 1")
    seconds = n * _UNITS[unit.rstrip("s")]
    if seconds > 1000 * 86400:
        raise InvalidParameterError(f"schedule {expression!r}: at most 1000 days")
    return timedelta(seconds=seconds)


def _parse_cron(expression: str, body: str) -> tuple[str, frozenset[int] | None]:
    fields = body.split()
    years: frozenset[int] | None = None
    if len(fields) == 6:  # AWS: Minutes Hours Day-of-month Month Day-of-week Year
        minute, hour, dom, month, dow, year = fields
        if "?" not in (dom, dow):
            raise InvalidParameterError(
                f"schedule {expression!r}: AWS cron needs '?' in Day-of-month or Day-of-week"
            )
        if dom == "?" and dow == "?":
            raise InvalidParameterError(
                f"schedule {expression!r}: Day-of-month and Day-of-week cannot both be '?'"
            )
        years = _years(year)
        fields = [minute, hour, "*" if dom == "?" else dom, month, _aws_dow(dow.upper())]
    elif len(fields) != 5:
        raise InvalidParameterError(
            f"schedule {expression!r}: cron needs 6 fields (AWS: Minutes Hours Day-of-month "
            "Month Day-of-week Year) or 5 (Unix)"
        )
    text = " ".join(fields)
    if "?" in text or not croniter.is_valid(text):
        raise InvalidParameterError(f"schedule {expression!r} is not a valid cron expression")
    return text, years


def parse_schedule(
    expression: str, window: str | None = None, *, now: datetime | None = None
) -> Schedule:
    """Parse and check `expression` with its optional `window`."""
    expr = " ".join((expression or "").split())
    if not expr:
        raise InvalidParameterError("rotation schedule is empty")
    span = parse_duration(window) if window else None
    rate_match = _RATE.match(expr)
    cron_match = _CRON.match(expr)
    if rate_match:
        schedule = Schedule(expr, "rate", span, rate=_parse_rate(expr, *rate_match.groups()))
    elif cron_match or len(expr.split()) == 5:
        body = cron_match.group(1) if cron_match else expr
        cron, years = _parse_cron(expr, body)
        schedule = Schedule(expr, "cron", span, cron=cron, years=years)
    else:
        raise InvalidParameterError(
            f"schedule {expr!r} is not rate(N minutes|hours|days), cron(...) (AWS, 6 fields) "
            "or a 5-field cron expression"
        )
    if span is not None:
        interval = schedule.shortest_interval(now or datetime.now(UTC))
        if span > interval:
            raise InvalidParameterError(
                f"rotation window {window} is longer than the interval between rotations "
                f"of {expr!r} ({_human(interval)})"
            )
    return schedule


def _human(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
