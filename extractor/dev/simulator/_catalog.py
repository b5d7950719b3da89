"""The job catalogue of a simulated workspace: a fixed rotation of realistic job templates.

Each template covers a shape the extractor must handle (shared job clusters, per-task clusters,
serverless, all-purpose clusters, for-each, condition branches, legacy single-task, >100 tasks).
Builds definitions only; never plans runs or touches the clock.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ._model import DAY_MS, HOUR_MS, ForEachDef, JobDef, TaskDef

NODE_TYPES = ["i3.xlarge", "i3.2xlarge", "m5d.large", "m5d.xlarge", "m5d.2xlarge", "r5d.xlarge"]
# A family newer than any rate card (AWS Graviton4, 2025): clusters on it make the extractor
# list the node types and infer a rate.
NEW_NODE_TYPES = ["m8gd.xlarge", "m8gd.2xlarge"]
# What clusters/list-node-types says of each node type (num_cores, memory_mb, category), and
# the DBU/h the workspace really bills for it: for the known types the shipped rate card's
# figures (extractor/data/node_types.csv, so "the card's rates are the true ones"), for the
# newer family a hidden rate a little above its predecessor's (m7gd: 0.96, 1.92).
NODE_FACTS: dict[str, tuple[int, int, str, float]] = {
    "i3.xlarge": (4, 31232, "Storage Optimized", 1.0),
    "i3.2xlarge": (8, 62464, "Storage Optimized", 2.0),
    "m5d.large": (2, 8192, "General Purpose", 0.34),
    "m5d.xlarge": (4, 16384, "General Purpose", 0.69),
    "m5d.2xlarge": (8, 32768, "General Purpose", 1.37),
    "r5d.xlarge": (4, 32768, "Memory Optimized", 0.9),
    "m8gd.xlarge": (4, 16384, "General Purpose", 1.0),
    "m8gd.2xlarge": (8, 32768, "General Purpose", 2.0),
}
# Instance pools job clusters may draw from: id -> (name, node type).
INSTANCE_POOLS: dict[str, tuple[str, str]] = {
    "0101-120000-pool1-pool-abcdefgh": ("etl-pool", "i3.xlarge"),
    "0101-120000-pool2-pool-ijklmnop": ("graviton-pool", "m8gd.xlarge"),
    "0101-120000-pool3-pool-qrstuvwx": ("driver-pool", "m5d.xlarge"),
}
CLOUDS = ("aws", "azure", "gcp")


@dataclass(frozen=True)
class Cloud:
    """What differs between the clouds a workspace runs on: its node types (with what
    clusters/list-node-types says of them and the DBU/h really billed), pools and attributes."""

    name: str
    node_facts: Mapping[str, tuple[int, int, str, float]]  # cores, memory_mb, category, DBU/h
    node_types: tuple[str, ...]  # what job clusters draw from: node types the rate card prices
    new_node_types: tuple[str, ...]  # a family newer than any rate card: the inferred path
    pools: Mapping[str, tuple[str, str]]  # instance pool id -> (name, node type)
    all_purpose_nodes: tuple[str, str, str, str]
    driver_alternative: str  # the other driver of an all-purpose cluster
    attributes_key: str  # aws_attributes | azure_attributes | gcp_attributes
    spot: Mapping[str, Any]
    on_demand: Mapping[str, Any]

    def attributes(self, spot: bool) -> dict[str, Any]:
        return dict(self.spot if spot else self.on_demand)


def _facts(rows: str) -> dict[str, tuple[int, int, str, float]]:
    """`name cores memory_gb category dbu` lines (category with _ for spaces)."""
    out = {}
    for line in rows.strip().splitlines():
        name, cores, memory_gb, category, dbu = line.split()
        out[name] = (
            int(cores),
            int(float(memory_gb) * 1024),
            category.replace("_", " "),
            float(dbu),
        )
    return out


# DBU/h of the known types as extractor/data/node_types.csv has them (a test checks they agree),
# so "the card's rates are the true ones"; the newest family (not in the card) at a hidden rate a
# little above the type of the same vCPUs and memory it will be inferred from.
AZURE_FACTS = _facts(
    """
    Standard_DS3_v2 4 14 General_Purpose 0.75
    Standard_DS4_v2 8 28 General_Purpose 1.5
    Standard_DS5_v2 16 56 General_Purpose 3.0
    Standard_D4ds_v5 4 16 General_Purpose 1.0
    Standard_D8ds_v5 8 32 General_Purpose 2.0
    Standard_D16ds_v5 16 64 General_Purpose 4.0
    Standard_D8as_v5 8 32 General_Purpose 2.0
    Standard_E8ds_v5 8 64 Memory_Optimized 2.75
    Standard_E16ds_v5 16 128 Memory_Optimized 5.5
    Standard_F8s_v2 8 16 Compute_Optimized 1.5
    Standard_F16s_v2 16 32 Compute_Optimized 3.0
    Standard_L8s_v3 8 64 Storage_Optimized 2.75
    Standard_D8ds_v6 8 32 General_Purpose 2.1
    Standard_E8ds_v6 8 64 Memory_Optimized 2.9
    """
)
GCP_FACTS = _facts(
    """
    n2-standard-4 4 16 General_Purpose 0.72
    n2-standard-8 8 32 General_Purpose 1.44
    n2-standard-16 16 64 General_Purpose 2.88
    n2-highmem-4 4 32 Memory_Optimized 0.96
    n2-highmem-8 8 64 Memory_Optimized 1.92
    n2-highcpu-16 16 16 Compute_Optimized 2.16
    n1-standard-8 8 30 General_Purpose 1.41
    n1-highmem-8 8 52 Memory_Optimized 1.74
    n2d-standard-8 8 32 General_Purpose 1.44
    c2-standard-8 8 32 Compute_Optimized 1.44
    e2-standard-8 8 32 General_Purpose 1.44
    n4-standard-8 8 32 General_Purpose 1.5
    n4-highmem-8 8 64 Memory_Optimized 2.0
    """
)


def _pools(etl: str, newer: tuple[str, str], driver: str) -> dict[str, tuple[str, str]]:
    """The three pools of INSTANCE_POOLS (same ids) on another cloud's node types."""
    ids = sorted(INSTANCE_POOLS)
    return dict(zip(ids, [("etl-pool", etl), newer, ("driver-pool", driver)], strict=True))


