"""Quartz cron fire times: the tutorial's examples, Databricks schedules across DST changes, the
L/W/# corners, the year field, and the messages of expressions Quartz refuses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import islice

import pytest

from extractor.analytics.quartz import (
    QuartzCron,
    fire_times,
    next_fire_time,
    previous_fire_time,
)

FAR = datetime(2200, 1, 1, tzinfo=UTC)
NEW_YEAR_2024 = datetime(2024, 1, 1, tzinfo=UTC)
LA = "America/Los_Angeles"
AMS = "Europe/Amsterdam"


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def first(expr: str, n: int, after: datetime = NEW_YEAR_2024, tz: str = "UTC") -> list[datetime]:
    return list(islice(fire_times(expr, tz, after, FAR), n))


def days_at(hour: int, minute: int, *days: tuple[int, int, int]) -> list[datetime]:
    return [utc(y, m, d, hour, minute) for y, m, d in days]


# -- the CronTrigger tutorial's examples ------------------------------------------------------
# 2024-01-01 is a Monday; every expected time below was worked out from a calendar.

TUTORIAL = [
    ("0 0 12 * * ?", [utc(2024, 1, 1, 12), utc(2024, 1, 2, 12)]),
    ("0 15 10 ? * *", days_at(10, 15, (2024, 1, 1), (2024, 1, 2))),
    ("0 15 10 * * ?", days_at(10, 15, (2024, 1, 1), (2024, 1, 2))),
    ("0 15 10 * * ? *", days_at(10, 15, (2024, 1, 1), (2024, 1, 2))),
    ("0 0-5 14 * * ?", [utc(2024, 1, 1, 14, m) for m in range(6)] + [utc(2024, 1, 2, 14)]),
    (
        "0 15 10 ? * MON-FRI",
        days_at(10, 15, *[(2024, 1, d) for d in (1, 2, 3, 4, 5, 8)]),
    ),
    ("0 15 10 15 * ?", days_at(10, 15, (2024, 1, 15), (2024, 2, 15), (2024, 3, 15))),
    # February 2024 has 29 days.
    ("0 15 10 L * ?", days_at(10, 15, (2024, 1, 31), (2024, 2, 29), (2024, 3, 31), (2024, 4, 30))),
    (
        "0 15 10 L-2 * ?",
        days_at(10, 15, (2024, 1, 29), (2024, 2, 27), (2024, 3, 29), (2024, 4, 28)),
    ),
    ("0 15 10 ? * 6L", days_at(10, 15, (2024, 1, 26), (2024, 2, 23), (2024, 3, 29), (2024, 4, 26))),
    ("0 15 10 ? * 6#3", days_at(10, 15, (2024, 1, 19), (2024, 2, 16), (2024, 3, 15))),
    (
        "0 0 12 1/5 * ?",
        days_at(12, 0, *[(2024, 1, d) for d in (1, 6, 11, 16, 21, 26, 31)], (2024, 2, 1)),
    ),
    ("0 11 11 11 11 ?", days_at(11, 11, (2024, 11, 11), (2025, 11, 11))),
    ("* * * ? * *", [utc(2024, 1, 1, 0, 0, s) for s in (1, 2, 3)]),
    (
        "5/15 * * * * ?",
        [utc(2024, 1, 1, 0, 0, s) for s in (5, 20, 35, 50)] + [utc(2024, 1, 1, 0, 1, 5)],
    ),
]


@pytest.mark.parametrize(("expr", "expected"), TUTORIAL, ids=[e for e, _ in TUTORIAL])
def test_tutorial_example_fires_at_the_documented_times(
    expr: str, expected: list[datetime]
) -> None:
    assert first(expr, len(expected)) == expected


@pytest.mark.parametrize(
    ("expr", "per_day", "first_time", "last_time"),
    [
        ("0 * 14 * * ?", 60, (14, 0), (14, 59)),
        ("0 0/5 14 * * ?", 12, (14, 0), (14, 55)),
        ("0 0/5 14,18 * * ?", 24, (14, 0), (18, 55)),
        ("0 0/30 8-18 * * ?", 22, (8, 0), (18, 30)),
    ],
)
def test_tutorial_window_fires_every_step_of_the_window(
    expr: str, per_day: int, first_time: tuple[int, int], last_time: tuple[int, int]
) -> None:
    day = list(fire_times(expr, "UTC", utc(2024, 5, 1), utc(2024, 5, 2)))
    assert len(day) == per_day
    assert (day[0].hour, day[0].minute) == first_time
    assert (day[-1].hour, day[-1].minute) == last_time


def test_tutorial_march_wednesdays_fire_twice_each() -> None:
    # March 2024's Wednesdays are the 6th, 13th, 20th and 27th.
    fires = list(fire_times("0 10,44 14 ? 3 WED", "UTC", utc(2024, 1, 1), utc(2025, 1, 1)))
    assert fires == [utc(2024, 3, d, 14, m) for d in (6, 13, 20, 27) for m in (10, 44)]


def test_tutorial_year_2005_only() -> None:
    expr = "0 15 10 * * ? 2005"
    assert first(expr, 2, after=utc(2004, 6, 1)) == days_at(10, 15, (2005, 1, 1), (2005, 1, 2))
    assert next_fire_time(expr, "UTC", utc(2005, 12, 31, 10, 15)) is None
    assert previous_fire_time(expr, "UTC", utc(2024, 1, 1)) == utc(2005, 12, 31, 10, 15)


def test_tutorial_last_fridays_2002_to_2005() -> None:
    fires = list(fire_times("0 15 10 ? * 6L 2002-2005", "UTC", utc(2000, 1, 1), FAR))
    assert len(fires) == 48
    # 2002-01-31 is a Thursday; 2005-12-31 a Saturday.
    assert fires[0] == utc(2002, 1, 25, 10, 15)
    assert fires[-1] == utc(2005, 12, 30, 10, 15)
    assert all(t.weekday() == 4 and (t + timedelta(days=7)).month != t.month for t in fires)


def test_tutorial_complex_example() -> None:
    expr = "0/5 14,18,3-39,52 * ? JAN,MAR,SEP MON-FRI 2002-2010"
    # 2002-01-01 is a Tuesday; the first listed minute is 3.
    assert first(expr, 3, after=utc(2002, 1, 1)) == [utc(2002, 1, 1, 0, 3, s) for s in (0, 5, 10)]
    assert previous_fire_time(expr, "UTC", FAR) == utc(2010, 9, 30, 23, 52, 55)


# -- Databricks-like schedules across DST changes ---------------------------------------------
# US clocks went forward on 2024-03-10 (02:00 PST -> 03:00 PDT) and back on 2024-11-03
# (02:00 PDT -> 01:00 PST); Dutch ones on 2024-03-31 (02:00 -> 03:00) and 2024-10-27 (03:00 -> 02:00).


def test_noon_in_los_angeles_keeps_local_noon_across_both_changes() -> None:
    spring = first("0 0 12 * * ?", 3, after=utc(2024, 3, 9), tz=LA)
    assert spring == [utc(2024, 3, 9, 20), utc(2024, 3, 10, 19), utc(2024, 3, 11, 19)]
    autumn = first("0 0 12 * * ?", 2, after=utc(2024, 11, 2), tz=LA)
    assert autumn == [utc(2024, 11, 2, 19), utc(2024, 11, 3, 20)]


def test_weekday_schedule_in_amsterdam_moves_an_hour_earlier_in_utc() -> None:
    fires = first("0 15 10 ? * MON-FRI", 3, after=utc(2024, 3, 28), tz=AMS)
    assert fires == [utc(2024, 3, 28, 9, 15), utc(2024, 3, 29, 9, 15), utc(2024, 4, 1, 8, 15)]


@pytest.mark.parametrize(
    ("local_day", "first_utc"),
    [((2024, 3, 31), utc(2024, 3, 31, 6)), ((2024, 10, 27), utc(2024, 10, 27, 7))],
)
def test_business_hours_schedule_fires_22_times_on_a_change_day(
    local_day: tuple[int, int, int], first_utc: datetime
) -> None:
    day = datetime(*local_day, tzinfo=UTC) - timedelta(hours=3)
    fires = list(fire_times("0 0/30 8-18 * * ?", AMS, day, day + timedelta(hours=24)))
    assert len(fires) == 22
    assert fires[0] == first_utc


def test_time_in_the_spring_forward_gap_does_not_fire_that_day() -> None:
    fires = first("0 30 2 * * ?", 2, after=utc(2024, 3, 9), tz=LA)
    assert fires == [utc(2024, 3, 9, 10, 30), utc(2024, 3, 11, 9, 30)]
    fires = first("0 0/20 2 * * ?", 4, after=utc(2024, 3, 30), tz=AMS)
    assert fires == [utc(2024, 3, 30, 1, m) for m in (0, 20, 40)] + [utc(2024, 4, 1)]


def test_time_in_the_repeated_hour_fires_once_at_its_standard_time_showing() -> None:
    fires = first("0 30 1 * * ?", 3, after=utc(2024, 11, 2), tz=LA)
    assert fires == [utc(2024, 11, 2, 8, 30), utc(2024, 11, 3, 9, 30), utc(2024, 11, 4, 9, 30)]
    fires = first("0 0/20 2 * * ?", 3, after=utc(2024, 10, 27), tz=AMS)
    assert fires == [utc(2024, 10, 27, 1, m) for m in (0, 20, 40)]


def test_every_minute_is_silent_through_the_first_showing_of_the_repeated_hour() -> None:
    # The local day of 2024-11-03 lasts 25 hours, but each wall minute fires once.
    day = list(fire_times("0 * * * * ?", LA, utc(2024, 11, 3, 6, 59), utc(2024, 11, 4, 7, 59)))
    assert len(day) == 1440
    assert next_fire_time("0 * * * * ?", LA, utc(2024, 11, 3, 7, 59)) == utc(2024, 11, 3, 9)
    # The spring-forward day lasts 23 hours.
    day = list(fire_times("0 * * * * ?", LA, utc(2024, 3, 10, 7, 59), utc(2024, 3, 11, 6, 59)))
    assert len(day) == 1380


def test_search_from_inside_the_first_showing_gives_the_same_fixed_set() -> None:
    # 08:10 UTC is 01:10 PDT; the wall times from 01:00 on fire at their PST showing, after it.
    assert next_fire_time("0 * * * * ?", LA, utc(2024, 11, 3, 8, 10)) == utc(2024, 11, 3, 9)
    assert previous_fire_time("0 * * * * ?", LA, utc(2024, 11, 3, 8, 30)) == utc(2024, 11, 3, 7, 59)


CONSISTENCY = [
    ("0 * * * * ?", LA, utc(2024, 11, 3, 7, 30)),
    ("0 0/7 1-3 * * ?", LA, utc(2024, 11, 3, 7, 30)),
    ("0 0/7 1-3 * * ?", LA, utc(2024, 3, 10, 8, 30)),
    ("*/20 59,0-2 * * * ?", AMS, utc(2024, 10, 27, 0, 30)),
    ("0 15,45 2 * * ?", AMS, utc(2024, 3, 30, 0)),
    ("0 */10 * * * ?", "Australia/Lord_Howe", utc(2024, 4, 6, 14)),
]


@pytest.mark.parametrize(("expr", "tz", "start"), CONSISTENCY)
def test_previous_walks_back_exactly_the_times_next_walks_forward(
    expr: str, tz: str, start: datetime
) -> None:
    end = start + timedelta(hours=48)
    forward = list(fire_times(expr, tz, start, end))
    backward: list[datetime] = []
    moment = previous_fire_time(expr, tz, end + timedelta(microseconds=1))
    while moment is not None and moment > start:
        backward.append(moment)
        moment = previous_fire_time(expr, tz, moment)
    assert forward and backward[::-1] == forward
    assert all(t.tzinfo is UTC for t in forward)


# -- leap years, L, W, #, wrapping ranges, the year field -------------------------------------


def test_leap_day_fires_every_four_years_but_not_in_2100() -> None:
    assert first("0 0 0 29 2 ?", 2, after=utc(2024, 3, 1)) == [utc(2028, 2, 29), utc(2032, 2, 29)]
    assert first("0 0 0 29 2 ?", 1, after=utc(2096, 3, 1)) == [utc(2104, 2, 29)]
    assert previous_fire_time("0 0 0 29 2 ?", "UTC", utc(2028, 1, 1)) == utc(2024, 2, 29)
    assert first("0 0 0 L 2 ?", 2, after=utc(2023, 1, 1)) == [utc(2023, 2, 28), utc(2024, 2, 29)]


def test_day_no_month_has_never_fires() -> None:
    assert next_fire_time("0 0 0 30 2 ?", "UTC", utc(2024, 1, 1)) is None
    assert previous_fire_time("0 0 0 30 2 ?", "UTC", utc(2024, 1, 1)) is None


def test_last_weekday_of_the_month() -> None:
    # 2024-03-31 and 2024-06-30 are Sundays, 2024-08-31 a Saturday.
    days = [(2024, 1, 31), (2024, 2, 29), (2024, 3, 29), (2024, 4, 30), (2024, 5, 31)]
    days += [(2024, 6, 28), (2024, 7, 31), (2024, 8, 30)]
    assert first("0 0 12 LW * ?", 8) == days_at(12, 0, *days)


def test_nearest_weekday_moves_off_weekends_without_leaving_the_month() -> None:
    # 2024-06-15 is a Saturday, 2024-09-15 and 2024-12-15 Sundays.
    fifteenth = first("0 0 12 15W * ?", 12)
    assert [t.day for t in fifteenth] == [15, 15, 15, 15, 15, 14, 15, 15, 16, 15, 15, 16]
    # 2024-06-01 is a Saturday: Monday the 3rd, not Friday 31 May; 2024-09-01 is a Sunday.
    assert [t.day for t in first("0 0 12 1W * ?", 12)] == [1, 1, 1, 1, 1, 3, 1, 1, 2, 1, 1, 2]
    # 31W skips 30-day months; a Sunday 31st goes back to Friday the 29th.
    days = [(2024, 1, 31), (2024, 3, 29), (2024, 5, 31), (2024, 7, 31), (2024, 8, 30)]
    assert first("0 0 12 31W * ?", 5) == days_at(12, 0, *days)


def test_offset_from_the_last_day() -> None:
    assert first("0 0 12 L-3 * ?", 2, after=utc(2023, 2, 1)) == days_at(
        12, 0, (2023, 2, 25), (2023, 3, 28)
    )
    assert first("0 0 12 L-3 * ?", 1, after=utc(2024, 2, 1)) == days_at(12, 0, (2024, 2, 26))


def test_nth_and_last_weekday_of_the_month() -> None:
    # Only January, May, July and October of 2024 have five Wednesdays.
    fifth = list(fire_times("0 0 12 ? * 4#5", "UTC", utc(2024, 1, 1), utc(2025, 1, 1)))
    assert fifth == days_at(12, 0, (2024, 1, 31), (2024, 5, 29), (2024, 7, 31), (2024, 10, 30))
    assert first("0 0 12 ? * 2#1", 3) == days_at(12, 0, (2024, 1, 1), (2024, 2, 5), (2024, 3, 4))
    assert first("0 0 12 ? * 1L", 3) == days_at(12, 0, (2024, 1, 28), (2024, 2, 25), (2024, 3, 31))


def test_day_of_week_numbers_sunday_as_one_and_plain_l_as_saturday() -> None:
    assert [t.weekday() for t in first("0 0 12 ? * 1", 2)] == [6, 6]
    assert [t.weekday() for t in first("0 0 12 ? * 2", 2)] == [0, 0]
    assert first("0 0 12 ? * L", 2) == days_at(12, 0, (2024, 1, 6), (2024, 1, 13))


def test_names_are_case_insensitive() -> None:
    fires = first("0 0 12 ? jan,Feb fri#3", 3)
    assert fires == days_at(12, 0, (2024, 1, 19), (2024, 2, 16), (2025, 1, 17))
    assert (
        QuartzCron.parse("0 0 12 ? * mon-FRI").day_of_week
        == QuartzCron.parse("0 0 12 ? * 2-6").day_of_week
    )


def test_ranges_may_wrap_around_the_top_of_the_field() -> None:
    assert first("0 0 22-2 * * ?", 5) == [utc(2024, 1, 1, h) for h in (1, 2, 22, 23)] + [
        utc(2024, 1, 2)
    ]
    assert [t.day for t in first("0 0 12 ? * FRI-MON", 5)] == [1, 5, 6, 7, 8]
    assert first("0 0 12 ? NOV-FEB MON", 2, after=utc(2024, 2, 20)) == days_at(
        12, 0, (2024, 2, 26), (2024, 11, 4)
    )
    # Day-of-month wraps at 31 whatever the month's length, as in Quartz.
    days = [(2024, 1, d) for d in (28, 29, 30, 31)] + [(2024, 2, d) for d in (1, 2, 3, 28, 29)]
    assert first("0 0 12 28-3 * ?", 9, after=utc(2024, 1, 27)) == days_at(12, 0, *days)


def test_year_field_steps_and_ends() -> None:
    assert first("0 0 0 1 1 ? 2030/5", 3) == [utc(2030, 1, 1), utc(2035, 1, 1), utc(2040, 1, 1)]
    assert next_fire_time("0 0 0 1 1 ? 2025-2026", "UTC", utc(2026, 1, 1)) is None
    assert previous_fire_time("0 0 0 1 1 ? 2025-2026", "UTC", utc(2025, 1, 1)) is None
    assert next_fire_time("0 0 0 1 1 ? 2199", None, utc(2024, 1, 1)) == utc(2199, 1, 1)


def test_parse_keeps_the_sets_it_read() -> None:
    cron = QuartzCron.parse("  0 0/30   8-18 * * ? ")
    assert cron.expression == "0 0/30 8-18 * * ?"
    assert (cron.seconds, cron.minutes, cron.hours) == ((0,), (0, 30), tuple(range(8, 19)))
    assert cron.months == tuple(range(1, 13)) and cron.years == tuple(range(1970, 2200))
    assert cron.day_of_week is None
    assert next_fire_time(cron, "UTC", utc(2024, 1, 1)) == utc(2024, 1, 1, 8)


def test_bounds_are_exclusive_then_inclusive_and_keep_their_instant() -> None:
    noon = utc(2024, 1, 1, 12)
    assert list(fire_times("0 0 12 * * ?", "UTC", noon, noon + timedelta(days=1))) == [
        noon + timedelta(days=1)
    ]
    assert next_fire_time("0 0 12 * * ?", "UTC", noon - timedelta(microseconds=1)) == noon
    assert previous_fire_time("0 0 12 * * ?", "UTC", noon + timedelta(microseconds=1)) == noon
    amsterdam_noon = datetime.fromisoformat("2024-01-01T13:00:00+01:00")
    assert next_fire_time("0 0 12 * * ?", "UTC", amsterdam_noon) == utc(2024, 1, 2, 12)


# -- what is refused, and how it is said ------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("0 0 12 ? * ?", r"exactly one must be '\?', got '\?' and '\?'"),
        ("0 0 12 5 * MON", r"exactly one must be '\?', got '5' and 'MON'"),
        ("* * * * * *", r"exactly one must be '\?', got '\*' and '\*'"),
        ("0 60 * * * ?", r"minutes field: 60 is outside 0-59 in '60'"),
        ("0 0 24 * * ?", r"hours field: 24 is outside 0-23 in '24'"),
        ("0 0 0 32 * ?", r"day-of-month field: 32 is outside 1-31 in '32'"),
        ("0 0 0 0 * ?", r"day-of-month field: 0 is outside 1-31"),
        ("0 0 0 ? 13 *", r"month field: 13 is outside 1-12"),
        ("0 0 0 ? * 8", r"day-of-week field: 8 is outside 1-7"),
        ("0 0 0 ? * 0", r"day-of-week field: 0 is outside 1-7"),
        ("0 0 0 1 1 ? 1969", r"year field: 1969 is outside 1970-2199"),
        ("0 0 0 1 1 ? 2010-2005", r"year field: the range 2010-2005 runs backwards in '2010-2005'"),
        ("0 0 0 ? JANX *", r"month field: 'JANX' is neither a number nor a month name"),
        ("0 0 0 ? * FUN", r"day-of-week field: 'FUN' is neither a number"),
        ("0 0 0 ? * MON-FRX", r"day-of-week field: 'FRX' .* in 'MON-FRX'"),
        ("0 0 12 * *", r"expected 6 or 7 fields .*, got 5 in '0 0 12 \* \*'"),
        ("0 0 12 * * ? 2024 1", r"expected 6 or 7 fields .*, got 8"),
        ("* * * * ? *", r"month field: '\?' is allowed only in day-of-month or day-of-week"),
        ("", r"expected 6 or 7 fields .*, got 0"),
        ("0 0 ? 1 * ?", r"hours field: '\?' is allowed only in day-of-month or day-of-week"),
        ("0 0 12 ? * ?,5", r"day-of-week field: '\?' must be the whole field in '\?,5'"),
        ("0 L * * * ?", r"minutes field: 'L' is not a number"),
        ("0 0 12 ? * 2W", r"day-of-week field: '2W' is neither"),
        (
            "0 0 12 ? * 6#6",
            r"day-of-week field: '#' must be followed by a number from 1 to 5 in '6#6'",
        ),
        ("0 0 12 ? * 6L,2", r"day-of-week field: 'L' or '#' must be the only item .* in '6L,2'"),
        ("0 0 12 ? * 2#1,3#1", r"day-of-week field: 'L' or '#' must be the only item"),
        ("0 0 12 L-31 * ?", r"day-of-month field: the offset after 'L-' must be 0 to 30 in 'L-31'"),
        ("0 0 12 32W * ?", r"day-of-month field: 32 is outside 1-31 in '32W'"),
        ("0 */60 * * * ?", r"minutes field: the step after '/' must be a number from 1 to 59"),
        ("0 */0 * * * ?", r"minutes field: the step after '/' must be"),
        ("0 1,,2 * * * ?", r"minutes field: an empty item in the list in '1,,2'"),
        ("0 1-2-3 * * * ?", r"minutes field: cannot read the item in '1-2-3'"),
    ],
)
def test_invalid_expression_is_refused_naming_field_and_token(expr: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        QuartzCron.parse(expr)


def test_unknown_zone_and_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown time zone 'Mars/Olympus'"):
        next_fire_time("0 0 12 * * ?", "Mars/Olympus", utc(2024, 1, 1))
    with pytest.raises(ValueError, match="start must be a time-zone-aware datetime"):
        fire_times("0 0 12 * * ?", "UTC", datetime(2024, 1, 1), utc(2024, 2, 1))


# -- cost -------------------------------------------------------------------------------------


def test_every_minute_for_sixty_days_is_enumerated_field_by_field() -> None:
    start = utc(2024, 3, 1)
    fires = list(fire_times("0 * * * * ?", "UTC", start, start + timedelta(days=60)))
    assert len(fires) == 86400
    assert fires[0] == start + timedelta(minutes=1) and fires[-1] == start + timedelta(days=60)
    # Across Amsterdam's autumn change the first showing of 02:00-03:00 is silent.
    start = utc(2024, 10, 1)
    fires = list(fire_times("0 * * * * ?", AMS, start, start + timedelta(days=60)))
    assert len(fires) == 86400 - 60
