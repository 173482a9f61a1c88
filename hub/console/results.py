"""One page of a query job's result (its Parquet file), as text for the console's table.

Only the row groups that hold the page are read, so a page of a result of any size costs one or two
row groups. Values are written under the hub's JSON rule (``hub.warehouse.values``: dates as ISO text,
NaN as ``NaN``, intervals as ISO 8601 durations, nested values as JSON), a long value is cut at
``MAX_CHARS`` (the download has it whole), and NULL stays None (the page shows it apart from text).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from hub.warehouse.values import json_rows

PAGE_ROWS = 50
MAX_CHARS = 300


@dataclass(frozen=True)
class ResultColumn:
    name: str
    type: str
    numeric: bool


@dataclass(frozen=True)
class ResultPage:
    """Rows ``first``..``last`` (1-based) of ``total``, page ``page`` of ``pages``."""

    columns: list[ResultColumn]
    rows: list[list[str | None]]
    page: int
    pages: int
    total: int

    @property
    def first(self) -> int:
        return (self.page - 1) * PAGE_ROWS + 1 if self.rows else 0

    @property
    def last(self) -> int:
        return self.first + len(self.rows) - 1 if self.rows else 0


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, dict | list):
        text = orjson.dumps(value).decode()
    else:
        text = str(value)
    return text if len(text) <= MAX_CHARS else text[: MAX_CHARS - 1] + "…"


def _numeric(t: pa.DataType) -> bool:
    return bool(pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t))


def read_page(path: Path, page: int, total: int) -> ResultPage:
    """Page ``page`` (from 1; past the end: the last page) of the result file ``path`` of ``total`` rows."""
    pages = max(1, -(-total // PAGE_ROWS))
    page = min(max(1, page), pages)
    start = (page - 1) * PAGE_ROWS
    f = pq.ParquetFile(path)
    schema = f.schema_arrow
    columns = [ResultColumn(field.name, str(field.type), _numeric(field.type)) for field in schema]
    groups: list[int] = []
    first_row = 0  # the first row of the first group read
    offset = 0
    for i in range(f.metadata.num_row_groups):
        n = f.metadata.row_group(i).num_rows
        if offset + n > start and offset < start + PAGE_ROWS:
            if not groups:
                first_row = offset
            groups.append(i)
        offset += n
    if not groups:
        return ResultPage(columns, [], page, pages, total)
    table = f.read_row_groups(groups).slice(start - first_row, PAGE_ROWS)
    rows = [[_text(v) for v in row] for row in json_rows(table)]
    return ResultPage(columns, rows, page, pages, total)