CLOUD: dict[str, Cloud] = {
    "aws": Cloud(
        "aws",
        NODE_FACTS,
        tuple(NODE_TYPES),
        tuple(NEW_NODE_TYPES),
        INSTANCE_POOLS,
        ("i3.xlarge", "m5d.2xlarge", "i3.2xlarge", "r5d.xlarge"),
        "m5d.xlarge",
        "aws_attributes",
        {"availability": "SPOT_WITH_FALLBACK", "zone_id": "auto"},
        {"availability": "ON_DEMAND", "zone_id": "auto"},
    ),
    "azure": Cloud(
        "azure",
        AZURE_FACTS,
        tuple(n for n in AZURE_FACTS if not n.endswith("_v6")),
        ("Standard_D8ds_v6", "Standard_E8ds_v6"),
        _pools("Standard_DS4_v2", ("v6-pool", "Standard_D8ds_v6"), "Standard_DS3_v2"),
        ("Standard_DS4_v2", "Standard_E8ds_v5", "Standard_D16ds_v5", "Standard_L8s_v3"),
        "Standard_DS3_v2",
        "azure_attributes",
        {
            "availability": "SPOT_WITH_FALLBACK_AZURE",
            "first_on_demand": 1,
            "spot_bid_max_price": -1,
        },
        {"availability": "ON_DEMAND_AZURE", "first_on_demand": 1},
    ),
    "gcp": Cloud(
        "gcp",
        GCP_FACTS,
        tuple(n for n in GCP_FACTS if not n.startswith("n4-")),
        ("n4-standard-8", "n4-highmem-8"),
        _pools("n2-standard-8", ("n4-pool", "n4-standard-8"), "n2-standard-4"),
        ("n2-highmem-8", "n2-standard-16", "n1-standard-8", "n2d-standard-8"),
        "n2-standard-4",
        "gcp_attributes",
        {"availability": "PREEMPTIBLE_WITH_FALLBACK_GCP", "zone_id": "HA"},
        {"availability": "ON_DEMAND_GCP", "zone_id": "HA"},
    ),
}


