"""Streaming encoders of a table's rows: CSV and TSV (optionally with a UTF-8 BOM), Parquet, JSON lines,
GeoJSON, and CKAN's dump formats ``json`` (one object: ``fields`` and ``records`` as lists) and ``xml``
(``<data>`` of ``<row>`` elements). Each takes record batches one at a time (a snapshot's Parquet files
read batch by batch, or a query worker's result), so memory stays constant whatever the table's size.
Values in JSON and XML follow the hub's one JSON rule (``hub.warehouse.values``).
"""

from __future__ import annotations

import functools
import io
import itertools
import re
import xml.parsers.expat
from collections.abc import Iterator
from typing import Any
from xml.sax.saxutils import quoteattr

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from hub.warehouse.datastore import ckan_type
from hub.warehouse.engine.tables import ROW_ID
from hub.warehouse.values import json_columns, json_rows

BATCH_ROWS = 16_384
FORMATS = {
    "csv": "text/csv; charset=utf-8",
    "tsv": "text/tab-separated-values; charset=utf-8",
    "parquet": "application/vnd.apache.parquet",
    "jsonl": "application/x-ndjson",
    "json": "application/json; charset=utf-8",
    "xml": "text/xml; charset=utf-8",
    "geojson": "application/geo+json",
}
TEXT_FORMATS = {"csv", "tsv", "jsonl", "json", "xml", "geojson"}
_GEOM_COLUMNS = ("geometry", "geom", "wkt", "the_geom", "shape")
_LATLON = (("latitude", "longitude"), ("lat", "lon"), ("lat", "lng"), ("vi_do", "kinh_do"))


def batches(files: tuple[str, ...], schema: pa.Schema) -> Iterator[pa.RecordBatch]:
    """The snapshot's rows in file order, in small batches, one row group at a time.

    Buffered reads, no read-ahead threads, and unused pool memory handed back after each row group:
    the memory a download holds is about one decoded row group, whatever the table's size."""
    names = schema.names
    pool = pa.default_memory_pool()
    for path in files:
        pf = pq.ParquetFile(path, pre_buffer=False, buffer_size=1 << 20)
        for i in range(pf.num_row_groups):
            yield from pf.iter_batches(
                batch_size=BATCH_ROWS, row_groups=[i], columns=names, use_threads=False
            )
            pool.release_unused()


