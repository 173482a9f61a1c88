"""Arrow results as PostgreSQL rows: the type of each column and its DataRow messages.

A batch becomes its DataRow messages column by column with Arrow compute, never row by row in
Python: each column is rendered as a binary array (its text, or its binary form when the client asks
for it), each value gets its 4-byte length in front, and ``binary_join_element_wise`` lays the
messages out one after the other in one buffer that goes to the socket as it is. Only types without
a vectorized rendering (intervals, nested values, binary data as text, numerics in binary) fall back
to Python value by value.

==========================  =========================  ===================================
Arrow                       PostgreSQL                 text
==========================  =========================  ===================================
bool                        bool (16)                  ``t`` / ``f``
int8, int16, uint8          int2 (21)
int32, uint16               int4 (23)
int64, uint32               int8 (20)
uint64, decimal             numeric (1700)
float16, float32 / float64  float4 (700) / float8 (701)  ``NaN``, ``Infinity``, ``-Infinity``
string                      text (25)
binary                      bytea (17)                 ``\\x`` and hexadecimal
date                        date (1082)
timestamp / with time zone  timestamp (1114) /         ``2024-05-01 07:30:00.000000(+00)``
                            timestamptz (1184)
time                        time (1083)
duration, interval          interval (1186)            ``1 mon 2 days 03:04:05``
lists, structs, maps        json (114)                 the JSON rule of ``hub.warehouse.values``
==========================  =========================  ===================================
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hub.pgwire.protocol import Column
from hub.warehouse.values import json_value

BOOL, BYTEA, INT8, INT2, INT4, TEXT, JSON = 16, 17, 20, 21, 23, 25, 114
FLOAT4, FLOAT8, NUMERIC, DATE, TIME, TIMESTAMP, TIMESTAMPTZ, INTERVAL = (
    700,
    701,
    1700,
    1082,
    1083,
    1114,
    1184,
    1186,
)
UNKNOWN, VARCHAR, NAME, OID, CHAR = 705, 1043, 19, 26, 18

_PG_EPOCH_DAYS = 10_957  # 2000-01-01 in days from 1970-01-01
_PG_EPOCH_US = _PG_EPOCH_DAYS * 86_400_000_000
_NULL = b"\xff\xff\xff\xff"

Render = Callable[[pa.Array], pa.Array]
"""A column's values as a binary array (null where the value is null)."""


@dataclass(frozen=True)
class Codec:
    """How one result column is described and rendered."""

    column: Column
    render: Render


def _binary(arr: pa.Array) -> pa.Array:
    return arr if arr.type == pa.binary() else pc.cast(arr, pa.binary())


def _fixed(values: np.ndarray, width: int, valid: pa.Array | None) -> pa.Array:
    """A binary array of ``values`` (a numpy array of big-endian items of ``width`` bytes)."""
    n = len(values)
    out = pa.FixedSizeBinaryArray.from_buffers(pa.binary(width), n, [None, pa.py_buffer(values.tobytes())])
    arr = pc.cast(out, pa.binary())
    if valid is not None:
        arr = pc.if_else(valid, arr, pa.scalar(None, pa.binary()))
    return arr


def _validity(arr: pa.Array) -> pa.Array | None:
    return pc.is_valid(arr) if arr.null_count else None


def _numbers(arr: pa.Array, dtype: str) -> np.ndarray:
    if arr.null_count:
        arr = arr.fill_null(False if pa.types.is_boolean(arr.type) else 0)
    return np.asarray(arr.to_numpy(zero_copy_only=False)).astype(dtype)


def _slow(fn: Callable[[Any], bytes]) -> Render:
    def render(arr: pa.Array) -> pa.Array:
        return pa.array([None if v is None else fn(v) for v in arr.to_pylist()], pa.binary())

    return render


# --- text renderings -------------------------------------------------------------------------


def _text_plain(arr: pa.Array) -> pa.Array:
    return _binary(pc.cast(arr, pa.string()) if not pa.types.is_string(arr.type) else arr)


def _text_bool(arr: pa.Array) -> pa.Array:
    return pc.if_else(arr, pa.scalar(b"t"), pa.scalar(b"f"))


def _text_float(arr: pa.Array) -> pa.Array:
    text = pc.cast(arr, pa.string())
    if pc.any(pc.is_nan(arr)).as_py() or pc.any(pc.is_inf(arr)).as_py():
        text = pc.replace_substring_regex(text, "^nan$", "NaN")
        text = pc.replace_substring_regex(text, "^inf$", "Infinity")
        text = pc.replace_substring_regex(text, "^-inf$", "-Infinity")
    return _binary(text)