def cloud_of_host(host: str) -> str:
    """aws, azure or gcp, from a workspace host name."""
    if "azuredatabricks" in host:
        return "azure"
    if "gcp.databricks" in host:
        return "gcp"
    return "aws"


def localize(job: JobDef, cloud: Cloud, seed: int) -> None:
    """Move an AWS job's cluster specs to another cloud: node types of that cloud (a newer
    family where the AWS draw was one, the same driver where it was the same), its
    availability attributes. Drawn from a generator of the job's own, so the workspace's
    runs and their timing are those of the seed on every cloud."""
    if cloud.name == "aws":
        return
    rng = random.Random(f"{seed}:{cloud.name}:{job.job_id}")
    specs = [c["new_cluster"] for c in job.job_clusters or []]
    specs += [t.new_cluster for t in job.tasks if t.new_cluster is not None]
    for spec in specs:
        worker = spec.get("node_type_id")
        if worker is not None:
            node = rng.choice(
                cloud.new_node_types if worker in NEW_NODE_TYPES else cloud.node_types
            )
            same = spec.get("driver_node_type_id") == worker
            spec["node_type_id"] = node
            spec["driver_node_type_id"] = node if same else rng.choice(cloud.node_types)
        attributes = spec.pop("aws_attributes", None)
        if attributes is not None:
            spec[cloud.attributes_key] = cloud.attributes(attributes["availability"] != "ON_DEMAND")


SPARK_VERSIONS = ["15.4.x-scala2.12", "14.3.x-scala2.12", "16.4.x-scala2.12"]
USERS = [
    "dana.kim@example.com",
    "ravi.patel@example.com",
    "li.wong@example.com",
    "sam.okafor@example.com",
]
SERVICE_PRINCIPALS = [
    "9b2e4c71-3f0a-4d8e-b6a5-2c1d7e8f9a03",
    "c41f8e02-6d5a-4b19-9e37-5f2a0b8c1d64",
]
ALL_PURPOSE_CLUSTERS = ["0412-083015-pqrs7788", "0301-151202-shared01"]
TEAMS = ["sales-analytics", "platform", "ml-platform", "finance", "marketing"]
NICE_PERIODS_MIN = [5, 10, 15, 20, 30, 60, 120, 180, 240, 360, 480, 720, 1440, 2880, 10080]


def new_cluster(rng: random.Random, *, autoscale: bool | None = None) -> dict[str, Any]:
    """A classic cluster spec: node type, fixed or autoscaled workers, engine."""
    node = rng.choice(NODE_TYPES)
    spec: dict[str, Any] = {
        "spark_version": rng.choice(SPARK_VERSIONS),
        "node_type_id": node,
        "driver_node_type_id": node if rng.random() < 0.7 else rng.choice(NODE_TYPES),
    }
    if autoscale is None:
        autoscale = rng.random() < 0.35
    if autoscale:
        lo = rng.randint(1, 3)
        spec["autoscale"] = {"min_workers": lo, "max_workers": lo + rng.randint(2, 8)}
    else:
        spec["num_workers"] = rng.randint(1, 8)
    spec["runtime_engine"] = "PHOTON" if rng.random() < 0.35 else "STANDARD"
    spec["data_security_mode"] = "SINGLE_USER"
    spec["aws_attributes"] = {
        "availability": rng.choice(["SPOT_WITH_FALLBACK", "ON_DEMAND"]),
        "zone_id": "auto",
    }
    _vary_nodes(spec, random.Random(hash(rng.getstate()[1])))
    return spec


