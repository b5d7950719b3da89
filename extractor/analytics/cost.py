"""Prices for the cost views: the rate card, and imports of Databricks billing exports.

`rate_card` is seeded from the CSV shipped in extractor/data and can be overridden with a user's
negotiated prices; `billing_usage` and `list_prices` hold exports of the system.billing tables.
This module only loads prices and usage; the arithmetic lives in the SQL views.
"""

from __future__ import annotations

import csv
import importlib.resources
import io
from collections.abc import Callable, Iterable, Mapping
from datetime import date
from pathlib import Path
from typing import Literal

import duckdb
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from extractor.analytics.materialize import has_materialized, owe_refresh, refresh_materialized
from extractor.errors import InputError, UsageError
from extractor.schema import KEYS, TABLES, row_count, table_ddl, table_names

RATE_COLUMNS = ("kind", "cloud", "name", "value", "currency", "source", "as_of")
REQUIRED_RATE_COLUMNS = ("kind", "name", "value")
# The clouds Databricks bills (system.billing.usage.cloud).
CLOUDS = ("AWS", "AZURE", "GCP")


class Rate(BaseModel):
    """One rate card row.

    kind 'node_type': value = DBU per hour of one node of that type (cloud required);
    kind 'sku': value = price per DBU in `currency` (cloud required; name is a SKU family such as
    JOBS_COMPUTE or ALL_PURPOSE_COMPUTE, or a full billing sku_name such as PREMIUM_JOBS_COMPUTE);
    kind 'multiplier': name 'photon', value = factor on the DBU/h of Photon clusters.
    """

    model_config = ConfigDict(extra="forbid")

    kind: Literal["node_type", "sku", "multiplier"]
    cloud: str | None = None
    name: str = Field(min_length=1)
    value: float = Field(ge=0)
    currency: str | None = None
    source: str | None = None
    as_of: date | None = None

    @field_validator("cloud")
    @classmethod
    def _upper_cloud(cls, cloud: str | None) -> str | None:
        return cloud.upper() if cloud else None

    def check(self) -> None:
        if self.kind in ("node_type", "sku") and not self.cloud:
            raise ValueError(f"cloud is required for kind {self.kind} (AWS, AZURE or GCP)")
        if self.cloud is not None and self.cloud not in CLOUDS:
            raise ValueError(f"cloud {self.cloud!r} is not one of {', '.join(CLOUDS)}")


def parse_rates(text: str, origin: str) -> list[Rate]:
    """Validate a rate card CSV; every problem is reported with its line number."""
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in reader.fieldnames or []]
    missing = [c for c in REQUIRED_RATE_COLUMNS if c not in header]
    unknown = [c for c in header if c not in RATE_COLUMNS]
    if missing or unknown:
        raise UsageError(
            f"{origin}: the rate card needs the columns {', '.join(REQUIRED_RATE_COLUMNS)}"
            f" (optional: cloud, currency, source, as_of);"
            + (f" missing: {', '.join(missing)}" if missing else "")
            + (f" unknown: {', '.join(unknown)}" if unknown else "")
        )
    rates: list[Rate] = []
    problems: list[str] = []
    for line_no, row in enumerate(reader, start=2):
        values = {k.strip(): (v.strip() or None) for k, v in row.items() if k and v is not None}
        try:
            rate = Rate.model_validate(values)
            rate.check()
        except ValidationError as exc:
            details = "; ".join(
                f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
            )
            problems.append(f"line {line_no}: {details}")
            continue
        except ValueError as exc:
            problems.append(f"line {line_no}: {exc}")
            continue
        rates.append(rate)
    if problems:
        raise UsageError(f"{origin}: invalid rate card rows:\n  " + "\n  ".join(problems[:20]))
    return rates


def _upsert_rates(con: duckdb.DuckDBPyConnection, rates: Iterable[Rate]) -> int:
    """Replace the rate card rows with the keys of `rates` by `rates`, in one transaction."""
    columns = list(TABLES["rate_card"])
    rows = [{c: getattr(rate, c) for c in columns} for rate in rates]
    batch = pa.Table.from_pylist(
        rows,
        schema=pa.schema(
            [
                (c, pa.float64() if c == "value" else pa.date32() if c == "as_of" else pa.string())
                for c in columns
            ]
        ),
    )
    key_match = " AND ".join(f'r."{k}" IS NOT DISTINCT FROM b."{k}"' for k in KEYS["rate_card"])
    names = ", ".join(f'"{c}"' for c in columns)
    con.execute("BEGIN TRANSACTION")
    try:
        con.register("rate_batch", batch)
        con.execute(
            f"DELETE FROM rate_card r WHERE EXISTS (SELECT 1 FROM rate_batch b WHERE {key_match})"
        )
        con.execute(f"INSERT INTO rate_card ({names}) SELECT {names} FROM rate_batch")
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    finally:
        con.unregister("rate_batch")
    return len(rows)


