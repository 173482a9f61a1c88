"""Input column -> the field's Arrow type, vectorized; which rows are not of the field's JSON type.

See docs/contracts.md, "From a column to JSON values", for the rules. In short: a column that already
has a compatible Arrow type is taken as is; in *text mode* (CSV, XML) a string column is parsed into
the field's type and the empty text is null; a ``format: date``/``date-time`` string is checked
(RFC 3339, as the ``jsonschema`` format checker does) and converted to ``date32``/``timestamp[us, UTC]``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hub.contracts.fastpath import byte_lengths, parse_dates_fast, parse_datetimes_fixed, parse_ymd
from hub.contracts.model import FieldInfo

# rfc3339_validator's grammar, applied by jsonschema to value.upper(); its "$" admits a final newline.
DATETIME_SHAPE = (
    r"^[0-9]{4}-(?:0[1-9]|1[0-2])-[0-9]{2}[Tt](?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]+)?"
    r"(?:[Zz]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])\n?\z"
)
INT_TEXT = r"^[+-]?[0-9]+\z"
DAY_ONE = -719162  # 0001-01-01 as days since 1970-01-01
NUM_TEXT = r"^[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\z"


def mask(arr: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A boolean Arrow array as a numpy bool array, null -> False."""
    out = pc.fill_null(arr, False) if arr.null_count else arr
    if isinstance(out, pa.ChunkedArray):
        out = out.combine_chunks()
    if pa.types.is_boolean(out.type) and out.buffers()[1] is not None:
        # unpacking the bits with numpy is ~10x faster than Array.to_numpy (pyarrow 26)
        bits = np.unpackbits(np.frombuffer(out.buffers()[1], dtype=np.uint8), bitorder="little")
        return bits[out.offset : out.offset + len(out)].view(bool)
    return np.asarray(out.to_numpy(zero_copy_only=False), dtype=bool)


def null_where(arr: pa.Array, where: np.ndarray) -> pa.Array:
    """``arr`` with nulls where ``where`` is true, sharing its data buffers (only the validity is new)."""
    if not where.any():
        return arr
    if pa.types.is_string_view(arr.type):
        return pc.if_else(pa.array(where), pa.scalar(None, arr.type), arr)
    off = arr.offset
    bits = np.zeros(off + len(arr), dtype=bool)
    bits[off:] = mask(pc.is_valid(arr)) & ~where
    bitmap = pa.py_buffer(np.packbits(bits, bitorder="little"))
    return pa.Array.from_buffers(arr.type, len(arr), [bitmap, *arr.buffers()[1:]], offset=off)


def as_string(arr: pa.Array) -> pa.Array:
    """``arr`` as an Arrow ``string`` array (no copy when it is one)."""
    return arr if arr.type == pa.string() else arr.cast(pa.string())


_PARSE_ERROR = re.compile(r"Failed to parse string: '(.*)' as a scalar of type ", re.S)


def cast_isolating(s: pa.Array, target: pa.DataType, rounds: int = 12) -> tuple[pa.Array, np.ndarray] | None:
    """Cast ``s``; a value Arrow refuses is nulled and marked (the second result), and the cast retried.

    Arrow's cast fails as a whole and names the first value it refused; a batch has few distinct bad
    values, so a few rounds isolate them. None when that does not converge (the caller decides exactly).
    """
    refused = np.zeros(len(s), dtype=bool)
    for _ in range(rounds):
        try:
            return pc.cast(s, target), refused
        except pa.ArrowInvalid as exc:
            m = _PARSE_ERROR.search(str(exc))
            if m is None:
                return None
            hit = mask(pc.equal(s, m.group(1)))
            if not hit.any():
                return None
            refused |= hit
            s = pc.if_else(pa.array(hit), pa.scalar(None, s.type), s)
    return None


def is_string(t: pa.DataType) -> bool:
    return bool(pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t))


@dataclass
class Column:
    """A field's values, coerced. ``bad``: rows whose value is not of the field's JSON type."""

    typed: pa.Array  # the contract's Arrow type; null where ``bad`` or the value is null
    # the JSON string of each value (string fields), for string keywords; a function that makes it
    # when it is costly and rarely needed (typed date-times: formatting them takes longer than all checks)
    text_or_factory: pa.Array | Callable[[], pa.Array] | None
    null: np.ndarray  # the value is a JSON null
    bad: np.ndarray
    format_bad: np.ndarray | None = None  # date/date-time value that is not a valid RFC 3339 one
    source: pa.Array | None = None  # the column as given

    @property
    def text(self) -> pa.Array | None:
        if callable(self.text_or_factory):
            self.text_or_factory = self.text_or_factory()
        return self.text_or_factory


