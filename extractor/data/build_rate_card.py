"""Build the shipped rate card and node facts from the source snapshots in extractor/data/sources.

Merges DBU/h per node type (pricing-calculator rows first, Overwatch fills the gaps), derives
the Photon multipliers from the calculator's Photon rows, and copies the SKU prices through.
Reads only the committed snapshots (stdlib only, no network); `--check` fails on drift.
"""

from __future__ import annotations

import argparse
import csv
import io
import statistics
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from extractor.analytics.rates import family_of

DATA = Path(__file__).resolve().parent
SOURCES = DATA / "sources"
RATE_CARD = DATA / "rate_card.csv"
NODE_TYPES = DATA / "node_types.csv"

RATE_COLUMNS = ("kind", "cloud", "name", "value", "currency", "source", "as_of")
NODE_COLUMNS = ("cloud", "node_type", "vcpus", "memory_gb", "family", "dbu_per_hour")
CLOUDS = ("AWS", "AZURE", "GCP")
COMPUTES = ("jobs", "all_purpose")

# In order of preference: a node type takes its rate from the first snapshot that lists it.
NODE_SOURCES = ("calculator_instances.csv", "overwatch_instance_details.csv")
PHOTON_SOURCE = "calculator_photon.csv"
SKU_SOURCE = "sku_prices.csv"

# Where the snapshots hold no Photon rows for a cloud and compute type, the factor of another
# cloud stands in, and the row's source says so.
PHOTON_FALLBACK = {
    ("AZURE", "jobs"): "AWS",
    ("AZURE", "all_purpose"): "AWS",
    ("GCP", "all_purpose"): "AWS",
}


@dataclass(frozen=True)
class Node:
    cloud: str
    node_type: str
    vcpus: float
    memory_gb: float
    dbu_per_hour: float
    source: str
    as_of: str


def _read(name: str) -> list[dict[str, str]]:
    with (SOURCES / name).open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def _num(value: float) -> str:
    """Shortest plain decimal, so regenerating never churns 1.0 into 1.00."""
    return f"{value:.4f}".rstrip("0").rstrip(".")


def merge_nodes(snapshots: Sequence[Iterable[dict[str, str]]]) -> dict[tuple[str, str], Node]:
    """One row per (cloud, node type); earlier snapshots win."""
    merged: dict[tuple[str, str], Node] = {}
    for rows in snapshots:
        for row in rows:
            key = (row["cloud"].upper(), row["node_type"])
            if key in merged:
                continue
            merged[key] = Node(
                cloud=key[0],
                node_type=key[1],
                vcpus=float(row["vcpus"]),
                memory_gb=float(row["memory_gb"]),
                dbu_per_hour=float(row["dbu_per_hour"]),
                source=row["source"],
                as_of=row["as_of"],
            )
    return merged


def photon_factors(
    photon_rows: Iterable[dict[str, str]], nodes: dict[tuple[str, str], Node]
) -> dict[tuple[str, str], tuple[float, str, str]]:
    """(cloud, compute) -> (factor, source, as_of): median of Photon DBU/h over plain DBU/h."""
    ratios: dict[tuple[str, str], list[float]] = {}
    cited: dict[tuple[str, str], tuple[str, str, set[str]]] = {}
    for row in photon_rows:
        cloud = row["cloud"].upper()
        base = nodes.get((cloud, row["node_type"]))
        if base is None or base.dbu_per_hour <= 0:
            continue
        key = (cloud, row["compute"])
        ratios.setdefault(key, []).append(float(row["photon_dbu_per_hour"]) / base.dbu_per_hour)
        cited.setdefault(key, (row["source"], row["as_of"], set()))[2].add(
            row["calculator_compute"]
        )
    factors: dict[tuple[str, str], tuple[float, str, str]] = {}
    for key, values in ratios.items():
        source, as_of, labels = cited[key]
        factor = round(statistics.median(values), 2)
        factors[key] = (
            factor,
            f"{source} ('{', '.join(sorted(labels))}' DBU/h over plain DBU/h;"
            f" median of {len(values)} node types)",
            as_of,
        )
    for (cloud, compute), donor in PHOTON_FALLBACK.items():
        if (cloud, compute) in factors or (donor, compute) not in factors:
            continue
        factor, source, as_of = factors[(donor, compute)]
        factors[(cloud, compute)] = (
            factor,
            f"unverified: no {cloud} {compute} Photon rows in the snapshots; {donor} factor"
            f" ({source})",
            as_of,
        )
    return factors


def _csv(columns: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(rows)
    return out.getvalue()


def build() -> tuple[str, str]:
    """The rate card and node facts CSV texts the snapshots give."""
    nodes = merge_nodes([_read(name) for name in NODE_SOURCES])
    factors = photon_factors(_read(PHOTON_SOURCE), nodes)

    rate_rows: list[list[str]] = [[row[c] for c in RATE_COLUMNS] for row in _read(SKU_SOURCE)]
    for cloud in CLOUDS:
        for compute in COMPUTES:
            if (cloud, compute) not in factors:
                continue
            factor, source, as_of = factors[(cloud, compute)]
            rate_rows.append(
                ["multiplier", cloud, f"photon_{compute}", _num(factor), "", source, as_of]
            )
            if compute == "jobs":
                # The plain name is what the cost views read today; jobs compute is the case
                # they estimate.
                rate_rows.append(["multiplier", cloud, "photon", _num(factor), "", source, as_of])
    node_rows: list[list[str]] = []
    for (cloud, name), node in sorted(nodes.items()):
        rate_rows.append(
            ["node_type", cloud, name, _num(node.dbu_per_hour), "", node.source, node.as_of]
        )
        node_rows.append(
            [
                cloud,
                name,
                _num(node.vcpus),
                _num(node.memory_gb),
                family_of(cloud, name) or "",
                _num(node.dbu_per_hour),
            ]
        )
    return _csv(RATE_COLUMNS, rate_rows), _csv(NODE_COLUMNS, node_rows)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if the committed files differ from a rebuild"
    )
    args = parser.parse_args(argv)
    outputs = dict(zip((RATE_CARD, NODE_TYPES), build(), strict=True))
    if args.check:
        stale = [p.name for p, text in outputs.items() if p.read_text(encoding="utf-8") != text]
        if stale:
            print(
                f"out of date: {', '.join(stale)}; run python -m extractor.data.build_rate_card",
                file=sys.stderr,
            )
            return 1
        return 0
    for path, text in outputs.items():
        path.write_text(text, encoding="utf-8")
    card = outputs[RATE_CARD]
    counts = {cloud: card.count(f"\nnode_type,{cloud},") for cloud in CLOUDS}
    print(f"wrote {RATE_CARD.name} and {NODE_TYPES.name}: node types {counts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