def with_row_ids(rows: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """The batches with CKAN's ``_id`` first: the row's position in the snapshot, from 1 (files in
    order), as the DataStore numbers rows (``hub.warehouse.engine.tables``)."""
    start = 1
    for batch in rows:
        ids = pa.array(np.arange(start, start + batch.num_rows, dtype=np.int64))
        start += batch.num_rows
        yield pa.RecordBatch.from_arrays(
            [ids, *batch.columns], schema=pa.schema([pa.field(ROW_ID, pa.int64(), False), *batch.schema])
        )


def with_row_id_schema(schema: pa.Schema) -> pa.Schema:
    return pa.schema([pa.field(ROW_ID, pa.int64(), False), *schema])


def geometry_kind(schema: pa.Schema) -> tuple[str, ...] | None:
    """How a table holds geometry: ``("wkt", column)``, ``("latlon", lat, lon)``, or None."""
    names = {n.lower(): n for n in schema.names}
    for col in _GEOM_COLUMNS:
        if col in names and pa.types.is_string(schema.field(names[col]).type):
            return ("wkt", names[col])
    for lat, lon in _LATLON:
        if lat in names and lon in names:
            return ("latlon", names[lat], names[lon])
    return None


class _Sink(io.RawIOBase):
    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        data = bytes(b)
        self.chunks.append(data)
        return len(data)

    def drain(self) -> bytes:
        out = b"".join(self.chunks)
        self.chunks.clear()
        return out


def _text_schema(schema: pa.Schema) -> pa.Schema:
    """Nested columns are written as JSON text in CSV."""
    return pa.schema([pa.field(f.name, pa.string()) if pa.types.is_nested(f.type) else f for f in schema])


def _flatten(batch: pa.RecordBatch) -> pa.RecordBatch:
    cols = []
    for col, f in zip(batch.columns, batch.schema, strict=True):
        if pa.types.is_nested(f.type):
            cols.append(
                pa.array(
                    [None if v is None else orjson.dumps(v).decode() for v in col.to_pylist()], pa.string()
                )
            )
        else:
            cols.append(col)
    return pa.RecordBatch.from_arrays(cols, names=batch.schema.names)


def _peek(rows: Iterator[pa.RecordBatch], schema: pa.Schema) -> tuple[Iterator[pa.RecordBatch], pa.Schema]:
    """The rows again, and the schema of the first batch (file schemas carry field ids)."""
    first = next(rows, None)
    if first is None:
        return iter(()), schema
    return itertools.chain([first], rows), first.schema


def encode_csv(
    rows: Iterator[pa.RecordBatch], schema: pa.Schema, *, tsv: bool = False, bom: bool = False
) -> Iterator[bytes]:
    rows, schema = _peek(rows, schema)
    sink = _Sink()
    options = pacsv.WriteOptions(include_header=True, delimiter="\t" if tsv else ",", batch_size=BATCH_ROWS)
    if bom:
        yield b"\xef\xbb\xbf"
    text_schema = _text_schema(schema)
    writer = pacsv.CSVWriter(sink, text_schema, write_options=options)
    nested = text_schema != schema
    wrote = False
    for batch in rows:
        writer.write_batch(_flatten(batch) if nested else batch)
        wrote = True
        chunk = sink.drain()
        if chunk:
            yield chunk
    if not wrote:
        writer.write_table(text_schema.empty_table())
    writer.close()
    tail = sink.drain()
    if tail:
        yield tail


def encode_parquet(rows: Iterator[pa.RecordBatch], schema: pa.Schema) -> Iterator[bytes]:
    rows, schema = _peek(rows, schema)
    sink = _Sink()
    writer = pq.ParquetWriter(sink, schema, compression="zstd")
    for batch in rows:
        writer.write_batch(batch)
        chunk = sink.drain()
        if chunk:
            yield chunk
    writer.close()
    tail = sink.drain()
    if tail:
        yield tail


def _default(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


def _slices(rows: Iterator[pa.RecordBatch], size: int = 4096) -> Iterator[pa.RecordBatch]:
    """Smaller batches for the formats that go through Python objects (bounded memory)."""
    for batch in rows:
        for start in range(0, batch.num_rows, size):
            yield batch.slice(start, size)


def encode_jsonl(rows: Iterator[pa.RecordBatch], schema: pa.Schema) -> Iterator[bytes]:
    for batch in _slices(rows):
        yield b"".join(orjson.dumps(r, default=_default) + b"\n" for r in batch.to_pylist())


def encode_geojson(rows: Iterator[pa.RecordBatch], schema: pa.Schema) -> Iterator[bytes]:
    kind = geometry_kind(schema)
    yield b'{"type":"FeatureCollection","features":['
    first = True
    for batch in _slices(rows):
        parts = []
        for r in batch.to_pylist():
            geometry: dict[str, Any] | None = None
            if kind and kind[0] == "wkt":
                geometry = wkt_to_geojson(r.pop(kind[1]))
            elif kind:
                lat, lon = r.get(kind[1]), r.get(kind[2])
                if lat is not None and lon is not None:
                    geometry = {"type": "Point", "coordinates": [float(lon), float(lat)]}
            feature = {"type": "Feature", "geometry": geometry, "properties": r}
            parts.append((b"" if first else b",") + orjson.dumps(feature, default=_default))
            first = False
        if parts:
            yield b"".join(parts)
    yield b"]}"


def ckan_fields(schema: pa.Schema) -> list[dict[str, str]]:
    """CKAN's field list of ``schema``: ``{"id", "type"}`` with PostgreSQL type names (``_id``: ``int``)."""
    return [{"id": f.name, "type": "int" if f.name == ROW_ID else ckan_type(f.type)} for f in schema]


def encode_ckan_json(rows: Iterator[pa.RecordBatch], schema: pa.Schema) -> Iterator[bytes]:
    """CKAN's ``json`` dump: ONE object ``{"fields": [...], "records": [[...], ...]}``, records as lists
    in the order of ``fields``, one record per line."""
    rows, schema = _peek(rows, schema)
    yield b'{"fields":' + orjson.dumps(ckan_fields(schema)) + b',\n"records":['
    first = True
    for batch in _slices(rows):
        if not batch.num_rows:
            continue
        lines = b",\n".join(orjson.dumps(r, default=_default) for r in json_rows(batch))
        yield (b"\n" if first else b",\n") + lines
        first = False
    yield b"\n]}\n"


_XML_NS = "http://www.w3.org/2001/XMLSchema-instance"
_XML_NAME_CHARS = re.compile(r"[^\W\d][\w.\-]*")
_XML_BAD = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_XML_SLOW = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\r\ufffe\uffff]")
"""Text that needs more than escaping: characters XML 1.0 cannot carry, and carriage returns."""


@functools.lru_cache(maxsize=4096)
def xml_name(name: str) -> bool:
    """Whether ``name`` can be an element's name as it is: letters, digits, ``_``, ``-`` and ``.`` as
    XML 1.0 allows them (checked by expat, Python's own parser), no ``:`` (a namespace prefix), not
    starting with ``xml`` (reserved)."""
    if not _XML_NAME_CHARS.fullmatch(name) or name[:3].lower() == "xml":
        return False
    parser = xml.parsers.expat.ParserCreate()
    try:
        parser.Parse(f"<{name}/>", True)  # the pattern above leaves no room for markup
    except xml.parsers.expat.ExpatError:
        return False
    return True


def _xml_text(value: Any) -> str:
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str):
        text = value
    elif hasattr(value, "isoformat"):
        text = value.isoformat()
    else:
        text = str(value)
    return _xml_escape(text, _XML_SLOW.search(text) is not None)


