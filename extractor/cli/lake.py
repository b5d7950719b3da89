"""`jobruns export`: the store as Delta or Parquet tables, and the views as Spark SQL."""

from __future__ import annotations

from pathlib import Path

import click

from extractor.cli._common import cli, db_option, db_path, now, stderr
from extractor.errors import UsageError


@cli.command("export")
@click.argument("path")
@click.option(
    "--format", "fmt", type=click.Choice(["delta", "parquet"]), default="delta", show_default=True
)
@click.option("--since", metavar="DATE|DURATION", help="Only runs started since: 2025-05-01, 90d.")
@db_option
@click.option(
    "--batch-rows", type=click.IntRange(100, 1_000_000), default=10_000, show_default=True
)
@click.option(
    "--sql-dialect",
    type=click.Choice(["databricks", "spark"]),
    help="Also write the views as CREATE OR REPLACE VIEW statements in this dialect.",
)
@click.option(
    "--sql-file", type=click.Path(dir_okay=False, path_type=Path), help="Where (- for stdout)."
)
@click.option("--table-prefix", metavar="CATALOG.SCHEMA", help="Qualify tables and views.")
@click.option("--sql-only", is_flag=True, help="Write the SQL file, export no data.")
@click.option("--quiet", "-q", is_flag=True)
def export_command(
    path: str,
    fmt: str,
    since: str | None,
    db: str | None,
    batch_rows: int,
    sql_dialect: str | None,
    sql_file: Path | None,
    table_prefix: str | None,
    sql_only: bool,
    quiet: bool,
) -> None:
    """Export the store to PATH (a folder, s3://, abfss://, gs://) as Delta or Parquet tables."""
    from extractor.config import parse_since
    from extractor.lake.export import export, normalize_destination

    if sql_only and sql_dialect is None:
        raise UsageError("--sql-only needs --sql-dialect databricks or spark")
    script = None
    if sql_dialect is not None:
        # Written after the export, but generated first: a missing sqlglot (or a bad
        # --table-prefix) stops the command before any data is written.
        from extractor.lake.spark_sql import generate_sql

        script = generate_sql(
            sql_dialect,  # type: ignore[arg-type]
            prefix=table_prefix,
            location=normalize_destination(path),
            fmt=fmt,  # type: ignore[arg-type]
        )
    if not sql_only:
        start = parse_since(since, now()) if since else None
        result = export(
            db_path(db),
            path,
            fmt,  # type: ignore[arg-type]
            since=start,
            batch_rows=batch_rows,
            progress=None if quiet else lambda line: stderr.print(line, highlight=False),
        )
        if not quiet:
            stderr.print(
                f"exported {result.rows} rows in {result.partitions} partitions to"
                f" {result.destination} ({fmt}) in {result.duration_s:.1f} s",
                highlight=False,
            )
    if script is not None:
        target = sql_file or Path("jobruns_views.sql")
        if str(target) == "-":
            click.echo(script, nl=False)
        else:
            target.write_text(script, encoding="utf-8")
            if not quiet:
                stderr.print(f"wrote the {sql_dialect} views to {target}", highlight=False)
