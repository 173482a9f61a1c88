"""Readers of the non-CSV formats: Excel .xlsx (read-only, in chunks), JSON lines and Parquet.

Each yields record batches with ``_hub_row`` (sheet row, line or record number) and ``_hub_source``.
A file that is not of its format (a truncated or renamed workbook, random bytes) raises
``SourceDataError`` naming the file, and the row where the workbook broke off when it is known.
"""

from __future__ import annotations

import datetime as dt
import zipfile
import zlib
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.json as pajson
import pyarrow.parquet as pq

from connectors.common.sniff import head_of, kind_of, require_text
from hub.errors import SourceDataError
from hub.ingest.connector import ROW_COLUMN, SOURCE_COLUMN


def _with_position(batch: pa.RecordBatch, first_row: int, source: str) -> pa.RecordBatch:
    n = batch.num_rows
    rows = pa.array(np.arange(first_row, first_row + n, dtype=np.int64))
    return pa.RecordBatch.from_arrays(
        [*batch.columns, rows, pa.repeat(pa.scalar(source, pa.string()), n)],
        names=[*batch.schema.names, ROW_COLUMN, SOURCE_COLUMN],
    )


# --- Parquet ---------------------------------------------------------------------------------------


def read_parquet(path: Path, display: str, batch_rows: int) -> Iterator[pa.RecordBatch]:
    try:
        # without pre-buffering, pyarrow keeps no read row group cached until the file is closed
        # (with it, memory grows by ~40 MB per million rows read, and reading is slower)
        pf = pq.ParquetFile(path, pre_buffer=False)
    except (pa.ArrowInvalid, OSError) as exc:
        raise SourceDataError(f"not a readable Parquet file: {exc}", file=display) from exc
    first = 1
    try:
        for batch in pf.iter_batches(batch_size=batch_rows):
            yield _with_position(batch, first, display)
            first += batch.num_rows
    finally:
        pf.close()


# --- JSON lines ------------------------------------------------------------------------------------


def _locate_json_error(path: Path, display: str) -> SourceDataError:
    with path.open("rb") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                value = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                msg = f"invalid JSON: {exc.msg}"
                return SourceDataError(msg, file=display, line=lineno, column=exc.colno)
            if not isinstance(value, dict):
                return SourceDataError("a JSON lines record must be an object", file=display, line=lineno)
    return SourceDataError("the records do not share one structure (a field changes type?)", file=display)


