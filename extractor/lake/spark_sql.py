"""The views of sql/ as Spark SQL / Databricks SQL, transpiled from the DuckDB definitions.

sqlglot turns each DuckDB SELECT into the target dialect; the few constructs it cannot carry
over faithfully are rewritten here (OVERRIDES). It never runs SQL and never reads the store.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from extractor._version import __version__
from extractor.analytics.sqlfiles import ViewFile, view_files
from extractor.errors import UsageError
from extractor.extras import needs
from extractor.lake.tables import EXPORT_TABLES, PARTITION_COLUMNS
from extractor.schema import TABLES

with needs(
    "sqlglot",
    ("jobruns[export]", "jobruns[spark]"),
    "writing the views as Spark SQL (--sql-dialect)",
):
    import sqlglot
    from sqlglot import exp

Dialect = Literal["databricks", "spark"]
DIALECTS: tuple[Dialect, ...] = ("databricks", "spark")


def _utc_wall_time(node: exp.Expr) -> exp.Expr:
    # DuckDB `ts AT TIME ZONE 'UTC'` is the UTC wall time of an instant. sqlglot writes
    # FROM_UTC_TIMESTAMP(ts, 'UTC'), which is the identity, so a later CAST AS DATE or
    # date_trunc would use the session time zone. Shifting by the session zone instead gives
    # the UTC day and week whatever the session's time zone is.
    if isinstance(node, exp.AtTimeZone) and node.args["zone"].name.upper() in ("UTC", "Z"):
        return exp.func("to_utc_timestamp", node.this, exp.func("current_timezone"))
    return node


def _exact_percentile(node: exp.Expr) -> exp.Expr:
    # quantile_cont(x, p) becomes PERCENTILE_CONT(x, p), which Spark does not accept in that
    # form; percentile(x, p) is Spark's exact, interpolating percentile (the same definition).
    if isinstance(node, exp.PercentileCont) and node.args.get("expression") is not None:
        return exp.func("percentile", node.this, node.expression)
    return node


def _json_paths(node: exp.Expr) -> exp.Expr:
    # DuckDB's json_extract_string(json, [path, ...]) parses the document once for a list of
    # values; get_json_object takes one path, so the list becomes an array of one call per path
    # (sqlglot already shifts the list's 1-based subscripts to Spark's 0-based ones).
    if isinstance(node, exp.JSONExtractScalar) and isinstance(node.expression, exp.Array):
        calls = [
            exp.JSONExtractScalar(this=node.this.copy(), expression=path.copy())
            for path in node.expression.expressions
        ]
        return exp.Array(expressions=calls)
    return node


# Rewrites applied to every view before generating Spark SQL, with why each is needed.
OVERRIDES: tuple[tuple[str, Callable[[exp.Expr], exp.Expr]], ...] = (
    ("AT TIME ZONE 'UTC' -> to_utc_timestamp(ts, current_timezone())", _utc_wall_time),
    ("quantile_cont(x, p) -> percentile(x, p)", _exact_percentile),
    ("json_extract_string(j, [p, ...]) -> array(get_json_object(j, p), ...)", _json_paths),
)


@dataclass(frozen=True)
class SparkView:
    name: str
    description: str
    sql: str
    # Kept as a table (`-- materialized:` in sql/): Spark inlines a view wherever it is named,
    # and the cost views name their intermediates several times each, so a chain of them as
    # views makes the analyzer's plan grow past any heap. As tables each is computed once.
    materialized: bool = False


def _qualify(tree: exp.Expr, names: set[str], prefix: list[str]) -> None:
    """Prefix references to the store's tables and views, leaving CTEs alone."""
    if not prefix:
        return
    ctes = {cte.alias_or_name for cte in tree.find_all(exp.CTE)}
    for table in tree.find_all(exp.Table):
        if table.name in names and table.name not in ctes and not table.args.get("db"):
            table.set("db", exp.to_identifier(prefix[-1]))
            if len(prefix) == 2:
                table.set("catalog", exp.to_identifier(prefix[0]))


def _parse_prefix(prefix: str | None) -> list[str]:
    parts = [p for p in (prefix or "").split(".") if p]
    if len(parts) > 2 or any(not p.replace("_", "").isalnum() for p in parts):
        raise UsageError(f"table prefix {prefix!r}: expected schema or catalog.schema")
    return parts


def _qualified(name: str, prefix: list[str]) -> str:
    return ".".join([*prefix, name])


def transpile_views(dialect: Dialect = "databricks", prefix: str | None = None) -> list[SparkView]:
    """Every view of sql/, in dependency order, as a SELECT in `dialect`."""
    if dialect not in DIALECTS:
        raise UsageError(f"unknown SQL dialect {dialect!r}; choose {' or '.join(DIALECTS)}")
    parts = _parse_prefix(prefix)
    views = view_files()
    names = set(TABLES) | {v.name for v in views}
    return [_transpile(view, dialect, names, parts) for view in views]


