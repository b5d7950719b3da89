"""`jobruns billing sync`: system.billing read through the simulated SQL warehouse (Statement
Execution API, ARROW_STREAM chunks behind presigned links), incrementally, into the tables
`billing import` fills; and the errors a stopped warehouse, a missing grant or a workspace
without Unity Catalog give."""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pytest

from extractor.client import JobsClient
from extractor.config import resolve_workspace
from extractor.dev.simulator import SimServer, Workspace, serve
from extractor.errors import ApiError, PermissionDeniedError
from extractor.statements import query_arrow
from extractor.store import Store
from tests.conftest import MakeSim, jobruns, wall_clock_ms


def _auth(server: SimServer) -> list[str]:
    return ["--host", server.url, "--token", server.token]


def _usage_statements(server: SimServer) -> list[str]:
    return [
        e["body"]["statement"]
        for e in server.request_log("POST")
        if e["path"] == "/api/2.0/sql/statements" and "billing.usage" in e["body"]["statement"]
    ]


def _query(capsys: pytest.CaptureFixture[str], db: Path, sql: str) -> list[dict[str, Any]]:
    code, out = jobruns(capsys, "query", sql, "--db", str(db), "--format", "json")
    assert code == 0, out
    rows: list[dict[str, Any]] = json.loads(out)
    return rows


