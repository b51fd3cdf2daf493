"""Cron expressions with a time zone: parsing, and the next fire time after a moment. Pure: no clock.

Five fields, ``minute hour day-of-month month day-of-week``, each ``*``, a number, a range ``a-b``, a list
``a,b`` and a step ``*/n`` or ``a-b/n``; months and weekdays may be named (``jan``, ``mon``); weekday 0 and 7
are Sunday. As in Vixie cron, when both day fields are restricted a day matching either one fires.
``@hourly``, ``@daily`` (``@midnight``), ``@weekly``, ``@monthly`` and ``@yearly`` (``@annually``) are
shorthands.

Wall-clock times are read in the schedule's time zone, and each fires once:
- a time the clocks skip (spring forward, 02:30 in Europe/Berlin) fires when the gap ends (03:00);
- a time the clocks repeat (fall back, 02:30 twice) fires at its first occurrence only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_SHORTHANDS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_MONTHS = {
    m: i
    for i, m in enumerate(
        ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], 1
    )
}
_DAYS = {d: i for i, d in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])}
_FIELDS: tuple[tuple[str, int, int, dict[str, int]], ...] = (  # name, lowest, highest, names
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day of month", 1, 31, {}),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 7, _DAYS),
)
SEARCH_YEARS = 9  # far enough for 29 February on a given weekday; a schedule that never fires is an error


class CronError(ValueError):
    """A cron expression or time zone that cannot be used; the message says why."""


@dataclass(frozen=True)
class Cron:
    """A parsed cron expression: the allowed values of each field."""

    text: str
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    any_day: bool  # day of month is '*'
    any_weekday: bool  # day of week is '*'

    def day_matches(self, day: date) -> bool:
        """Whether the expression fires on ``day`` (at some time of it)."""
        if day.month not in self.months:
            return False
        in_month = day.day in self.days
        in_week = (day.isoweekday() % 7) in self.weekdays
        if self.any_day or self.any_weekday:
            return in_month and in_week
        return in_month or in_week


def parse_cron(text: str) -> Cron:
    """Parse a five-field cron expression (or an @ shorthand); raise CronError saying what is wrong."""
    if not isinstance(text, str) or not text.strip():
        raise CronError("a cron expression is five fields: minute hour day-of-month month day-of-week")
    expanded = _SHORTHANDS.get(text.strip().lower(), text)
    parts = expanded.split()
    if len(parts) != 5:
        raise CronError(
            f"'{text}' has {len(parts)} field(s); a cron expression has five: "
            "minute hour day-of-month month day-of-week, e.g. '0 3 * * *' for 03:00 every day"
        )
    values = [_field(part, *spec) for part, spec in zip(parts, _FIELDS, strict=True)]
    weekdays = frozenset(d % 7 for d in values[4])
    return Cron(
        text=text,
        minutes=tuple(sorted(values[0])),
        hours=tuple(sorted(values[1])),
        days=frozenset(values[2]),
        months=frozenset(values[3]),
        weekdays=weekdays,
        any_day=parts[2] == "*",
        any_weekday=parts[4] == "*",
    )


def _field(part: str, name: str, low: int, high: int, names: dict[str, int]) -> set[int]:
    found: set[int] = set()
    for item in part.split(","):
        body, slash, step_text = item.partition("/")
        step = 1
        if slash:
            if not step_text.isdigit() or int(step_text) == 0:
                raise CronError(f"{name} '{item}': the step after '/' must be a whole number above 0")
            step = int(step_text)
        if body == "*":
            start, end = low, high
        elif "-" in body:
            first, _, last = body.partition("-")
            start, end = _value(first, name, low, high, names), _value(last, name, low, high, names)
            if start > end:
                raise CronError(f"{name} '{item}': the range runs backwards; write {end}-{start}")
        else:
            start = end = _value(body, name, low, high, names)
            if slash:
                end = high  # '5/15' means from 5, every 15
        found.update(range(start, end + 1, step))
    return found


def _value(text: str, name: str, low: int, high: int, names: dict[str, int]) -> int:
    lowered = text.lower()
    if lowered in names:
        return names[lowered]
    if not text.isdigit():
        hint = f" or a name like {next(iter(names))}" if names else ""
        raise CronError(f"{name} '{text}' is not a number from {low} to {high}{hint}")
    value = int(text)
    if not low <= value <= high:
        raise CronError(f"{name} {value} is out of range: it must be from {low} to {high}")
    return value


def time_zone(name: str) -> ZoneInfo:
    """The IANA time zone called ``name``; raise CronError with an example when there is none."""
    try:
        if not name or name.startswith(("/", ".")) or ".." in name:
            raise ValueError(name)
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise CronError(
            f"'{name}' is not a time zone; use an IANA name like Europe/Berlin, America/New_York or UTC"
        ) from None


def next_fire(cron: Cron, zone: ZoneInfo, after: float) -> float | None:
    """The first fire time strictly after the epoch second ``after``, or None if none within SEARCH_YEARS.

    Wall-clock candidates are walked in order; each maps to an instant that never goes backwards (see the
    module docstring for gaps and repeats), so the first instant past ``after`` is the answer.
    """
    start = datetime.fromtimestamp(after, zone).replace(tzinfo=None, fold=0)
    day = start.date()
    for _ in range(366 * SEARCH_YEARS):
        if cron.day_matches(day):
            for hour in cron.hours:
                if day == start.date() and hour < start.hour:
                    continue
                for minute in cron.minutes:
                    moment = _instant(datetime(day.year, day.month, day.day, hour, minute), zone)
                    if moment > after:
                        return moment
        day += timedelta(days=1)
    return None


def _instant(wall: datetime, zone: ZoneInfo) -> float:
    """The epoch second of a wall-clock time: its first occurrence, or the end of the gap it falls in."""
    early = wall.replace(tzinfo=zone, fold=0)
    if early.astimezone(UTC).astimezone(zone).replace(tzinfo=None) == wall:
        return early.timestamp()
    # A time in a gap: fold=1 reads it with the offset after the jump (an instant before it), fold=0 with the
    # offset before (an instant after it). The jump lies between them: find its second by bisection.
    low, high = int(wall.replace(tzinfo=zone, fold=1).timestamp()), int(early.timestamp())
    after_offset = datetime.fromtimestamp(high, zone).utcoffset()
    while low < high:
        middle = (low + high) // 2
        if datetime.fromtimestamp(middle, zone).utcoffset() == after_offset:
            high = middle
        else:
            low = middle + 1
    return float(high)


def describe_next(cron: Cron, zone: ZoneInfo, after: float) -> str:
    """The next fire time as local text, for messages: '2026-03-29 03:00 Europe/Berlin'."""
    moment = next_fire(cron, zone, after)
    if moment is None:
        return "never"
    return f"{datetime.fromtimestamp(moment, zone):%Y-%m-%d %H:%M} {zone.key}"
