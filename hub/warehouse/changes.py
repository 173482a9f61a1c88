"""Upsert by primary key: the change set computed with DuckDB against the current snapshot.

The rows read in a run are first staged as Parquet files (not yet part of the table). DuckDB then

1. keeps the last staged row of every key (a source may repeat a key; the later row wins),
2. takes the staged rows that differ from the current snapshot (``EXCEPT``: new keys and changed rows),
3. finds the current data files that hold a changed key, and
4. rewrites only those files: their unchanged rows plus the change set, into new files.

The caller commits one overwrite snapshot that removes the affected files and adds the new ones, so a
run that changes 1% of a large table rewrites a fraction of it, and a run that changes nothing commits
no data at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import duckdb
from pyiceberg.manifest import DataFile

from hub.warehouse.tables import local_path
from hub.warehouse.writer import FileSink

BATCH_ROWS = 131_072


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def sql_list(paths: Sequence[str]) -> str:
    return "[" + ", ".join("'" + p.replace("'", "''") + "'" for p in paths) + "]"


def duck(memory_limit: str = "512MB", threads: int = 2) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with bounded memory, UTC times and no extension downloads."""
    con = duckdb.connect(
        ":memory:",
        config={"memory_limit": memory_limit, "threads": threads, "autoinstall_known_extensions": False},
    )
    con.execute("SET TimeZone = 'UTC'")
    return con


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


def upsert(
    staged: Sequence[str],
    current: Sequence[DataFile],
    key: Sequence[str],
    columns: Sequence[str],
    sink: FileSink,
) -> UpsertPlan:
    """Write the files of an upsert of ``staged`` (local Parquet paths) into the current files."""
    plan = UpsertPlan()
    if not staged:
        return plan
    cols = ", ".join(quote(c) for c in columns)
    keys = ", ".join(quote(k) for k in key)
    con = duck()
    try:
        con.execute(
            f"CREATE TEMP VIEW staged AS SELECT {cols} FROM read_parquet({sql_list(staged)}, "
            "filename = true, file_row_number = true) "
            f"QUALIFY row_number() OVER (PARTITION BY {keys} "
            "ORDER BY filename DESC, file_row_number DESC) = 1"
        )
        current_paths = [local_path(f.file_path) for f in current]
        if current_paths:
            con.execute(
                "CREATE TEMP VIEW cur AS SELECT * FROM "
                f"read_parquet({sql_list(current_paths)}, filename = true)"
            )
            con.execute(
                f"CREATE TEMP TABLE changed AS SELECT {cols} FROM staged EXCEPT SELECT {cols} FROM cur"
            )
            affected = [
                row[0]
                for row in con.execute(
                    f"SELECT DISTINCT filename FROM cur SEMI JOIN changed USING ({keys})"
                ).fetchall()
            ]
        else:
            con.execute(f"CREATE TEMP TABLE changed AS SELECT {cols} FROM staged")
            affected = []
        changed = _count(con, "SELECT count(*) FROM changed")
        if changed == 0:
            return plan
        by_path = {local_path(f.file_path): f for f in current}
        plan.delete = [by_path[p] for p in affected]
        if affected:
            plan.updated = _count(con, f"SELECT count(*) FROM changed SEMI JOIN cur USING ({keys})")
            query = (
                f"SELECT {cols} FROM read_parquet({sql_list(affected)}) ANTI JOIN changed USING ({keys}) "
                f"UNION ALL SELECT {cols} FROM changed"
            )
        else:
            query = f"SELECT {cols} FROM changed"
        plan.inserted = changed - plan.updated
        reader = con.sql(query).to_arrow_reader(BATCH_ROWS)
        for batch in reader:
            sink.write(batch)
        plan.add = sink.close()
        return plan
    finally:
        con.close()
