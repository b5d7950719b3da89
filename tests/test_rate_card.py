"""The shipped rate card: rebuilt from its source snapshots, complete per cloud, and loadable."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from extractor.analytics.cost import parse_rates, shipped_rate_card_text
from extractor.analytics.rates import (
    family_of,
    infer_dbu_rate,
    load_node_facts,
    size_of,
)

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ROOT / "extractor" / "data" / "sources"


def card_rows() -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(shipped_rate_card_text())))


def node_rate(cloud: str, name: str) -> float:
    (row,) = [
        r
        for r in card_rows()
        if r["kind"] == "node_type" and (r["cloud"], r["name"]) == (cloud, name)
    ]
    return float(row["value"])


def test_committed_card_equals_the_generator_output():
    done = subprocess.run(
        [sys.executable, "-m", "extractor.data.build_rate_card", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


def test_no_duplicate_keys_and_every_value_positive():
    rows = card_rows()
    keys = Counter((r["kind"], r["cloud"], r["name"]) for r in rows)
    assert [k for k, n in keys.items() if n > 1] == []
    assert all(float(r["value"]) > 0 for r in rows)
    assert all(r["source"] and r["as_of"] for r in rows)


def test_every_cloud_has_hundreds_of_node_types():
    counts = Counter(r["cloud"] for r in card_rows() if r["kind"] == "node_type")
    assert counts["AWS"] >= 300
    assert counts["AZURE"] >= 200
    assert counts["GCP"] >= 100


def test_each_cloud_with_photon_families_has_both_photon_pairings():
    with (SOURCES / "calculator_photon.csv").open(encoding="utf-8") as handle:
        photon_families = {
            (r["cloud"], family_of(r["cloud"], r["node_type"])) for r in csv.DictReader(handle)
        }
    facts = {
        (r["cloud"], r["family"])
        for r in csv.DictReader(io.StringIO((ROOT / "extractor/data/node_types.csv").read_text()))
    }
    assert photon_families <= facts
    multipliers = {
        (r["cloud"], r["name"]): float(r["value"]) for r in card_rows() if r["kind"] == "multiplier"
    }
    for cloud in ("AWS", "AZURE", "GCP"):
        assert (cloud, "photon_jobs") in multipliers
        assert (cloud, "photon_all_purpose") in multipliers
        assert multipliers[(cloud, "photon")] == multipliers[(cloud, "photon_jobs")]
    assert multipliers[("AWS", "photon_jobs")] == 2.9
    assert multipliers[("AWS", "photon_all_purpose")] == 2.0
    assert multipliers[("GCP", "photon_jobs")] == 2.5


def test_the_cost_loader_accepts_the_card():
    rates = parse_rates(shipped_rate_card_text(), "rate_card.csv")
    assert len(rates) == len(card_rows())
    assert {r.kind for r in rates} == {"node_type", "sku", "multiplier"}


def test_known_rows_come_from_the_sources():
    assert node_rate("AZURE", "Standard_DS3_v2") == 0.75
    assert node_rate("AZURE", "Standard_DS4_v2") == 1.5
    assert node_rate("AWS", "i3.xlarge") == 1.0
    assert node_rate("AWS", "m5d.large") == 0.34
    # The types users reported missing.
    assert node_rate("AZURE", "Standard_D16ds_v5") == 4.0
    assert node_rate("AZURE", "Standard_F16s_v2") == 3.0


def test_sku_prices_are_copied_through_unchanged():
    skus = [r for r in card_rows() if r["kind"] == "sku"]
    with (SOURCES / "sku_prices.csv").open(encoding="utf-8") as handle:
        assert skus == list(csv.DictReader(handle))


@pytest.mark.parametrize(
    ("cloud", "name", "family", "size"),
    [
        ("AWS", "m5d.2xlarge", "m5d", "2xlarge"),
        ("AWS", "r6gd.4xlarge", "r6gd", "4xlarge"),
        ("AWS", "i3en.large", "i3en", "large"),
        ("AWS", "m7gd.metal", "m7gd", "metal"),
        ("AZURE", "Standard_D16ds_v5", "Dds_v5", "16"),
        ("AZURE", "Standard_F16s_v2", "Fs_v2", "16"),
        ("AZURE", "Standard_E8as_v5", "Eas_v5", "8"),
        ("AZURE", "Standard_L8s_v3", "Ls_v3", "8"),
        ("AZURE", "Standard_NC6s_v3", "NCs_v3", "6"),
        ("GCP", "n2-highmem-8", "n2-highmem", "8"),
        ("GCP", "n2d-standard-16", "n2d-standard", "16"),
        ("GCP", "c2-standard-4", "c2-standard", "4"),
        ("GCP", "a2-highgpu-1g", "a2-highgpu", "1g"),
    ],
)
def test_node_type_names_parse_into_family_and_size(cloud, name, family, size):
    assert family_of(cloud, name) == family
    assert size_of(cloud, name) == size


def test_names_of_no_cloud_do_not_parse():
    assert family_of("AWS", "Standard_D4s_v3") is None
    assert family_of("AZURE", "m5d.large") is None
    assert family_of("GCP", "x9") is None
    assert size_of("OTHER", "m5d.large") is None


def test_new_azure_generation_is_inferred_from_its_v5_sibling():
    card = load_node_facts("AZURE")
    assert infer_dbu_rate("AZURE", "Standard_D16ds_v6", 16, 64, card) == (
        4.0,
        "inferred from Standard_D16ds_v5 (same vCPUs and memory)",
    )
    # Without the node's facts the name alone finds the same sibling.
    assert infer_dbu_rate("AZURE", "Standard_D16ds_v6", None, None, card) == (
        4.0,
        "inferred from Standard_D16ds_v5 (same series and size)",
    )


def test_bigger_size_of_a_known_family_is_scaled_by_vcpus():
    assert infer_dbu_rate(
        "AZURE", "Standard_D32ds_v6", 32, 128, {"Standard_D16ds_v6": (16, 64, 4.0)}
    ) == (
        8.0,
        "inferred from Standard_D16ds_v6 scaled by vCPUs (32/16)",
    )
    rate, basis = infer_dbu_rate("GCP", "n2-highmem-128", None, None, load_node_facts("GCP")) or (
        0,
        "",
    )
    assert rate == pytest.approx(19.2 * 128 / 80)
    assert basis == "inferred from n2-highmem-80 scaled by vCPUs (128/80)"


def test_nonsense_or_unmatched_names_infer_nothing():
    card = load_node_facts()
    assert infer_dbu_rate("AWS", "not a node", 4, 16, card) is None
    assert infer_dbu_rate("AZURE", "Standard_Q7zz_v9", 7, 3, card) is None
