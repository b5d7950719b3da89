"""Issue 13's target for calibrated cost, on the simulator (whose billing is the ground truth):
billing imported for the first 20 of 30 days; the runs it covers cost exactly what it bills; runs of
the last 10 days are calibrated to within 5% per job (median) and 15% (p90) of what their billing
later shows, serverless included."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from extractor.config import resolve_workspace
from extractor.dev.simulator import serve
from extractor.dev.simulator.workspace import Workspace
from extractor.dev.targets import calibration_figures
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
    figures = calibration_figures(db, ws, cut)
    with capsys.disabled():
        print(f"\ncalibration target, seed {seed} ({ws.billing().cloud}): {figures}")
    return figures


@pytest.mark.slow
@pytest.mark.parametrize(
    ("seed", "host"),
    [
        (3, None),
        (8, "https://adb-5501234567890123.4.azuredatabricks.net"),
        (9, "https://5501234567890123.2.gcp.databricks.com"),
    ],
)
def test_calibrated_costs_of_the_last_10_days_match_their_later_billing(
    seed: int, host: str | None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    figures = measure(seed, tmp_path, capsys, host)
    assert figures["billed_exact_share"] == 1.0
    assert figures["median_error"] <= 0.05
    assert figures["p90_error"] <= 0.15
    assert figures["last10_uncalibrated_true_cost"] == 0.0
