"""Node-type names and DBU rates: parse a node type's family and size, infer a missing DBU/h.

Pure functions over the packaged node facts (extractor/data/node_types.csv); never reads a
store or the network, and never makes up a rate without naming the known type it came from.
"""

from __future__ import annotations

import csv
import importlib.resources
import io
import math
import re
from collections.abc import Mapping

NodeFacts = Mapping[str, tuple[float, float, float]]

_AWS = re.compile(r"^(?P<family>[a-z][a-z0-9-]*[a-z0-9])\.(?P<size>[a-z0-9][a-z0-9-]*)$")
_AWS_FAMILY = re.compile(r"^(?P<kind>[a-z]+)(?P<gen>\d+)(?P<attrs>[a-z-]*)$")
_AWS_SIZE = re.compile(r"^(?:(?P<n>\d+)?xlarge|large|medium)$")
# Standard_<prefix><vCPUs>[-<active vCPUs>]<attributes>[_<accelerator>]*[_v<N>], e.g.
# Standard_D16ds_v5, Standard_E64-32s_v3, Standard_NC4as_T4_v3, Standard_F4s.
_AZURE = re.compile(
    r"^Standard_(?P<prefix>[A-Z]+)(?P<size>\d+(?:-\d+)?)(?P<attrs>[a-z]*)"
    r"(?P<accel>(?:_[A-Z][A-Z0-9]*)*)(?P<version>_v\d+)?$"
)
# <series>-<type>-<vCPUs or GPUs>, e.g. n2-highmem-8, a2-highgpu-1g; Databricks also lists a
# few e2 types with underscores (e2_standard_8).
_NUMBERED_AZURE = frozenset({"D", "DS", "G", "GS"})
_GCP = re.compile(r"^(?P<series>[a-z]\d+[a-z]?)[-_](?P<type>[a-z]+)[-_](?P<size>\d+g?)$")


def _aws(node_type: str) -> re.Match[str] | None:
    match = _AWS.match(node_type)
    if match and _AWS_FAMILY.match(match["family"]) is None and "fleet" not in match["family"]:
        return None
    return match


def family_of(cloud: str, node_type: str) -> str | None:
    """The instance family: AWS 'm5d', Azure series key 'Dds_v5', GCP 'n2-highmem'."""
    cloud = cloud.upper()
    if cloud == "AWS":
        match = _aws(node_type)
        return match["family"] if match else None
    if cloud == "AZURE":
        match = _AZURE.match(node_type)
        if not match:
            return None
        return match["prefix"] + match["attrs"] + match["accel"] + (match["version"] or "")
    if cloud == "GCP":
        match = _GCP.match(node_type)
        return f"{match['series']}-{match['type']}" if match else None
    return None


def size_of(cloud: str, node_type: str) -> str | None:
    """The size within the family: AWS '2xlarge' or 'metal', Azure '16', GCP '8' or '1g'."""
    cloud = cloud.upper()
    match = (
        _aws(node_type)
        if cloud == "AWS"
        else _AZURE.match(node_type)
        if cloud == "AZURE"
        else _GCP.match(node_type)
        if cloud == "GCP"
        else None
    )
    return match["size"] if match else None


def vcpus_from_name(cloud: str, node_type: str) -> int | None:
    """vCPUs implied by the size, where the name says it (AWS metal sizes and GPU counts do not)."""
    size = size_of(cloud, node_type)
    if size is None:
        return None
    cloud = cloud.upper()
    if cloud == "AWS":
        match = _AWS_SIZE.match(size)
        if not match:
            return None
        if size == "medium":
            return 1
        if size == "large":
            return 2
        return 4 * int(match["n"] or 1)
    if cloud == "AZURE":
        match = _AZURE.match(node_type)
        # Before v3 the D and G series numbered sizes, not vCPUs (DS3_v2 has 4).
        if match and match["prefix"] in _NUMBERED_AZURE and match["version"] in (None, "_v2"):
            return None
        # A constrained size such as E64-32s has 32 active vCPUs.
        return int(size.split("-")[-1])
    return int(size) if size.isdigit() else None


