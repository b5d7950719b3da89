"""The extract plan: which ranges are read, sweep and rescan, and where the watermark ends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from extractor.plan import RETENTION, RETENTION_MARGIN, ExtractOptions, Range, ms, plan

NOW = datetime(2025, 6, 10, 12, 0, tzinfo=UTC)
H = timedelta(hours=1)
D = timedelta(days=1)
M30 = timedelta(minutes=30)


def state(
    watermark: timedelta | None = None,
    rescan: timedelta | None = None,
    sweep: timedelta | None = None,
) -> dict[str, datetime | None]:
    """Stored state with each stamp given as an age before NOW (None: never)."""

    def at(age: timedelta | None) -> datetime | None:
        return None if age is None else NOW - age

    return {
        "watermark": at(watermark),
        "last_rescan_at": at(rescan),
        "last_repair_sweep_at": at(sweep),
    }


def span(start: datetime, end: datetime, *, expand: bool, label: str) -> Range:
    return Range(ms(start), ms(end), expand=expand, label=label)


RETAINED = NOW - RETENTION
CASES = [
    pytest.param(
        state(),
        ExtractOptions(),
        [span(RETAINED, NOW, expand=True, label="new runs")],
        (True, True),
        NOW,
        id="first extract: the whole retention, a rescan, watermark to now",
    ),
    pytest.param(
        state(watermark=10 * timedelta(minutes=1), rescan=2 * H, sweep=10 * timedelta(minutes=1)),
        ExtractOptions(),
        [span(NOW - 70 * timedelta(minutes=1), NOW, expand=True, label="new runs")],
        (False, False),
        NOW,
        id="incremental: from the watermark minus the overlap, nothing else due",
    ),
    pytest.param(
        state(watermark=10 * timedelta(minutes=1), rescan=2 * H, sweep=2 * H),
        ExtractOptions(),
        [
            span(NOW - 70 * timedelta(minutes=1), NOW, expand=True, label="new runs"),
            Range(
                ms(NOW - 7 * D),
                ms(NOW - 70 * timedelta(minutes=1)) - 1,
                expand=False,
                label="repairs",
            ),
        ],
        (False, True),
        NOW,
        id="repair sweep due: the repair window before the new runs, listed without tasks",
    ),
    pytest.param(
        state(watermark=10 * timedelta(minutes=1), rescan=25 * H, sweep=10 * timedelta(minutes=1)),
        ExtractOptions(),
        [
            span(NOW - 70 * timedelta(minutes=1), NOW, expand=True, label="new runs"),
            Range(
                ms(RETAINED + RETENTION_MARGIN),
                ms(NOW - 70 * timedelta(minutes=1)) - 1,
                expand=False,
                label="repairs",
            ),
        ],
        (True, True),
        NOW,
        id="rescan due: the whole retention but its last hour",
    ),
    pytest.param(
        state(watermark=3 * D, rescan=H, sweep=M30),
        ExtractOptions(since=NOW - 2 * D),
        [span(NOW - 2 * D, NOW, expand=True, label="new runs")],
        (False, False),
        None,
        id="--since after the watermark leaves a gap: the watermark stays",
    ),
    pytest.param(
        state(watermark=H, rescan=H, sweep=M30),
        ExtractOptions(since=NOW - 2 * D, until=NOW - D),
        [span(NOW - 2 * D, NOW - D, expand=True, label="new runs")],
        (False, False),
        None,
        id="--until before the watermark: a backfill never moves it",
    ),
    pytest.param(
        state(watermark=3 * D, rescan=H, sweep=M30),
        ExtractOptions(since=NOW - 4 * D, until=NOW - D),
        [span(NOW - 4 * D, NOW - D, expand=True, label="new runs")],
        (False, False),
        NOW - D,
        id="--since/--until across the watermark: it moves to --until",
    ),
    pytest.param(
        state(watermark=H, rescan=H, sweep=H),
        ExtractOptions(full_refresh=True),
        [span(RETAINED, NOW, expand=True, label="new runs")],
        (True, True),
        NOW,
        id="--full-refresh: the whole retention again",
    ),
    pytest.param(
        state(watermark=H, rescan=H, sweep=H),
        ExtractOptions(rescan=True),
        [
            span(NOW - 2 * H, NOW, expand=True, label="new runs"),
            Range(
                ms(RETAINED + RETENTION_MARGIN),
                ms(NOW - 2 * H) - 1,
                expand=False,
                label="repairs",
            ),
        ],
        (True, True),
        NOW,
        id="--rescan: forced, whatever the stamps",
    ),
]


@pytest.mark.parametrize(("stored", "options", "ranges", "due", "watermark"), CASES)
def test_plan_reads_the_right_ranges_and_moves_the_watermark_only_when_reached(
    stored: dict[str, datetime | None],
    options: ExtractOptions,
    ranges: list[Range],
    due: tuple[bool, bool],
    watermark: datetime | None,
) -> None:
    todo = plan(stored, options, NOW)
    assert list(todo.ranges) == ranges
    assert (todo.rescan, todo.repair_sweep) == due
    assert todo.stamps.get("watermark") == watermark
    assert todo.stamps["last_success_at"] == NOW
    assert ("last_rescan_at" in todo.stamps) == todo.rescan
    assert ("last_repair_sweep_at" in todo.stamps) == todo.repair_sweep


def test_plan_window_is_the_new_runs_range() -> None:
    todo = plan(state(watermark=H, rescan=H, sweep=2 * H), ExtractOptions(), NOW)
    assert todo.window_start == NOW - 2 * H
    assert todo.window_end == NOW
    assert todo.new_runs == todo.ranges[0]
