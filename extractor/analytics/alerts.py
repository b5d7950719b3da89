"""Alert rules: what in the store deserves a message (failure streaks, new failure causes, slow,
stuck and costly runs, missed schedules), and the TOML rules file that tunes them.

It only reads the store, at an injected `now`: it never writes, never sends anything and never
reads the wall clock. The rules' SELECTs live in sql/alerts; missed schedules need Quartz, here.
"""

from __future__ import annotations

import fnmatch
import re
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import duckdb
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from extractor.analytics.quartz import QuartzCron, fire_times
from extractor.analytics.sqlfiles import sql_text
from extractor.config import parse_duration
from extractor.errors import UsageError
from extractor.schema import table_names

Severity = Literal["info", "warning", "error"]
WebhookFormat = Literal["slack", "teams", "json"]


@dataclass
class Alert:
    """One alert: `key` says what it is about, so the same event never makes two alerts."""

    rule: str
    severity: str
    key: str
    title: str
    fired_at: datetime
    workspace_id: str | None = None
    job_id: int | None = None
    job_name: str | None = None
    run_id: int | None = None
    run_page_url: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["fired_at"] = self.fired_at.isoformat()
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Alert:
        values = dict(data)
        values["fired_at"] = datetime.fromisoformat(values["fired_at"])
        return cls(**values)


# -- the rules file ------------------------------------------------------------------------


