"""What one extract reads and where its watermark ends: a pure function of state, options, now.

`plan` decides the start_time ranges to list (new runs, and the older range re-read for repairs
and deletions), whether this extract is a repair sweep or a full rescan, and the state stamps
written once everything is stored. No I/O, no clock: table-tested in tests/test_plan.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

# The Jobs API keeps runs for 60 days.
RETENTION = timedelta(days=60)
# Runs this close to the retention edge may expire while we read them; a rescan does not
# take their absence as a deletion.
RETENTION_MARGIN = timedelta(hours=1)


@dataclass
class ExtractOptions:
    since: datetime | None = None
    until: datetime | None = None
    rescan: bool = False
    full_refresh: bool = False
    repair_window: timedelta = timedelta(days=7)
    repair_every: timedelta = timedelta(hours=1)
    rescan_every: timedelta = timedelta(hours=24)
    overlap: timedelta = timedelta(hours=1)
    concurrency: int = 8
    slice_span: timedelta = timedelta(hours=6)
    # Runs go to the writer every flush_runs, or once flush_seconds passed since the last
    # hand-over: a cron extract's few runs are then stored while its last answers are awaited.
    flush_seconds: float = 0.5
    flush_runs: int = 500
    # Read the error of every failed task run with runs/get-output (`extract --no-errors`: off).
    errors: bool = True


@dataclass(frozen=True)
class Range:
    """A start_time range [start_ms, end_ms], read to its end page by page.

    `expand` lists runs with their tasks (new runs); without it (older ranges) the listing is
    cheaper and only runs that changed are fetched in full.
    """

    start_ms: int
    end_ms: int
    expand: bool
    label: str


@dataclass(frozen=True)
class Plan:
    """The ranges to read, first the new runs, and the state to save after a full success."""

    ranges: tuple[Range, ...]
    rescan: bool
    repair_sweep: bool
    window_start: datetime
    window_end: datetime
    stamps: dict[str, datetime] = field(default_factory=dict)

    @property
    def new_runs(self) -> Range:
        return self.ranges[0]


def plan(state: Mapping[str, datetime | None], options: ExtractOptions, now: datetime) -> Plan:
    """The extract to run now, given the workspace's stored state.

    - New runs: from the watermark minus `overlap` (first extract, or --full-refresh: the whole
      retention; --since overrides) to now (or --until), listed with their tasks.
    - Repair sweep, every `repair_every`: the `repair_window` before that range is re-listed.
    - Rescan, every `rescan_every` (and on a first extract or with --rescan): the whole
      retention but its last hour is re-listed, so repairs and deletions anywhere are seen.
    - The watermark moves to the window's end only when the window reached back to it (a
      --since/--until window that leaves a gap never moves it), never beyond the listing start.
    """
    t0 = ms(now)
    now = dt(t0)  # stamps at the millisecond precision of the API's times
    watermark = state.get("watermark")
    retention_start = t0 - ms_delta(RETENTION)
    if options.since is not None:
        start = ms(options.since)
    elif watermark is not None and not options.full_refresh:
        start = ms(watermark) - ms_delta(options.overlap)
    else:
        start = retention_start
    end = ms(options.until) if options.until is not None else t0

    ranges = [Range(start, end, expand=True, label="new runs")]
    first_time = watermark is None or options.full_refresh
    rescan = (
        options.rescan
        or first_time
        or _older_than(state.get("last_rescan_at"), t0, options.rescan_every)
    )
    sweep = rescan or _older_than(state.get("last_repair_sweep_at"), t0, options.repair_every)
    cheap_from = start
    if rescan:
        cheap_from = retention_start + ms_delta(RETENTION_MARGIN)
    elif sweep:
        cheap_from = max(t0 - ms_delta(options.repair_window), retention_start)
    if sweep and cheap_from < start:
        ranges.append(Range(cheap_from, start - 1, expand=False, label="repairs"))

    stamps: dict[str, datetime] = {"last_extract_at": now, "last_success_at": now}
    if options.until is None:
        reaches_watermark = watermark is None or start <= ms(watermark) or options.full_refresh
    else:
        reaches_watermark = watermark is not None and start <= ms(watermark) < end
    if reaches_watermark:
        stamps["watermark"] = dt(end)
    if rescan:
        stamps["last_rescan_at"] = now
    if sweep:
        stamps["last_repair_sweep_at"] = now
    return Plan(tuple(ranges), rescan, sweep, dt(start), dt(end), stamps)


def ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


def dt(value_ms: int) -> datetime:
    return datetime.fromtimestamp(value_ms / 1000, tz=UTC)


def ms_delta(value: timedelta) -> int:
    return int(value.total_seconds() * 1000)


def _older_than(stamp: datetime | None, now_ms: int, age: timedelta) -> bool:
    return stamp is None or now_ms - ms(stamp) >= ms_delta(age)