def read_jsonl(path: Path, display: str, batch_rows: int) -> Iterator[pa.RecordBatch]:
    """JSON lines; ``_hub_row`` is the record number (the line number when there are no blank lines)."""
    require_text(path, display, "JSON lines")
    size = path.stat().st_size
    block = int(min(64 << 20, max(1 << 20, size // 8 if size > (8 << 20) else size + 1)))
    first = 1
    try:
        reader = pajson.open_json(path, read_options=pajson.ReadOptions(block_size=block, use_threads=True))
        for batch in reader:
            for offset in range(0, batch.num_rows, batch_rows):
                part = batch.slice(offset, batch_rows)
                yield _with_position(part, first, display)
                first += part.num_rows
    except pa.ArrowInvalid as exc:
        raise _locate_json_error(path, display) from exc


# --- Excel -----------------------------------------------------------------------------------------


def _cell_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value if value.strip() else None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    if isinstance(value, dt.datetime):
        if value.time() == dt.time(0) and value.tzinfo is None:
            return value.date().isoformat()
        return value.isoformat()
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, (int, Decimal)):
        return str(value)
    return str(value)


def read_xlsx(
    path: Path,
    display: str,
    batch_rows: int,
    *,
    sheet: str | int | None,
    header_row: int,
    quarantine: bool,
) -> Iterator[pa.RecordBatch]:
    """One worksheet, every cell as text (numbers without a trailing ``.0``, dates as ISO 8601)."""
    import openpyxl
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except zipfile.BadZipFile as exc:
        kind = kind_of(head_of(path, 64))
        what = "truncated, or another format renamed .xlsx?"
        if kind is not None and not kind.startswith("a zip"):
            what = f"the file is {kind}"
        raise SourceDataError(
            f"not a readable .xlsx workbook (not a zip archive: {what})", file=display
        ) from exc
    except (InvalidFileException, OSError, KeyError, ValueError, EOFError, zlib.error, SyntaxError) as exc:
        raise SourceDataError(f"not a readable .xlsx workbook: {exc}", file=display) from exc
    try:
        if sheet is None:
            ws = wb.worksheets[0]
        elif isinstance(sheet, int):
            ws = wb.worksheets[sheet]
        else:
            ws = wb[sheet]
    except (IndexError, KeyError) as exc:
        wb.close()
        sheets = ", ".join(wb.sheetnames)
        raise SourceDataError(f"no sheet {sheet!r}; the workbook has {sheets}", file=display) from exc
    where = f"{display}!{ws.title}"
    position = [header_row]  # the last sheet row read, for an error of the zip or XML below it
    try:
        yield from _sheet_batches(ws, where, batch_rows, header_row, quarantine, position)
    except (zipfile.BadZipFile, EOFError, zlib.error, SyntaxError, OSError, KeyError) as exc:
        raise SourceDataError(
            f"the workbook is damaged (truncated?) after row {position[0]}: {type(exc).__name__}: {exc}",
            file=where,
            line=position[0] + 1,
        ) from exc
    finally:
        wb.close()


def _sheet_batches(
    ws: Any, where: str, batch_rows: int, header_row: int, quarantine: bool, position: list[int]
) -> Iterator[pa.RecordBatch]:
    from hub.ingest.connector import ERROR_COLUMN

    rows = ws.iter_rows(min_row=header_row, values_only=True)
    header = next(rows, None)
    if header is None:
        raise SourceDataError("no header row", file=where, line=header_row)
    names = [str(_cell_text(v) or "").strip() for v in header]
    while names and not names[-1]:
        names.pop()
    for i, name in enumerate(names, start=1):
        if not name or names.index(name) != i - 1:
            what = "empty column name" if not name else f"column name {name!r} appears twice"
            raise SourceDataError(what, file=where, line=header_row, column=i)
    k = len(names)
    fields = [pa.field(n, pa.string()) for n in names]
    fields += [pa.field(ROW_COLUMN, pa.int64()), pa.field(SOURCE_COLUMN, pa.string())]
    if quarantine:
        fields.append(pa.field(ERROR_COLUMN, pa.string()))
    schema = pa.schema(fields)
    columns: list[list[str | None]] = [[] for _ in range(k)]
    row_numbers: list[int] = []
    errors: list[str | None] = []

    def flush() -> pa.RecordBatch:
        arrays = [pa.array(c, pa.string()) for c in columns]
        arrays += [pa.array(row_numbers, pa.int64()), pa.array([where] * len(row_numbers), pa.string())]
        if quarantine:
            arrays.append(pa.array(errors, pa.string()))
        for c in columns:
            c.clear()
        row_numbers.clear()
        errors.clear()
        return pa.RecordBatch.from_arrays(arrays, schema=schema)

    for rownum, values in enumerate(rows, start=header_row + 1):
        position[0] = rownum
        texts = [_cell_text(v) for v in values]
        if all(t is None for t in texts):
            continue
        extra = [i for i, t in enumerate(texts[k:], start=k + 1) if t is not None]
        problem = f"a value in column {extra[0]}, which has no header" if extra else None
        if problem and not quarantine:
            raise SourceDataError(problem, file=where, line=rownum, column=extra[0])
        texts = (texts + [None] * k)[:k]
        for c, t in zip(columns, texts, strict=True):
            c.append(None if problem else t)
        row_numbers.append(rownum)
        errors.append(problem)
        if len(row_numbers) >= batch_rows:
            yield flush()
    if row_numbers:
        yield flush()
