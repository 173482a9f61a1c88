"""The tables a query may read, as the hub hands them to DuckDB: Arrow objects, never paths.

A ``TableSource`` names one snapshot of one table: its Parquet files (read by *the hub's* code with
pyarrow, never by DuckDB, which runs with file access off) and its Arrow schema. ``TableCache`` turns
a source into what DuckDB scans:

- a snapshot whose Arrow size fits the cache budget is read once into memory (per snapshot, files in
  order, columns missing from older files as nulls) with a synthetic ``_id`` (the row's position in
  the snapshot, from 1, as CKAN's DataStore numbers rows); text columns with few distinct values are
  dictionary-encoded, which DuckDB groups and filters on about as fast as its own Parquet reader;
- a larger snapshot is scanned from its files at each query: a pyarrow dataset (projection and filter
  pushdown) or, when ``_id`` is wanted, a stream of its files in order.

Snapshots never change, so a cached copy never goes stale; the least recently used copies are dropped
when the budget is passed.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pds
import pyarrow.parquet as pq

ROW_ID = "_id"
"""The synthetic row number of DataStore tables (CKAN's ``_id``)."""


@dataclass(frozen=True)
class TableSource:
    """One snapshot of one table: what a query may read of it."""

    key: str
    """``civil_status.births``, or ``civil_status.births__quarantine``."""
    snapshot_id: int | None
    files: tuple[str, ...]
    schema: pa.Schema = field(compare=False)
    row_id: bool = False
    """Whether the table has the synthetic ``_id`` column first (DataStore tables)."""

    @property
    def cache_key(self) -> tuple[str, int | None, tuple[str, ...]]:
        return (self.key, self.snapshot_id, self.files)

    def with_row_id(self, row_id: bool = True) -> TableSource:
        return TableSource(self.key, self.snapshot_id, self.files, self.schema, row_id)

    def to_wire(self) -> dict[str, Any]:
        """A JSON-able form (sent to query workers)."""
        return {
            "key": self.key,
            "snapshot_id": self.snapshot_id,
            "files": list(self.files),
            "schema": self.schema.serialize().to_pybytes().hex(),
            "row_id": self.row_id,
        }

    @classmethod
    def from_wire(cls, d: dict[str, Any]) -> TableSource:
        schema = pa.ipc.read_schema(pa.py_buffer(bytes.fromhex(d["schema"])))
        return cls(d["key"], d["snapshot_id"], tuple(d["files"]), schema, bool(d["row_id"]))


def _file_rows(path: str) -> int:
    return int(pq.read_metadata(path).num_rows)


def estimated_bytes(files: tuple[str, ...]) -> int:
    """About how much memory the snapshot takes as Arrow (the row groups' uncompressed sizes)."""
    total = 0
    for path in files:
        meta = pq.read_metadata(path)
        total += sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
    return total


def _conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` with exactly ``schema``'s columns: missing ones as nulls (files written before a
    column was added), types cast where the file's differ."""
    columns = []
    for f in schema:
        if f.name in table.column_names:
            col = table.column(f.name)
            columns.append(col if col.type == f.type else col.cast(f.type))
        else:
            columns.append(pa.nulls(table.num_rows, f.type))
    return pa.Table.from_arrays(columns, schema=schema)


def _dictionary_encoded(table: pa.Table) -> pa.Table:
    """Text columns with few distinct values dictionary-encoded (DuckDB aggregates those fast)."""
    n = table.num_rows
    if n < 1000:
        return table
    for i, f in enumerate(table.schema):
        if not (pa.types.is_string(f.type) or pa.types.is_large_string(f.type)):
            continue
        col = table.column(i)
        sample = col.slice(0, min(n, 50_000))
        if pc.count_distinct(sample).as_py() > max(100, len(sample) // 20):
            continue
        encoded = pc.dictionary_encode(col.combine_chunks())
        table = table.set_column(i, pa.field(f.name, encoded.type, f.nullable), encoded)
    return table


def read_snapshot(source: TableSource, *, dictionary: bool = True) -> pa.Table:
    """Every row of the snapshot, in file order, with ``_id`` first (and repetitive text
    dictionary-encoded, with ``dictionary``)."""
    parts = [_conform(pq.read_table(path), source.schema) for path in source.files]
    table = pa.concat_tables(parts) if parts else source.schema.empty_table()
    table = table.combine_chunks()
    if dictionary:
        table = _dictionary_encoded(table)
    ids = pa.array(np.arange(1, table.num_rows + 1, dtype=np.int64))
    return table.add_column(0, pa.field(ROW_ID, pa.int64(), False), ids)


def _stream_with_ids(source: TableSource, batch_rows: int = 65_536) -> pa.RecordBatchReader:
    schema = pa.schema([pa.field(ROW_ID, pa.int64(), False), *source.schema])

    def batches() -> Iterator[pa.RecordBatch]:
        offset = 0
        for path in source.files:
            for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_rows):
                t = _conform(pa.Table.from_batches([batch]), source.schema)
                ids = pa.array(np.arange(offset + 1, offset + t.num_rows + 1, dtype=np.int64))
                offset += t.num_rows
                yield from t.add_column(0, schema.field(0), ids).to_batches()

    return pa.RecordBatchReader.from_batches(schema, batches())


@dataclass
class Cached:
    """A snapshot's Arrow copy and what was built on it (equality lookups by column)."""

    table: pa.Table
    nbytes: int
    extras: dict[str, Any] = field(default_factory=dict)
    """What was built on the copy, by column (the DataStore's equality lookups)."""
    without_row_id: pa.Table | None = None


class TableCache:
    """Arrow copies of snapshots within a memory budget (least recently used dropped first).

    ``dictionary``: encode repetitive text (query workers, where GROUP BY over such columns is the
    common case); the server's own searches keep plain text, which filters and converts to Python
    values faster."""

    def __init__(self, budget_bytes: int, *, dictionary: bool = True) -> None:
        self.budget = budget_bytes
        self.dictionary = dictionary
        self._lock = threading.Lock()
        self._loading: dict[tuple[Any, ...], threading.Event] = {}
        self._entries: OrderedDict[tuple[Any, ...], Cached] = OrderedDict()
        self._sizes: dict[tuple[Any, ...], int] = {}

    @property
    def used(self) -> int:
        return sum(e.nbytes for e in self._entries.values())

    def get(self, source: TableSource) -> Cached | None:
        """The cached copy of ``source``, loading it when it fits; None when it does not fit."""
        key = source.cache_key
        while True:
            with self._lock:
                hit = self._entries.get(key)
                if hit is not None:
                    self._entries.move_to_end(key)
                    return hit
                waiting = self._loading.get(key)
                if waiting is None:
                    size = self._sizes.get(key)
                    if size is None:
                        if len(self._sizes) > 10_000:
                            self._sizes.clear()
                        size = self._sizes[key] = estimated_bytes(source.files)
                    if size > self.budget:
                        return None
                    event = self._loading[key] = threading.Event()
                    break
            waiting.wait()
        try:
            table = read_snapshot(source.with_row_id(), dictionary=self.dictionary)
            entry = Cached(table, table.nbytes)
            with self._lock:
                self._entries[key] = entry
                while self.used > self.budget and len(self._entries) > 1:
                    self._entries.popitem(last=False)
            return entry
        finally:
            with self._lock:
                self._loading.pop(key, None)
            event.set()

    def peek(self, source: TableSource) -> Cached | None:
        """The cached copy of ``source`` if there is one now (never loads)."""
        with self._lock:
            return self._entries.get(source.cache_key)

    def scannable(self, source: TableSource) -> Any:
        """What DuckDB scans for ``source``: an Arrow table (cached), else a dataset or a stream."""
        cached = self.get(source) if self.budget > 0 else None
        if cached is not None:
            if source.row_id:
                return cached.table
            if cached.without_row_id is None:
                cached.without_row_id = cached.table.drop_columns([ROW_ID])
            return cached.without_row_id
        if source.row_id:
            return _stream_with_ids(source)
        if not source.files:
            return source.schema.empty_table()
        return pds.dataset(list(source.files), schema=source.schema, format="parquet")

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._sizes.clear()
