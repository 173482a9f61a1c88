"""Parsing one page of a JSON API into an Arrow record batch.

The fast path hands the raw body to ``pyarrow.json`` with the column types learnt from the first page
(no Python object per value); a page it cannot take (a new nested field, a column changing type) goes
through orjson and column-wise conversion (``connectors.common.records``). A body that is not valid
JSON, e.g. cut off mid-page, raises ``PageUnreadableError`` so that the page is fetched again.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.json as pajson

from connectors.common.records import dig, field_names, records_to_batch
from connectors.rest.http import PageUnreadableError

_FAST_TYPES = (pa.string(), pa.int64(), pa.float64(), pa.bool_())
_WRAP_KEY = "__records__"


@dataclass
class Page:
    batch: pa.RecordBatch
    next_cursor: Any | None


class PageParser:
    """Parses the pages of one stream, remembering the column types it has seen."""

    def __init__(self, records_path: str | None, cursor_path: str | None, schema: pa.Schema | None = None):
        self.records_path = records_path
        self.cursor_path = cursor_path
        self.contract_schema = schema
        self.known: pa.Schema | None = None
        self._guessed: set[str] = set()
        self.fast_pages = 0
        self.slow_pages = 0

    def parse(self, body: bytes) -> Page:
        page = self._fast(body) if self.known is not None else None
        if page is not None:
            self.fast_pages += 1
        else:
            self.slow_pages += 1
            page = self._slow(body)
        page.batch = self._conform(page.batch)
        return page

    def _conform(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        """Every page with the columns seen so far, in one order and type (a page that lacks a field
        gets nulls), so that batches of a stream share one schema."""
        known = self.known
        if known is None or batch.schema.equals(known):
            return batch
        columns = []
        for f in known:
            if f.name in batch.schema.names:
                col = batch.column(f.name)
                if col.type != f.type:
                    try:
                        col = col.cast(f.type)
                    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                        return batch  # a type changed: hand the page on as it is
                columns.append(col)
            else:
                columns.append(pa.nulls(batch.num_rows, type=f.type))
        return pa.RecordBatch.from_arrays(columns, schema=known)

    # --- orjson, column-wise -------------------------------------------------------------------
    def _slow(self, body: bytes) -> Page:
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise PageUnreadableError(f"not valid JSON: {exc}") from exc
        records = dig(document, self.records_path)
        if records is None:
            records = []
        if not isinstance(records, list):
            raise PageUnreadableError(f"{self.records_path or 'the answer'} is not an array of records")
        records = [r for r in records if isinstance(r, dict)]
        known_names = self.known.names if self.known is not None else ()
        batch = records_to_batch(records, field_names(records, known_names), self.contract_schema)
        self._learn(batch)
        cursor = dig(document, self.cursor_path) if self.cursor_path else None
        return Page(batch, cursor)

    def _learn(self, batch: pa.RecordBatch) -> None:
        fields = {f.name: f for f in (self.known or pa.schema([]))}
        for f, column in zip(batch.schema, batch.columns, strict=True):
            all_null = column.null_count == len(column)
            if f.name not in fields or (f.name in self._guessed and not all_null):
                fields[f.name] = f if not all_null else pa.field(f.name, pa.string())
                if all_null:
                    self._guessed.add(f.name)
                else:
                    self._guessed.discard(f.name)
        self.known = pa.schema(list(fields.values()))

    # --- pyarrow.json on the raw bytes ---------------------------------------------------------
    def _fast(self, body: bytes) -> Page | None:
        assert self.known is not None
        if not all(f.type in _FAST_TYPES for f in self.known):
            return None
        path = self.records_path.split(".") if self.records_path else [_WRAP_KEY]
        if not self.records_path:
            body = b'{"' + _WRAP_KEY.encode() + b'":' + body + b"}"
        inner: pa.DataType = pa.list_(pa.struct(list(self.known)))
        for part in reversed(path[1:]):
            inner = pa.struct([(part, inner)])
        schema = pa.schema([(path[0], inner)])
        try:
            table = pajson.read_json(
                io.BytesIO(body),
                read_options=pajson.ReadOptions(block_size=len(body) + 64, use_threads=False),
                parse_options=pajson.ParseOptions(
                    explicit_schema=schema,
                    unexpected_field_behavior="infer",
                    # JSON text has raw newlines only between tokens; a body without any parses faster
                    # when the parser need not look for them inside values
                    newlines_in_values=b"\n" in body or b"\r" in body,
                ),
            )
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return None
        if table.num_rows != 1:
            return None
        column: pa.Array = table.column(path[0]).combine_chunks()
        for part in path[1:]:
            column = column.field(part)
        if column.null_count:
            return None
        structs = column.flatten()
        if structs.null_count or any(t.type not in _FAST_TYPES and t.type != pa.null() for t in structs.type):
            return None
        batch = pa.RecordBatch.from_struct_array(structs)
        if any(f.type == pa.null() for f in batch.schema):
            known = self.known
            batch = batch.cast(
                pa.schema(
                    [
                        pa.field(f.name, known.field(f.name).type if f.name in known.names else pa.string())
                        if f.type == pa.null()
                        else f
                        for f in batch.schema
                    ]
                )
            )
        cursor = None
        if self.cursor_path:
            top, _, rest = self.cursor_path.partition(".")
            if top in table.column_names:
                cursor = dig(table.column(top)[0].as_py(), rest or None)
        self._learn(batch)
        return Page(batch, cursor)