def _xml_escape(text: str, slow: bool) -> str:
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    if slow:  # characters XML 1.0 cannot carry become U+FFFD; a carriage return survives as a reference
        text = _XML_BAD.sub("\ufffd", text).replace("\r", "&#13;")
    return text


def _xml_tags(name: str, key: Any = None) -> tuple[str, str, str]:
    """The opening, closing and nil tags of a field: ``<name>``, or ``<value key="name">`` for a name
    XML cannot hold."""
    if key is None and not xml_name(name):
        name, key = "value", name
    attr = "" if key is None else f" key={quoteattr(_XML_BAD.sub(chr(0xFFFD), str(key)))}"
    return f"<{name}{attr}>", f"</{name}>", f'<{name}{attr} xsi:nil="true"/>'


def _xml_element(name: str, value: Any, key: Any = None) -> str:
    """``<name>value</name>``; a null is ``xsi:nil``, a list or an object nests ``<value key="index or
    key">`` elements (CKAN's shape)."""
    head, tail, nil = _xml_tags(name, key)
    if value is None:
        return nil
    if isinstance(value, dict):
        inner = "".join(_xml_element("value", v, k) for k, v in value.items())
    elif isinstance(value, list | tuple):
        inner = "".join(_xml_element("value", v, i) for i, v in enumerate(value))
    else:
        inner = _xml_text(value)
    return f"{head}{inner}{tail}"


def _xml_cells(name: str, column: pa.Array) -> pa.Array:
    """The elements of one column's values, as Arrow text: escaped and wrapped by Arrow's kernels;
    temporal, nested and non-finite values through ``hub.warehouse.values`` and ``_xml_element``."""
    head, tail, nil = _xml_tags(name)
    t = column.type
    text: pa.Array | None = None
    if pa.types.is_dictionary(t):
        column, t = column.cast(t.value_type), t.value_type
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        text = column
        for char, ref in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;")):
            text = pc.replace_substring(text, char, ref)
        if pc.any(pc.match_substring_regex(column, _XML_SLOW.pattern)).as_py():
            text = pc.replace_substring_regex(text, _XML_BAD.pattern, "\ufffd")
            text = pc.replace_substring(text, "\r", "&#13;")
    elif pa.types.is_integer(t):
        text = column.cast(pa.string())
    elif pa.types.is_boolean(t):
        text = pc.if_else(column, "true", "false")
    elif pa.types.is_floating(t):
        text = column.cast(pa.string())
        if pc.any(pc.invert(pc.is_finite(column))).as_py():  # spelt as the JSON rule spells them
            for arrow, rule in (("nan", "NaN"), ("inf", "Infinity"), ("-inf", "-Infinity")):
                text = pc.if_else(pc.equal(text, arrow), rule, text)
    if text is None:
        return pa.array(
            [_xml_element(name, v) for v in json_columns(pa.table([column], ["c"]))[0]], pa.string()
        )
    return pc.fill_null(pc.binary_join_element_wise(head, text, tail, ""), nil)