def _duration(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return parse_duration(value)
        except UsageError as exc:
            raise ValueError(str(exc)) from exc
    return value


class RuleBase(BaseModel):
    """What every rule accepts: on or off, severity, cooldown, and the jobs it watches."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    severity: Severity = "error"
    # Alerts of this rule for a job are held (pending, not dropped) for this long after the last
    # one sent for that job to a destination; 0 = off.
    cooldown: timedelta = timedelta(0)
    jobs: list[int | str] = Field(default_factory=list)  # ids, or name globs ("nightly_*")
    tags: dict[str, str] = Field(default_factory=dict)  # every tag must match ("*" = any value)

    _check_cooldown = field_validator("cooldown", mode="before")(_duration)


class FailureStreak(RuleBase):
    n: int = Field(2, ge=1)


class FailedRun(RuleBase):
    enabled: bool = False


class NewFailureCause(RuleBase):
    severity: Severity = "warning"


class DurationRegression(RuleBase):
    severity: Severity = "warning"
    factor: float = Field(1.5, gt=0)
    lookback: timedelta = timedelta(days=7)
    min_runs: int = Field(5, ge=1)

    _check_lookback = field_validator("lookback", mode="before")(_duration)


class StuckRun(RuleBase):
    factor: float = Field(2.0, gt=0)


class CostSpike(RuleBase):
    severity: Severity = "warning"
    factor: float = Field(2.0, gt=0)
    n: int = Field(5, ge=1)
    min_cost: float = Field(1.0, ge=0)


class MissedSchedule(RuleBase):
    grace: timedelta = timedelta(minutes=30)

    _check_grace = field_validator("grace", mode="before")(_duration)


class Rules(BaseModel):
    model_config = ConfigDict(extra="forbid")

    failure_streak: FailureStreak = Field(default_factory=FailureStreak)  # type: ignore[arg-type]
    failed_run: FailedRun = Field(default_factory=FailedRun)
    new_failure_cause: NewFailureCause = Field(default_factory=NewFailureCause)
    duration_regression: DurationRegression = Field(default_factory=DurationRegression)  # type: ignore[arg-type]
    stuck_run: StuckRun = Field(default_factory=StuckRun)  # type: ignore[arg-type]
    cost_spike: CostSpike = Field(default_factory=CostSpike)  # type: ignore[arg-type]
    missed_schedule: MissedSchedule = Field(default_factory=MissedSchedule)


class Webhook(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str
    format: WebhookFormat | None = None


class AlertsConfig(BaseModel):
    """A rules file: the webhooks, the window, the per-call cap, and each rule's settings."""

    model_config = ConfigDict(extra="forbid")

    webhooks: list[Webhook | str] = Field(default_factory=list)
    since: timedelta | None = None
    max_per_call: int | None = Field(None, ge=1)
    rules: Rules = Field(default_factory=Rules)

    _check_since = field_validator("since", mode="before")(_duration)

    def webhook_list(self) -> list[Webhook]:
        return [Webhook(url=w) if isinstance(w, str) else w for w in self.webhooks]


RULE_NAMES = tuple(Rules.model_fields)


def load_rules(path: Path) -> AlertsConfig:
    """Read and validate a rules file; every mistake is a UsageError naming its line."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read the rules file {path}: {exc.strerror}") from exc
    return parse_rules(text, str(path))


def parse_rules(text: str, name: str = "rules file") -> AlertsConfig:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{name}: not valid TOML: {exc}") from exc
    try:
        return AlertsConfig.model_validate(data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            loc = [str(p) for p in error["loc"] if not isinstance(p, int)]
            # Union members add their type names to the location: keep the user's keys only.
            loc = [p for i, p in enumerate(loc) if i == 0 or p not in {"Webhook", "str"}]
            line = _line_of(text, loc)
            where = ".".join(loc) or "(top level)"
            if error["type"] == "extra_forbidden":
                what = "unknown rule" if loc[:1] == ["rules"] and len(loc) == 2 else "unknown key"
                if what == "unknown rule":
                    message = f"{what} {loc[-1]!r} (rules: {', '.join(RULE_NAMES)})"
                else:
                    message = f"{what} {where!r}"
            else:
                message = f"{where}: {error['msg']}"
            problems.append(f"{name}, line {line}: {message}" if line else f"{name}: {message}")
        raise UsageError("; ".join(problems)) from exc


def _line_of(text: str, loc: list[str]) -> int | None:
    """The line of a key given by its path (tables as [a.b] headers, or dotted keys)."""
    lines = text.splitlines()
    table: list[str] = []
    best: int | None = None
    for number, raw in enumerate(lines, start=1):
        line = raw.split("#", 1)[0].strip()
        header = re.fullmatch(r"\[\[?\s*([^\]]+?)\s*\]\]?", line)
        if header:
            table = [p.strip().strip("\"'") for p in header.group(1).split(".")]
            if table == loc:
                return number
            continue
        key = re.match(r"([A-Za-z0-9_\-.\"' ]+?)\s*=", line)
        if key is None:
            continue
        path = table + [p.strip().strip("\"'") for p in key.group(1).split(".")]
        if path == loc:
            return number
        if best is None and path == loc[: len(path)]:
            best = number
    return best


# -- evaluation ----------------------------------------------------------------------------


@dataclass
class Evaluation:
    alerts: list[Alert]
    notes: list[str]  # rules that could not run, and why


def _query(con: duckdb.DuckDBPyConnection, name: str, **params: Any) -> list[dict[str, Any]]:
    lines = sql_text(f"alerts/{name}.sql").splitlines()
    sql = "\n".join(line for line in lines if not line.startswith("--"))
    used = set(re.findall(r"\$([a-z_]+)", sql))
    cursor = con.execute(sql, {k: v for k, v in params.items() if k in used})
    names = [d[0] for d in cursor.description or []]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _key(*parts: Any) -> str:
    return ":".join(str(p) for p in parts)


def _minutes(ms: float | None) -> str:
    return "-" if ms is None else f"{ms / 60000:.1f} min"


def evaluate(
    con: duckdb.DuckDBPyConnection,
    rules: Rules,
    *,
    now: datetime,
    since: timedelta = timedelta(hours=24),
) -> Evaluation:
    """The alerts of every enabled rule for events between now - since and now."""
    start = now - since
    alerts: list[Alert] = []
    notes: list[str] = []
    jobs = _JobFilter(con)
    for name, rule_alerts in _RULES.items():
        rule = getattr(rules, name)
        if not rule.enabled:
            continue
        found = rule_alerts(con, rule, now, start, notes)
        alerts.extend(a for a in found if a.job_id is None or jobs.selects(rule, a))
    alerts.sort(key=lambda a: (a.fired_at, a.rule, a.key))
    return Evaluation(alerts, notes)


class _JobFilter:
    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con
        self._jobs: dict[tuple[str, int], dict[str, Any]] | None = None

    def selects(self, rule: RuleBase, alert: Alert) -> bool:
        if not rule.jobs and not rule.tags:
            return True
        if self._jobs is None:
            self._jobs = {(r["workspace_id"], r["job_id"]): r for r in _query(self.con, "job_tags")}
        job = self._jobs.get((alert.workspace_id or "", alert.job_id or 0), {})
        name = job.get("name") or alert.job_name or ""
        if rule.jobs and not any(
            (isinstance(j, int) and j == alert.job_id)
            or (isinstance(j, str) and fnmatch.fnmatchcase(name, j))
            for j in rule.jobs
        ):
            return False
        tags = job.get("tags") or {}
        return all(
            k in tags and fnmatch.fnmatchcase(tags[k] or "", v) for k, v in rule.tags.items()
        )


RuleFn = Callable[[duckdb.DuckDBPyConnection, Any, datetime, datetime, list[str]], list[Alert]]


def _alert(
    rule: RuleBase,
    name: str,
    row: dict[str, Any],
    key: tuple[Any, ...],
    title: str,
    details: dict[str, Any],
) -> Alert:
    """The alert of one row of a rule's query: its key is the rule's name and `key`."""
    return Alert(
        rule=name,
        severity=rule.severity,
        key=_key(name, *key),
        title=title,
        fired_at=row["fired_at"],
        workspace_id=row.get("workspace_id"),
        job_id=row.get("job_id"),
        job_name=row.get("job_name"),
        run_id=row.get("run_id"),
        run_page_url=row.get("run_page_url"),
        details=details,
    )


def _failure_streak(
    con: duckdb.DuckDBPyConnection, rule: FailureStreak, now: datetime, start: datetime, _: Any
) -> list[Alert]:
    return [
        _alert(
            rule,
            "failure_streak",
            row,
            (row["workspace_id"], row["job_id"], row["first_run_id"]),
            f"{row['job_name']}: {int(row['streak_length'])} failed runs in a row",
            {"streak_length": int(row["streak_length"]), "first_run_id": row["first_run_id"]},
        )
        for row in _query(con, "failure_streak", n=rule.n, now=now, start=start)
    ]


def _failed_run(
    con: duckdb.DuckDBPyConnection, rule: FailedRun, now: datetime, start: datetime, _: Any
) -> list[Alert]:
    return [
        _alert(
            rule,
            "failed_run",
            row,
            (row["workspace_id"], row["run_id"]),
            f"{row['job_name']}: run {row['run_id']} {(row['state'] or 'failed').lower()}",
            {
                "state": row["state"],
                "termination_code": row["termination_code"],
                "state_message": (row["state_message"] or "")[:300] or None,
            },
        )
        for row in _query(con, "failed_run", now=now, start=start)
    ]


def _new_failure_cause(
    con: duckdb.DuckDBPyConnection,
    rule: NewFailureCause,
    now: datetime,
    start: datetime,
    notes: list[str],
) -> list[Alert]:
    if "failure_causes" not in _relations(con):
        notes.append(
            "new_failure_cause: disabled, this store has no failure_causes view yet "
            "(a jobruns with failure causes creates it)"
        )
        return []
    return [
        _alert(
            rule,
            "new_failure_cause",
            row,
            (row["signature"],),
            f"new failure cause: {row['title']}",
            {"signature": row["signature"], "first_seen": row["fired_at"].isoformat()},
        )
        for row in _query(con, "new_failure_cause", now=now, start=start)
    ]


def _relations(con: duckdb.DuckDBPyConnection) -> set[str]:
    views = {str(r[0]) for r in con.execute("SELECT view_name FROM duckdb_views()").fetchall()}
    return views | table_names(con)


def _duration_regression(
    con: duckdb.DuckDBPyConnection, rule: DurationRegression, now: datetime, start: datetime, _: Any
) -> list[Alert]:
    def alert(row: dict[str, Any]) -> Alert:
        ratio = row["duration_ms"] / row["median_duration_ms"]
        return _alert(
            rule,
            "duration_regression",
            row,
            (row["workspace_id"], row["run_id"]),
            f"{row['job_name']}: run took {ratio:.1f} x its median "
            f"({_minutes(row['duration_ms'])} vs {_minutes(row['median_duration_ms'])})",
            {
                "duration_ms": int(row["duration_ms"]),
                "median_duration_ms": float(row["median_duration_ms"]),
                "ratio": round(ratio, 3),
                "baseline_runs": int(row["baseline_runs"]),
            },
        )

    rows = _query(
        con,
        "duration_regression",
        now=now,
        start=start,
        factor=rule.factor,
        lookback_ms=int(rule.lookback.total_seconds() * 1000),
        min_runs=rule.min_runs,
    )
    return [alert(row) for row in rows]


def _stuck_run(
    con: duckdb.DuckDBPyConnection, rule: StuckRun, now: datetime, start: datetime, _: Any
) -> list[Alert]:
    def alert(row: dict[str, Any]) -> Alert:
        why = (
            f"past its timeout of {_minutes(row['timeout_ms'])}"
            if row["reason"] == "past_timeout"
            else f"over {rule.factor:g} x its p95 of {_minutes(row['p95_duration_ms'])}"
        )
        return _alert(
            rule,
            "stuck_run",
            row,
            (row["workspace_id"], row["run_id"]),
            f"{row['job_name']}: run {row['run_id']} running for "
            f"{_minutes(row['running_for_ms'])}, {why}",
            {
                "reason": row["reason"],
                "life_cycle_state": row["life_cycle_state"],
                "running_for_ms": int(row["running_for_ms"]),
                "p95_duration_ms": row["p95_duration_ms"],
                "timeout_ms": row["timeout_ms"],
            },
        )

    # A stuck run is news while it runs, however long ago it got stuck: --since does not limit it.
    return [alert(row) for row in _query(con, "stuck_run", now=now, factor=rule.factor)]


def _cost_spike(
    con: duckdb.DuckDBPyConnection, rule: CostSpike, now: datetime, start: datetime, _: Any
) -> list[Alert]:
    def alert(row: dict[str, Any]) -> Alert:
        ratio = row["cost"] / row["mean_cost"] if row["mean_cost"] else None
        return _alert(
            rule,
            "cost_spike",
            row,
            (row["workspace_id"], row["run_id"]),
            f"{row['job_name']}: run cost {row['cost']:.2f}, "
            f"{ratio:.1f} x the mean of its last {rule.n} ({row['mean_cost']:.2f})"
            if ratio is not None
            else f"{row['job_name']}: run cost {row['cost']:.2f}",
            {
                "cost": round(float(row["cost"]), 4),
                "mean_cost": round(float(row["mean_cost"]), 4),
                "ratio": None if ratio is None else round(ratio, 3),
                "previous_runs": int(row["previous_runs"]),
            },
        )

    rows = _query(
        con,
        "cost_spike",
        now=now,
        start=start,
        factor=rule.factor,
        n=rule.n,
        min_cost=rule.min_cost,
    )
    return [alert(row) for row in rows]


def _missed_schedule(
    con: duckdb.DuckDBPyConnection,
    rule: MissedSchedule,
    now: datetime,
    start: datetime,
    notes: list[str],
) -> list[Alert]:
    out = []
    for job in _query(con, "schedules"):
        # Only as far as the store has seen the workspace: a stale store must not cry "missed".
        seen = job["last_success_at"] or now
        horizon = min(seen, now) - rule.grace
        lo = start - rule.grace
        # Nor before the store's first run of the workspace (the API keeps 60 days of runs).
        for bound in (job["created_time"], job["first_run_at"]):
            if bound is not None:
                lo = max(lo, bound)
        if horizon <= lo:
            continue
        try:
            cron = QuartzCron.parse(job["schedule_cron"])
            dues = list(fire_times(cron, job["schedule_timezone"], lo, horizon))
        except (ValueError, KeyError) as exc:
            notes.append(f"missed_schedule: job {job['job_id']}: cannot read its schedule ({exc})")
            continue
        if not dues:
            continue
        starts = [
            r["start_time"]
            for r in _query(
                con,
                "run_starts",
                workspace_id=job["workspace_id"],
                job_id=job["job_id"],
                lo=dues[0],
                hi=dues[-1] + rule.grace,
            )
        ]
        for due in _unmet(dues, starts, rule.grace):
            alert = Alert(
                rule="missed_schedule",
                severity=rule.severity,
                key=_key("missed_schedule", job["workspace_id"], job["job_id"], due.isoformat()),
                title=f"{job['job_name']}: no run started within "
                f"{int(rule.grace.total_seconds() // 60)} min of its {due:%Y-%m-%d %H:%M} UTC schedule",
                fired_at=due + rule.grace,
                workspace_id=job["workspace_id"],
                job_id=job["job_id"],
                job_name=job["job_name"],
                details={
                    "due_at": due.isoformat(),
                    "grace_s": int(rule.grace.total_seconds()),
                    "cron": job["schedule_cron"],
                    "timezone": job["schedule_timezone"],
                },
            )
            out.append(alert)
    return out


def _unmet(dues: list[datetime], starts: list[datetime], grace: timedelta) -> Iterator[datetime]:
    """Due times with no start in [due, due + grace] (both lists ascending)."""
    i = 0
    for due in dues:
        while i < len(starts) and starts[i] < due:
            i += 1
        if i == len(starts) or starts[i] > due + grace:
            yield due


_RULES: dict[str, RuleFn] = {
    "failure_streak": _failure_streak,
    "failed_run": _failed_run,
    "new_failure_cause": _new_failure_cause,
    "duration_regression": _duration_regression,
    "stuck_run": _stuck_run,
    "cost_spike": _cost_spike,
    "missed_schedule": _missed_schedule,
}