def _text_timestamp(arr: pa.Array) -> pa.Array:
    t: pa.TimestampType = arr.type
    if t.tz is None:
        return _binary(pc.cast(arr, pa.string()))
    naive = pc.cast(arr.view(pa.int64()), pa.timestamp(t.unit))  # the UTC wall time
    text = _binary(pc.cast(naive, pa.string()))
    return pc.binary_join_element_wise(text, pa.scalar(b"+00"), b"")


def _interval_text(v: Any) -> bytes:
    if isinstance(v, pa.MonthDayNano):
        months, days, nanos = v.months, v.days, v.nanoseconds
    else:  # a timedelta (duration)
        months, days, nanos = 0, v.days, (v.seconds * 1_000_000 + v.microseconds) * 1000
    parts = []
    if months:
        years, months = divmod(months, 12)
        if years:
            parts.append(f"{years} year{'s' if abs(years) != 1 else ''}")
        if months:
            parts.append(f"{months} mon{'s' if abs(months) != 1 else ''}")
    if days:
        parts.append(f"{days} day{'s' if abs(days) != 1 else ''}")
    if nanos or not parts:
        sign = "-" if nanos < 0 else ""
        micros = abs(nanos) // 1000
        secs, frac = divmod(micros, 1_000_000)
        text = f"{sign}{secs // 3600:02d}:{secs // 60 % 60:02d}:{secs % 60:02d}"
        parts.append(text + (f".{frac:06d}".rstrip("0") if frac else ""))
    return " ".join(parts).encode()


def _json_text(v: Any) -> bytes:
    return json.dumps(json_value(v), ensure_ascii=False, separators=(",", ":")).encode()


# --- binary renderings -----------------------------------------------------------------------


def _bin_int(width: int) -> Render:
    dtype = {2: ">i2", 4: ">i4", 8: ">i8"}[width]
    return lambda arr: _fixed(_numbers(arr, dtype), width, _validity(arr))


def _bin_float(width: int) -> Render:
    dtype = ">f4" if width == 4 else ">f8"
    return lambda arr: _fixed(_numbers(arr, dtype), width, _validity(arr))


def _bin_bool(arr: pa.Array) -> pa.Array:
    return _fixed(_numbers(arr, "u1"), 1, _validity(arr))


def _bin_date(arr: pa.Array) -> pa.Array:
    days = _numbers(pc.cast(arr, pa.date32()).view(pa.int32()), "i8") - _PG_EPOCH_DAYS
    return _fixed(days.astype(">i4"), 4, _validity(arr))


def _bin_timestamp(arr: pa.Array) -> pa.Array:
    t: pa.TimestampType = arr.type
    micros = pc.cast(arr, pa.timestamp("us", t.tz)) if t.unit != "us" else arr
    values = _numbers(micros.view(pa.int64()), "i8") - _PG_EPOCH_US
    return _fixed(values.astype(">i8"), 8, _validity(arr))


def _bin_time(arr: pa.Array) -> pa.Array:
    micros = pc.cast(arr, pa.time64("us")).view(pa.int64())
    return _fixed(_numbers(micros, ">i8"), 8, _validity(arr))


def _numeric_binary(v: Any) -> bytes:
    """PostgreSQL's binary numeric: base-10000 digits, weight, sign, display scale."""
    d = v if isinstance(v, Decimal) else Decimal(str(v))
    if d.is_nan():
        return struct.pack("!hhHh", 0, 0, 0xC000, 0)
    sign, digits, exponent = d.as_tuple()
    assert isinstance(exponent, int)
    scale = max(0, -exponent)
    text = "".join(map(str, digits)) or "0"
    int_part = text[: len(text) - scale] if scale < len(text) else "0"
    frac_part = (text[len(text) - scale :] if scale else "").rjust(scale, "0") if scale else ""
    if exponent > 0:
        int_part = text + "0" * exponent
    int_part = int_part.lstrip("0")
    int_groups = []
    if int_part:
        pad = (-len(int_part)) % 4
        padded = "0" * pad + int_part
        int_groups = [int(padded[i : i + 4]) for i in range(0, len(padded), 4)]
    frac_groups = []
    if frac_part:
        padded = frac_part + "0" * ((-len(frac_part)) % 4)
        frac_groups = [int(padded[i : i + 4]) for i in range(0, len(padded), 4)]
    groups = int_groups + frac_groups
    weight = len(int_groups) - 1
    while groups and groups[0] == 0:
        groups.pop(0)
        weight -= 1
    while groups and groups[-1] == 0:
        groups.pop()
    if not groups:
        weight = 0
    head = struct.pack("!hhHh", len(groups), weight, 0x4000 if sign else 0, scale)
    return head + b"".join(struct.pack("!H", g) for g in groups)


# --- the type table --------------------------------------------------------------------------


