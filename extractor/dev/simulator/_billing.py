"""The simulated workspace's billing: system.billing.usage and list_prices rows, and true costs.

Usage is billed at HIDDEN true DBU rates (the rate card's rate x a per-job factor x a little noise
per cluster instance; serverless at a per-job DBU/h), split at hour boundaries like the real table.
Derived from the run records at the workspace clock; never mutates them, never draws from the
workspace's own generator (adding billing changes no run).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import random
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import _catalog, _cost
from ._model import HOUR_MS, RunRec, TaskRun
from ._render import visible_tasks

# The rate card the simulator's hidden rates are drawn around: the one jobruns ships, read as a
# data file (the simulator imports nothing from the package).
RATE_CARD = Path(__file__).resolve().parents[2] / "data" / "rate_card.csv"
USAGE_COLUMNS = (
    "record_id",
    "account_id",
    "workspace_id",
    "sku_name",
    "cloud",
    "usage_start_time",
    "usage_end_time",
    "usage_date",
    "custom_tags",
    "usage_unit",
    "usage_quantity",
    "usage_metadata",
    "identity_metadata",
    "record_type",
    "ingestion_date",
    "billing_origin_product",
    "product_features",
    "usage_type",
)
PRICE_COLUMNS = (
    "price_start_time",
    "price_end_time",
    "account_id",
    "sku_name",
    "cloud",
    "currency_code",
    "usage_unit",
    "pricing",
)
# Full SKU names per cloud (tier PREMIUM); serverless SKUs carry a region.
_SERVERLESS_SKU = {
    "AWS": "PREMIUM_JOBS_SERVERLESS_COMPUTE_US_EAST_N_VIRGINIA",
    "AZURE": "PREMIUM_JOBS_SERVERLESS_COMPUTE_EAST_US",
    "GCP": "PREMIUM_JOBS_SERVERLESS_COMPUTE_US_CENTRAL1",
}
_FAMILY_OF_SKU = {"JOBS": "JOBS_COMPUTE", "ALL_PURPOSE": "ALL_PURPOSE_COMPUTE"}
# Share of usage rows later corrected by a RETRACTION + RESTATEMENT pair.
_CORRECTED_SHARE = 0.02


@dataclass(frozen=True)
class Card:
    """The parts of the rate card the generator needs, for one cloud."""

    cloud: str
    node_dbu: Mapping[str, float]
    price: Mapping[str, float]  # SKU family -> USD per DBU
    photon: Mapping[str, float]  # 'jobs' | 'all_purpose' -> DBU/h factor


def load_card(cloud: str, path: Path = RATE_CARD) -> Card:
    nodes: dict[str, float] = {}
    prices: dict[str, float] = {}
    photon = {"jobs": 2.0, "all_purpose": 2.0}
    with path.open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if (row.get("cloud") or "").upper() != cloud:
                continue
            value = float(row["value"])
            if row["kind"] == "node_type":
                nodes[row["name"]] = value
            elif row["kind"] == "sku":
                prices[row["name"]] = value
            elif row["kind"] == "multiplier" and row["name"] in (
                "photon_jobs",
                "photon_all_purpose",
            ):
                photon[row["name"].removeprefix("photon_")] = value
    return Card(cloud, nodes, prices, photon)


@dataclass
class Usage:
    """One stretch of billed compute before the hourly split."""

    key: str  # unique per stretch, seeds its record ids
    sku_name: str
    product: str  # billing_origin_product: JOBS | ALL_PURPOSE
    start: int
    end: int
    dbu_per_hour: float
    metadata: dict[str, str]
    photon: bool
    serverless: bool
    tags: dict[str, str]


@dataclass
class Slice:
    """One hourly usage row (before corrections) and what it is for."""

    usage: Usage
    start: int
    end: int
    dbus: float


def _rng(*parts: object) -> random.Random:
    digest = hashlib.sha256("/".join(str(p) for p in parts).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def _ts(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "+00:00"


def _day(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d")


class Billing:
    """Billing of one workspace at one clock: usage stretches, hourly rows, true costs."""

    def __init__(
        self,
        runs: Iterable[RunRec],
        *,
        seed: int,
        workspace_id: int,
        host: str,
        now_ms: int,
        cloud: str | None = None,
    ) -> None:
        self.seed = seed
        self.workspace_id = str(workspace_id)
        self.cloud = (cloud or _catalog.cloud_of_host(host)).upper()
        self.facts = _catalog.CLOUD[self.cloud.lower()]
        self.card = load_card(self.cloud)
        self.now = now_ms
        self.account_id = str(uuid.UUID(bytes=hashlib.sha256(f"acct{seed}".encode()).digest()[:16]))
        self.usages: list[Usage] = []
        # (run_id, usage) for job-billed stretches; all-purpose work is kept as task intervals.
        self._run_of: dict[str, int] = {}
        self._ap_work: dict[
            str, list[tuple[int, int, int, int]]
        ] = {}  # cluster -> (s, e, run, job)
        for run in runs:
            self._add_run(run)
        self._add_all_purpose()
        self.slices = [s for u in self.usages for s in self._split(u)]

    # -------------------------------------------------------------------- hidden rates
    def job_factor(self, job_id: int) -> float:
        """What a job's clusters bill over their nodes' list rate: startup, spot churn, disks."""
        return _rng(self.seed, "job-factor", job_id).uniform(0.92, 1.2)

    def serverless_dbu_per_hour(self, job_id: int) -> float:
        return _rng(self.seed, "serverless", job_id).uniform(1.5, 12.0)

    def _node(self, name: str | None) -> float:
        """The card's DBU/h, else (a family newer than the card) the true rate of the type."""
        name = name or ""
        if name in self.card.node_dbu:
            return self.card.node_dbu[name]
        return self.facts.node_facts[name][3] if name in self.facts.node_facts else 1.0

    def _photon(self, spec: Mapping[str, Any], kind: str) -> float:
        return self.card.photon[kind] if spec.get("runtime_engine") == "PHOTON" else 1.0

    # -------------------------------------------------------------------- usage
    def _add_run(self, run: RunRec) -> None:
        work: list[TaskRun] = []
        for t in visible_tasks(run, self.now):
            work.append(t)
            work.extend(i for i in t.iterations or () if i.appear <= self.now)
        instances: dict[str, list[TaskRun]] = {}
        job = run.job
        for t in work:
            start, end = t.start, min(t.end, self.now)
            if not start or end <= start or start > self.now:
                continue
            compute = t.tdef.compute
            if compute == "serverless":
                rate = self.serverless_dbu_per_hour(job.job_id)
                rate *= _rng(self.seed, "task", t.run_id).uniform(0.97, 1.03)
                meta = {"job_id": str(job.job_id), "job_run_id": str(run.run_id)}
                self._usage(
                    f"sl/{t.run_id}",
                    _SERVERLESS_SKU[self.cloud],
                    "JOBS",
                    (start, end, rate),
                    meta,
                    run,
                    photon=False,
                    serverless=True,
                )
            elif compute == "existing_cluster" and t.tdef.existing_cluster_id:
                self._ap_work.setdefault(t.tdef.existing_cluster_id, []).append(
                    (start, end, run.run_id, job.job_id)
                )
            elif compute in ("job_cluster", "new_cluster") and t.cluster_id:
                instances.setdefault(t.cluster_id, []).append(t)
        for cluster_id, tasks in instances.items():
            spec = self._spec(run, tasks[0])
            auto = spec.get("autoscale") or {}
            start = min(t.start for t in tasks)
            end = min(max(t.end for t in tasks), self.now)
            workers = spec.get("num_workers")
            if workers is None:
                # The hidden worker trajectory that clusters/events reports.
                lo, hi = auto.get("min_workers", 0), auto.get("max_workers", 0)
                workers = _cost.mean_workers(self.seed, cluster_id, start, end, lo, hi)
            pools = self.facts.pools
            pool = pools.get(spec.get("instance_pool_id") or "", ("", None))[1]
            driver_pool = pools.get(spec.get("driver_instance_pool_id") or "", ("", pool))[1]
            worker = spec.get("node_type_id") or pool
            driver = spec.get("driver_node_type_id") or driver_pool
            rate = self._node(driver) + workers * self._node(worker)
            rate *= self._photon(spec, "jobs") * self.job_factor(job.job_id)
            rate *= _rng(self.seed, "instance", cluster_id).uniform(0.97, 1.03)
            photon = spec.get("runtime_engine") == "PHOTON"
            sku = "PREMIUM_JOBS_COMPUTE" + ("_(PHOTON)" if photon else "")
            meta = {
                "cluster_id": cluster_id,
                "job_id": str(job.job_id),
                "job_run_id": str(run.run_id),
                "node_type": str(worker),
            }
            self._usage(
                f"jc/{cluster_id}", sku, "JOBS", (start, end, rate), meta, run, photon=photon
            )

    @staticmethod
    def _spec(run: RunRec, t: TaskRun) -> dict[str, Any]:
        d = t.tdef
        if d.compute == "job_cluster":
            for c in run.job_clusters or []:
                if c["job_cluster_key"] == d.job_cluster_key:
                    return dict(c["new_cluster"])
        return dict(d.new_cluster or {})

    def _usage(
        self,
        key: str,
        sku: str,
        product: str,
        stretch: tuple[int, int, float],
        meta: dict[str, str],
        run: RunRec | None,
        *,
        photon: bool,
        serverless: bool = False,
    ) -> None:
        start, end, rate = stretch
        tags = dict(run.job.tags) if run is not None else {}
        if run is not None:
            tags |= {"JobId": str(run.job.job_id), "RunName": run.job.name, "Vendor": "Databricks"}
            self._run_of[key] = run.run_id
        self.usages.append(
            Usage(key, sku, product, start, end, rate, meta, photon, serverless, tags)
        )

    def _add_all_purpose(self) -> None:
        """An all-purpose cluster bills to the cluster only, while job work runs on it."""
        for cluster_id, work in sorted(self._ap_work.items()):
            spec = _catalog.all_purpose_cluster(self.seed, cluster_id, self.now, self.facts.name)
            auto = spec.get("autoscale") or {}
            workers = spec.get("num_workers")
            if workers is None:
                # No hidden trajectory for a long-lived all-purpose cluster: its mean size.
                workers = (auto.get("min_workers", 0) + auto.get("max_workers", 0)) / 2
            rate = self._node(spec.get("driver_node_type_id")) + workers * self._node(
                spec.get("node_type_id")
            )
            rate *= self._photon(spec, "all_purpose")
            rate *= _rng(self.seed, "all-purpose", cluster_id).uniform(0.9, 1.1)
            photon = spec.get("runtime_engine") == "PHOTON"
            sku = "PREMIUM_ALL_PURPOSE_COMPUTE" + ("_(PHOTON)" if photon else "")
            meta = {"cluster_id": cluster_id, "node_type": str(spec.get("node_type_id"))}
            tags = {"ClusterId": cluster_id, "ClusterName": str(spec.get("cluster_name"))}
            for start, end in _union((s, e) for s, e, _, _ in work):
                self.usages.append(
                    Usage(
                        f"ap/{cluster_id}/{start}",
                        sku,
                        "ALL_PURPOSE",
                        start,
                        end,
                        rate,
                        meta,
                        photon,
                        False,
                        tags | {"Vendor": "Databricks"},
                    )
                )

    @staticmethod
    def _split(u: Usage) -> list[Slice]:
        out = []
        t = u.start
        while t < u.end:
            edge = min(u.end, (t // HOUR_MS + 1) * HOUR_MS)
            out.append(Slice(u, t, edge, round(u.dbu_per_hour * (edge - t) / HOUR_MS, 6)))
            t = edge
        return out

    # -------------------------------------------------------------------- prices and rows
    def price(self, sku_name: str) -> float:
        if "SERVERLESS" in sku_name:
            family = "JOBS_SERVERLESS_COMPUTE"
        else:
            family = _FAMILY_OF_SKU["ALL_PURPOSE" if "ALL_PURPOSE" in sku_name else "JOBS"]
        return self.card.price.get(sku_name, self.card.price.get(family, 0.0))

    def skus(self) -> list[str]:
        base = ["PREMIUM_JOBS_COMPUTE", "PREMIUM_ALL_PURPOSE_COMPUTE"]
        return [*base, *(f"{s}_(PHOTON)" for s in base), _SERVERLESS_SKU[self.cloud]]

    def list_price_rows(self) -> list[dict[str, str]]:
        rows = []
        for sku in self.skus():
            text = f"{self.price(sku):.2f}"
            pricing = {"default": text, "promotional": {"default": text}}
            pricing["effective_list"] = {"default": text}
            rows.append(
                {
                    "price_start_time": "2023-01-01 00:00:00.000+00:00",
                    "price_end_time": "",
                    "account_id": self.account_id,
                    "sku_name": sku,
                    "cloud": self.cloud,
                    "currency_code": "USD",
                    "usage_unit": "DBU",
                    "pricing": json.dumps(pricing),
                }
            )
        return rows

    def _row(self, s: Slice, record_type: str, dbus: float, tag: str) -> dict[str, str]:
        u = s.usage
        rid = uuid.UUID(bytes=hashlib.sha256(f"{u.key}/{s.start}/{tag}".encode()).digest()[:16])
        lag = {"ORIGINAL": 1, "RETRACTION": 3, "RESTATEMENT": 3}[record_type]
        features = {"is_photon": u.photon, "is_serverless": u.serverless}
        if u.serverless:
            features["performance_target"] = "STANDARD"  # type: ignore[assignment]
        return {
            "record_id": str(rid),
            "account_id": self.account_id,
            "workspace_id": self.workspace_id,
            "sku_name": u.sku_name,
            "cloud": self.cloud,
            "usage_start_time": _ts(s.start),
            "usage_end_time": _ts(s.end),
            "usage_date": _day(s.start),
            "custom_tags": json.dumps(u.tags, sort_keys=True),
            "usage_unit": "DBU",
            "usage_quantity": f"{dbus:.6f}",
            "usage_metadata": json.dumps(u.metadata),
            "identity_metadata": json.dumps({"run_as": "9b2e4c71-3f0a-4d8e-b6a5-2c1d7e8f9a03"}),
            "record_type": record_type,
            "ingestion_date": _day(s.start + lag * 86_400_000),
            "billing_origin_product": u.product,
            "product_features": json.dumps(features),
            "usage_type": "COMPUTE_TIME",
        }

    def usage_rows(
        self, start_ms: int | None = None, end_ms: int | None = None
    ) -> list[dict[str, str]]:
        """system.billing.usage rows whose usage_start_time is in [start_ms, end_ms)."""
        lo = start_ms if start_ms is not None else -1
        hi = end_ms if end_ms is not None else 2**62
        rows = []
        for s in self.slices:
            if not lo <= s.start < hi:
                continue
            if _rng(self.seed, "correct", s.usage.key, s.start).random() < _CORRECTED_SHARE:
                # First billed wrong, then retracted and restated: the sum is the true usage.
                wrong = round(s.dbus * 1.25, 6)
                rows.append(self._row(s, "ORIGINAL", wrong, "o"))
                rows.append(self._row(s, "RETRACTION", -wrong, "x"))
                rows.append(self._row(s, "RESTATEMENT", s.dbus, "r"))
            else:
                rows.append(self._row(s, "ORIGINAL", s.dbus, "o"))
        return rows

    def true_run_cost(self) -> dict[int, dict[str, float]]:
        """Per job run: the DBUs and list-price cost its billing shows (all usage, any date).

        Keys dbus, cost, serverless_cost, all_purpose_cost; all-purpose usage is shared among
        the task runs on the cluster by overlapping time, as billing cannot say.
        """
        out: dict[int, dict[str, float]] = {}

        def add(run_id: int, dbus: float, cost: float, part: str | None) -> None:
            entry = out.setdefault(
                run_id, {"dbus": 0.0, "cost": 0.0, "serverless_cost": 0.0, "all_purpose_cost": 0.0}
            )
            entry["dbus"] += dbus
            entry["cost"] += cost
            if part:
                entry[part] += cost

        for s in self.slices:
            price = self.price(s.usage.sku_name)
            run_id = self._run_of.get(s.usage.key)
            if run_id is not None:
                part = "serverless_cost" if s.usage.serverless else None
                add(run_id, s.dbus, s.dbus * price, part)
                continue
            cluster_id = s.usage.metadata["cluster_id"]
            overlaps = [
                (r, min(e, s.end) - max(b, s.start))
                for b, e, r, _ in self._ap_work.get(cluster_id, [])
                if b < s.end and s.start < e
            ]
            total = sum(o for _, o in overlaps)
            for r, o in overlaps:
                share = o / total if total else 0.0
                add(r, s.dbus * share, s.dbus * share * price, "all_purpose_cost")
        return out


def _union(intervals: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[list[int]] = []
    for s, e in sorted(intervals):
        if merged and s <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], e)
        else:
            merged.append([s, e])
    return [(s, e) for s, e in merged]


def write_csv(rows: list[dict[str, str]], path: str | Path, columns: tuple[str, ...]) -> Path:
    """Write rows the way a Databricks SQL download does: a header, struct columns as JSON."""
    path = Path(path)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    path.write_text(buf.getvalue(), encoding="utf-8")
    return path
