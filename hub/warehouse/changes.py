"""Upsert by primary key: the change set computed with DuckDB against the current snapshot.

The rows read in a run are first staged as Parquet files (not yet part of the table). DuckDB then

1. keeps the last staged row of every key, when the source repeats a key (the later row wins),
2. finds the changed keys: staged keys absent from the current snapshot, or whose row differs from the
   current one (compared through a 64-bit hash of all columns, so only keys and hashes are joined),
3. finds the current data files that hold a changed key, and
4. rewrites only those files: their unchanged rows plus the new rows of the changed keys, into one new
   file written by DuckDB itself (zstd, with the table's Iceberg field ids).

The caller commits one overwrite snapshot that removes the affected files and adds the new one, so a
run that changes nothing commits no data, and a first load with unique keys commits the staged files
as they are.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa
from pyiceberg.manifest import DataFile
from pyiceberg.table import Table

from hub.warehouse.engine.duck import connect
from hub.warehouse.tables import file_schema, local_path
from hub.warehouse.writer import FileSink, data_file

BATCH_ROWS = 131_072


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def sql_list(paths: Sequence[str]) -> str:
    return "[" + ", ".join("'" + p.replace("'", "''") + "'" for p in paths) + "]"


def duck(memory_limit: str = "512MB", threads: int = 2) -> duckdb.DuckDBPyConnection:
    """The data path's DuckDB instance (the hub's one factory, with file access: it reads the staged
    files the hub wrote); only SQL the hub writes runs on it."""
    return connect(file_access=True, memory_limit=memory_limit, threads=threads)


def _count(con: duckdb.DuckDBPyConnection, sql: str) -> int:
    rows = con.execute(sql).fetchall()
    return int(rows[0][0]) if rows else 0


@dataclass
class UpsertPlan:
    add: list[DataFile] = field(default_factory=list)
    delete: list[DataFile] = field(default_factory=list)
    inserted: int = 0
    updated: int = 0

    @property
    def changed(self) -> int:
        return self.inserted + self.updated


def _field_ids(schema: pa.Schema) -> str | None:
    """DuckDB's ``FIELD_IDS`` option for a flat schema; None when a column is nested."""
    parts = []
    for f in schema:
        if pa.types.is_nested(f.type) or f.metadata is None or b"PARQUET:field_id" not in f.metadata:
            return None
        parts.append(f"{quote(f.name)}: {int(f.metadata[b'PARQUET:field_id'])}")
    return "{" + ", ".join(parts) + "}"


def write_query(con: duckdb.DuckDBPyConnection, query: str, table: Table, path: Path) -> list[DataFile]:
    """Write the rows of ``query`` as a data file of ``table`` at ``path`` (DuckDB's own Parquet writer
    for flat schemas, the streaming Arrow writer otherwise)."""
    ids = _field_ids(file_schema(table))
    if ids is None:
        sink = FileSink(table, path.parent, path.stem)
        for batch in con.sql(query).to_arrow_reader(BATCH_ROWS):
            sink.write(batch)
        return sink.close()
    literal = str(path).replace("'", "''")
    con.execute(
        f"COPY ({query}) TO '{literal}' "
        f"(FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL 1, ROW_GROUP_SIZE {BATCH_ROWS}, "
        f"FIELD_IDS {ids})"
    )
    return [data_file(table, path)]


