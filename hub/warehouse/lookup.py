"""Equality lookups on a cached DataStore table without DuckDB: row positions grouped by value.

A filtered ``datastore_search`` (``filters={"ward_code": "26734"}``) on a cached snapshot spent most of
its time in DuckDB fetching the matching rows through its index, about 1.2 ms for 100 rows of 9
columns, with the GIL handed back and forth around the query. For a text column with at most
``MAX_DISTINCT`` distinct values, the sandbox keeps an Arrow copy of the snapshot and, per filtered
column, the row positions sorted by value (a stable sort, so each value's rows stay in ``_id`` order,
the DataStore's default order). A lookup is then a dict access, a slice and an Arrow ``take``: about
0.2 ms, all in one thread. Anything else (other types, ``q``, ``sort``, ``distinct``, ranges, ``$or``)
goes to DuckDB as before; ``tests/warehouse/test_lookup.py`` checks both give the same rows.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

MAX_DISTINCT = 200_000  # beyond this the value -> group dict would cost more memory than it saves time


def is_text(t: pa.DataType) -> bool:
    """A text column, plain or dictionary-encoded (the engine's cached snapshots encode repetitive text)."""
    if pa.types.is_dictionary(t):
        t = t.value_type
    return bool(pa.types.is_string(t))


class Lookup:
    """Row positions of ``column`` in ``table`` grouped by value (text columns)."""

    def __init__(self, table: pa.Table, column: str) -> None:
        col = table.column(column).combine_chunks()
        encoded = col if pa.types.is_dictionary(col.type) else pc.dictionary_encode(col)
        values = encoded.dictionary.to_pylist()
        nulls = len(values)  # a null's group comes last; no text value maps to it
        codes = np.asarray(
            pc.fill_null(encoded.indices, nulls).to_numpy(zero_copy_only=False), dtype=np.int64
        )
        self.order = np.argsort(codes, kind="stable")
        self.offsets = np.concatenate([[0], np.cumsum(np.bincount(codes, minlength=nulls + 1))])
        self.codes = {v: i for i, v in enumerate(values)}

    @staticmethod
    def suits(table: pa.Table, column: str) -> bool:
        if column not in table.column_names or not is_text(table.schema.field(column).type):
            return False
        col = table.column(column)
        if pa.types.is_dictionary(col.type):
            return sum(len(c.dictionary) for c in col.chunks) <= MAX_DISTINCT
        return bool(pc.count_distinct(col).as_py() <= MAX_DISTINCT)

    def positions(self, value: str) -> np.ndarray:
        """Positions of the rows whose value is ``value``, ascending."""
        code = self.codes.get(value)
        if code is None:
            return np.zeros(0, dtype=np.int64)
        out: np.ndarray = self.order[self.offsets[code] : self.offsets[code + 1]]
        return out


def equal_rows(table: pa.Table, lookups: dict[str, Lookup], filters: dict[str, str]) -> np.ndarray | None:
    """Positions of the rows of ``table`` matching every ``column == value`` of ``filters``, ascending;
    None when no column of ``filters`` has a lookup or another column is not text."""
    first = next((c for c in filters if c in lookups), None)
    if first is None:
        return None
    rows = lookups[first].positions(filters[first])
    for column, value in filters.items():
        if column == first:
            continue
        if column not in table.column_names or not is_text(table.schema.field(column).type):
            return None
        if len(rows):
            taken = table.column(column).take(pa.array(rows))
            if pa.types.is_dictionary(taken.type):
                taken = taken.cast(pa.string())
            same = pc.fill_null(pc.equal(taken, value), False)
            rows = rows[np.asarray(same.to_numpy(zero_copy_only=False), dtype=bool)]
    return rows
