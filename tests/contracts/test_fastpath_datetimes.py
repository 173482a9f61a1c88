"""The byte-level date-time parser and the fixed-width byte matrix agree with ``jsonschema`` and Python."""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from hub.contracts.coerce import parse_datetimes
from hub.contracts.fastpath import byte_matrix, parse_datetimes_fixed

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
CHECKER = Draft202012Validator.FORMAT_CHECKER
EDGE = [
    "2021-01-05T10:00:00Z", "2021-01-05t10:00:00z", "2021-01-05T10:00:00+07:00", "2021-01-05T10:00:00-05:30",
    "2024-02-29T23:59:59Z", "2023-02-29T23:59:59Z", "2021-04-31T00:00:00Z", "2021-13-01T00:00:00Z",
    "2021-00-10T00:00:00Z", "2021-01-00T00:00:00Z", "0000-01-05T10:00:00Z", "0001-01-01T00:00:00+23:59",
    "9999-12-31T23:59:59-23:59", "2021-01-05T24:00:00Z", "2021-01-05T10:60:00Z", "2021-01-05T10:00:60Z",
    "2021-01-05T10:00:00+24:00", "2021-01-05T10:00:00+07:60", "2021-01-05 10:00:00+07:00",
    "2021-01-05T10:00:00+0700", "2021-01-05T10:00:00 07:00", "2021-01-05T10:00:00.5Z",
    "2021-01-05T10:00:00.1234+07:00", "2021-01-05T10:00:00Z\n", "2021/01/05T10:00:00Z",
    "2021-01-05T1a:00:00Z", "202a-01-05T10:00:00Z", "2021-01-05T10:00:00+07:0a",
    "2021-01-05T10:00:00X", "", "Ab", None,
]  # fmt: skip


def expected_micros(value: str) -> int:
    parsed = datetime.fromisoformat(value.upper().rstrip("\n").replace("Z", "+00:00"))
    return int((parsed - EPOCH).total_seconds()) * 1_000_000 + parsed.microsecond


def test_fixed_shapes_agree_with_jsonschema_and_python() -> None:
    arr = pa.array(EDGE, pa.string())
    valid, micros = parse_datetimes_fixed(arr)
    for v, ok, us in zip(EDGE, valid.tolist(), micros.tolist(), strict=True):
        if ok:  # the fast path claims only what jsonschema accepts, with Python's instant
            assert v is not None
            assert CHECKER.conforms(v, "date-time"), v
            assert us == expected_micros(v), v
        elif v is not None and len(v) in (20, 25) and "." not in v:
            assert not CHECKER.conforms(v, "date-time"), v
    typed, bad = parse_datetimes(arr)  # with the exact parser for the rest
    for v, t, b in zip(EDGE, typed.cast(pa.int64()).to_pylist(), bad.tolist(), strict=True):
        assert b == (v is not None and not CHECKER.conforms(v, "date-time")), v
        if v is not None and not b:
            assert t is not None
            assert t == expected_micros(v), v


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.none() | st.text(alphabet="0123456789-:T+Zz. ab", max_size=27), max_size=40),
    st.integers(0, 5),
)
def test_date_times_agree_with_jsonschema(values: list[str | None], cut: int) -> None:
    arr = pa.array(values, pa.string()).slice(min(cut, len(values)))
    values = values[min(cut, len(values)) :]
    _, bad = parse_datetimes(arr)
    assert bad.tolist() == [v is not None and not CHECKER.conforms(v, "date-time") for v in values]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.none() | st.text(max_size=8), max_size=30), st.integers(1, 12), st.integers(0, 5))
def test_byte_matrix_holds_each_values_first_bytes(values: list[str | None], width: int, cut: int) -> None:
    arr = pa.array(values, pa.string()).slice(min(cut, len(values)))
    values = values[min(cut, len(values)) :]
    matrix = byte_matrix(arr, width)
    assert matrix.shape == (len(values), width)
    for row, v in zip(matrix.tolist(), values, strict=True):
        raw = (v or "").encode()[:width]
        assert bytes(row[: len(raw)]) == raw
        if v is None:
            assert not any(row)


def test_byte_matrix_of_equal_lengths_is_a_view() -> None:
    arr = pa.array(["2021-01-05", "2022-12-31", "1999-07-01"], pa.string())
    matrix = byte_matrix(arr.slice(1), 4)
    assert [bytes(r) for r in matrix.tolist()] == [b"2022", b"1999"]
    assert matrix.base is not None  # no copy of the data buffer
