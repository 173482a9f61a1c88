"""Snapshots of the warehouse's tables as queries read them, and the operator's query (``hub query``).

``dataset_view(warehouse, key, as_of)`` gives the files and schema of a dataset's current snapshot,
or of an earlier one (``as_of``: a snapshot id or an ISO time); ``run_sql`` runs one SELECT over
every dataset, named by its key (``civil_status.births``), on the locked engine.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pyarrow as pa

from hub.errors import NotFoundError, QueryError
from hub.warehouse.engine import policy
from hub.warehouse.engine.duck import Engine
from hub.warehouse.engine.tables import TableCache, TableSource
from hub.warehouse.tables import Warehouse, local_path, split_key


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


def run_sql(
    warehouse: Warehouse,
    sql: str,
    as_of: Mapping[str, str | int] | None = None,
    *,
    max_rows: int | None = None,
    timeout: float = 600.0,
) -> pa.Table:
    """Run one SELECT over the datasets' current snapshots (or earlier ones, ``as_of``), as an operator.

    This is ``hub query`` (and the tests' way to read tables): every dataset with a table is readable,
    named by its key, but the SQL goes through the same policy and the same locked engine as every
    other door (no file access, tables registered by the hub, one read-only statement). It runs in
    this process and is reached by no network door."""
    settings = warehouse.settings
    tree = policy.parse_select(sql, policy.Limits(settings.query_max_sql_chars, settings.query_max_nesting))
    keys = set(warehouse.keys())
    wanted = dict(as_of or {})
    unknown_as_of = set(wanted) - keys
    if unknown_as_of:
        first = sorted(unknown_as_of)[0]
        raise NotFoundError(f"dataset {first!r} has no table yet (run `hub ingest {first}`)")
    tables: dict[str, TableSource] = {}

    used: set[str] = set()

    def resolve(schema: str | None, name: str, when: str | None) -> str:
        key = f"{schema}.{name}".lower() if schema else ""
        if key not in keys:
            raise policy.unknown(schema, name)
        if when is None and key in wanted:
            when = str(wanted[key])
            used.add(key)
        view = dataset_view(warehouse, key, when)
        engine_name = f"_t{len(tables) + 1}"
        tables[engine_name] = TableSource(key, view.snapshot_id, view.files, view.schema)
        return engine_name

    text, _ = policy.bind(tree, resolve)
    if set(wanted) - used:
        unused = ", ".join(sorted(set(wanted) - used))
        raise QueryError(f"--as-of names datasets that are not queried: {unused}")
    engine = Engine(
        TableCache(0),
        memory_limit=settings.query_memory_limit,
        temp_dir=settings.data_dir / "tmp" / "duckdb",
        timeout=timeout,
    )
    try:
        table = engine.arrow(text, tables=tables)
    finally:
        engine.close()
    return table.slice(0, max_rows) if max_rows is not None else table
