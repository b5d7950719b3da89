"""Issue 13's target for calibrated cost, on the simulator (whose billing is the ground truth):
billing imported for the first 20 of 30 days; the runs it covers cost exactly what it bills; runs of
the last 10 days are calibrated to within 5% per job (median) and 15% (p90) of what their billing
later shows, serverless included."""

from __future__ import annotations

import statistics
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

from extractor.config import resolve_workspace
from extractor.dev.simulator import serve
from extractor.dev.simulator.workspace import Workspace
from extractor.pipeline import extract_into
from extractor.plan import ExtractOptions
from tests.conftest import jobruns

DAY_MS = 86_400_000
NOW_MS = 1_780_000_000_000  # a fixed clock: the same workspace and figures on every run


def measure(
    seed: int, tmp_path: Path, capsys: pytest.CaptureFixture[str], host: str | None = None
) -> dict[str, float]:
    now = NOW_MS
    ws = Workspace.generate(seed, jobs=25, runs=1500, days=30, now_ms=now, host=host)
    server = serve(ws)
    db = tmp_path / f"store-{seed}.duckdb"
    try:
        config = resolve_workspace(host=server.url, token=server.token, env={})
        clock = datetime.fromtimestamp(now / 1000, UTC)
        (outcome,) = extract_into(
            db, [("sim", config)], ExtractOptions(), max_rps=1e4, now=lambda: clock
        )
        assert outcome.error is None, outcome.error
    finally:
        server.stop()
    cut = now - 10 * DAY_MS
    usage, prices = tmp_path / f"usage-{seed}.csv", tmp_path / f"prices-{seed}.csv"
    ws.write_billing_csv(str(usage), None, cut)
    ws.write_list_prices_csv(str(prices))
    for args in ([str(prices), "--prices"], [str(usage)]):
        code, out = jobruns(capsys, "billing", "import", *args, "--db", str(db))
        assert code == 0, out
    truth = ws.true_run_cost()
    con = duckdb.connect(str(db), read_only=True)
    rows = con.execute(
        "SELECT run_id, job_id, epoch_ms(start_time), epoch_ms(end_time), cost, cost_source"
        " FROM int_run_facts WHERE NOT is_active"
    ).fetchall()
    con.close()
    exact = [0, 0]
    per_job: dict[int, list[float]] = defaultdict(lambda: [0.0, 0.0])
    sources: dict[str, int] = defaultdict(int)
    uncalibrated_cost = 0.0  # true cost of last-10-day runs not calibrated (no compute: 0)
    for run_id, job_id, start, end, cost, source in rows:
        true = truth.get(run_id, {}).get("cost", 0.0)
        if end is not None and end < cut - 3_600_000 and source == "billing":
            exact[0] += 1
            exact[1] += abs((cost or 0.0) - true) < 0.01
        if start >= cut:
            sources[source or "unknown"] += 1
            uncalibrated_cost += true if source != "calibrated" else 0.0
            per_job[job_id][0] += cost or 0.0
            per_job[job_id][1] += true
    errors = sorted(abs(c - t) / t for c, t in per_job.values() if t > 0)
    p90 = errors[min(len(errors) - 1, int(0.9 * len(errors)))]
    figures = {
        "billed_runs": exact[0],
        "billed_exact_share": exact[1] / exact[0],
        "jobs": len(errors),
        "median_error": statistics.median(errors),
        "p90_error": p90,
        **{f"last10_{k}": v for k, v in sorted(sources.items())},
        "last10_uncalibrated_true_cost": round(uncalibrated_cost, 6),
    }
    with capsys.disabled():
        print(f"\ncalibration target, seed {seed} ({ws.billing().cloud}): {figures}")
    return figures


@pytest.mark.slow
@pytest.mark.parametrize(
    ("seed", "host"),
    [(3, None), (8, "https://adb-5501234567890123.4.azuredatabricks.net")],
)
def test_calibrated_costs_of_the_last_10_days_match_their_later_billing(
    seed: int, host: str | None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    figures = measure(seed, tmp_path, capsys, host)
    assert figures["billed_exact_share"] == 1.0
    assert figures["median_error"] <= 0.05
    assert figures["p90_error"] <= 0.15
    assert figures["last10_uncalibrated_true_cost"] == 0.0