def _transpile(view: ViewFile, dialect: Dialect, names: set[str], prefix: list[str]) -> SparkView:
    tree = sqlglot.parse_one(view.sql, read="duckdb")
    for _, rewrite in OVERRIDES:
        tree = tree.transform(rewrite)
    _qualify(tree, names, prefix)
    sql = tree.sql(dialect=dialect, pretty=True, unsupported_level=sqlglot.ErrorLevel.RAISE)
    return SparkView(
        name=view.name,
        description=view.description,
        sql=sql,
        materialized=view.materialized_by is not None,
    )


def _create_view(view: SparkView, name: str, dialect: Dialect) -> list[str]:
    """The statements that create one view, or the table a materialized view is kept in."""
    if not view.materialized:
        return [f"CREATE OR REPLACE VIEW {name} AS\n{view.sql}"]
    if dialect == "databricks":
        return [f"CREATE OR REPLACE TABLE {name} AS\n{view.sql}"]
    # Spark's session catalog cannot REPLACE a table AS SELECT (only v2 catalogs can).
    return [f"DROP TABLE IF EXISTS {name}", f"CREATE TABLE {name} USING PARQUET AS\n{view.sql}"]


def spark_type(duckdb_type: str) -> str:
    """The Spark SQL type of a store column (JSON is kept as a string)."""
    if duckdb_type == "JSON":
        return "STRING"
    return exp.DataType.build(duckdb_type, dialect="duckdb").sql(dialect="spark")


def spark_table_ddl(
    table: str, location: str, fmt: Literal["delta", "parquet"], prefix: list[str]
) -> list[str]:
    """Statements that register one exported table over its files at `location`."""
    name = _qualified(table, prefix)
    path = f"{location.rstrip('/')}/{table}"
    if fmt == "delta":
        # A Delta table carries its schema and partitioning in its log.
        return [f"CREATE TABLE IF NOT EXISTS {name} USING DELTA LOCATION '{path}'"]
    columns = [f"`{c}` {spark_type(t)}" for c, t in TABLES[table].items()]
    columns += [f"`{c}` STRING" for c in PARTITION_COLUMNS[table] if c not in TABLES[table]]
    partitioned = PARTITION_COLUMNS[table]
    statements = [
        f"CREATE TABLE IF NOT EXISTS {name} (\n  "
        + ",\n  ".join(columns)
        + "\n) USING PARQUET"
        + (f" PARTITIONED BY ({', '.join(partitioned)})" if partitioned else "")
        + f" LOCATION '{path}'"
    ]
    if partitioned:
        # A Parquet table's partitions are found by listing its folders; repeat after exports.
        statements.append(f"MSCK REPAIR TABLE {name}")
    return statements


def generate_sql(
    dialect: Dialect = "databricks",
    *,
    prefix: str | None = None,
    location: str | None = None,
    fmt: Literal["delta", "parquet"] = "delta",
) -> str:
    """A runnable script: optionally the tables over an export at `location`, then the views."""
    parts = _parse_prefix(prefix)
    views = transpile_views(dialect, prefix)
    target = "Databricks SQL" if dialect == "databricks" else "Spark SQL"
    out = [
        f"-- jobruns {__version__}: the jobruns views as {target}, generated from sql/*.sql.",
        "-- Rewrites applied to the DuckDB definitions:",
        *(f"--   {why}" for why, _ in OVERRIDES),
        "",
    ]
    if location is not None:
        out.append(f"-- The tables of the {fmt} export at {location}.")
        for table in EXPORT_TABLES:
            out.extend(
                f"{statement};" for statement in spark_table_ddl(table, location, fmt, parts)
            )
        out.append("")
    if any(view.materialized for view in views):
        out.append(
            "-- Intermediate results the views read are tables, computed when this script runs:"
        )
        out.append("-- run it again after each export to bring them up to date.")
        out.append("")
    for view in views:
        out.append(f"-- {view.description}")
        statements = _create_view(view, _qualified(view.name, parts), dialect)
        out.extend(f"{statement};" for statement in statements)
        out.append("")
    return "\n".join(out)


def split_statements(script: str) -> list[str]:
    """The statements of a generated script, for runners that take one at a time."""
    statements = []
    for chunk in script.split(";\n"):
        code = [line for line in chunk.splitlines() if line.strip() and not line.startswith("--")]
        if code:
            statements.append("\n".join(code))
    return statements


__all__ = [
    "DIALECTS",
    "EXPORT_TABLES",
    "OVERRIDES",
    "PARTITION_COLUMNS",
    "SparkView",
    "generate_sql",
    "spark_table_ddl",
    "spark_type",
    "split_statements",
    "transpile_views",
]