def _codec_parts(t: pa.DataType) -> tuple[int, int, int, Render, Render]:
    """``(oid, size, typmod, text render, binary render)`` of an Arrow type."""
    if pa.types.is_boolean(t):
        return BOOL, 1, -1, _text_bool, _bin_bool
    if pa.types.is_integer(t):
        bits = t.bit_width + (1 if pa.types.is_unsigned_integer(t) else 0)
        if bits <= 16:
            return INT2, 2, -1, _text_plain, _bin_int(2)
        if bits <= 32:
            return INT4, 4, -1, _text_plain, _bin_int(4)
        if bits <= 64:
            return INT8, 8, -1, _text_plain, _bin_int(8)
        return NUMERIC, -1, -1, _text_plain, _slow(_numeric_binary)
    if pa.types.is_floating(t):
        if t.bit_width <= 32:
            return FLOAT4, 4, -1, _text_float, _bin_float(4)
        return FLOAT8, 8, -1, _text_float, _bin_float(8)
    if pa.types.is_decimal(t):
        typmod = ((t.precision << 16) | t.scale) + 4
        return NUMERIC, -1, typmod, _text_plain, _slow(_numeric_binary)
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return TEXT, -1, -1, _text_plain, _text_plain
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
        return BYTEA, -1, -1, _slow(lambda v: b"\\x" + v.hex().encode()), _binary
    if pa.types.is_date(t):
        return DATE, 4, -1, _text_plain, _bin_date
    if pa.types.is_timestamp(t):
        return (TIMESTAMPTZ if t.tz else TIMESTAMP), 8, -1, _text_timestamp, _bin_timestamp
    if pa.types.is_time(t):
        return TIME, 8, -1, _text_plain, _bin_time
    if pa.types.is_duration(t) or t == pa.month_day_nano_interval():
        render = _slow(_interval_text)
        return INTERVAL, 16, -1, render, render  # text only (binary asked: see ``codecs``)
    if pa.types.is_null(t):
        return TEXT, -1, -1, _text_plain, _text_plain
    render = _slow(_json_text)
    return JSON, -1, -1, render, render


_TEXT_ONLY = {INTERVAL}


def codecs(schema: pa.Schema, formats: Sequence[int] = ()) -> list[Codec]:
    """How each column of ``schema`` is described and rendered; ``formats`` are the result format
    codes of a Bind (none: text; one: for every column; else one per column). A type without a
    binary rendering asked in binary is described as text, which the client reads as it is."""
    out = []
    for i, f in enumerate(schema):
        fmt = formats[0] if len(formats) == 1 else (formats[i] if i < len(formats) else 0)
        oid, size, typmod, text, binary = _codec_parts(f.type)
        if fmt == 1 and oid in _TEXT_ONLY:
            oid, size, typmod, binary = TEXT, -1, -1, text
        out.append(Codec(Column(f.name, oid, size, typmod, fmt), binary if fmt == 1 else text))
    return out


def data_rows(batch: pa.RecordBatch, cols: Sequence[Codec]) -> memoryview:
    """The DataRow messages of every row of ``batch``, one after the other."""
    n = batch.num_rows
    if n == 0:
        return memoryview(b"")
    parts: list[pa.Array] = []
    total = np.full(n, 6, dtype=np.int64)  # the length field and the column count
    for i, codec in enumerate(cols):
        values = codec.render(batch.column(i))
        lengths = pc.binary_length(values)
        counted = np.asarray(lengths.fill_null(0).to_numpy(zero_copy_only=False), dtype=np.int64)
        total += counted + 4
        prefix = np.asarray(lengths.fill_null(-1).to_numpy(zero_copy_only=False)).astype(">i4")
        parts.append(_fixed(prefix, 4, None))
        parts.append(values)
    head = np.empty(n, dtype=[("t", "S1"), ("len", ">i4"), ("cols", ">i2")])
    head["t"] = b"D"
    head["len"] = total
    head["cols"] = len(cols)
    joined = pc.binary_join_element_wise(
        _fixed(head, 7, None), *parts, b"", null_handling="replace", null_replacement=""
    )
    offsets, data = joined.buffers()[1], joined.buffers()[2]
    ends = np.frombuffer(offsets, dtype=np.int32, count=n + 1 + joined.offset)
    start, end = int(ends[joined.offset]), int(ends[joined.offset + n])
    return memoryview(data)[start:end]


def text_values(values: Sequence[Any]) -> list[bytes | None]:
    """Python values (answers the hub gives itself: SHOW, settings) as text."""
    out: list[bytes | None] = []
    for v in values:
        if v is None:
            out.append(None)
        elif isinstance(v, bool):
            out.append(b"t" if v else b"f")
        else:
            out.append(str(v).encode())
    return out


_ = _NULL  # the length of a NULL value (-1), written by ``data_rows`` through ``fill_null(-1)``
