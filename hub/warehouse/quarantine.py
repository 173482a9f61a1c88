"""Quarantine tables: the rows a run rejected, with their reasons, next to the dataset's table.

``<table>__quarantine`` holds the validator's quarantine rows (``_hub_row``, ``_hub_source``, ``record``
= the row as read, ``errors`` = list of {path, keyword, message}) plus the ``run_id`` and the time
(``quarantined_at``). Each run writes its own files (named after the run id). A run commits its
quarantine rows just before its data snapshot; if the run then fails, or was killed and is found by
``recover_interrupted_runs``, its quarantine files are removed again (``drop_run``), so nothing of a
failed run stays visible. A run that fails its invalid-row threshold commits nothing at all.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from hub.warehouse.changes import duck, sql_list
from hub.warehouse.tables import RUN_ID_PROP, Warehouse, local_path

ERROR_TYPE = pa.struct([("path", pa.string()), ("keyword", pa.string()), ("message", pa.string())])
QUARANTINE_TABLE_SCHEMA = pa.schema(
    [
        pa.field("run_id", pa.string()),
        pa.field("quarantined_at", pa.timestamp("us", tz="UTC")),
        pa.field("_hub_row", pa.int64()),
        pa.field("_hub_source", pa.string()),
        pa.field("record", pa.string()),
        pa.field("errors", pa.list_(ERROR_TYPE)),
    ]
)


def with_run(invalid: pa.Table, run_id: str, at: datetime) -> pa.Table:
    """The validator's quarantine rows with the run id and time, in the quarantine table's layout."""
    n = invalid.num_rows
    columns: dict[str, Any] = {
        "run_id": pa.array([run_id] * n, pa.string()),
        "quarantined_at": pa.array([at] * n, pa.timestamp("us", tz="UTC")),
    }
    for name in ("_hub_row", "_hub_source", "record", "errors"):
        if name in invalid.column_names:
            columns[name] = invalid.column(name)
        else:
            columns[name] = pa.nulls(n, QUARANTINE_TABLE_SCHEMA.field(name).type)
    table = pa.table(columns)
    return table.cast(QUARANTINE_TABLE_SCHEMA)


@dataclass
class ReasonCounter:
    """Counts rejected rows by (field path, keyword), keeping one example message of each."""

    counts: Counter[tuple[str, str]] = field(default_factory=Counter)
    examples: dict[tuple[str, str], str] = field(default_factory=dict)
    first_rows: dict[tuple[str, str], str] = field(default_factory=dict)
    rows: int = 0

    def add(self, invalid: pa.Table) -> None:
        if invalid.num_rows == 0 or "errors" not in invalid.column_names:
            return
        self.rows += invalid.num_rows
        errors = invalid.column("errors")
        parent = pc.list_parent_indices(errors)
        flat = pc.list_flatten(errors)
        if len(flat) == 0:
            return
        flat = flat.combine_chunks() if isinstance(flat, pa.ChunkedArray) else flat
        paths = pc.struct_field(flat, "path").to_pylist()
        keywords = pc.struct_field(flat, "keyword").to_pylist()
        messages = pc.struct_field(flat, "message").to_pylist()
        where = self._where(invalid, parent.to_pylist())
        for p, k, m, w in zip(paths, keywords, messages, where, strict=True):
            reason = (p or "", k or "")
            self.counts[reason] += 1
            if reason not in self.examples:
                self.examples[reason] = m or ""
                self.first_rows[reason] = w

    @staticmethod
    def _where(invalid: pa.Table, parents: list[int]) -> list[str]:
        rows = invalid.column("_hub_row").to_pylist() if "_hub_row" in invalid.column_names else None
        sources = invalid.column("_hub_source").to_pylist() if "_hub_source" in invalid.column_names else None
        out = []
        for i in parents:
            src = sources[i] if sources else None
            row = rows[i] if rows else None
            out.append(f"{src + ', ' if src else ''}row {row}" if row is not None else (src or ""))
        return out

    def summary(self, limit: int = 20) -> dict[str, Any]:
        """JSON-ready summary, the most frequent reasons first (kept in ``Run.reasons``)."""
        return {
            "rows": self.rows,
            "reasons": [
                {
                    "path": p,
                    "keyword": k,
                    "count": n,
                    "example": self.examples[(p, k)],
                    "first": self.first_rows[(p, k)],
                }
                for (p, k), n in self.counts.most_common(limit)
            ],
        }

    def text(self, limit: int = 10) -> str:
        """One line per reason: ``  /field keyword: N rows (e.g. file.csv, row 12: message)``."""
        lines = []
        for (p, k), n in self.counts.most_common(limit):
            where, example = self.first_rows[(p, k)], self.examples[(p, k)]
            lines.append(f"  {p or '(row)'} {k}: {n} row(s), first at {where}: {example}")
        if len(self.counts) > limit:
            lines.append(f"  ... and {len(self.counts) - limit} more kinds of problems")
        return "\n".join(lines)


def drop_run(warehouse: Warehouse, key: str, run_id: str) -> bool:
    """Remove run ``run_id``'s rows from the quarantine table; True when something was removed."""
    try:
        table = warehouse.quarantine_table(key)
    except Exception:
        return False
    files = warehouse.data_file_entries(table)
    mine = [f for f in files if local_path(f.file_path).rsplit("/", 1)[-1].startswith(run_id)]
    if not mine:
        return False
    warehouse.commit(table, add=[], delete=mine, properties={RUN_ID_PROP: run_id, "hub.dropped": "true"})
    return True


def read_quarantine(
    warehouse: Warehouse, key: str, run_id: str | None = None, limit: int | None = None
) -> pa.Table:
    """The current quarantine rows of ``key`` (of one run), oldest first."""
    files = warehouse.quarantine_files(key)
    if not files:
        return QUARANTINE_TABLE_SCHEMA.empty_table()
    con = duck()
    try:
        sql = f"SELECT * FROM read_parquet({sql_list(files)})"
        params: list[Any] = []
        if run_id:
            sql += " WHERE run_id = ? OR starts_with(run_id, ?)"
            params += [run_id, run_id]
        sql += " ORDER BY quarantined_at, _hub_source, _hub_row"
        if limit:
            sql += f" LIMIT {int(limit)}"
        return con.sql(sql, params=params).to_arrow_table()
    finally:
        con.close()
