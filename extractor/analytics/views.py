"""The store's views: create them from sql/ in order, and keep them current.

Materialized views get their table mat_<view> (filled by extractor.analytics.materialize) and a
view reading it. This module never writes run data: at most it seeds the rate card, creates
views and fills the mat_* tables.
"""

from __future__ import annotations

import duckdb

from extractor.analytics.materialize import refresh_materialized
from extractor.analytics.sqlfiles import view_files, views_digest
from extractor.errors import StoreError
from extractor.schema import table_names


def views_current(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether the store's own views were created from exactly these definitions."""
    if "jobruns_meta" not in table_names(con):
        return False
    row = con.execute("SELECT value FROM jobruns_meta WHERE key = 'views_digest'").fetchall()
    return bool(row) and row[0][0] == views_digest()


def ensure_views(con: duckdb.DuckDBPyConnection) -> bool:
    """Create the views in the store unless they are already current; True when created."""
    if views_current(con):
        return False
    create_views(con)
    con.execute("DELETE FROM jobruns_meta WHERE key = 'views_digest'")
    con.execute("INSERT INTO jobruns_meta VALUES ('views_digest', ?)", [views_digest()])
    return True


def create_views(con: duckdb.DuckDBPyConnection, *, temporary: bool = False) -> None:
    """Create or replace every view in order; seed the rate card when it is empty.

    With `temporary`, the views (and any cost table the store lacks) are created as TEMP objects
    of this connection only, which is how a read-only store gets its views.
    """
    # Here, not at the top: the cost module's price models (pydantic) cost a start from cron,
    # whose store has its views, a twentieth of a second.
    from extractor.analytics.cost import ensure_cost_tables

    ensure_cost_tables(con, temporary=temporary)
    kind = "TEMP VIEW" if temporary else "VIEW"
    for view in view_files():
        try:
            if view.materialized_by is not None:
                table = _mat_table(view.name, temporary)
                # Created empty with the definition's columns; filled below.
                con.execute(
                    f"CREATE OR REPLACE {kind.replace('VIEW', 'TABLE')} mat_{view.name} AS"
                    f" SELECT * FROM ({view.sql}) LIMIT 0"
                )
                con.execute(f"CREATE OR REPLACE {kind} {view.name} AS SELECT * FROM {table}")
            else:
                con.execute(f"CREATE OR REPLACE {kind} {view.name} AS\n{view.sql}")
        except duckdb.Error as exc:
            raise StoreError(f"view {view.name} could not be created: {exc}") from exc
    refresh_materialized(con, None)


def _mat_table(name: str, temporary: bool) -> str:
    return f"temp.main.mat_{name}" if temporary else f"mat_{name}"