def _vary_nodes(spec: dict[str, Any], rng: random.Random) -> None:
    """Some clusters on a node type newer than the rate card, some on instance pools.

    Drawn from a generator of its own (seeded by the workspace generator's state, which it
    leaves untouched), so the runs and their timing stay those of the workspace seed.
    """
    draw = rng.random()
    if draw < 0.15:
        spec["node_type_id"] = spec["driver_node_type_id"] = rng.choice(NEW_NODE_TYPES)
    elif draw < 0.3:
        # A pool fixes the node type: the spec names none (Clusters API: instance_pool_id).
        del spec["node_type_id"], spec["driver_node_type_id"], spec["aws_attributes"]
        pools = sorted(INSTANCE_POOLS)
        spec["instance_pool_id"] = rng.choice(pools[:2])
        if rng.random() < 0.5:
            spec["driver_instance_pool_id"] = pools[2]


def _nb(path: str, **params: str) -> dict[str, Any]:
    payload: dict[str, Any] = {"notebook_path": path, "source": "WORKSPACE"}
    if params:
        payload["base_parameters"] = dict(params)
    return payload


def _job(
    rng: random.Random, job_id: int, name: str, trigger: str, tasks: list[TaskDef], **kw: Any
) -> JobDef:
    team = rng.choice(TEAMS)
    creator = rng.choice(USERS)
    return JobDef(
        job_id=job_id,
        name=name,
        creator=creator,
        run_as=rng.choice([creator, *SERVICE_PRINCIPALS]),
        created_time=0,
        shape=kw.pop("shape", "multitask"),
        run_type=kw.pop("run_type", "JOB_RUN"),
        trigger=trigger,
        listed=kw.pop("listed", True),
        tasks=tasks,
        tags=kw.pop("tags", {"team": team, "env": "prod"}),
        **kw,
    )


def etl_job(rng: random.Random, job_id: int, suffix: str) -> JobDef:
    """Nightly ETL on one shared job cluster; a transform with a retry policy."""
    area = rng.choice(["sales", "orders", "billing", "crm"])
    base = f"/Workspace/Repos/{area}/etl"
    tasks = [
        TaskDef(
            "ingest_orders",
            "notebook_task",
            _nb(f"{base}/ingest_orders"),
            "job_cluster",
            job_cluster_key="etl_cluster",
            base_secs=420,
        ),
        TaskDef(
            "ingest_customers",
            "notebook_task",
            _nb(f"{base}/ingest_customers"),
            "job_cluster",
            job_cluster_key="etl_cluster",
            base_secs=280,
        ),
        TaskDef(
            "transform",
            "notebook_task",
            _nb(f"{base}/transform"),
            "job_cluster",
            job_cluster_key="etl_cluster",
            depends_on=(("ingest_orders", None), ("ingest_customers", None)),
            max_retries=1,
            min_retry_interval_millis=60_000,
            timeout_seconds=3600,
            base_secs=1200,
            fail_p=0.08,
        ),
        TaskDef(
            "publish_dashboard",
            "notebook_task",
            _nb(f"{base}/publish_dashboard"),
            "job_cluster",
            job_cluster_key="etl_cluster",
            depends_on=(("transform", None),),
            base_secs=95,
        ),
    ]
    return _job(
        rng,
        job_id,
        f"nightly_{area}_etl{suffix}",
        "PERIODIC",
        tasks,
        job_clusters=[
            {"job_cluster_key": "etl_cluster", "new_cluster": new_cluster(rng, autoscale=False)}
        ],
        parameters=[{"name": "region", "default": "all"}],
        timeout_seconds=14400,
    )


def compaction_job(rng: random.Random, job_id: int, suffix: str) -> JobDef:
    """One spark_python task on its own autoscaling Photon cluster, with a timeout."""
    spec = new_cluster(rng, autoscale=True)
    spec["runtime_engine"] = "PHOTON"
    tasks = [
        TaskDef(
            "compact_events",
            "spark_python_task",
            {
                "python_file": "/Workspace/Repos/platform/compaction/compact.py",
                "parameters": ["--table", "prod.events.raw_clicks"],
                "source": "WORKSPACE",
            },
            "new_cluster",
            new_cluster=spec,
            timeout_seconds=3000,
            base_secs=1500,
            fail_p=0.04,
        ),
    ]
    return _job(
        rng, job_id, f"hourly_events_compaction{suffix}", "PERIODIC", tasks, timeout_seconds=3000
    )


