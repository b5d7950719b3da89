"""Fire times of Quartz cron expressions, the syntax of Databricks job schedules.

Pure and stdlib only: it parses and computes, never reads a clock. The syntax and its meaning are
https://www.quartz-scheduler.org/documentation/quartz-2.3.0/tutorials/crontrigger.html
"""

from __future__ import annotations

import calendar
import re
from bisect import bisect_left, bisect_right
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["QuartzCron", "fire_times", "next_fire_time", "previous_fire_time"]

# Quartz documents years 1970-2199; a '*' year stops there too, so a schedule that can never
# fire (say the 30th of February) ends its search instead of looping.
FIRST_YEAR = 1970
LAST_YEAR = 2199

_MONTH_NAMES = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_DAY_NAMES = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
_ONE_SECOND = timedelta(seconds=1)


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    max_step: int
    names: Mapping[str, int] = field(default_factory=dict)
    # Quartz lets a range run past the top and around ("22-2", "NOV-FEB"), except for years.
    wraps: bool = True


_SECONDS = _Field("seconds", 0, 59, 59)
_MINUTES = _Field("minutes", 0, 59, 59)
_HOURS = _Field("hours", 0, 23, 23)
_DAY_OF_MONTH = _Field("day-of-month", 1, 31, 31)
_MONTH = _Field("month", 1, 12, 12, {name: n for n, name in enumerate(_MONTH_NAMES, 1)})
# Quartz numbers the days of the week 1=SUN .. 7=SAT, unlike Unix cron's 0=SUN.
_DAY_OF_WEEK = _Field("day-of-week", 1, 7, 7, {name: n for n, name in enumerate(_DAY_NAMES, 1)})
_YEAR = _Field("year", FIRST_YEAR, LAST_YEAR, LAST_YEAR - FIRST_YEAR, wraps=False)

_ITEM = re.compile(r"(?:(\*)|(\w+)(?:-(\w+))?)(?:/(\w+))?")
_FROM_LAST = re.compile(r"L(?:-(\w*?))?(W?)")
_NEAREST_WEEKDAY = re.compile(r"(\w+)W")
_LAST_WEEKDAY_OF_MONTH = re.compile(r"(\w+)L")
_NTH_WEEKDAY_OF_MONTH = re.compile(r"(\w+)#(\w*)")
# Quartz refuses offsets past L-30.
_MAX_FROM_LAST = 30


def _bad(spec: _Field, item: str, reason: str) -> ValueError:
    return ValueError(f"{spec.name} field: {reason} in {item!r}")


def _number(spec: _Field, item: str, text: str) -> int:
    if text.isascii() and text.isdigit():
        value = int(text)
    elif text in spec.names:
        value = spec.names[text]
    elif spec.names:
        raise _bad(spec, item, f"{text!r} is neither a number nor a {spec.name} name")
    else:
        raise _bad(spec, item, f"{text!r} is not a number")
    if not spec.low <= value <= spec.high:
        raise _bad(spec, item, f"{value} is outside {spec.low}-{spec.high}")
    return value


def _step(spec: _Field, item: str, text: str) -> int:
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= spec.max_step:
        raise _bad(spec, item, f"the step after '/' must be a number from 1 to {spec.max_step}")
    return int(text)


def _item_values(spec: _Field, item: str) -> set[int]:
    """The values of one comma-separated item: '*', 'a', 'a-b', with an optional '/step'."""
    match = _ITEM.fullmatch(item)
    if match is None:
        raise _bad(spec, item, "cannot read the item")
    star, first, last, step_text = match.groups()
    step = 1 if step_text is None else _step(spec, item, step_text)
    if star:
        start, stop = spec.low, spec.high
    else:
        start = _number(spec, item, first)
        if last is not None:
            stop = _number(spec, item, last)
        else:
            # "5/15" runs from 5 to the top of the field; a bare "5" is just 5.
            stop = spec.high if step_text is not None else start
    if stop < start:
        if not spec.wraps:
            raise _bad(spec, item, f"the range {start}-{stop} runs backwards")
        stop += spec.high - spec.low + 1
    size = spec.high - spec.low + 1
    return {spec.low + (value - spec.low) % size for value in range(start, stop + 1, step)}