def shipped_rate_card_text() -> str:
    """The rate card CSV that ships with the package."""
    resource = importlib.resources.files("extractor") / "data" / "rate_card.csv"
    return resource.read_text(encoding="utf-8")


def load_shipped_rate_card(con: duckdb.DuckDBPyConnection) -> int:
    """Insert (or refresh) the shipped rate card rows; user rows with other keys are kept."""
    return _upsert_rates(con, parse_rates(shipped_rate_card_text(), "rate_card.csv"))


# Tables the views read that an older store may lack, or that a read-only store cannot fill.
# clusters too: the views cost all-purpose work from it, and a lake export does not carry it.
COST_TABLES = (
    "rate_card",
    "billing_usage",
    "list_prices",
    "clusters",
    "instance_pools",
    "node_types",
    "cluster_workers",
)


def ensure_cost_tables(con: duckdb.DuckDBPyConnection, *, temporary: bool = False) -> None:
    """Give the connection every cost table and a seeded rate card.

    With `temporary` (a read-only store) what the store lacks is created as TEMP tables of this
    connection, and an empty rate card is shadowed by a seeded TEMP one.
    """
    existing = table_names(con)
    for table in COST_TABLES:
        if table not in existing:
            con.execute(table_ddl(table, temporary=temporary))
    if row_count(con, "rate_card") == 0:
        if temporary and "rate_card" in existing:
            # The store's empty table cannot be written: shadow it with a seeded temp table.
            con.execute(table_ddl("rate_card", temporary=True))
        load_shipped_rate_card(con)


