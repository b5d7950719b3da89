"""Schema versions of the store and the steps between them.

Each migration moves a store from one version to the next in place, without losing rows.
A store written by a newer jobruns is refused rather than guessed at.
"""

from __future__ import annotations

import duckdb

from extractor.errors import StoreError
from extractor.schema import SCHEMA_VERSION, TABLES


def stored_version(con: duckdb.DuckDBPyConnection) -> int | None:
    """The schema version recorded in the file, None for a file jobruns never wrote."""
    has_meta = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'jobruns_meta'"
    ).fetchone()
    if not has_meta or has_meta[0] == 0:
        return None
    row = con.execute("SELECT value FROM jobruns_meta WHERE key = 'schema_version'").fetchone()
    return None if row is None else int(row[0])


def _add_missing_columns(con: duckdb.DuckDBPyConnection) -> None:
    """Additive evolution: columns the current schema has and the file lacks are added (NULL)."""
    for table, columns in TABLES.items():
        have = {
            r[0]
            for r in con.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = ?", [table]
            ).fetchall()
        }
        for column, sql_type in columns.items():
            if have and column not in have:
                con.execute(f'ALTER TABLE {table} ADD COLUMN "{column}" {sql_type}')


def migrate(con: duckdb.DuckDBPyConnection) -> int:
    """Bring the schema to SCHEMA_VERSION; returns the version found before (0 for a new file)."""
    from extractor.store import create_tables

    version = stored_version(con)
    if version is not None and version > SCHEMA_VERSION:
        raise StoreError(
            f"this store was written by a newer jobruns (schema version {version}; this jobruns "
            f"knows up to {SCHEMA_VERSION}); upgrade jobruns to use it"
        )
    if version is None:
        user_tables = con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_name IN ('runs', 'tasks')"
        ).fetchall()
        if user_tables:
            raise StoreError(
                "this DuckDB file has tables named like jobruns' but no jobruns schema version; "
                "pass another --db path"
            )
    _add_missing_columns(con)
    create_tables(con)
    con.execute(
        "UPDATE jobruns_meta SET value = ? WHERE key = 'schema_version'", [str(SCHEMA_VERSION)]
    )
    return version or 0
