"""The ``files`` connector: CSV (UTF-8, UTF-8 with BOM, Windows-1258), Excel .xlsx, JSON lines, Parquet.

``path`` is one file or a glob (``exports/births_*.csv``, ``**/*.parquet``), relative to the hub's data
directory. A glob reads the matching files in name order as one stream; every file must have the first
file's columns (a missing column is null, an unknown one is an error naming the file).

Incremental reads (``incremental``):

- ``none`` (default without a cursor field): every read returns every row; suits ``write_mode: replace``.
- ``mtime``: only files modified after the last committed read; state ``{"mtime_ns": <newest file>}``.
  Suits a folder where an agency drops a new export each day (``write_mode: append``).
- ``cursor`` (default when ``cursor_field`` is set here or in the dataset): only rows whose
  ``cursor_field`` is greater than the state's ``cursor``, in files changed since the last read (the
  state also keeps ``mtime_ns``); rows that cannot be compared (malformed, cursor not parseable) are
  kept for the validator to report; values compare
  as the column's type (text for CSV and Excel: use ISO 8601 dates or zero-padded numbers).
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, field_validator

from connectors.files.csv_reader import CsvOptions, CsvStream
from connectors.files.readers import read_jsonl, read_parquet, read_xlsx
from connectors.files.transcode import canonical_encoding
from hub.errors import ConfigError, HubError, SourceDataError, SourceUnavailableError
from hub.ingest.connector import (
    ERROR_COLUMN,
    RESERVED_COLUMNS,
    CheckResult,
    Connector,
    ConnectorConfig,
    StreamSpec,
    WriteMode,
)

FORMATS = {
    ".csv": "csv",
    ".txt": "csv",
    ".tsv": "csv",
    ".xlsx": "xlsx",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}
Format = Literal["csv", "xlsx", "jsonl", "parquet"]


class FilesConfig(ConnectorConfig):
    path: str = Field(description="A file or a glob, relative to the hub's data directory.")
    format: Format | None = Field(default=None, description="Default: from the file extension.")
    encoding: str = Field(default="utf-8", description="CSV text encoding: utf-8, utf-8-sig, windows-1258.")
    delimiter: str = Field(default=",", min_length=1, max_length=1, description="CSV field separator.")
    quote_char: str = Field(default='"', min_length=1, max_length=1)
    header_row: int = Field(default=1, ge=1, description="Line (CSV) or row (xlsx) of the column names.")
    sheet: str | int | None = Field(default=None, description="xlsx sheet name or 0-based index.")
    newlines_in_values: bool = Field(default=False, description="Allow quoted CSV values over several lines.")
    on_error: Literal["fail", "quarantine"] = Field(
        default="fail", description="A malformed CSV/xlsx row: fail the run, or quarantine the row."
    )
    stream: str = Field(default="rows", description="Name of the one stream.")
    incremental: Literal["none", "mtime", "cursor"] | None = Field(
        default=None, description="none, mtime or cursor; default: cursor when a cursor field is declared."
    )
    cursor_field: str | None = None
    primary_key: list[str] = Field(default_factory=list)

    @field_validator("encoding")
    @classmethod
    def _encoding(cls, v: str) -> str:
        try:
            canonical_encoding(v)
        except ConfigError as exc:
            raise ValueError(exc.message) from exc
        return v


class FilesConnector(Connector[FilesConfig]):
    """Files on disk: CSV, Excel, JSON lines, Parquet."""

    name = "files"
    version = "1.0.0"
    config_model = FilesConfig
    description = "Files: CSV (UTF-8, Windows-1258), Excel .xlsx, JSON lines, Parquet; one file or a glob"

    def __init__(self, config: FilesConfig, context: Any = None) -> None:
        super().__init__(config, context)
        self._newest_mtime_ns: int | None = None

    # --- contract ----------------------------------------------------------------------------

    @property
    def cursor_field(self) -> str | None:
        if self.mode != "cursor":
            return None
        return self.config.cursor_field or self.context.cursor_field

    @property
    def mode(self) -> str:
        """The incremental mode in force: the configured one, else cursor if a cursor field is known."""
        if self.config.incremental is not None:
            return self.config.incremental
        return "cursor" if (self.config.cursor_field or self.context.cursor_field) else "none"

    def streams(self) -> list[StreamSpec]:
        pk = tuple(self.config.primary_key) or tuple(self.context.primary_key)
        if self.mode == "none":
            mode = WriteMode.REPLACE
        else:
            mode = WriteMode.UPSERT if pk and self.cursor_field else WriteMode.APPEND
        return [
            StreamSpec(
                name=self.config.stream,
                primary_key=pk,
                cursor_field=self.cursor_field,
                write_mode=mode,
                description=f"rows of {self.config.path}",
            )
        ]

    def check(self) -> CheckResult:
        try:
            files = self._files()
            fmt = self._format(files[0])
            if fmt == "csv":
                columns = CsvStream(files[0], self._display(files[0]), self._csv_options(), 1).columns
            else:
                first = next(iter(self._read_file(files[0], fmt, batch_rows=16)), None)
                names = [] if first is None else first.schema.names
                columns = [c for c in names if c not in RESERVED_COLUMNS]
        except HubError as exc:
            return CheckResult(False, exc.message, {"code": exc.code})
        except Exception as exc:
            return CheckResult(False, f"{type(exc).__name__}: {exc}")
        return CheckResult(
            True,
            f"{len(files)} file(s) match {self.config.path}",
            {"files": [self._display(f) for f in files[:20]], "columns": columns, "format": fmt},
        )

    def read(self, stream: str, state: dict[str, Any] | None) -> Iterator[pa.RecordBatch]:
        self.stream(stream)
        files = self._files()
        if self.mode == "cursor" and not self.cursor_field:
            raise ConfigError("files: incremental: cursor needs cursor_field (in the config or the dataset)")
        # mtime mode reads only files changed since the state; so does cursor mode (rows it cannot
        # place against the cursor, malformed ones, would otherwise come back on every run)
        since = int((state or {}).get("mtime_ns", 0)) if self.mode in ("mtime", "cursor") else None
        cursor = (state or {}).get("cursor") if self.cursor_field else None
        schema: pa.Schema | None = None
        field = self.cursor_field or ""
        contract = self.context.arrow_schema
        target = contract.field(field).type if contract is not None and field in contract.names else None
        for path in files:
            mtime = path.stat().st_mtime_ns
            if since is not None and mtime <= since:
                continue
            for batch in self._read_file(path, self._format(path), self.context.batch_rows):
                if schema is None:
                    schema = batch.schema
                else:
                    batch = _conform(batch, schema, self._display(path))
                if cursor is not None:
                    batch = _after_cursor(batch, field, cursor, self._display(path), target)
                if batch.num_rows:
                    if self.context.progress is not None:
                        self.context.progress(batch.num_rows)
                    yield batch
            if since is not None:
                self._newest_mtime_ns = max(self._newest_mtime_ns or 0, mtime)

    def prefetch(self, stream: str) -> bool:
        """Parquet files are decoded by Arrow's own threads: no reading thread ahead of them."""
        try:
            return not all(self._format(path) == "parquet" for path in self._files())
        except HubError:  # no file, unknown format: read() says so
            return True

    def next_state(
        self, stream: str, state: dict[str, Any] | None, cursor_max: Any | None
    ) -> dict[str, Any] | None:
        new = super().next_state(stream, state, cursor_max)
        if self.mode in ("mtime", "cursor") and self._newest_mtime_ns is not None:
            old = int((state or {}).get("mtime_ns", 0))
            new = {**(new or {}), "mtime_ns": max(old, self._newest_mtime_ns)}
        return new

    # --- helpers -----------------------------------------------------------------------------

    def _base(self) -> Path:
        return Path(self.context.base_dir)

    def _files(self) -> list[Path]:
        pattern = os.path.join(self._base(), os.path.expanduser(self.config.path))
        if glob.has_magic(pattern):
            found = sorted(Path(p) for p in glob.glob(pattern, recursive=True) if os.path.isfile(p))
        else:
            found = [Path(pattern)] if os.path.isfile(pattern) else []
        if not found:
            raise SourceUnavailableError(
                f"files: no file matches {self.config.path} (looked in {self._base()})"
            )
        return found

    def _display(self, path: Path) -> str:
        try:
            return str(path.resolve().relative_to(self._base().resolve()))
        except ValueError:
            return path.name

    def _format(self, path: Path) -> str:
        if self.config.format:
            return self.config.format
        fmt = FORMATS.get(path.suffix.lower())
        if fmt is None:
            raise ConfigError(
                f"files: cannot tell the format of {path.name}; set format: csv, xlsx, jsonl or parquet"
            )
        return fmt

    def _csv_options(self, path: Path | None = None) -> CsvOptions:
        delimiter = self.config.delimiter
        is_tsv = path is not None and path.suffix.lower() == ".tsv"
        if is_tsv and "delimiter" not in self.config.model_fields_set:
            delimiter = "\t"
        return CsvOptions(
            encoding=self.config.encoding,
            delimiter=delimiter,
            quote_char=self.config.quote_char,
            header_row=self.config.header_row,
            newlines_in_values=self.config.newlines_in_values,
            on_error=self.config.on_error,
        )

    def _read_file(self, path: Path, fmt: str, batch_rows: int) -> Iterator[pa.RecordBatch]:
        display = self._display(path)
        if fmt == "csv":
            return iter(CsvStream(path, display, self._csv_options(path), batch_rows))
        if fmt == "xlsx":
            return read_xlsx(
                path,
                display,
                batch_rows,
                sheet=self.config.sheet,
                header_row=self.config.header_row,
                quarantine=self.config.on_error == "quarantine",
            )
        if fmt == "jsonl":
            return read_jsonl(path, display, batch_rows)
        return read_parquet(path, display, batch_rows)