def serverless_job(rng: random.Random, job_id: int, suffix: str) -> JobDef:
    """File-arrival job on serverless compute: a wheel task with an environment, a notebook."""
    tasks = [
        TaskDef(
            "load_events",
            "python_wheel_task",
            {
                "package_name": "feature_lib",
                "entry_point": "load_events",
                "named_parameters": {"feature_set": "v7"},
            },
            "serverless",
            environment_key="default",
            base_secs=310,
        ),
        TaskDef(
            "build_features",
            "notebook_task",
            _nb(
                "/Workspace/Repos/ml/features/build_features",
                feature_set="{{job.parameters.feature_set}}",
            ),
            "serverless",
            depends_on=(("load_events", None),),
            base_secs=350,
            fail_p=0.05,
        ),
    ]
    return _job(
        rng,
        job_id,
        f"ml_feature_refresh{suffix}",
        "FILE_ARRIVAL",
        tasks,
        parameters=[{"name": "feature_set", "default": "v7"}],
        environments=[
            {
                "environment_key": "default",
                "spec": {
                    "client": "2",
                    "dependencies": ["/Workspace/Shared/wheels/feature_lib-1.4.0-py3-none-any.whl"],
                },
            }
        ],
        performance_target="STANDARD",
        timeout_seconds=7200,
    )


def continuous_job(rng: random.Random, job_id: int, suffix: str) -> JobDef:
    """Continuous streaming job: one run always active on a job cluster."""
    tasks = [
        TaskDef(
            "ingest_stream",
            "notebook_task",
            _nb("/Workspace/Repos/platform/streams/clickstream_ingest"),
            "job_cluster",
            job_cluster_key="stream_cluster",
            base_secs=6 * 3600,
            fail_p=0.15,
        ),
    ]
    return _job(
        rng,
        job_id,
        f"clickstream_ingest_continuous{suffix}",
        "CONTINUOUS",
        tasks,
        job_clusters=[
            {"job_cluster_key": "stream_cluster", "new_cluster": new_cluster(rng, autoscale=False)}
        ],
        cancel_p=0.0,
    )


def foreach_job(rng: random.Random, job_id: int, suffix: str) -> JobDef:
    """list_regions feeding a for-each task whose iterations share the job cluster."""
    nested = TaskDef(
        "process_region_iteration",
        "notebook_task",
        _nb("/Workspace/Repos/analytics/rollup/process_region", region="{{input}}"),
        "job_cluster",
        job_cluster_key="rollup_cluster",
        base_secs=360,
        fail_p=0.02,
        max_retries=1,
        min_retry_interval_millis=10_000,
    )
    big = rng.random() < 0.5
    tasks = [
        TaskDef(
            "list_regions",
            "notebook_task",
            _nb("/Workspace/Repos/analytics/rollup/list_regions"),
            "job_cluster",
            job_cluster_key="rollup_cluster",
            base_secs=40,
        ),
        TaskDef(
            "process_regions",
            "for_each_task",
            {},
            "none",
            depends_on=(("list_regions", None),),
            for_each=ForEachDef(
                "{{tasks.list_regions.values.regions}}",
                rng.choice([3, 4, 8]),
                nested,
                3,
                130 if big else 12,
            ),
        ),
    ]
    return _job(
        rng,
        job_id,
        f"regional_rollup{suffix}",
        "PERIODIC",
        tasks,
        job_clusters=[{"job_cluster_key": "rollup_cluster", "new_cluster": new_cluster(rng)}],
    )