def _text_bytes(text: pa.Array) -> bytes:
    """The values of a text array without nulls, one after the other (its data buffer's used part)."""
    width = np.int64 if pa.types.is_large_string(text.type) else np.int32
    _, offsets, data = text.buffers()
    ends = np.frombuffer(offsets, dtype=width)[text.offset : text.offset + len(text) + 1]
    return bytes(data[int(ends[0]) : int(ends[-1])]) if len(text) else b""


def encode_xml(rows: Iterator[pa.RecordBatch], schema: pa.Schema) -> Iterator[bytes]:
    """CKAN's ``xml`` dump: ``<data>`` with one ``<row>`` per record, its fields as child elements in
    order (``_id`` as the row's attribute, as CKAN writes it); each batch is assembled by Arrow."""
    rows, schema = _peek(rows, schema)
    has_id = bool(schema.names) and schema.names[0] == ROW_ID
    yield f'<?xml version="1.0" encoding="utf-8"?>\n<data xmlns:xsi="{_XML_NS}">\n'.encode()
    for batch in rows:
        if not batch.num_rows:
            continue
        parts: list[pa.Array | str] = []
        if has_id:
            parts += ['<row _id="', batch.column(0).cast(pa.string()), '">']
        else:
            parts.append("<row>")
        parts += [_xml_cells(name, batch.column(i)) for i, name in enumerate(schema.names) if i or not has_id]
        parts.append("</row>\n")
        if not any(isinstance(p, pa.Array) for p in parts):  # no column at all
            yield b"<row></row>\n" * batch.num_rows
            continue
        joined = pc.binary_join_element_wise(*parts, "")
        yield _text_bytes(joined)
    yield b"</data>\n"


_WKT = re.compile(
    r"^\s*(MULTIPOLYGON|MULTILINESTRING|MULTIPOINT|POLYGON|LINESTRING|POINT)\s*(Z|M|ZM)?\s*(.*)$",
    re.IGNORECASE | re.DOTALL,
)


def _coords(text: str) -> Any:
    """Nested lists of coordinates from WKT's parenthesised text."""
    text = text.strip()
    if not text.startswith("("):
        return [float(x) for x in text.split()]
    depth = 0
    items: list[Any] = []
    start = 1
    for i, ch in enumerate(text):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                items.append(text[start:i])
                break
        elif ch == "," and depth == 1:
            items.append(text[start:i])
            start = i + 1
    return [_coords(item) for item in items]


def wkt_to_geojson(wkt: Any) -> dict[str, Any] | None:
    """A GeoJSON geometry from WKT (POINT, LINESTRING, POLYGON and their MULTI forms); None if unreadable."""
    if not isinstance(wkt, str):
        return None
    m = _WKT.match(wkt)
    if not m:
        return None
    kind = m.group(1).upper()
    body = m.group(3).strip()
    if body.upper() == "EMPTY":
        return None
    try:
        coords = _coords(body)
    except ValueError:
        return None
    names = {
        "POINT": "Point",
        "LINESTRING": "LineString",
        "POLYGON": "Polygon",
        "MULTIPOINT": "MultiPoint",
        "MULTILINESTRING": "MultiLineString",
        "MULTIPOLYGON": "MultiPolygon",
    }
    if kind == "POINT":
        coords = coords[0]
    elif kind == "MULTIPOINT":
        coords = [c[0] if c and isinstance(c[0], list) else c for c in coords]
    return {"type": names[kind], "coordinates": coords}