def test_sync_after_extract_prefers_billed_cost_adds_nothing_twice_and_reads_only_new_days(
    make_sim: MakeSim, capsys: pytest.CaptureFixture[str]
) -> None:
    sim = make_sim(5, runs=60, jobs=6, days=10, now_ms=wall_clock_ms())
    server = sim.server
    server.warehouse.chunk_rows = 40  # several chunks, each behind its own link
    server.set_faults(warehouse_start_polls=2)  # the warehouse is stopped: it starts
    warehouse = server.warehouse.warehouse_id
    code, out = jobruns(
        capsys,
        "extract",
        *_auth(server),
        "--db",
        str(sim.db),
        "--max-rps",
        "1000",
        "--billing-sync",
        warehouse,
    )
    all_rows = sim.workspace.billing_rows()
    assert code == 0, out
    assert f"billing sync: {len(all_rows)} usage rows" in out, out
    assert f"({len(all_rows)} new) for 1 workspace, 5 price rows" in out, out
    first = _usage_statements(server)
    today = date.fromtimestamp(wall_clock_ms() / 1000)
    assert f"workspace_id IN ('{sim.workspace.workspace_id}')" in first[0]
    assert f"usage_date >= DATE '{(today - timedelta(days=30)).isoformat()}'" in first[0]
    # Every chunk was read (the links refuse an Authorization header, as cloud storage does).
    chunks = [e for e in server.request_log("GET") if "/result/chunks/" in e["path"]]
    usage_chunks = -(-len(all_rows) // 40)
    assert len(chunks) == usage_chunks - 1  # chunk 0 came with the statement
    assert server.stats()["requests"]["/_storage/results/"] > len(chunks)

    sources = _query(capsys, sim.db, "SELECT cost_source, count(*) AS n FROM run_cost GROUP BY 1")
    by_source = {r["cost_source"]: r["n"] for r in sources}
    assert by_source.get("billing", 0) > sum(by_source.values()) / 2, by_source

    # Again: the same days re-read from the latest usage_date minus the overlap, nothing new.
    code, out = jobruns(
        capsys, "billing", "sync", "--warehouse-id", warehouse, *_auth(server), "--db", str(sim.db)
    )
    assert code == 0, out
    assert "(0 new)" in out, out
    latest = max(date.fromisoformat(r["usage_date"]) for r in all_rows)
    since = (latest - timedelta(days=7)).isoformat()
    assert f"usage_date >= DATE '{since}'" in _usage_statements(server)[-1]
    assert f"since {since}" in out

    # A day later: only the new records are added, each once.
    sim.advance(86_400)
    code, out = jobruns(
        capsys, "billing", "sync", "--warehouse-id", warehouse, *_auth(server), "--db", str(sim.db)
    )
    assert code == 0, out
    before = {r["record_id"] for r in all_rows}
    after = {r["record_id"] for r in sim.workspace.billing_rows()}
    assert f"({len(after - before)} new)" in out, out
    assert len(after - before) > 0
    stored = _query(
        capsys, sim.db, "SELECT count(*) AS n, count(DISTINCT record_id) AS d FROM billing_usage"
    )
    assert stored == [{"n": len(after | before), "d": len(after | before)}]


def _store_with_workspace(tmp_path: Path, workspace_id: str) -> Path:
    db = tmp_path / "store.duckdb"
    store = Store(db)
    store.initialize()
    with store.connect() as con:
        con.execute(
            "INSERT INTO extract_state (workspace_id, host) VALUES (?, 'h')", [workspace_id]
        )
    return db


@pytest.fixture
def small_server() -> Any:
    server = serve(Workspace.generate(3, jobs=3, runs=20, days=5, now_ms=wall_clock_ms()))
    yield server
    server.stop()


@pytest.mark.parametrize(
    ("faults", "code", "expected"),
    [
        (
            {"billing_no_grant": 1},
            1,
            "may not read system.billing.usage: [INSUFFICIENT_PERMISSIONS] Insufficient "
            "privileges: User does not have USE SCHEMA on Schema 'system.billing'. SQLSTATE: "
            "42501 An account admin who is also a metastore admin must grant it: GRANT USE "
            "CATALOG ON CATALOG system TO `<principal>`; GRANT USE SCHEMA ON SCHEMA "
            "system.billing TO `<principal>`; GRANT SELECT ON TABLE system.billing.usage",
        ),
        (
            {"billing_no_uc": 1, "warehouse_start_polls": 1},
            1,
            "system.billing.usage cannot be read here: [UC_NOT_ENABLED] Unity Catalog is not "
            "enabled on this cluster. SQLSTATE: 56038 System tables live in Unity Catalog: use "
            "a SQL warehouse of a workspace attached to a Unity Catalog metastore",
        ),
        (
            {"warehouse_start_polls": 100},
            1,
            r"system\.billing\.usage was waiting for the warehouse to start after [0-9]+ s \(state "
            r"PENDING\); it was canceled\. Run again when the warehouse is up, or allow longer "
            r"with --wait",
        ),
    ],
    ids=["no-grant", "no-unity-catalog", "warehouse-never-starts"],
)
def test_sync_errors_name_what_to_change(
    small_server: SimServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    faults: dict[str, int],
    code: int,
    expected: str,
) -> None:
    db = _store_with_workspace(tmp_path, str(small_server.workspace.workspace_id))
    small_server.set_faults(**faults)
    args = ["billing", "sync", "--warehouse-id", small_server.warehouse.warehouse_id]
    result = jobruns(capsys, *args, *_auth(small_server), "--db", str(db), "--wait", "1s")
    assert result[0] == code, result[1]
    pattern = expected if "[0-9]" in expected else re.escape(expected)
    assert re.search(pattern, result[1]), result[1]
    assert small_server.token not in result[1]
    if "warehouse_start_polls" in faults and "billing_no_uc" not in faults:
        cancels = [e for e in small_server.request_log("POST") if e["path"].endswith("/cancel")]
        assert len(cancels) == 1


def test_sync_with_an_unknown_warehouse_or_an_empty_store_is_a_usage_error(
    small_server: SimServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = _store_with_workspace(tmp_path, str(small_server.workspace.workspace_id))
    code, out = jobruns(
        capsys,
        "billing",
        "sync",
        "--warehouse-id",
        "0123456789abcdef",
        *_auth(small_server),
        "--db",
        str(db),
    )
    assert code == 2, out
    assert "no SQL warehouse 0123456789abcdef on" in out and "Connection details" in out
    empty = tmp_path / "empty.duckdb"
    Store(empty).initialize()
    code, out = jobruns(
        capsys,
        "billing",
        "sync",
        "--warehouse-id",
        small_server.warehouse.warehouse_id,
        *_auth(small_server),
        "--db",
        str(empty),
    )
    assert code == 2, out
    assert "run `jobruns extract` first" in out


def test_an_expired_result_link_is_asked_for_again(small_server: SimServer) -> None:
    """Links live 15 minutes: a refused download gets a fresh link for that chunk, once."""
    small_server.warehouse.chunk_rows = 10
    real = httpx.HTTPTransport()
    refused: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if "/_storage/" in request.url.path and not refused:
            refused.append(str(request.url))
            return httpx.Response(403, text="<Error><Code>AccessDenied</Code></Error>")
        assert "/_storage/" not in request.url.path or "authorization" not in request.headers
        return real.handle_request(request)

    config = resolve_workspace(host=small_server.url, token=small_server.token, env={})
    with JobsClient(config, transport=httpx.MockTransport(handler)) as client:
        table = query_arrow(
            client,
            small_server.warehouse.warehouse_id,
            "SELECT record_id, usage_quantity FROM system.billing.usage",
        )
    assert table.num_rows == len(small_server.workspace.billing_rows())
    assert table.schema.field("usage_quantity").type == pa.decimal128(38, 18)
    fetched = [e["path"] for e in small_server.request_log("GET")]
    assert any(p.endswith("/result/chunks/0") for p in fetched)  # the refused chunk, again
    assert refused


def test_a_failed_statement_of_unknown_sql_keeps_the_warehouse_message(
    small_server: SimServer,
) -> None:
    config = resolve_workspace(host=small_server.url, token=small_server.token, env={})
    with JobsClient(config) as client, pytest.raises(ApiError, match=r"PARSE_SYNTAX_ERROR"):
        query_arrow(client, small_server.warehouse.warehouse_id, "SELECT 1")


def test_the_official_sdk_reads_the_simulated_warehouse(small_server: SimServer) -> None:
    """Fidelity: databricks-sdk's statement_execution parses every answer of the simulator."""
    from databricks.sdk import WorkspaceClient
    from databricks.sdk.service.sql import Disposition, Format, StatementState

    small_server.warehouse.chunk_rows = 25
    small_server.set_faults(warehouse_start_polls=2)
    w = WorkspaceClient(host=small_server.url, token=small_server.token)
    api = w.statement_execution
    warehouse = small_server.warehouse.warehouse_id
    sql = (
        "SELECT record_id, workspace_id, usage_start_time, usage_quantity, "
        "to_json(usage_metadata) AS usage_metadata FROM system.billing.usage "
        f"WHERE workspace_id IN ('{small_server.workspace.workspace_id}')"
    )
    response = api.execute_statement(
        statement=sql,
        warehouse_id=warehouse,
        format=Format.ARROW_STREAM,
        disposition=Disposition.EXTERNAL_LINKS,
        wait_timeout="30s",
    )
    states = [response.status.state if response.status else None]
    while states[-1] in (StatementState.PENDING, StatementState.RUNNING):
        assert response.statement_id
        response = api.get_statement(response.statement_id)
        states.append(response.status.state if response.status else None)
    assert states[0] == StatementState.PENDING and states[-1] == StatementState.SUCCEEDED
    manifest = response.manifest
    assert manifest is not None and manifest.schema is not None and manifest.schema.columns
    assert [c.name for c in manifest.schema.columns][:2] == ["record_id", "workspace_id"]
    assert manifest.total_chunk_count and manifest.chunks
    assert len(manifest.chunks) == manifest.total_chunk_count > 1
    tables = []
    for index in range(manifest.total_chunk_count):
        if index == 0:
            data = response.result
        else:
            assert response.statement_id
            data = api.get_statement_result_chunk_n(response.statement_id, index)
        assert data is not None and data.external_links
        link = data.external_links[0]
        assert link.chunk_index == index and link.expiration and link.external_link
        assert (link.next_chunk_index is None) == (index == manifest.total_chunk_count - 1)
        blob = httpx.get(link.external_link).content
        tables.append(pa.ipc.open_stream(blob).read_all())
    assert sum(t.num_rows for t in tables) == manifest.total_row_count
    assert manifest.total_row_count == len(small_server.workspace.billing_rows())
    # With the workspace's Authorization header, cloud storage refuses the link.
    assert httpx.get(link.external_link, headers={"Authorization": "Bearer x"}).status_code == 400

    inline = api.execute_statement(
        statement="SELECT sku_name, to_json(pricing) AS pricing FROM system.billing.list_prices",
        warehouse_id=warehouse,
        wait_timeout="10s",
    )
    assert inline.status and inline.status.state == StatementState.SUCCEEDED
    assert inline.result and inline.result.data_array
    sku, pricing = inline.result.data_array[0]
    assert sku.startswith("PREMIUM_") and "effective_list" in json.loads(pricing)

    small_server.set_faults(billing_no_grant=1)
    failed = api.execute_statement(statement=sql, warehouse_id=warehouse, wait_timeout="10s")
    assert failed.status and failed.status.state == StatementState.FAILED
    assert failed.status.error and failed.status.error.error_code
    assert failed.status.error.error_code.value == "BAD_REQUEST"
    assert failed.status.sql_state == "42501"
    assert re.search(r"USE SCHEMA on Schema 'system\.billing'", failed.status.error.message or "")


def test_sync_loads_the_same_rows_as_an_import_of_the_export(
    small_server: SimServer, tmp_path: Path
) -> None:
    from extractor.analytics.cost import import_billing
    from extractor.billing_sync import sync_billing

    ws = small_server.workspace
    export = tmp_path / "usage.csv"
    ws.write_billing_csv(str(export))
    synced = _store_with_workspace(tmp_path, str(ws.workspace_id))
    config = resolve_workspace(host=small_server.url, token=small_server.token, env={})
    with JobsClient(config) as client:
        sync_billing(
            client,
            Store(synced).connect,
            small_server.warehouse.warehouse_id,
            since=date(2000, 1, 1),
        )
    with Store(synced).connect() as con:
        via_sync = con.execute("SELECT * FROM billing_usage ORDER BY record_id").fetchall()
    imp_db = tmp_path / "imported.duckdb"
    Store(imp_db).initialize()
    with Store(imp_db).connect() as con:
        import_billing(con, export)
        via_import = con.execute("SELECT * FROM billing_usage ORDER BY record_id").fetchall()
    assert via_sync == via_import


def test_a_principal_without_can_use_on_the_warehouse_is_told_so(small_server: SimServer) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            403,
            json={
                "error_code": "PERMISSION_DENIED",
                "message": "sp@example.com is not authorized to use this SQL Endpoint.",
            },
        )

    # Signed in against the simulator (the SDK reads its host metadata there); every request
    # of the client then goes to the handler.
    config = resolve_workspace(host=small_server.url, token=small_server.token, env={})
    with (
        JobsClient(config, transport=httpx.MockTransport(handler)) as client,
        pytest.raises(PermissionDeniedError) as caught,
    ):
        query_arrow(client, "abc", "SELECT 1")
    assert "may not use SQL warehouse abc" in str(caught.value)
    assert "CAN USE permission on the warehouse" in str(caught.value)


def test_the_store_is_not_locked_while_the_warehouse_starts(
    small_server: SimServer, tmp_path: Path
) -> None:
    """An extract from cron must not find the store locked for the minutes a warehouse takes."""
    from extractor.billing_sync import sync_billing
    from extractor.cli._common import writable_store
    from extractor.lock import ExtractLock

    db = _store_with_workspace(tmp_path, str(small_server.workspace.workspace_id))
    small_server.set_faults(warehouse_start_polls=3)
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        with ExtractLock(db):  # raises LockedError if the sync held it
            waits.append(seconds)

    @contextlib.contextmanager
    def store() -> Iterator[Any]:
        with writable_store(str(db)) as opened, opened.connect() as con:
            yield con

    config = resolve_workspace(host=small_server.url, token=small_server.token, env={})
    with JobsClient(config) as client:
        result = sync_billing(
            client, store, small_server.warehouse.warehouse_id, sleep=sleep, since=date(2000, 1, 1)
        )
    assert len(waits) >= 3
    assert result.usage_new == len(small_server.workspace.billing_rows())