def _items(spec: _Field, text: str) -> list[str]:
    items = text.split(",")
    if "" in items:
        raise _bad(spec, text, "an empty item in the list")
    if "?" in text:
        if spec not in (_DAY_OF_MONTH, _DAY_OF_WEEK):
            raise _bad(spec, text, "'?' is allowed only in day-of-month or day-of-week")
        raise _bad(spec, text, "'?' must be the whole field")
    return items


def _plain(spec: _Field, text: str) -> tuple[int, ...]:
    values: set[int] = set()
    for item in _items(spec, text):
        values |= _item_values(spec, item)
    return tuple(sorted(values))


def _quartz_weekday(day: date) -> int:
    return (day.weekday() + 1) % 7 + 1


def _nearest_weekday(year: int, month: int, day: int, last: int) -> int:
    """The weekday nearest `day` without leaving the month, Quartz's 'W'."""
    weekday = date(year, month, day).weekday()
    if weekday == calendar.SATURDAY:
        return day + 2 if day == 1 else day - 1
    if weekday == calendar.SUNDAY:
        return day - 2 if day == last else day + 1
    return day


@dataclass(frozen=True)
class _DayOfMonthRule:
    days: frozenset[int]
    from_last: frozenset[int]  # 'L' is 0, 'L-3' is 3
    nearest_weekday: frozenset[int]  # '15W'
    nearest_weekday_from_last: frozenset[int]  # 'LW' is 0, 'L-3W' is 3

    @classmethod
    def parse(cls, text: str) -> _DayOfMonthRule:
        days: set[int] = set()
        from_last: set[int] = set()
        nearest: set[int] = set()
        nearest_from_last: set[int] = set()
        for item in _items(_DAY_OF_MONTH, text):
            if match := _FROM_LAST.fullmatch(item):
                offset_text, weekday = match.groups()
                offset = 0 if offset_text is None else _offset_from_last(item, offset_text)
                (nearest_from_last if weekday else from_last).add(offset)
            elif match := _NEAREST_WEEKDAY.fullmatch(item):
                nearest.add(_number(_DAY_OF_MONTH, item, match.group(1)))
            else:
                days |= _item_values(_DAY_OF_MONTH, item)
        return cls(
            frozenset(days), frozenset(from_last), frozenset(nearest), frozenset(nearest_from_last)
        )

    def days_in(self, year: int, month: int) -> set[int]:
        last = calendar.monthrange(year, month)[1]
        # A day the month lacks (the 31st of April, L-30 in February) fires nothing that month.
        found = {day for day in self.days if day <= last}
        found |= {last - offset for offset in self.from_last if last - offset >= 1}
        found |= {
            _nearest_weekday(year, month, day, last) for day in self.nearest_weekday if day <= last
        }
        found |= {
            _nearest_weekday(year, month, last - offset, last)
            for offset in self.nearest_weekday_from_last
            if last - offset >= 1
        }
        return found


def _offset_from_last(item: str, text: str) -> int:
    if not (text.isascii() and text.isdigit()) or int(text) > _MAX_FROM_LAST:
        raise _bad(_DAY_OF_MONTH, item, f"the offset after 'L-' must be 0 to {_MAX_FROM_LAST}")
    return int(text)


@dataclass(frozen=True)
class _DayOfWeekRule:
    weekdays: frozenset[int]  # Quartz numbers, 1=SUN .. 7=SAT
    last: bool = False  # '6L': only the last such weekday of the month
    nth: int = 0  # '6#3': only the third; 0 when not used

    @classmethod
    def parse(cls, text: str) -> _DayOfWeekRule:
        items = _items(_DAY_OF_WEEK, text)
        if len(items) > 1 and any("L" in item or "#" in item for item in items):
            # Quartz refuses 'L' in a list, and evaluates only the first day of a '#' list.
            raise _bad(_DAY_OF_WEEK, text, "'L' or '#' must be the only item of the field")
        item = items[0]
        if item == "L":
            return cls(frozenset({7}))
        if match := _LAST_WEEKDAY_OF_MONTH.fullmatch(item):
            return cls(frozenset({_number(_DAY_OF_WEEK, item, match.group(1))}), last=True)
        if match := _NTH_WEEKDAY_OF_MONTH.fullmatch(item):
            weekday = _number(_DAY_OF_WEEK, item, match.group(1))
            nth = match.group(2)
            if not (nth.isascii() and nth.isdigit()) or not 1 <= int(nth) <= 5:
                raise _bad(_DAY_OF_WEEK, item, "'#' must be followed by a number from 1 to 5")
            return cls(frozenset({weekday}), nth=int(nth))
        return cls(frozenset(_plain(_DAY_OF_WEEK, text)))

    def days_in(self, year: int, month: int) -> set[int]:
        last = calendar.monthrange(year, month)[1]
        first_weekday = _quartz_weekday(date(year, month, 1))
        if self.last or self.nth:
            (weekday,) = self.weekdays
            if self.last:
                last_weekday = _quartz_weekday(date(year, month, last))
                return {last - (last_weekday - weekday) % 7}
            day = 1 + (weekday - first_weekday) % 7 + 7 * (self.nth - 1)
            # '4#5' fires only in months that have a fifth Wednesday.
            return {day} if day <= last else set()
        return {
            day
            for day in range(1, last + 1)
            if (first_weekday - 1 + day - 1) % 7 + 1 in self.weekdays
        }


