"""The one rule by which query results become JSON values (DataStore records, JSON lines).

JSON cannot hold every value a query returns. Each Arrow type becomes:

=====================================  ==========================================================
integers, booleans, text               as they are (integers beyond 64 bits: their decimal text)
floating point                         a number; NaN and the infinities as the strings ``"NaN"``,
                                       ``"Infinity"``, ``"-Infinity"`` (PostgreSQL's spelling)
decimal                                a number (``float``); scale 0 beyond 64 bits: decimal text
date, timestamp                        ISO 8601 text, as CKAN's DataStore writes them
                                       (``2024-05-01``, ``2024-05-01T07:30:00``); DuckDB's
                                       infinities as ``"infinity"`` / ``"-infinity"``; a year
                                       outside 1-9999 in ISO 8601's expanded form (``+5877642-06-25``)
time                                   ISO 8601 text (``07:30:00``)
interval, duration                     an ISO 8601 duration (``P1M2DT3H4M5.5S``; zero is ``PT0S``)
binary                                 lowercase hexadecimal text
lists, structs, maps                   arrays and objects of values under this same rule (a map
                                       as an object when its keys are text, else a list of pairs)
=====================================  ==========================================================

Values are converted column by column with Arrow; only columns whose values fall outside what
Python's ``date``/``datetime`` hold, and intervals, are converted value by value.
"""

from __future__ import annotations

import math
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

_MIN_DAY, _MAX_DAY = -719_162, 2_932_896  # 0001-01-01 and 9999-12-31, in days from 1970-01-01
_INF32 = 2_147_483_647
_INF64 = 9_223_372_036_854_775_807
_UNIT = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}
_EPOCH = date(1970, 1, 1)


def _civil(days: int) -> tuple[int, int, int]:
    """Year, month, day of a day number (from 1970-01-01), for any year (proleptic Gregorian)."""
    z = days + 719_468
    era = (z if z >= 0 else z - 146_096) // 146_097
    doe = z - era * 146_097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146_096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    return (y + 1 if m <= 2 else y), m, d


def _year(y: int) -> str:
    return f"{y:04d}" if 0 <= y <= 9999 else f"{'+' if y > 0 else '-'}{abs(y):d}"


def day_text(days: int | None) -> str | None:
    if days is None:
        return None
    if days >= _INF32:
        return "infinity"
    if days <= -_INF32:
        return "-infinity"
    if _MIN_DAY <= days <= _MAX_DAY:
        return (_EPOCH + timedelta(days=days)).isoformat()
    y, m, d = _civil(days)
    return f"{_year(y)}-{m:02d}-{d:02d}"


def _timestamp_text(value: int | None, unit: str, tz: bool) -> str | None:
    if value is None:
        return None
    if value >= _INF64:
        return "infinity"
    if value <= -_INF64:
        return "-infinity"
    per = _UNIT[unit]
    days, rest = divmod(value, per * 86_400)
    seconds, frac = divmod(rest, per)
    date_part = day_text(days)
    clock = f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
    if frac:
        clock += f".{frac:0{len(str(per)) - 1}d}".rstrip("0")
    return f"{date_part}T{clock}{'+00:00' if tz else ''}"


