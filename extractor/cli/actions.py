"""`jobruns repair`, `jobruns cancel` and `jobruns output`: act on runs the store knows.

Parses, calls extractor.actions, prints the plan and what became of each run. Without --yes
nothing is sent but reads: a dry run. Any run that failed makes the exit code 1 at the end.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from extractor.cli._common import cli, db_option, db_path, duration, now, workspace_options
from extractor.errors import JobrunsError, UsageError


def _workspace(func: Any) -> Any:
    return workspace_options(db_option(func))


def _guard(func: Any) -> Any:
    func = click.option(
        "--max",
        "max_runs",
        type=click.IntRange(1),
        default=20,
        show_default=True,
        help="Refuse a plan of more runs than this.",
    )(func)
    return click.option("--yes", is_flag=True, help="Send the requests (else: a dry run).")(func)


def _connect(host: str | None, token: str | None, profile: str | None, db: str | None) -> Any:
    from extractor.client import JobsClient
    from extractor.config import resolve_workspace
    from extractor.store import Store

    config = resolve_workspace(host=host, token=token, profile=profile)
    store = Store(db_path(db))
    if not store.path.exists():
        raise UsageError(f"no store at {store.path}; run `jobruns extract` first")
    store.initialize()
    workspace_id = store.workspace_of_host(config.host)
    if workspace_id is None:
        raise UsageError(f"the store has no extract of {config.host}; run `jobruns extract` first")
    return JobsClient(config), store, workspace_id


@cli.command()
@click.argument("run_ids", nargs=-1, type=int)
@click.option(
    "--failed-since",
    metavar="DURATION",
    help="Runs that ended failed this recently: 12h, 2d (default 24h without RUN_IDs).",
)
@click.option("--job", "job_ids", multiple=True, type=int, help="Only runs of this job (repeat).")
@click.option("--cause", metavar="SIGNATURE", help="Only runs with a failure of this cause.")
@click.option("--transient-only", is_flag=True, help="Only runs whose failures are all transient.")
@_guard
@_workspace
def repair(
    run_ids: tuple[int, ...],
    failed_since: str | None,
    job_ids: tuple[int, ...],
    cause: str | None,
    transient_only: bool,
    yes: bool,
    max_runs: int,
    host: str | None,
    token: str | None,
    profile: str | None,
    db: str | None,
) -> None:
    """Re-run the failed tasks (and what depends on them) of failed runs.

    \b
    Selects terminal failed or timed-out runs from the store (the latest attempt of each),
    re-reads each with runs/get, and prints the plan. With --yes it sends runs/repair for each,
    records it in the `actions` table and stores the repaired runs at once.
    """
    from extractor.actions import failed_runs

    since = duration(failed_since or (None if run_ids else "24h"), "--failed-since")
    client, store, workspace_id = _connect(host, token, profile, db)
    with client:
        candidates = failed_runs(
            store,
            workspace_id,
            run_ids=run_ids,
            failed_since=now() - since if since else None,
            job_ids=job_ids,
            cause=cause,
            transient_only=transient_only,
        )
        _run(client, store, workspace_id, "repair", candidates, yes=yes, max_runs=max_runs)


@cli.command()
@click.argument("run_ids", nargs=-1, type=int)
@click.option("--stuck", is_flag=True, help="The runs of the stuck_runs view.")
@click.option("--job", "job_ids", multiple=True, type=int, help="Only runs of this job (repeat).")
@click.option("--all", "all_runs", is_flag=True, help="With one --job: runs/cancel-all of it.")
@click.option("--queued", is_flag=True, help="With --all: cancel its queued runs too.")
@_guard
@_workspace
def cancel(
    run_ids: tuple[int, ...],
    stuck: bool,
    job_ids: tuple[int, ...],
    all_runs: bool,
    queued: bool,
    yes: bool,
    max_runs: int,
    host: str | None,
    token: str | None,
    profile: str | None,
    db: str | None,
) -> None:
    """Cancel active runs (re-read first; finished ones are skipped)."""
    from extractor.actions import active_runs, cancel_all

    if all_runs and (len(job_ids) != 1 or run_ids or stuck):
        raise UsageError("--all cancels every active run of one job: give exactly one --job")
    if queued and not all_runs:
        raise UsageError("--queued goes with --all")
    if not (run_ids or stuck or job_ids):
        raise UsageError("name the runs to cancel: RUN_ID..., --stuck or --job ID")
    client, store, workspace_id = _connect(host, token, profile, db)
    with client:
        candidates = active_runs(store, workspace_id, run_ids=run_ids, job_ids=job_ids, stuck=stuck)
        if not all_runs:
            _run(client, store, workspace_id, "cancel", candidates, yes=yes, max_runs=max_runs)
            return
        ids = [c.run_id for c in candidates if c.skip is None]
        click.echo(f"job {job_ids[0]}: runs/cancel-all ({len(ids)} active runs in the store)")
        if not yes:
            click.echo("dry run: nothing sent; add --yes to cancel them")
            return
        status, error = cancel_all(client, store, workspace_id, job_ids[0], ids, queued=queued)
        if error:
            raise JobrunsError(error)
        click.echo(f"cancel-all {status}")


@cli.command()
@click.argument("task_run_id", type=int)
@click.option(
    "--export",
    "views",
    type=click.Choice(["CODE", "DASHBOARDS", "ALL"], case_sensitive=False),
    help="Also save the notebook's views (runs/export) as HTML files.",
)
@click.option(
    "-o", "--output-dir", type=click.Path(path_type=Path), default=Path("."), show_default=True
)
@_workspace
def output(
    task_run_id: int,
    views: str | None,
    output_dir: Path,
    host: str | None,
    token: str | None,
    profile: str | None,
    db: str | None,
) -> None:
    """The error and trace of a task run (from the store, else runs/get-output)."""
    from extractor.actions import export_views, task_output

    client, store, workspace_id = _connect(host, token, profile, db)
    with client:
        out = task_output(store, workspace_id, client, task_run_id)
        click.echo(f"task run {task_run_id} (from the {out.source})")
        for label, text in (
            ("state", out.state_message),
            ("error", out.error),
            ("trace", out.error_trace),
        ):
            if text:
                click.echo(f"{label}: {text}")
        if not (out.state_message or out.error or out.error_trace):
            click.echo("no error recorded")
        if views:
            for path in export_views(client, task_run_id, views.upper(), output_dir):
                click.echo(f"saved {path}")


def _run(
    client: Any,
    store: Any,
    workspace_id: str,
    action: str,
    candidates: list[Any],
    *,
    yes: bool,
    max_runs: int,
) -> None:
    from extractor.actions import execute, plan

    wanted = [c for c in candidates if c.skip is None]
    if len(wanted) > max_runs:
        raise UsageError(
            f"the plan has {len(wanted)} runs, more than --max {max_runs}: narrow the selection "
            "(--job, --failed-since, --cause) or raise --max"
        )
    if not candidates:
        click.echo(f"no run to {action}")
        return
    steps = plan(client, action, candidates)  # type: ignore[arg-type]
    if yes:
        execute(client, store, workspace_id, steps)
    for step in steps:
        click.echo(_line(step, yes))
    counts = {
        s: sum(1 for x in steps if x.status == s) for s in ("planned", "done", "skipped", "failed")
    }
    past = {"repair": "repaired", "cancel": "cancel requested"}[action]
    if not yes:
        click.echo(
            f"dry run: {counts['planned']} to {action}, {counts['skipped']} skipped, "
            f"{counts['failed']} failed to read; nothing sent: add --yes to {action}"
        )
    else:
        click.echo(
            f"{past}: {counts['done']}, skipped: {counts['skipped']}, failed: {counts['failed']}"
        )
    if counts["failed"]:
        raise JobrunsError(f"{counts['failed']} of {len(steps)} runs failed (see above)")


def _line(step: Any, sent: bool) -> str:
    c = step.candidate
    job = f"job {c.job_id}" + (f" {c.job_name}" if c.job_name else "") if c.job_id else "job ?"
    parts = [f"run {c.run_id}", job]
    tasks = [f.task_key for f in c.failures if f.task_key]
    if tasks:
        parts.append("failed: " + ", ".join(tasks))
    if c.causes:
        parts.append("cause: " + "; ".join(c.causes))
    verdict = {"planned": "would " + step.action, "done": "done"}.get(step.status, step.status)
    detail = f" ({step.message})" if step.message and (sent or step.status != "planned") else ""
    return "  ".join(parts) + f"  -> {verdict}{detail}"
