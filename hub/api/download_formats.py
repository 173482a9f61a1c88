"""Streaming encoders of a snapshot's rows: CSV (optionally with a UTF-8 BOM), TSV, Parquet, JSON lines
and GeoJSON. Each reads the snapshot's Parquet files batch by batch, so memory stays constant.
"""

from __future__ import annotations

import io
import itertools
import re
from collections.abc import Iterator
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

BATCH_ROWS = 16_384
FORMATS = {
    "csv": "text/csv; charset=utf-8",
    "tsv": "text/tab-separated-values; charset=utf-8",
    "parquet": "application/vnd.apache.parquet",
    "jsonl": "application/x-ndjson",
    "geojson": "application/geo+json",
}
TEXT_FORMATS = {"csv", "tsv", "jsonl", "geojson"}
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