def queued_job(rng: random.Random, job_id: int, suffix: str) -> JobDef:
    """Manually triggered long export: overlapping triggers wait in the job queue."""
    tasks = [
        TaskDef(
            "export_to_partner",
            "notebook_task",
            _nb("/Workspace/Repos/partners/export/export_to_partner", partner="contoso"),
            "new_cluster",
            new_cluster=new_cluster(rng, autoscale=False),
            base_secs=3 * 3600,
            fail_p=0.04,
        ),
    ]
    return _job(rng, job_id, f"partner_export{suffix}", "ONE_TIME", tasks)


def skipping_job(rng: random.Random, job_id: int, suffix: str) -> JobDef:
    """Frequent schedule without queueing: overlaps produce SKIPPED runs."""
    tasks = [
        TaskDef(
            "snapshot",
            "spark_jar_task",
            {"main_class_name": "com.example.inventory.Snapshot", "parameters": ["--full"]},
            "new_cluster",
            new_cluster=new_cluster(rng),
            base_secs=0,
            fail_p=0.03,
        ),
    ]
    return _job(rng, job_id, f"inventory_snapshot{suffix}", "PERIODIC", tasks, queue=False)


def legacy_job(rng: random.Random, job_id: int, suffix: str) -> JobDef:
    """Legacy single-task job on an all-purpose cluster, retried at job level (RETRY runs)."""
    cluster = rng.choice(ALL_PURPOSE_CLUSTERS)
    tasks = [
        TaskDef(
            f"daily_fx_rates_pull{suffix}",
            "notebook_task",
            _nb("/Workspace/Repos/finance/fx/pull_rates"),
            "existing_cluster",
            existing_cluster_id=cluster,
            base_secs=95,
            fail_p=0.12,
        ),
    ]
    return _job(
        rng,
        job_id,
        f"daily_fx_rates_pull{suffix}",
        "PERIODIC",
        tasks,
        shape="legacy",
        job_retries=2,
        job_retry_interval_ms=300_000,
    )


def fanout_job(rng: random.Random, job_id: int, suffix: str) -> JobDef:
    """A backfill with 101-300 tasks on one job cluster: exercises every 100-element cut."""
    n = rng.randint(101, 300)
    tasks = [
        TaskDef(
            "prepare",
            "notebook_task",
            _nb("/Workspace/Repos/platform/backfill/prepare"),
            "job_cluster",
            job_cluster_key="backfill_cluster",
            base_secs=60,
        )
    ]
    for i in range(n - 1):
        tasks.append(
            TaskDef(
                f"backfill_part_{i:03d}",
                "notebook_task",
                _nb("/Workspace/Repos/platform/backfill/backfill_part", part=str(i)),
                "job_cluster",
                job_cluster_key="backfill_cluster",
                depends_on=(("prepare", None),),
                max_retries=2,
                min_retry_interval_millis=30_000,
                base_secs=300,
                fail_p=0.004,
            )
        )
    return _job(
        rng,
        job_id,
        f"big_backfill_fanout{suffix}",
        "PERIODIC",
        tasks,
        job_clusters=[
            {"job_cluster_key": "backfill_cluster", "new_cluster": new_cluster(rng, autoscale=True)}
        ],
        max_concurrent_runs=2,
        via_run_job_task=True,
    )


