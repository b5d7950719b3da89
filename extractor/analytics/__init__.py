"""Pure analytics helpers over extracted data: no I/O beyond packaged files, no DuckDB."""