@dataclass(frozen=True)
class QuartzCron:
    """A parsed Quartz cron expression: which wall-clock times of a calendar it names."""

    expression: str
    seconds: tuple[int, ...]
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    months: tuple[int, ...]
    years: tuple[int, ...]
    # Exactly one of the two day rules is set; the other field was '?'.
    day_of_month: _DayOfMonthRule | None
    day_of_week: _DayOfWeekRule | None
    _days: dict[tuple[int, int], tuple[int, ...]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    @classmethod
    def parse(cls, expr: str) -> QuartzCron:
        """Parse 6 or 7 fields; `ValueError` names the field and the token it could not take."""
        fields = expr.upper().split()
        if len(fields) not in (6, 7):
            raise ValueError(
                "expected 6 or 7 fields (seconds minutes hours day-of-month month day-of-week"
                f" [year]), got {len(fields)} in {expr!r}"
            )
        seconds, minutes, hours, dom, month, dow = fields[:6]
        cron = cls(
            expression=" ".join(expr.split()),
            seconds=_plain(_SECONDS, seconds),
            minutes=_plain(_MINUTES, minutes),
            hours=_plain(_HOURS, hours),
            months=_plain(_MONTH, month),
            years=_plain(_YEAR, fields[6] if len(fields) == 7 else "*"),
            day_of_month=None if dom == "?" else _DayOfMonthRule.parse(dom),
            day_of_week=None if dow == "?" else _DayOfWeekRule.parse(dow),
        )
        # Quartz refuses both day fields set ('*' counts as set) and both '?'.
        if (cron.day_of_month is None) == (cron.day_of_week is None):
            raise ValueError(
                "day-of-month and day-of-week fields: exactly one must be '?', "
                f"got {dom!r} and {dow!r}"
            )
        return cron

    def days(self, year: int, month: int) -> tuple[int, ...]:
        """The days of that month the expression fires on, ascending."""
        key = (year, month)
        if key not in self._days:
            rule = self.day_of_month or self.day_of_week
            assert rule is not None  # parse() guarantees one of them
            self._days[key] = tuple(sorted(rule.days_in(year, month)))
        return self._days[key]


def _ordered(values: tuple[int, ...], bound: int | None, forward: bool) -> Sequence[int]:
    if forward:
        return values if bound is None else values[bisect_left(values, bound) :]
    kept = values if bound is None else values[: bisect_right(values, bound)]
    return kept[::-1]


def _walls(cron: QuartzCron, bound: datetime, forward: bool) -> Iterator[datetime]:
    """Matching wall-clock times from `bound` (included) on, forwards or backwards, in order.

    Field by field from the year down: a field is held to the bound's value only while every
    coarser field still equals the bound's, so each time costs a few bisections, not a scan.
    """
    year0, month0, day0 = bound.year, bound.month, bound.day
    hour0, minute0, second0 = bound.hour, bound.minute, bound.second
    for year in _ordered(cron.years, year0, forward):
        for month in _ordered(cron.months, month0 if year == year0 else None, forward):
            at_month = year == year0 and month == month0
            for day in _ordered(cron.days(year, month), day0 if at_month else None, forward):
                at_day = at_month and day == day0
                for hour in _ordered(cron.hours, hour0 if at_day else None, forward):
                    at_hour = at_day and hour == hour0
                    for minute in _ordered(cron.minutes, minute0 if at_hour else None, forward):
                        at_minute = at_hour and minute == minute0
                        for second in _ordered(
                            cron.seconds, second0 if at_minute else None, forward
                        ):
                            yield datetime(year, month, day, hour, minute, second)


def _zone(tz: str | None) -> tzinfo:
    name = tz or "UTC"
    if name in ("UTC", "Etc/UTC"):
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r}") from exc