def duration_text(months: int, days: int, nanoseconds: int) -> str:
    """An ISO 8601 duration: ``P1Y2M3DT4H5M6.5S`` (zero parts left out; zero is ``PT0S``; a negative
    duration as ``-P1D``; parts of mixed signs each with their own sign)."""
    sign = ""
    if months <= 0 and days <= 0 and nanoseconds <= 0 and (months or days or nanoseconds):
        sign, months, days, nanoseconds = "-", -months, -days, -nanoseconds
    years, months = (months // 12, months % 12) if months >= 0 else (0, months)
    out = f"{years}Y" if years else ""
    out += f"{months}M" if months else ""
    out += f"{days}D" if days else ""
    negative = nanoseconds < 0
    secs, nanos = divmod(abs(nanoseconds), 1_000_000_000)
    hours, rest = divmod(secs, 3600)
    minutes, seconds = divmod(rest, 60)
    clock = f"{hours}H" if hours else ""
    clock += f"{minutes}M" if minutes else ""
    if seconds or nanos:
        clock += f"{seconds}" + (f".{nanos:09d}".rstrip("0") if nanos else "") + "S"
    if clock:
        out += "T" + ("-" if negative else "") + clock
    return f"{sign}P{out}" if out else "PT0S"


def _float(v: float) -> float | str:
    if math.isfinite(v):
        return v
    return "NaN" if math.isnan(v) else ("Infinity" if v > 0 else "-Infinity")


def _view(col: pa.ChunkedArray | pa.Array, width: pa.DataType) -> pa.ChunkedArray | pa.Array:
    if isinstance(col, pa.ChunkedArray):
        return pa.chunked_array([c.view(width) for c in col.chunks], width)
    return col.view(width)


def _needs_slow_temporal(col: pa.ChunkedArray | pa.Array) -> bool:
    t = col.type
    width = pa.int32() if pa.types.is_date32(t) else pa.int64()
    ints = _view(col, width)
    if not len(ints) or ints.null_count == len(ints):
        return False
    lo_hi = pc.min_max(ints).as_py()
    lo, hi = lo_hi["min"], lo_hi["max"]
    if pa.types.is_date32(t):
        return bool(lo < _MIN_DAY or hi > _MAX_DAY)
    if pa.types.is_date64(t):
        return bool(lo < _MIN_DAY * 86_400_000 or hi > _MAX_DAY * 86_400_000)
    per = _UNIT[t.unit]
    return bool(lo < _MIN_DAY * 86_400 * per or hi > (_MAX_DAY + 1) * 86_400 * per - 1)


def _column(col: pa.ChunkedArray | pa.Array) -> list[Any]:
    """The values of one column under the rule (see the module docstring)."""
    t = col.type
    if pa.types.is_dictionary(t):
        return _column(col.cast(t.value_type))
    if pa.types.is_date(t) or pa.types.is_timestamp(t):
        if _needs_slow_temporal(col):
            if pa.types.is_date32(t):
                return [day_text(v) for v in _view(col, pa.int32()).to_pylist()]
            ints = _view(col, pa.int64()).to_pylist()
            if pa.types.is_date64(t):
                return [None if v is None else day_text(v // 86_400_000) for v in ints]
            return [_timestamp_text(v, t.unit, t.tz is not None) for v in ints]
        return list(col.to_pylist())
    if pa.types.is_floating(t):
        if pc.all(pc.is_finite(col)).as_py() is not False:  # no NaN or infinity (nulls aside)
            return list(col.to_pylist())
        return [None if v is None else _float(v) for v in col.to_pylist()]
    if pa.types.is_decimal(t):
        return [None if v is None else _decimal(v, t.scale) for v in col.to_pylist()]
    if pa.types.is_interval(t):
        return [
            None if v is None else duration_text(v.months, v.days, v.nanoseconds) for v in col.to_pylist()
        ]
    if pa.types.is_duration(t):
        per = _UNIT[t.unit]
        return [
            None if v is None else duration_text(0, 0, v * (1_000_000_000 // per))
            for v in _view(col, pa.int64()).to_pylist()
        ]
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
        return [None if v is None else v.hex() for v in col.to_pylist()]
    if (
        pa.types.is_integer(t)
        or pa.types.is_string(t)
        or pa.types.is_large_string(t)
        or pa.types.is_boolean(t)
    ):
        return list(col.to_pylist())
    if pa.types.is_time(t):
        return [None if v is None else v.isoformat() for v in col.to_pylist()]
    if pa.types.is_struct(t) or pa.types.is_map(t) or pa.types.is_list(t) or pa.types.is_large_list(t):
        arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
        return _nested(arr)
    return [_plain(v) for v in col.to_pylist()]


def _nested(arr: pa.Array) -> list[Any]:
    """Lists, structs and maps, their children converted by ``_column`` (so a nested date out of
    Python's range, or a nested interval, follows the rule too)."""
    t = arr.type
    valid = arr.is_valid().to_pylist()
    if pa.types.is_struct(t):
        fields = [(t.field(i).name, _column(arr.field(i))) for i in range(t.num_fields)]
        return [{name: values[i] for name, values in fields} if ok else None for i, ok in enumerate(valid)]
    offsets = arr.offsets.to_pylist()
    if pa.types.is_map(t):
        keys, items = _column(arr.keys), _column(arr.items)
        text_keys = pa.types.is_string(t.key_type) or pa.types.is_large_string(t.key_type)
        out_map: list[Any] = []
        for i, ok in enumerate(valid):
            if not ok:
                out_map.append(None)
                continue
            a, b = offsets[i] - offsets[0], offsets[i + 1] - offsets[0]
            pairs = list(zip(keys[a:b], items[a:b], strict=True))
            out_map.append(dict(pairs) if text_keys else [list(pr) for pr in pairs])
        return out_map
    values = _column(arr.flatten())
    out: list[Any] = []
    for i, ok in enumerate(valid):
        a, b = offsets[i] - offsets[0], offsets[i + 1] - offsets[0]
        out.append(values[a:b] if ok else None)
    return out


def _decimal(v: Decimal, scale: int) -> float | int | str:
    if scale == 0:
        n = int(v)
        return n if -(2**63) <= n < 2**63 else str(n)
    return _float(float(v))


def _plain(v: Any) -> Any:
    """A nested value (list, struct, map, or an unusual scalar) under the rule, value by value."""
    if v is None or isinstance(v, (bool, str)):
        return v
    if isinstance(v, int):
        return v if -(2**63) <= v < 2**63 else str(v)
    if isinstance(v, float):
        return _float(v)
    if isinstance(v, Decimal):
        return _decimal(v, 1 if v != v.to_integral_value() else 0)
    if isinstance(v, datetime):
        return v.isoformat()
    if isinstance(v, date):
        return v.isoformat()
    if isinstance(v, (bytes, bytearray)):
        return bytes(v).hex()
    if isinstance(v, timedelta):
        return duration_text(0, v.days, (v.seconds * 1_000_000 + v.microseconds) * 1000)
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        if v and all(isinstance(x, tuple) and len(x) == 2 for x in v):  # a map's (key, value) pairs
            if all(isinstance(x[0], str) for x in v):
                return {x[0]: _plain(x[1]) for x in v}
            return [[_plain(x[0]), _plain(x[1])] for x in v]
        return [_plain(x) for x in v]
    if hasattr(v, "months") and hasattr(v, "nanoseconds"):
        return duration_text(v.months, v.days, v.nanoseconds)
    return str(v)


def json_columns(table: pa.Table | pa.RecordBatch) -> list[list[Any]]:
    """Every column of ``table`` as a list of JSON-able values, under the rule."""
    return [_column(c) for c in table.columns]


def json_rows(table: pa.Table | pa.RecordBatch) -> list[tuple[Any, ...]]:
    """The rows of ``table`` as tuples of JSON-able values, under the rule."""
    cols = json_columns(table)
    return list(zip(*cols, strict=True)) if cols else [() for _ in range(table.num_rows)]


def json_value(v: Any) -> Any:
    """One Python value (as DuckDB or Arrow give it) under the rule."""
    return _plain(v)
