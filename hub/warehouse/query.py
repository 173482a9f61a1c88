"""DuckDB over the warehouse: one view per dataset, over the Parquet files of a snapshot.

``connect(warehouse)`` returns an in-memory DuckDB connection with a schema per namespace and a view
per dataset named by its key (``civil_status.births``), reading the files of the current snapshot, or
of an earlier one with ``as_of={"civil_status.births": "<snapshot id or ISO time>"}``. A table that has
no rows yet is a view with the right columns and no rows. The helpers (``dataset_views``,
``view_sql``) are shared with the API's SQL sandbox (``hub.warehouse.sandbox``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import duckdb
import pyarrow as pa

from hub.errors import NotFoundError, QueryError
from hub.warehouse.changes import duck, quote, sql_list
from hub.warehouse.tables import QUARANTINE_SUFFIX, Warehouse, local_path, split_key


@dataclass(frozen=True)
class DatasetView:
    """What a view of one dataset reads: its key, snapshot, files and columns."""

    key: str
    snapshot_id: int | None
    files: tuple[str, ...]
    schema: pa.Schema

    @property
    def namespace(self) -> str:
        return split_key(self.key)[0]

    @property
    def name(self) -> str:
        return split_key(self.key)[1]


def _duck_types(con: duckdb.DuckDBPyConnection, schema: pa.Schema) -> list[str]:
    rel = con.from_arrow(schema.empty_table())
    return [str(t) for t in rel.types]


def view_sql(con: duckdb.DuckDBPyConnection, view: DatasetView, name: str | None = None) -> str:
    """``CREATE VIEW`` text of ``view`` (default name: ``"<namespace>"."<table>"``)."""
    target = name or f"{quote(view.namespace)}.{quote(view.name)}"
    if view.files:
        # union_by_name: files written before a column was added to the table read it as NULL
        return (
            f"CREATE OR REPLACE VIEW {target} AS SELECT * FROM "
            f"read_parquet({sql_list(view.files)}, union_by_name = true)"
        )
    cols = ", ".join(
        f"CAST(NULL AS {t}) AS {quote(f.name)}"
        for f, t in zip(view.schema, _duck_types(con, view.schema), strict=True)
    )
    return f"CREATE OR REPLACE VIEW {target} AS SELECT {cols} WHERE false"


def dataset_view(warehouse: Warehouse, key: str, as_of: str | int | None = None) -> DatasetView:
    """The files and schema of ``key`` at its current snapshot, or at ``as_of``."""
    table = warehouse.table(key)  # loaded once: every answer below comes from the same metadata
    snapshot_id = None if as_of is None else warehouse.resolve_as_of(key, str(as_of), table)
    if snapshot_id is None:
        snap = table.current_snapshot()
        snapshot_id = snap.snapshot_id if snap else None
    entries = warehouse.data_file_entries(table, snapshot_id) if snapshot_id is not None else []
    files = tuple(local_path(f.file_path) for f in entries)
    return DatasetView(
        key=key, snapshot_id=snapshot_id, files=files, schema=warehouse.arrow_schema(key, table)
    )


def quarantine_view(warehouse: Warehouse, key: str) -> DatasetView:
    """The current rows of the dataset's quarantine table (empty when nothing was ever rejected)."""
    from hub.warehouse.quarantine import QUARANTINE_TABLE_SCHEMA

    return DatasetView(
        key=f"{key}{QUARANTINE_SUFFIX}",
        snapshot_id=None,
        files=tuple(warehouse.quarantine_files(key)),
        schema=QUARANTINE_TABLE_SCHEMA,
    )


def dataset_views(
    warehouse: Warehouse, keys: Iterable[str] | None = None, as_of: Mapping[str, str | int] | None = None
) -> list[DatasetView]:
    """Views of ``keys`` (default: every dataset with a table); ``as_of`` maps a key to a snapshot/time."""
    wanted = list(keys) if keys is not None else warehouse.keys()
    unknown = set(as_of or {}) - set(wanted)
    if unknown:
        raise QueryError(f"--as-of names datasets that are not queried: {', '.join(sorted(unknown))}")
    return [dataset_view(warehouse, key, (as_of or {}).get(key)) for key in wanted]


def connect(
    warehouse: Warehouse,
    keys: Iterable[str] | None = None,
    as_of: Mapping[str, str | int] | None = None,
    *,
    memory_limit: str = "1GB",
) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with a view per dataset, named by its key (schema = namespace)."""
    con = duck(memory_limit=memory_limit)
    try:
        for view in dataset_views(warehouse, keys, as_of):
            con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(view.namespace)}")
            con.execute(view_sql(con, view))
    except Exception:
        con.close()
        raise
    return con


def run_sql(
    warehouse: Warehouse,
    sql: str,
    as_of: Mapping[str, str | int] | None = None,
    *,
    max_rows: int | None = None,
) -> pa.Table:
    """Run ``sql`` over every dataset (``hub query``); DuckDB errors become ``QueryError``."""
    con = connect(warehouse, None, None)
    try:
        if as_of:
            for key, value in as_of.items():
                if not warehouse.has_table(key):
                    raise NotFoundError(f"dataset {key!r} has no table yet (run `hub ingest {key}`)")
                con.execute(view_sql(con, dataset_view(warehouse, key, value)))
        try:
            relation = con.sql(sql)
            if relation is None:  # a statement without a result (SET, CREATE VIEW, ...)
                return pa.table({})
            reader = relation.to_arrow_reader(65_536)
            batches = []
            rows = 0
            for batch in reader:
                batches.append(batch)
                rows += batch.num_rows
                if max_rows is not None and rows >= max_rows:
                    break
            table = pa.Table.from_batches(batches, schema=reader.schema)
        except duckdb.Error as exc:
            raise QueryError(f"{type(exc).__name__}: {exc}") from exc
        return table.slice(0, max_rows) if max_rows is not None else table
    finally:
        con.close()