def _conform(batch: pa.RecordBatch, schema: pa.Schema, display: str) -> pa.RecordBatch:
    """Give a later file's batch the first file's schema (missing columns null, same order)."""
    if batch.schema.equals(schema):
        return batch
    unknown = [n for n in batch.schema.names if schema.get_field_index(n) < 0]
    if unknown:
        raise SourceDataError(
            f"column(s) {', '.join(unknown)} are not in the first file's columns ({', '.join(schema.names)})",
            file=display,
        )
    arrays = []
    for f in schema:
        if f.name in batch.schema.names:
            col = batch.column(f.name)
            try:
                arrays.append(col if col.type == f.type else col.cast(f.type))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise SourceDataError(
                    f"column {f.name} is {col.type} here but {f.type} in the first file", file=display
                ) from exc
        else:
            arrays.append(pa.nulls(batch.num_rows, f.type))
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _typed(col: pa.Array, target: pa.DataType | None) -> tuple[pa.Array, pa.Array | None]:
    """Text cursor values as the contract's type, so that 09:00+07:00 and 02:00Z compare right.

    Returns the typed column and, when some values do not parse, a mask of those (they are kept:
    the validator reports them)."""
    if target is None or not (pa.types.is_string(col.type) or pa.types.is_large_string(col.type)):
        return col, None
    if pa.types.is_string(target) or pa.types.is_large_string(target):
        return col, None
    try:
        return pc.cast(col, target), None
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    values: list[Any] = []
    bad: list[bool] = []
    for v in col.to_pylist():
        try:
            values.append(None if v is None else pa.scalar(v).cast(target).as_py())
            bad.append(False)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            values.append(None)
            bad.append(True)
    return pa.array(values, target), pa.array(bad, pa.bool_())


def _after_cursor(
    batch: pa.RecordBatch, field: str, cursor: Any, display: str, target: pa.DataType | None = None
) -> pa.RecordBatch:
    """Rows whose ``field`` is greater than ``cursor``; unreadable rows (``_hub_error``) stay."""
    if batch.schema.get_field_index(field) < 0:
        raise SourceDataError(f"the cursor column {field!r} is missing", file=display)
    col, unparsed = _typed(batch.column(field), target)
    try:
        text = pa.types.is_string(col.type) or pa.types.is_large_string(col.type)
        bound = pa.scalar(str(cursor)).cast(col.type) if text else pa.scalar(cursor).cast(col.type)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise ConfigError(f"files: the state's cursor {cursor!r} does not fit {field} ({col.type})") from exc
    mask = pc.fill_null(pc.greater(col, bound), False)
    if unparsed is not None:
        mask = pc.or_(mask, unparsed)
    if batch.schema.get_field_index(ERROR_COLUMN) >= 0:
        mask = pc.or_(mask, pc.is_valid(batch.column(ERROR_COLUMN)))
    return batch.filter(mask)
