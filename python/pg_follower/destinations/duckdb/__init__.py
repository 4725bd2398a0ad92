"""An embedded DuckDB copy of the published tables (``pg-follower duckdb``)."""

from pg_follower.destinations.duckdb.destination import DuckDBDestination

__all__ = ["DuckDBDestination"]
