"""Streaming Parquet writer: record batches in, Iceberg ``DataFile`` entries out.

Batches are written as they come (one row group per batch) into the table's data folder, rolling
over to a new file every ``target_rows`` rows, so memory stays bounded whatever the run's size. The
files are registered with the table only by a later commit (``Warehouse.commit``); until then no
reader sees them, and ``abort()`` removes them.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from pyiceberg.io.pyarrow import (
    compute_statistics_plan,
    data_file_statistics_from_parquet_metadata,
    parquet_path_to_id_mapping,
)
from pyiceberg.manifest import DataFile, DataFileContent, FileFormat
from pyiceberg.table import Table
from pyiceberg.typedef import Record

from hub.warehouse.tables import METRICS_PROPERTY, file_schema

DEFAULT_TARGET_ROWS = 1_000_000


def data_file(table: Table, path: Path, metadata: pq.FileMetaData | None = None) -> DataFile:
    """The Iceberg ``DataFile`` entry of a Parquet file written for ``table`` (statistics from its footer)."""
    schema = table.schema()
    stats = data_file_statistics_from_parquet_metadata(
        parquet_metadata=metadata if metadata is not None else pq.read_metadata(path),
        stats_columns=compute_statistics_plan(schema, table.metadata.properties),
        parquet_column_mapping=parquet_path_to_id_mapping(schema),
    )
    return DataFile.from_args(
        content=DataFileContent.DATA,
        file_path=f"file://{path}",
        file_format=FileFormat.PARQUET,
        partition=Record(),
        file_size_in_bytes=os.path.getsize(path),
        sort_order_id=None,
        spec_id=table.metadata.default_spec_id,
        equality_ids=None,
        key_metadata=None,
        **stats.to_serialized_dict(),
    )


def _leaf_paths(path: str, t: pa.DataType) -> list[str]:
    """The Parquet column paths of a field (``errors.list.element.path`` for a list of structs)."""
    if pa.types.is_struct(t):
        return [
            p for i in range(t.num_fields) for p in _leaf_paths(f"{path}.{t.field(i).name}", t.field(i).type)
        ]
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return _leaf_paths(f"{path}.list.element", t.value_type)
    if pa.types.is_map(t):
        return _leaf_paths(f"{path}.key_value.key", t.key_type) + _leaf_paths(
            f"{path}.key_value.value", t.item_type
        )
    return [path]


class FileSink:
    """Writes batches of ``table``'s schema to Parquet (zstd) files named ``<prefix>-<n>.parquet``."""

    def __init__(
        self, table: Table, folder: Path, prefix: str, *, target_rows: int = DEFAULT_TARGET_ROWS
    ) -> None:
        self.table = table
        self.folder = folder
        self.prefix = prefix
        self.target_rows = target_rows
        self.schema = file_schema(table)
        self._writer: pq.ParquetWriter | None = None
        self._path: Path | None = None
        self._rows_in_file = 0
        self._seq = 0
        self.rows = 0
        self.paths: list[Path] = []
        self.files: list[DataFile] = []

    def conform(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        """``batch`` with the file schema's column order, types and field ids."""
        names = self.schema.names
        if batch.schema.names != names:
            have = set(batch.schema.names)
            batch = pa.RecordBatch.from_arrays(
                [
                    batch.column(n) if n in have else pa.nulls(batch.num_rows, self.schema.field(n).type)
                    for n in names
                ],
                names=names,
            )
        if not batch.schema.equals(self.schema, check_metadata=False):
            batch = batch.cast(self.schema)
        return batch

    def write(self, batch: pa.RecordBatch | pa.Table) -> None:
        if batch.num_rows == 0:
            return
        if isinstance(batch, pa.Table):
            for b in batch.to_batches():
                self.write(b)
            return
        batch = self.conform(batch)
        if self._writer is None:
            self._open()
        assert self._writer is not None
        self._writer.write_batch(batch)
        self._rows_in_file += batch.num_rows
        self.rows += batch.num_rows
        if self._rows_in_file >= self.target_rows:
            self._close_file()

    def _open(self) -> None:
        self._seq += 1
        self._path = self.folder / f"{self.prefix}-{self._seq:05d}.parquet"
        self.paths.append(self._path)
        self._writer = pq.ParquetWriter(
            self._path,
            self.schema,
            compression="zstd",
            write_statistics=self._statistics(),
            store_decimal_as_integer=True,
        )
        self._rows_in_file = 0

    def _statistics(self) -> bool | list[str]:
        """Min/max statistics for every column but those whose Iceberg metrics mode is ``none``
        (see ``Warehouse.ensure_table``): neither the footer nor the manifest then holds their values,
        and the writer skips the comparisons (the costliest part of writing long text columns)."""
        props = self.table.metadata.properties
        hidden = {n for n in self.schema.names if props.get(METRICS_PROPERTY + n) == "none"}
        if not hidden:
            return True
        return [path for f in self.schema if f.name not in hidden for path in _leaf_paths(f.name, f.type)]

    def _close_file(self) -> None:
        if self._writer is None or self._path is None:
            return
        self._writer.close()
        self.files.append(data_file(self.table, self._path, self._writer.writer.metadata))
        self._writer = None
        self._path = None

    def close(self) -> list[DataFile]:
        """Finish the open file; the data files written, ready to commit."""
        self._close_file()
        return list(self.files)

    def abort(self) -> None:
        """Remove every file written (nothing was committed)."""
        if self._writer is not None:
            with contextlib.suppress(Exception):  # the file is removed just below
                self._writer.close()
            self._writer = None
        for path in self.paths:
            path.unlink(missing_ok=True)
        self.paths.clear()
        self.files.clear()


class BackgroundSink:
    """A ``FileSink`` fed through a small queue by a thread of its own, so that encoding and compressing
    Parquet (which releases the GIL) overlaps with reading and validating the next batches. At most
    ``depth`` batches wait in the queue, so memory stays bounded."""

    def __init__(self, sink: FileSink, depth: int = 1) -> None:
        self.sink = sink
        self._queue: queue.Queue[pa.RecordBatch | None] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._work, name=f"sink-{sink.prefix}", daemon=True)
        self._thread.start()

    def _work(self) -> None:
        while True:
            batch = self._queue.get()
            if batch is None:
                return
            if self._error is not None:
                continue
            try:
                self.sink.write(batch)
            except BaseException as exc:
                self._error = exc

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def write(self, batch: pa.RecordBatch) -> None:
        self._raise()
        self._queue.put(batch)

    def _stop(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()

    @property
    def rows(self) -> int:
        return self.sink.rows

    def close(self) -> list[DataFile]:
        self._stop()
        self._raise()
        return self.sink.close()

    def abort(self) -> None:
        self._stop()
        self.sink.abort()