def upsert(
    staged: Sequence[DataFile],
    current: Sequence[DataFile],
    key: Sequence[str],
    table: Table,
    out: Path,
) -> UpsertPlan:
    """The files of an upsert of the ``staged`` files into ``current``; new data goes to ``out``."""
    plan = UpsertPlan()
    if not staged:
        return plan
    columns = table.schema().column_names
    cols = ", ".join(quote(c) for c in columns)
    keys = ", ".join(quote(k) for k in key)
    staged_paths = [local_path(f.file_path) for f in staged]
    con = duck()
    con.execute("SET preserve_insertion_order = false")  # row order is not part of a table: write in parallel
    try:
        source = f"read_parquet({sql_list(staged_paths)}, filename = true, file_row_number = true)"
        # one scan of the staged rows: key, row hash and position (file, row) of each
        con.execute(
            f"CREATE TEMP TABLE st AS SELECT {keys}, hash({cols}) AS _h, filename AS _f, "
            f"file_row_number AS _r FROM {source}"
        )
        duplicates = _count(con, f"SELECT count(*) - count(DISTINCT ({keys})) FROM st")
        if duplicates:  # the later row of a repeated key wins
            con.execute(
                "CREATE OR REPLACE TEMP TABLE st AS SELECT * FROM st QUALIFY row_number() OVER "
                f"(PARTITION BY {keys} ORDER BY _f DESC, _r DESC) = 1"
            )
        staged_rows = (
            f"SELECT {cols} FROM {source} SEMI JOIN {{pick}} p ON p._f = filename AND p._r = file_row_number"
        )
        if not current:
            plan.inserted = _count(con, "SELECT count(*) FROM st")
            plan.add = (
                list(staged)
                if not duplicates
                else write_query(con, staged_rows.format(pick="st"), table, out)
            )
            return plan
        current_paths = [local_path(f.file_path) for f in current]
        con.execute(
            f"CREATE TEMP TABLE cur AS SELECT {keys}, hash({cols}) AS _h, filename "
            f"FROM read_parquet({sql_list(current_paths)}, filename = true, union_by_name = true)"
        )
        con.execute(
            f"CREATE TEMP TABLE changed AS SELECT {keys}, _f, _r FROM st ANTI JOIN cur USING ({keys}, _h)"
        )
        changed = _count(con, "SELECT count(*) FROM changed")
        if changed == 0:
            return plan
        plan.updated = _count(con, f"SELECT count(*) FROM changed SEMI JOIN cur USING ({keys})")
        plan.inserted = changed - plan.updated
        affected = [
            r[0]
            for r in con.execute(
                f"SELECT DISTINCT filename FROM cur SEMI JOIN changed USING ({keys})"
            ).fetchall()
        ]
        by_path = {local_path(f.file_path): f for f in current}
        plan.delete = [by_path[p] for p in affected]
        query = staged_rows.format(pick="changed")
        if affected:
            query = (
                f"SELECT {cols} FROM read_parquet({sql_list(affected)}, union_by_name = true) "
                f"ANTI JOIN changed USING ({keys}) "
                f"UNION ALL {query}"
            )
        plan.add = write_query(con, query, table, out)
        return plan
    finally:
        con.close()


def replace_changes(
    staged: Sequence[DataFile], current: Sequence[DataFile], primary_key: Sequence[str]
) -> dict[str, int]:
    """What a replace run changes by primary key: keys ``added`` to and ``deleted`` from the table.

    A key of the current snapshot that the new read no longer has was deleted at the source; the
    replace snapshot drops it, and the run reports how many there were.
    """
    if not primary_key or not current:
        return {}
    new = sql_list([local_path(f.file_path) for f in staged])
    old = sql_list([local_path(f.file_path) for f in current])
    keys = ", ".join(quote(k) for k in primary_key)
    con = duck()
    try:
        scan = "SELECT DISTINCT {keys} FROM read_parquet({files}, union_by_name = true)"
        con.execute("CREATE TEMP TABLE old_k AS " + scan.format(keys=keys, files=old))
        if staged:
            con.execute("CREATE TEMP TABLE new_k AS " + scan.format(keys=keys, files=new))
        else:
            con.execute("CREATE TEMP TABLE new_k AS SELECT * FROM old_k WHERE false")
        minus = "SELECT count(*) FROM (SELECT {k} FROM {a} EXCEPT SELECT {k} FROM {b})"
        deleted = _count(con, minus.format(k=keys, a="old_k", b="new_k"))
        added = _count(con, minus.format(k=keys, a="new_k", b="old_k"))
    finally:
        con.close()
    return {"added": added, "deleted": deleted}
