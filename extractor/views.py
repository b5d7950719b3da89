"""The analytics views: load sql/*.sql in order and open a store with them ready.

Each file holds one SELECT; its name (without the numeric prefix that orders the files) is the
view's name and its leading `-- ` comment the view's description. This module never writes run
data: at most it seeds the rate card and creates views.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import re
from dataclasses import dataclass
from pathlib import Path

import duckdb

from extractor.errors import StoreError
from extractor.schema import TABLES

_FILE_NAME = re.compile(r"^(?P<order>\d+)_(?P<name>[a-z][a-z0-9_]*)\.sql$")

# Tables the views read that an older store may lack, or that a read-only store cannot fill.
_COST_TABLES = ("rate_card", "billing_usage", "list_prices")


@dataclass(frozen=True)
class ViewFile:
    """One sql/ file: the view it defines, what it answers, and its SELECT."""

    name: str
    description: str
    sql: str


def sql_dir() -> Path:
    """The sql/ directory: extractor/sql inside an installed wheel, else repo_root/sql."""
    packaged = importlib.resources.files("extractor") / "sql"
    if packaged.is_dir():
        return Path(str(packaged))
    return Path(__file__).resolve().parent.parent / "sql"


def view_files(directory: Path | None = None) -> list[ViewFile]:
    """The view files in dependency order (their numeric prefix)."""
    directory = directory or sql_dir()
    found: list[tuple[int, ViewFile]] = []
    for path in directory.glob("*.sql"):
        match = _FILE_NAME.match(path.name)
        if match is None:
            raise StoreError(f"{path.name}: view files are named NNN_view_name.sql")
        text = path.read_text(encoding="utf-8")
        found.append((int(match["order"]), _parse(match["name"], text)))
    if not found:
        raise StoreError(f"no view definitions found in {directory}")
    return [view for _, view in sorted(found, key=lambda item: (item[0], item[1].name))]


def _parse(name: str, text: str) -> ViewFile:
    lines = text.splitlines()
    comment = []
    for line in lines:
        if not line.startswith("--"):
            break
        comment.append(line.removeprefix("--").strip())
    body = "\n".join(lines[len(comment) :]).strip().rstrip(";").strip()
    return ViewFile(name=name, description=" ".join(comment), sql=body)


def list_views() -> list[tuple[str, str]]:
    """(name, description) of every view, in dependency order."""
    return [(view.name, view.description) for view in view_files()]


def views_digest() -> str:
    """A digest of every view definition: a store whose views carry it needs no re-creation."""
    text = "\n".join(f"{v.name}\n{v.sql}" for v in view_files())
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def views_current(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether the store's own views were created from exactly these definitions."""
    if "jobruns_meta" not in _tables(con):
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
    from extractor.cost import load_shipped_rate_card

    existing = _tables(con)
    for table in _COST_TABLES:
        if table not in existing:
            kind = "TEMP TABLE" if temporary else "TABLE"
            columns = ", ".join(f'"{c}" {t}' for c, t in TABLES[table].items())
            con.execute(f"CREATE {kind} {table} ({columns})")
    if _count(con, "rate_card") == 0:
        if temporary and "rate_card" in existing:
            # The store's empty table cannot be written: shadow it with a seeded temp table.
            columns = ", ".join(f'"{c}" {t}' for c, t in TABLES["rate_card"].items())
            con.execute(f"CREATE TEMP TABLE rate_card ({columns})")
        load_shipped_rate_card(con)
    kind = "TEMP VIEW" if temporary else "VIEW"
    for view in view_files():
        try:
            con.execute(f"CREATE OR REPLACE {kind} {view.name} AS\n{view.sql}")
        except duckdb.Error as exc:
            raise StoreError(f"view {view.name} could not be created: {exc}") from exc


def _tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    rows = con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name IN (current_database(), 'temp')"
    ).fetchall()
    return {str(row[0]) for row in rows}


def _count(con: duckdb.DuckDBPyConnection, table: str) -> int:
    return int(con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0])


def connect(
    db: str | Path | None = None, *, read_only: bool = True, snapshot: bool | None = None
) -> duckdb.DuckDBPyConnection:
    """Open a store with the views ready, e.g. for a notebook.

    `db` None opens an empty in-memory store. A read-only connection (the default) gets the views
    as TEMP views of this connection, so the file is never written; a writable one stores them
    in the file (usable from the duckdb CLI afterwards).

    A read-only connection is by default a snapshot: a private copy of the store as of this call
    (see extractor.store.open_snapshot), so holding it for hours never blocks the extract that
    cron runs. Call connect() again to see newer data. `snapshot=False` reads the file itself,
    which is right for a short query but makes an extract wait while the connection is open.
    """
    from extractor.migrations import check_version, migrate
    from extractor.schema import SCHEMA_VERSION
    from extractor.store import create_tables, open_connection, open_snapshot

    if snapshot is None:
        snapshot = read_only
    try:
        if db is None:
            con = duckdb.connect(":memory:")
            create_tables(con)
            read_only = False
        elif read_only and snapshot:
            con = open_snapshot(Path(db))
        else:
            con = open_connection(Path(db), read_only=read_only)
            if read_only:
                version = check_version(con)
                if version is not None and version < SCHEMA_VERSION:
                    # An older store cannot be migrated read-only: its copy can.
                    con.close()
                    con = open_snapshot(Path(db))
            else:
                con.execute("BEGIN TRANSACTION")
                migrate(con)
                con.execute("COMMIT")
    except duckdb.Error as exc:
        raise StoreError(f"cannot open the store {db}: {exc}") from exc
    if "runs" not in _tables(con):
        con.close()
        raise StoreError(f"{db} is not a jobruns store (no runs table); run `jobruns extract`")
    if not views_current(con):
        # The store's own views are missing or from another jobruns version.
        create_views(con, temporary=read_only)
    return con


__all__ = ["ViewFile", "connect", "create_views", "list_views", "sql_dir", "view_files"]
