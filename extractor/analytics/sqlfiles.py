"""The view definitions in sql/: one SELECT per file, read in dependency order.

Files live in sql/staging, sql/intermediate and sql/marts; each is named NNN_view_name.sql (the
number orders them), its leading `-- ` comment is the view's description, and a header line
`-- materialized: <column>` marks a view whose rows are kept in a table (see materialize);
`-- materialized: *` one kept whole, rebuilt only by a full refresh (a snapshot across runs).
This module only reads files; it never opens a store.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import re
from dataclasses import dataclass
from pathlib import Path

from extractor.errors import StoreError

# materialized_by of a view kept whole: its rows span runs (e.g. calibration factors).
WHOLE = "*"
_FILE_NAME = re.compile(r"^(?P<order>\d+)_(?P<name>[a-z][a-z0-9_]*)\.sql$")
_MATERIALIZED = re.compile(r"^materialized:\s*(?P<key>[a-z_]+|\*)\s*$")
LAYERS = ("staging", "intermediate", "marts")


@dataclass(frozen=True)
class ViewFile:
    """One sql/ file: the view it defines, what it answers, and its SELECT.

    `materialized_by` names the column holding the job run each row belongs to when the view's
    rows are kept in a table mat_<name>; WHOLE for a view kept whole (a partial refresh reads
    its rows as they are); None for a plain view.
    """

    name: str
    description: str
    sql: str
    layer: str = "marts"
    materialized_by: str | None = None


def sql_dir() -> Path:
    """The sql/ directory: extractor/sql inside an installed wheel, else repo_root/sql."""
    packaged = importlib.resources.files("extractor") / "sql"
    if packaged.is_dir():
        return Path(str(packaged))
    return Path(__file__).resolve().parents[2] / "sql"


def sql_text(name: str) -> str:
    """A statement file of sql/ that is not a view (e.g. materialize_scope.sql)."""
    return (sql_dir() / name).read_text(encoding="utf-8")


def view_files(directory: Path | None = None) -> list[ViewFile]:
    """The view files of every layer in dependency order (their numeric prefix)."""
    directory = directory or sql_dir()
    found: list[tuple[int, ViewFile]] = []
    for layer in LAYERS:
        for path in (directory / layer).glob("*.sql"):
            match = _FILE_NAME.match(path.name)
            if match is None:
                raise StoreError(f"{layer}/{path.name}: view files are named NNN_view_name.sql")
            text = path.read_text(encoding="utf-8")
            found.append((int(match["order"]), _parse(match["name"], layer, text)))
    if not found:
        raise StoreError(f"no view definitions found in {directory}")
    return [view for _, view in sorted(found, key=lambda item: (item[0], item[1].name))]


def _parse(name: str, layer: str, text: str) -> ViewFile:
    lines = text.splitlines()
    header = []
    for line in lines:
        if not line.startswith("--"):
            break
        header.append(line.removeprefix("--").strip())
    body = "\n".join(lines[len(header) :]).strip().rstrip(";").strip()
    key = None
    comment = []
    for line in header:
        directive = _MATERIALIZED.match(line)
        if directive:
            key = directive["key"]
        else:
            comment.append(line)
    return ViewFile(name, " ".join(comment), body, layer, key)


def list_views() -> list[tuple[str, str]]:
    """(name, description) of every view, in dependency order."""
    return [(view.name, view.description) for view in view_files()]


def materialized() -> dict[str, str]:
    """The materialized views, each with the column naming its job run, in dependency order."""
    return {v.name: v.materialized_by for v in view_files() if v.materialized_by is not None}


def views_digest() -> str:
    """A digest of every view definition: a store whose views carry it needs no re-creation."""
    text = "\n".join(f"{v.name}\n{v.materialized_by}\n{v.sql}" for v in view_files())
    return hashlib.sha256(text.encode()).hexdigest()[:32]