def quality_job(rng: random.Random, job_id: int, suffix: str) -> JobDef:
    """Mixed compute, a condition branch (EXCLUDED), a disabled task and an ALL_DONE notifier."""
    tasks = [
        TaskDef(
            "check_new_data",
            "condition_task",
            {"op": "GREATER_THAN", "left": "{{job.parameters.new_rows}}", "right": "0"},
            "none",
            base_secs=1,
        ),
        TaskDef(
            "validate",
            "notebook_task",
            _nb("/Workspace/Repos/quality/validate"),
            "existing_cluster",
            existing_cluster_id=rng.choice(ALL_PURPOSE_CLUSTERS),
            depends_on=(("check_new_data", "true"),),
            base_secs=240,
            fail_p=0.07,
        ),
        TaskDef(
            "profile",
            "spark_python_task",
            {"python_file": "/Workspace/Repos/quality/profile.py", "source": "WORKSPACE"},
            "serverless",
            environment_key="default",
            depends_on=(("validate", None),),
            base_secs=180,
            fail_p=0.03,
        ),
        TaskDef(
            "score_anomalies",
            "spark_jar_task",
            {"main_class_name": "com.example.quality.Anomalies"},
            "new_cluster",
            new_cluster=new_cluster(rng),
            depends_on=(("validate", None),),
            base_secs=600,
            fail_p=0.05,
        ),
        TaskDef(
            "legacy_export",
            "notebook_task",
            _nb("/Workspace/Repos/quality/legacy_export"),
            "existing_cluster",
            existing_cluster_id=rng.choice(ALL_PURPOSE_CLUSTERS),
            depends_on=(("validate", None),),
            disabled=True,
        ),
        TaskDef(
            "notify",
            "notebook_task",
            _nb("/Workspace/Repos/quality/notify"),
            "serverless",
            depends_on=(("profile", None), ("score_anomalies", None)),
            run_if="ALL_DONE",
            base_secs=20,
            fail_p=0.01,
        ),
    ]
    return _job(
        rng,
        job_id,
        f"data_quality_checks{suffix}",
        "PERIODIC",
        tasks,
        parameters=[{"name": "new_rows", "default": "0"}],
        environments=[{"environment_key": "default", "spec": {"client": "2"}}],
    )


def submit_job(rng: random.Random, job_id: int, suffix: str) -> JobDef:
    """Hidden job behind one-time runs/submit calls from an orchestrator (legacy shape)."""
    spec = new_cluster(rng, autoscale=False)
    spec["custom_tags"] = {"orchestrator": "airflow", "dag_id": f"customer_scores{suffix}"}
    tasks = [
        TaskDef(
            f"adhoc_backfill_customer_scores{suffix}",
            "spark_python_task",
            {
                "python_file": "dbfs:/jobs/adhoc/score_customers.py",
                "parameters": ["--since", "2025-05-01"],
            },
            "new_cluster",
            new_cluster=spec,
            base_secs=700,
            fail_p=0.06,
        ),
    ]
    job = _job(
        rng,
        job_id,
        f"adhoc_backfill_customer_scores{suffix}",
        "ONE_TIME",
        tasks,
        shape="legacy",
        run_type="SUBMIT_RUN",
        listed=False,
    )
    job.creator = SERVICE_PRINCIPALS[1]
    return job


def workflow_job(rng: random.Random, job_id: int, suffix: str) -> JobDef:
    """Hidden job behind dbutils.notebook.run calls on an all-purpose cluster (legacy shape)."""
    user = rng.choice(USERS)
    path = f"/Users/{user}/helpers/refresh_dim_dates{suffix}"
    tasks = [
        TaskDef(
            f"refresh_dim_dates{suffix}",
            "notebook_task",
            _nb(path, year="2025"),
            "existing_cluster",
            existing_cluster_id=rng.choice(ALL_PURPOSE_CLUSTERS),
            base_secs=140,
            fail_p=0.05,
        ),
    ]
    job = _job(
        rng, job_id, path, "ONE_TIME", tasks, shape="legacy", run_type="WORKFLOW_RUN", listed=False
    )
    job.creator = user
    return job


Template = Callable[[random.Random, int, str], JobDef]

# (template, share of runs). The rotation order guarantees every shape once jobs >= 12.
ROTATION: list[tuple[Template, float]] = [
    (etl_job, 1.0),
    (compaction_job, 3.0),
    (serverless_job, 1.5),
    (continuous_job, 0.3),
    (foreach_job, 0.8),
    (queued_job, 0.5),
    (legacy_job, 0.8),
    (skipping_job, 2.5),
    (submit_job, 1.2),
    (quality_job, 1.0),
    (workflow_job, 1.0),
    (fanout_job, 0.0),
]


def nice_period_ms(target_ms: int) -> int:
    """The largest cron-friendly period not above target (at least 5 minutes)."""
    best = NICE_PERIODS_MIN[0]
    for minutes in NICE_PERIODS_MIN:
        if minutes * 60_000 <= target_ms:
            best = minutes
    return best * 60_000