def _offset(moment: datetime) -> timedelta:
    return moment.utcoffset() or timedelta(0)


def _instant(wall: datetime, zone: tzinfo) -> datetime | None:
    """The UTC instant a matching wall-clock time fires at, or None if the clock skips it."""
    if zone is UTC:
        return wall.replace(tzinfo=UTC)
    # A wall time shown twice (clocks going back) fires once, at its second showing: Quartz
    # computes on java.util.Calendar, which reads such a time as standard time.
    instant = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    if instant.astimezone(zone).replace(tzinfo=None) != wall:
        return None  # in the gap of clocks going forward: this wall time never shows
    return instant


def _fires_after(cron: QuartzCron, zone: tzinfo, after: datetime) -> Iterator[datetime]:
    local = after.astimezone(zone)
    wall = local.replace(tzinfo=None, microsecond=0)
    if local.fold == 0:
        # When `after` is in the first showing of a repeated hour, that hour's times fire at
        # their second showing, still ahead: start the search back by the clock's shift.
        wall -= max(_offset(local) - _offset(local.replace(fold=1)), timedelta(0))
    if wall.year > LAST_YEAR:
        return
    for candidate in _walls(cron, wall + _ONE_SECOND, forward=True):
        instant = _instant(candidate, zone)
        if instant is not None and instant > after:
            yield instant


def _fires_before(cron: QuartzCron, zone: tzinfo, before: datetime) -> Iterator[datetime]:
    wall = before.astimezone(zone).replace(tzinfo=None, microsecond=0)
    for candidate in _walls(cron, wall, forward=False):
        instant = _instant(candidate, zone)
        # Skips the wall times at or after `before` and, when `before` is in the first
        # showing of a repeated hour, that hour's times, which fire at the second showing.
        if instant is not None and instant < before:
            yield instant


def _cron(expr_or_cron: str | QuartzCron) -> QuartzCron:
    if isinstance(expr_or_cron, QuartzCron):
        return expr_or_cron
    return QuartzCron.parse(expr_or_cron)


def _aware(moment: datetime, name: str) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be a time-zone-aware datetime, got {moment!r}")
    return moment


def fire_times(
    expr_or_cron: str | QuartzCron, tz: str | None, start: datetime, end: datetime
) -> Iterator[datetime]:
    """Every fire time t with start < t <= end, ascending, as aware UTC datetimes.

    The expression is matched against the wall clock of `tz` (an IANA id, as a schedule's
    `timezone_id`; None means UTC). Across a DST change this is what Quartz does: a wall time
    inside the gap of clocks going forward never fires (the day simply has no 02:30), and a
    wall time shown twice when clocks go back fires once, at its second (standard-time)
    showing, so an every-minute schedule is silent during the first showing of that hour.

    Fire times form one fixed set, whatever `start` is, in the years 1970-2199. Quartz's own
    search departs from it in corners where its answer depends on where it starts looking: from
    inside the first showing of a repeated hour it skips that hour's earlier minutes; on a day
    a 'W' names it can miss the fires of a schedule with several times a day, or the whole day
    when it starts between the named day and the weekday it moved to; and right after a
    half-hour gap (Australia/Lord_Howe) it can skip up to half an hour.
    """
    cron = _cron(expr_or_cron)
    zone = _zone(tz)
    after = _aware(start, "start")
    until = _aware(end, "end")

    def times() -> Iterator[datetime]:
        for instant in _fires_after(cron, zone, after):
            if instant > until:
                return
            yield instant

    return times()


def next_fire_time(
    expr_or_cron: str | QuartzCron, tz: str | None, after: datetime
) -> datetime | None:
    """The first fire time strictly after `after`, or None if the schedule never fires again."""
    return next(_fires_after(_cron(expr_or_cron), _zone(tz), _aware(after, "after")), None)


def previous_fire_time(
    expr_or_cron: str | QuartzCron, tz: str | None, before: datetime
) -> datetime | None:
    """The last fire time strictly before `before`, or None if the schedule never fired."""
    return next(_fires_before(_cron(expr_or_cron), _zone(tz), _aware(before, "before")), None)
