"""Serve a simulated workspace from a shell: python -m extractor.dev.simulator --seed 1 --port 8765.

Prints the URL, token and OAuth client credentials, then serves until interrupted. Never binds
anything but 127.0.0.1.
"""

from __future__ import annotations

import argparse
import sys
import time

from .server import Faults, serve
from .workspace import Workspace


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m extractor.dev.simulator", description=__doc__)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--jobs", type=int, default=20)
    p.add_argument("--runs", type=int, default=2000)
    p.add_argument("--days", type=int, default=60)
    p.add_argument("--now-ms", type=int, default=None)
    p.add_argument(
        "--cloud",
        choices=("aws", "azure", "gcp"),
        default="aws",
        help="the cloud's node types, host name, pools and cluster attributes",
    )
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--token", default=None)
    p.add_argument("--forbidden-job", type=int, action="append", default=[])
    p.add_argument("--latency-ms", type=int, default=0)
    p.add_argument("--jitter-ms", type=int, default=0)
    p.add_argument("--rate-limit-rps", type=float, default=None)
    p.add_argument("--error-5xx-rate", type=float, default=0.0)
    p.add_argument("--html-502-rate", type=float, default=0.0)
    p.add_argument("--drop-rate", type=float, default=0.0)
    p.add_argument(
        "--warehouse-start-polls",
        type=int,
        default=0,
        help="the SQL warehouse is stopped: a statement stays PENDING this many polls",
    )
    p.add_argument("--billing-no-grant", action="store_true", help="billing queries fail: no grant")
    p.add_argument(
        "--billing-no-uc", action="store_true", help="billing queries fail: no Unity Catalog"
    )
    p.add_argument(
        "--tick",
        type=float,
        default=0.0,
        help="advance the simulated clock by this many seconds every wall-clock second",
    )
    p.add_argument(
        "--billing-csv",
        default=None,
        help="write the workspace's system.billing.usage export to this CSV and exit",
    )
    p.add_argument(
        "--prices-csv", default=None, help="write its system.billing.list_prices CSV and exit"
    )
    a = p.parse_args(argv)
    ws = Workspace.generate(
        a.seed, jobs=a.jobs, runs=a.runs, days=a.days, now_ms=a.now_ms, cloud=a.cloud
    )
    if a.billing_csv or a.prices_csv:
        if a.billing_csv:
            ws.write_billing_csv(a.billing_csv)
        if a.prices_csv:
            ws.write_list_prices_csv(a.prices_csv)
        print(f"workspace_id={ws.workspace_id} now_ms={ws.now_ms}")
        return 0
    faults = Faults(
        latency_ms=a.latency_ms,
        jitter_ms=a.jitter_ms,
        rate_limit_rps=a.rate_limit_rps,
        error_5xx_rate=a.error_5xx_rate,
        html_502_rate=a.html_502_rate,
        drop_rate=a.drop_rate,
        seed=a.seed,
        warehouse_start_polls=a.warehouse_start_polls,
        billing_no_grant=int(a.billing_no_grant),
        billing_no_uc=int(a.billing_no_uc),
    )
    server = serve(
        ws, faults=faults, token=a.token, port=a.port, forbidden_jobs=set(a.forbidden_job)
    )
    print(f"url={server.url}")
    print(f"token={server.token}")
    print(f"client_id={server.client_id}")
    print(f"client_secret={server.client_secret}")
    print(f"warehouse_id={server.warehouse.warehouse_id}")
    print(f"host={ws.host} cloud={ws.cloud}")
    print(f"workspace_id={ws.workspace_id} runs={len(ws.runs)} now_ms={ws.now_ms}", flush=True)
    try:
        while True:
            time.sleep(1)
            if a.tick:
                server.advance(a.tick)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