def cron_for(period_ms: int, rng: random.Random) -> str:
    """A quartz expression firing every period (periods are from NICE_PERIODS_MIN)."""
    minutes = period_ms // 60_000
    if minutes < 60:
        return f"0 0/{minutes} * * * ?"
    hours = minutes // 60
    if hours < 24:
        return f"0 0 0/{hours} * * ?"
    if hours == 24:
        return f"0 0 {rng.randint(0, 6)} * * ?"
    if hours == 48:
        return f"0 0 {rng.randint(0, 6)} 1/2 * ?"
    return f"0 0 {rng.randint(0, 6)} ? * MON"


__all__ = ["DAY_MS", "HOUR_MS", "ROTATION", "cron_for", "new_cluster", "nice_period_ms"]


def all_purpose_cluster(
    seed: int, cluster_id: str, now_ms: int, cloud: str = "aws"
) -> dict[str, Any]:
    """The clusters/get body (ClusterDetails) of one of ALL_PURPOSE_CLUSTERS, fixed per seed.

    Seeded by the workspace seed and the cluster's position, so it never draws from the
    workspace's own generator (adding the endpoint changes no run).
    """
    index = ALL_PURPOSE_CLUSTERS.index(cluster_id)
    rng = random.Random(seed * 104_729 + index)
    facts = CLOUD[cloud]
    # Every all-purpose node type is one the rate card prices, so the demo's runs get a cost.
    node = rng.choice(facts.all_purpose_nodes)
    creator = rng.choice(USERS)
    running = rng.random() < 0.6
    started = now_ms - rng.randint(2, 30) * DAY_MS
    body: dict[str, Any] = {
        "cluster_id": cluster_id,
        "cluster_name": ["shared-analytics", "finance-interactive"][index % 2],
        "spark_version": rng.choice(SPARK_VERSIONS),
        "node_type_id": node,
        "driver_node_type_id": node if rng.random() < 0.7 else facts.driver_alternative,
        "runtime_engine": "PHOTON" if index % 2 else "STANDARD",
        "cluster_source": "UI",
        "creator_user_name": creator,
        "single_user_name": creator,
        "data_security_mode": "SINGLE_USER",
        "autotermination_minutes": rng.choice([30, 60, 120]),
        "enable_elastic_disk": True,
        facts.attributes_key: _all_purpose_attributes(facts),
        "custom_tags": {"team": rng.choice(TEAMS), "cost_center": f"cc-{rng.randint(100, 999)}"},
        "default_tags": {
            "Vendor": "Databricks",
            "Creator": creator,
            "ClusterName": ["shared-analytics", "finance-interactive"][index % 2],
            "ClusterId": cluster_id,
        },
        "spark_context_id": rng.randrange(10**18, 9 * 10**18),
        "start_time": started,
        "last_restarted_time": started + HOUR_MS,
        "state": "RUNNING" if running else "TERMINATED",
        "state_message": ""
        if running
        else "Inactive cluster terminated (inactive for 60 minutes).",
    }
    # The first cluster autoscales, the second has a fixed size: both shapes get priced.
    if index % 2 == 0:
        lo = rng.randint(1, 2)
        body["autoscale"] = {"min_workers": lo, "max_workers": lo + 2 * rng.randint(1, 3)}
    else:
        body["num_workers"] = rng.randint(2, 4)
    if not running:
        body["terminated_time"] = now_ms - rng.randint(1, 12) * HOUR_MS
        body["termination_reason"] = {"code": "INACTIVITY", "type": "SUCCESS"}
    return body


def _all_purpose_attributes(cloud: Cloud) -> dict[str, Any]:
    if cloud.name == "aws":
        return {
            "availability": "SPOT_WITH_FALLBACK",
            "zone_id": "auto",
            "first_on_demand": 1,
            "spot_bid_price_percent": 100,
        }
    return cloud.attributes(spot=True)