def parse_dates(s: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """ISO dates (YYYY-MM-DD, as ``jsonschema``'s ``date`` format) -> (date32, format-failure mask).

    Arrow's cast is strict about the shape and the calendar but accepts year 0 and fails as a whole on
    one bad value; so: cast, check length and year, and on failure parse the bytes exactly (numpy).
    """
    s = as_string(s)
    got = cast_isolating(s, pa.date32())
    if got is None:
        return parse_dates_fast(s)
    days, refused = got
    lengths = byte_lengths(s)
    year0 = mask(pc.less(days.cast(pa.int32()), DAY_ONE))
    bad = (lengths >= 0) & (refused | (lengths != 10) | year0)
    if bad.any():
        days = pc.if_else(pa.array(bad), pa.scalar(None, pa.date32()), days)
    return days, bad


def parse_datetimes(s: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """RFC 3339 date-times (as ``jsonschema``'s ``date-time`` format) -> (timestamp[us, UTC], failures).

    The two common shapes (``...SSZ``, ``...SS+07:00``) are parsed from the bytes; the rest of the
    values, if any, as ``_parse_datetimes_exact`` does.
    """
    s = as_string(s)
    target = pa.timestamp("us", tz="UTC")
    fast, micros = parse_datetimes_fixed(s)
    rest = (byte_lengths(s) >= 0) & ~fast
    if not rest.any():
        return pa.array(micros, pa.int64(), mask=~fast).cast(target), np.zeros(len(s), dtype=bool)
    if not fast.any():
        return _parse_datetimes_exact(s)
    idx = np.flatnonzero(rest)
    typed_rest, bad_rest = _parse_datetimes_exact(s.take(pa.array(idx)))
    micros[idx] = np.asarray(pc.fill_null(typed_rest.cast(pa.int64()), 0).to_numpy(zero_copy_only=False))
    valid = fast.copy()
    valid[idx] = mask(pc.is_valid(typed_rest))
    bad = np.zeros(len(s), dtype=bool)
    bad[idx] = bad_rest
    return pa.array(micros, pa.int64(), mask=~valid).cast(target), bad


def _parse_datetimes_exact(s: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """The shape by RE2; the calendar by Arrow's cast of the well-shaped values (exact bytes parse when
    the cast fails: a bad day, a lower-case t/z, a final newline, more than 6 fraction digits)."""
    notnull = byte_lengths(s) >= 0
    shape = mask(pc.match_substring_regex(s, DATETIME_SHAPE))
    target = pa.timestamp("us", tz="UTC")
    null_s = pa.scalar(None, pa.string())
    cand = s if shape.all() else pc.if_else(pa.array(shape), s, null_s)
    got = cast_isolating(cand, target)
    if got is not None:
        ts, refused = got
        year_ok = mask(pc.greater_equal(ts, pa.scalar(-62135510400 * 10**6, target))) | ~shape
        if not refused.any() and year_ok.all():
            return ts, notnull & ~shape
    # exactly: the calendar from the bytes; Arrow parses the normalized text (upper case, no final
    # newline, at most 6 fraction digits)
    ok = parse_ymd(s, shape)[0]
    norm = pc.if_else(pa.array(ok), s, null_s)
    norm = pc.utf8_rtrim(pc.utf8_upper(norm), characters="\n")
    norm = pc.replace_substring_regex(norm, r"(\.[0-9]{6})[0-9]+", r"\1")
    return pc.cast(norm, target), notnull & ~ok


def _typed_from_text(s: pa.Array, kind: str, n: int) -> tuple[pa.Array, np.ndarray]:
    """Text -> integer/number/boolean/object/array; returns (typed, bad)."""
    notnull = mask(pc.is_valid(s))
    if kind in ("integer", "number"):
        target = pa.int64() if kind == "integer" else pa.float64()
        got = cast_isolating(s, target)
        if got is None:
            typed, refused = pa.nulls(n, target), notnull.copy()
        else:
            typed, refused = got
        # Arrow also reads hexadecimal integers and nan/inf: not numbers in this grammar
        if kind == "integer":
            odd = mask(pc.or_(pc.match_substring(s, "x"), pc.match_substring(s, "X")))
        else:
            odd = ~mask(pc.is_finite(typed))
        odd &= notnull & ~refused
        if not refused.any() and not odd.any():
            return typed, np.zeros(n, dtype=bool)
        bad = odd.copy()
        redo = np.flatnonzero(refused)
        values: list[Any] = []
        grammar = re.compile(
            INT_TEXT.replace("\\z", "\\Z") if kind == "integer" else NUM_TEXT.replace("\\z", "\\Z")
        )
        for i in redo:  # Arrow refused these: decide exactly (out of int64 range, a + sign, ...)
            v = s[int(i)].as_py()
            x: Any = None
            if grammar.match(v):
                x = int(v) if kind == "integer" else float(v)
                if (kind == "integer" and not -(2**63) <= x < 2**63) or (
                    kind == "number" and not np.isfinite(x)
                ):
                    x = None
            if x is None:
                bad[i] = True
            values.append(x)
        fix = refused & ~bad
        if fix.any():
            typed = pc.replace_with_mask(
                typed, pa.array(fix), pa.array([v for v in values if v is not None], target)
            )
        if bad.any():
            typed = pc.if_else(pa.array(bad), pa.scalar(None, target), typed)
        return typed, bad
    if kind == "boolean":
        low = pc.utf8_lower(s)
        t = pc.is_in(low, value_set=pa.array(["true", "1"]))
        f = pc.is_in(low, value_set=pa.array(["false", "0"]))
        ok = mask(pc.or_(t, f))
        return pc.if_else(pa.array(ok), t, pa.scalar(None, pa.bool_())), notnull & ~ok
    # object / array: JSON text
    out: list[str | None] = []
    wrong = np.zeros(n, dtype=bool)
    for row, v in enumerate(s.to_pylist()):
        if v is None:
            out.append(None)
            continue
        try:
            parsed = json.loads(v)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict if kind == "object" else list):
            out.append(json.dumps(parsed, ensure_ascii=False, separators=(",", ":")))
        else:
            out.append(None)
            wrong[row] = True
    return pa.array(out, pa.string()), wrong


def _outside_years(typed: pa.Array) -> np.ndarray:
    """A typed date or timestamp is a valid RFC 3339 value unless its year is outside 1..9999."""
    year = pc.year(typed)
    return mask(pc.or_(pc.less(year, 1), pc.greater(year, 9999)))


def _lazy_iso(typed: pa.Array, fmt: str) -> Callable[[], pa.Array]:
    return lambda: _iso_text(typed, fmt)


def _iso_text(typed: pa.Array, fmt: str) -> pa.Array:
    if fmt == "date":
        return pc.strftime(typed, format="%Y-%m-%d")
    return pc.strftime(typed, format="%Y-%m-%dT%H:%M:%SZ")


def coerce(arr: pa.Array, info: FieldInfo, text_mode: bool) -> Column:
    """Bring one input column to ``info.arrow_type`` and find the rows not of the field's JSON type."""
    n = len(arr)
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    t = arr.type
    kind = info.json_type
    if text_mode and is_string(t):
        arr = null_where(arr, mask(pc.equal(arr, "")))
    null = ~mask(pc.is_valid(arr)) if t != pa.null() else np.ones(n, dtype=bool)
    target = info.arrow_type
    if t == pa.null():
        return Column(pa.nulls(n, target), None, null, np.zeros(n, dtype=bool), source=arr)
    if kind == "string":
        if is_string(t):
            s = as_string(arr)
            if info.format == "date":
                typed, fbad = parse_dates(s)
                return Column(typed, s, null, np.zeros(n, dtype=bool), fbad, source=arr)
            if info.format == "date-time":
                typed, fbad = parse_datetimes(s)
                return Column(typed, s, null, np.zeros(n, dtype=bool), fbad, source=arr)
            return Column(s, s, null, np.zeros(n, dtype=bool), source=arr)
        if info.format == "date" and pa.types.is_date(t):
            typed = arr.cast(pa.date32())
            return Column(
                typed, _lazy_iso(typed, "date"), null, np.zeros(n, dtype=bool), _outside_years(typed), arr
            )
        if info.format == "date-time" and pa.types.is_timestamp(t):
            typed = arr.cast(pa.timestamp("us", tz=t.tz or "UTC")).cast(target)
            text = _lazy_iso(typed, "date-time")
            return Column(typed, text, null, np.zeros(n, dtype=bool), _outside_years(typed), arr)
        return Column(pa.nulls(n, target), None, null, ~null, source=arr)
    if kind in ("integer", "number") and (
        pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)
    ):
        if pa.types.is_floating(t) and kind == "number":
            ok = mask(pc.is_finite(arr)) | null
            typed = pc.if_else(pa.array(ok), arr, pa.scalar(None, t)).cast(target)
            return Column(typed, None, null, ~ok, source=arr)
        if kind == "number" or pa.types.is_integer(t):
            try:
                return Column(arr.cast(target), None, null, np.zeros(n, dtype=bool), source=arr)
            except pa.ArrowInvalid:  # uint64 beyond int64
                ok = mask(pc.less_equal(arr, 2**63 - 1))
                typed = pc.if_else(pa.array(ok), arr, pa.scalar(None, t)).cast(target)
                return Column(typed, None, null, ~null & ~ok, source=arr)
        f = arr.cast(pa.float64())
        ok = mask(pc.and_(pc.is_finite(f), pc.equal(pc.floor(f), f))) & mask(pc.less(pc.abs(f), 2.0**63))
        typed = pc.if_else(pa.array(ok), f, pa.scalar(None, pa.float64())).cast(target)
        return Column(typed, None, null, ~null & ~ok, source=arr)
    if kind == "boolean" and pa.types.is_boolean(t):
        return Column(arr, None, null, np.zeros(n, dtype=bool), source=arr)
    if is_string(t) and (text_mode or kind in ("object", "array")):
        typed, bad = _typed_from_text(as_string(arr), kind, n)
        return Column(typed, None, null, bad, source=arr)
    if kind in ("object", "array") and (
        pa.types.is_struct(t) or pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_map(t)
    ):
        want = dict if kind == "object" else list
        vals = arr.to_pylist()
        bad = np.array([v is not None and not isinstance(v, want) for v in vals], dtype=bool)
        out = [
            None if v is None or b else json.dumps(v, ensure_ascii=False, default=str)
            for v, b in zip(vals, bad, strict=False)
        ]
        return Column(pa.array(out, pa.string()), None, null, bad, source=arr)
    return Column(pa.nulls(n, target), None, null, ~null, source=arr)