def _series_stem(cloud: str, family: str) -> str:
    """The family without its generation, so that D16ds_v6 and D16ds_v5 share 'Dds'."""
    cloud = cloud.upper()
    if cloud == "AZURE":
        return re.sub(r"_v\d+$", "", family)
    if cloud == "AWS":
        match = _AWS_FAMILY.match(family)
        return f"{match['kind']}|{match['attrs']}" if match else family
    series, _, kind = family.partition("-")
    return re.sub(r"\d+", "|", series) + "-" + kind


def _same_cloud(cloud: str, card: NodeFacts) -> list[tuple[str, float, float, float]]:
    return sorted(
        (name, vcpus, memory, dbu)
        for name, (vcpus, memory, dbu) in card.items()
        if family_of(cloud, name) is not None and dbu > 0
    )


def _fmt(value: float) -> str:
    return f"{value:g}"


def infer_dbu_rate(
    cloud: str,
    node_type: str,
    num_cores: float | None,
    memory_gb: float | None,
    card: NodeFacts,
) -> tuple[float, str] | None:
    """DBU/h of a node type missing from the card, with a basis naming the known type used.

    First a sibling of the same family scaled by vCPUs (the nearest size wins), then a type
    of the same vCPUs and memory in the same cloud (a new generation of a known series), else
    None. Deterministic: ties go to the series of the same stem, then the name sorting last.
    """
    if node_type in card and card[node_type][2] > 0:
        return card[node_type][2], f"{node_type} (rate card)"
    family = family_of(cloud, node_type)
    if family is None:
        return None
    vcpus = float(num_cores) if num_cores else vcpus_from_name(cloud, node_type)
    known = _same_cloud(cloud, card)

    siblings = [row for row in known if family_of(cloud, row[0]) == family and row[1] > 0]
    if vcpus and siblings:
        # Nearest size on a log scale, so 16 -> 32 and 16 -> 8 count as equally far.
        name, sib_vcpus, _, dbu = min(
            siblings, key=lambda r: (abs(math.log(vcpus / r[1])), r[1], r[0])
        )
        rate = round(dbu * vcpus / sib_vcpus, 4)
        return rate, (f"inferred from {name} scaled by vCPUs ({_fmt(vcpus)}/{_fmt(sib_vcpus)})")

    stem = _series_stem(cloud, family)
    size = size_of(cloud, node_type)
    if vcpus and memory_gb:
        matches = [
            row
            for row in known
            if row[1] == vcpus and math.isclose(row[2], memory_gb, rel_tol=0.02)
        ]
        basis = "same vCPUs and memory"
    else:
        # Without the node's facts only the name can say which known type it mirrors.
        matches = [
            row
            for row in known
            if size_of(cloud, row[0]) == size
            and _series_stem(cloud, family_of(cloud, row[0]) or "") == stem
        ]
        basis = "same series and size"
    if not matches:
        return None
    name, _, _, dbu = max(
        matches,
        key=lambda r: (_series_stem(cloud, family_of(cloud, r[0]) or "") == stem, r[0]),
    )
    return dbu, f"inferred from {name} ({basis})"


def parse_node_facts(text: str, cloud: str | None = None) -> dict[str, tuple[float, float, float]]:
    """node_type -> (vcpus, memory_gb, dbu_per_hour) from node_types.csv text."""
    facts: dict[str, tuple[float, float, float]] = {}
    for row in csv.DictReader(io.StringIO(text)):
        if cloud is None or row["cloud"].upper() == cloud.upper():
            facts[row["node_type"]] = (
                float(row["vcpus"]),
                float(row["memory_gb"]),
                float(row["dbu_per_hour"]),
            )
    return facts


def load_node_facts(cloud: str | None = None) -> dict[str, tuple[float, float, float]]:
    """The packaged node facts, optionally for one cloud (AWS, AZURE or GCP)."""
    resource = importlib.resources.files("extractor") / "data" / "node_types.csv"
    return parse_node_facts(resource.read_text(encoding="utf-8"), cloud)


__all__ = [
    "family_of",
    "infer_dbu_rate",
    "load_node_facts",
    "parse_node_facts",
    "size_of",
    "vcpus_from_name",
]