def import_rates(con: duckdb.DuckDBPyConnection, path: str | Path) -> int:
    """Load negotiated prices or DBU rates from a CSV; rows replace those with the same key.

    Columns: kind, name, value (required); cloud (required for node_type and sku), currency,
    source, as_of (YYYY-MM-DD). Returns the number of rows loaded.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise UsageError(f"cannot read the rate card {path}: {exc.strerror or exc}") from exc
    rates = parse_rates(text, str(path))
    for rate in rates:
        if rate.source is None:
            rate.source = f"imported from {path.name}"
    owe_refresh(con)
    count = _upsert_rates(con, rates)
    _refresh_costs(con)
    return count


def _refresh_costs(con: duckdb.DuckDBPyConnection) -> None:
    """Prices changed for every run: rebuild the materialized views if the store has them."""
    if has_materialized(con):
        refresh_materialized(con, None)


# --- billing exports -------------------------------------------------------------------------

# The struct and map columns of system.billing.usage and list_prices: a Databricks SQL download
# holds them as JSON text, the form the loader reads (and `billing sync` asks for).
JSON_COLUMNS = frozenset(
    {"custom_tags", "usage_metadata", "identity_metadata", "product_features", "pricing"}
)


def _reader(path: Path) -> str:
    name = path.name.lower()
    literal = "'" + str(path).replace("'", "''") + "'"
    if name.endswith((".parquet", ".pq")):
        return f"read_parquet({literal})"
    if name.endswith((".csv", ".csv.gz", ".tsv")):
        return f"read_csv({literal}, header = true, all_varchar = true)"
    raise UsageError(f"{path}: expected a .csv or .parquet export")


def _source_columns(con: duckdb.DuckDBPyConnection, source: str) -> dict[str, str]:
    try:
        rows = con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()
    except duckdb.Error as exc:
        raise UsageError(f"cannot read the export: {exc}") from exc
    return {str(r[0]).lower(): str(r[1]).upper() for r in rows}


def _json(column: str, types: Mapping[str, str]) -> str:
    """A struct/map column as JSON text: Parquet keeps structs, CSV exports hold JSON text."""
    if column not in types:
        return "NULL"
    if types[column] in ("VARCHAR", "JSON"):
        return f"CAST(nullif({column}, '') AS JSON)"
    return f"to_json({column})"


def _billing_expressions(types: Mapping[str, str]) -> dict[str, str]:
    meta = _json("usage_metadata", types)
    identity = _json("identity_metadata", types)
    features = _json("product_features", types)

    def col(name: str, sql_type: str) -> str:
        return f"CAST({name} AS {sql_type})" if name in types else "NULL"

    return {
        "workspace_id": col("workspace_id", "VARCHAR"),
        "record_id": col("record_id", "VARCHAR"),
        "account_id": col("account_id", "VARCHAR"),
        "sku_name": col("sku_name", "VARCHAR"),
        "cloud": col("cloud", "VARCHAR"),
        "usage_start_time": col("usage_start_time", "TIMESTAMPTZ"),
        "usage_end_time": col("usage_end_time", "TIMESTAMPTZ"),
        "usage_date": col("usage_date", "DATE"),
        "usage_unit": col("usage_unit", "VARCHAR"),
        "usage_quantity": col("usage_quantity", "DOUBLE"),
        "record_type": col("record_type", "VARCHAR"),
        "billing_origin_product": col("billing_origin_product", "VARCHAR"),
        "usage_type": col("usage_type", "VARCHAR"),
        "job_id": f"TRY_CAST(json_extract_string({meta}, '$.job_id') AS BIGINT)",
        "job_run_id": f"TRY_CAST(json_extract_string({meta}, '$.job_run_id') AS BIGINT)",
        "cluster_id": f"json_extract_string({meta}, '$.cluster_id')",
        "node_type": f"json_extract_string({meta}, '$.node_type')",
        "run_as": f"json_extract_string({identity}, '$.run_as')",
        "is_serverless": f"TRY_CAST(json_extract_string({features}, '$.is_serverless') AS BOOLEAN)",
        "is_photon": f"TRY_CAST(json_extract_string({features}, '$.is_photon') AS BOOLEAN)",
        "custom_tags": _json("custom_tags", types),
        "usage_metadata": meta,
        "identity_metadata": identity,
        "product_features": features,
        "ingestion_date": col("ingestion_date", "DATE"),
    }


def _list_price_expressions(types: Mapping[str, str]) -> dict[str, str]:
    pricing = _json("pricing", types)

    def col(name: str, sql_type: str, default: str = "NULL") -> str:
        return f"CAST({name} AS {sql_type})" if name in types else default

    return {
        "account_id": col("account_id", "VARCHAR"),
        "sku_name": col("sku_name", "VARCHAR"),
        "cloud": col("cloud", "VARCHAR"),
        "currency_code": col("currency_code", "VARCHAR", "'USD'"),
        "usage_unit": col("usage_unit", "VARCHAR", "'DBU'"),
        "price_start_time": col("price_start_time", "TIMESTAMPTZ"),
        "price_end_time": "CAST(nullif(CAST(price_end_time AS VARCHAR), '') AS TIMESTAMPTZ)"
        if "price_end_time" in types
        else "NULL",
        "default_price": f"TRY_CAST(json_extract_string({pricing}, '$.default') AS DOUBLE)",
        "effective_list_price": (
            f"TRY_CAST(json_extract_string({pricing}, '$.effective_list.default') AS DOUBLE)"
        ),
        "pricing": pricing,
    }


# The system table each import reads an export of.
_SOURCE = {"billing_usage": "usage", "list_prices": "list_prices"}


def _import(
    con: duckdb.DuckDBPyConnection,
    path: str | Path,
    table: str,
    required: tuple[str, ...],
    expressions: Callable[[Mapping[str, str]], dict[str, str]],
    check: Callable[[duckdb.DuckDBPyConnection, str, Path], None] | None = None,
) -> int:
    path = Path(path)
    if not any(ch in str(path) for ch in "*?[") and not path.exists():
        raise UsageError(f"{path}: no such file")
    source = _reader(path)
    types = _source_columns(con, source)
    missing = [c for c in required if c not in types]
    if missing:
        raise InputError(
            f"{path}: not an export of system.billing.{_SOURCE[table]}; missing columns: {', '.join(missing)}"
        )
    if check is not None:
        check(con, source, path)
    owe_refresh(con)
    count = _load(con, source, types, table, expressions, str(path))
    _refresh_costs(con)
    return count


def _load(
    con: duckdb.DuckDBPyConnection,
    source: str,
    types: Mapping[str, str],
    table: str,
    expressions: Callable[[Mapping[str, str]], dict[str, str]],
    origin: str,
) -> int:
    """Replace the rows of `table` that `source` has (same key) by its rows; returns its count."""
    exprs = expressions(types)
    select = ", ".join(f'{expr} AS "{name}"' for name, expr in exprs.items())
    same_key = " AND ".join(f't."{k}" IS NOT DISTINCT FROM s."{k}"' for k in KEYS[table])
    staged = f"_jobruns_import_{table}"
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(f"CREATE OR REPLACE TEMP TABLE {staged} AS SELECT {select} FROM {source}")
        con.execute(
            f"DELETE FROM {table} AS t WHERE EXISTS (SELECT 1 FROM {staged} AS s WHERE {same_key})"
        )
        columns = ", ".join(f'"{c}"' for c in TABLES[table])
        con.execute(f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {staged}")
        count = int(con.execute(f"SELECT count(*) FROM {staged}").fetchall()[0][0])
        con.execute(f"DROP TABLE {staged}")
        con.execute("COMMIT")
    except duckdb.Error as exc:
        con.execute("ROLLBACK")
        raise UsageError(f"{origin}: cannot import into {table}: {exc}") from exc
    return count


def load_system_tables(
    con: duckdb.DuckDBPyConnection, usage: pa.Table, prices: pa.Table, *, origin: str
) -> tuple[int, int]:
    """Load rows read from system.billing.usage and list_prices (struct and map columns as
    JSON text) as the imports of their exports do; returns the rows of each now stored."""
    counts = []
    owe_refresh(con)
    for table, data, expressions in (
        ("billing_usage", usage, _billing_expressions),
        ("list_prices", prices, _list_price_expressions),
    ):
        view = f"_jobruns_sync_{table}"
        con.register(view, data)
        try:
            types = _source_columns(con, view)
            counts.append(_load(con, view, types, table, expressions, origin))
        finally:
            con.unregister(view)
    _refresh_costs(con)
    return counts[0], counts[1]


def _check_quantities(con: duckdb.DuckDBPyConnection, source: str, path: Path) -> None:
    """Refuse a usage_quantity that is empty, not a number, or negative outside a RETRACTION
    (a correction is a negative RETRACTION plus a RESTATEMENT), naming the lines."""
    csv_file = not path.name.lower().endswith((".parquet", ".pq"))
    has_type = "record_type" in _source_columns(con, source)
    record_type = "upper(CAST(record_type AS VARCHAR))" if has_type else "NULL"
    rows = con.execute(
        "SELECT n, q FROM (SELECT row_number() OVER () AS n, CAST(usage_quantity AS VARCHAR) AS q,"
        f" TRY_CAST(usage_quantity AS DOUBLE) AS v, {record_type} AS t FROM {source})"
        " WHERE v IS NULL OR (v < 0 AND t IS DISTINCT FROM 'RETRACTION') ORDER BY n LIMIT 21"
    ).fetchall()
    if not rows:
        return
    # A CSV's first line is its header; a Parquet file has rows, not lines.
    where = [f"line {int(n) + 1}" if csv_file else f"row {n}" for n, _ in rows[:20]]
    shown = [
        f"{w}: usage_quantity {q!r} is not a number"
        if q is None or _not_number(q)
        else f"{w}: usage_quantity {q} is negative in a row that is not a RETRACTION"
        for w, (_, q) in zip(where, rows, strict=False)
    ]
    more = "\n  ..." if len(rows) > 20 else ""
    raise InputError(f"{path}: invalid usage quantities:\n  " + "\n  ".join(shown) + more)


def _not_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return True
    return False


def import_billing(con: duckdb.DuckDBPyConnection, path: str | Path) -> int:
    """Load an export of system.billing.usage (CSV or Parquet); rows replace same record_id.

    Rows of every workspace are kept, each under its workspace_id. A file with an empty,
    non-numeric or (outside a RETRACTION) negative usage_quantity is refused whole.
    """
    required = ("workspace_id", "record_id", "sku_name", "usage_start_time", "usage_quantity")
    return _import(
        con,
        path,
        "billing_usage",
        (*required, "usage_metadata"),
        _billing_expressions,
        _check_quantities,
    )


def import_list_prices(con: duckdb.DuckDBPyConnection, path: str | Path) -> int:
    """Load an export of system.billing.list_prices (CSV or Parquet)."""
    required = ("sku_name", "cloud", "price_start_time", "pricing")
    return _import(con, path, "list_prices", required, _list_price_expressions)


__all__ = [
    "Rate",
    "import_billing",
    "import_list_prices",
    "import_rates",
    "load_shipped_rate_card",
    "load_system_tables",
    "parse_rates",
    "shipped_rate_card_text",
]
