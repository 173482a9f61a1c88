"""Small-cell suppression with complementary suppression, and the re-identification check."""

from __future__ import annotations

import random
from itertools import product

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.errors import PublishError
from hub.publish.suppress import (
    SUPPRESSED,
    choose_suppression,
    known_totals,
    recoverable,
    reidentification_groups,
    suppress_table,
)


def primary_cells(counts: list[int], k: int) -> set[int]:
    return {i for i, c in enumerate(counts) if 0 < c < k}


def _table(counts: dict[tuple[str, str], int]) -> pa.Table:
    return pa.table({
        "ward": [w for w, _ in counts], "sex": [s for _, s in counts], "n": list(counts.values()),
    })  # fmt: skip


def test_a_single_small_cell_gets_a_complement_in_its_row_and_column() -> None:
    counts = {("A", "Nam"): 3, ("A", "Nữ"): 40, ("B", "Nam"): 30, ("B", "Nữ"): 35}
    out, n = suppress_table(_table(counts), "n", ["ward", "sex"], 5)
    rows = {(r["ward"], r["sex"]): r for r in out.to_pylist()}
    assert rows[("A", "Nam")]["n"] is None
    assert rows[("A", "Nam")][SUPPRESSED]
    # a lone suppressed cell would equal (row total - 40): 2x2 needs all four cells hidden
    assert n == 4
    assert all(r["n"] is None for r in rows.values())


def test_suppressed_values_cannot_be_recovered_from_any_known_total() -> None:
    rng = random.Random(5)
    dims = list(product(range(8), range(6), range(2)))
    counts = [rng.choice([0, 1, 2, 4, 6, 9, 15, 30]) for _ in dims]
    chosen = choose_suppression(dims, counts, 5)
    assert {i for i, c in enumerate(counts) if 0 < c < 5} <= chosen
    assert not recoverable(chosen, known_totals(dims, counts, 5)) & primary_cells(counts, 5)
    # the audit itself can fail: primary suppression alone leaves recoverable cells
    primary = {i for i, c in enumerate(counts) if 0 < c < 5}
    assert recoverable(primary, known_totals(dims, counts, 5))


def test_recoverable_finds_a_cell_determined_by_two_totals() -> None:
    dims = [("A", 1), ("A", 2), ("B", 1), ("B", 2)]
    counts = [3, 10, 10, 10]
    totals = known_totals(dims, counts, 5)
    assert recoverable({0}, totals) == {0}
    assert recoverable({0, 1, 2, 3}, totals) == set()


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=12), min_size=12, max_size=12), st.integers(2, 6))
def test_property_no_suppressed_cell_is_recoverable(values: list[int], k: int) -> None:
    dims = list(product(range(3), range(2), range(2)))
    try:
        chosen = choose_suppression(dims, values, k)
    except PublishError as exc:  # the documented refusal: nothing left to suppress with
        refusal = str(exc)
        assert "cannot be protected" in refusal
        return
    assert {i for i, c in enumerate(values) if 0 < c < k} <= chosen
    assert not recoverable(chosen, known_totals(dims, values, k)) & primary_cells(values, k)


def test_reidentification_check_counts_persons_per_quasi_identifier_combination() -> None:
    table = pa.table({"ward": ["A", "A", "B", "B"], "year": [2020, 2021, 2020, 2021], "n": [7, 3, 9, 8]})
    small = reidentification_groups(table, ["ward", "year"], "n", 5)
    assert small == [{"ward": "A", "year": 2021, "n_sum": 3}]
    out, _ = suppress_table(table, "n", ["ward", "year"], 5)
    assert reidentification_groups(out, ["ward", "year"], "n", 5) == []
    sparse = pa.table({"ward": ["A", "A", "B"], "year": [2020, 2021, 2020], "n": [7, 3, 9]})
    with pytest.raises(PublishError, match="coarsen"):
        suppress_table(sparse, "n", ["ward", "year"], 5)
    rows = pa.table({"ward": ["A"] * 5 + ["B"]})
    assert reidentification_groups(rows, ["ward"], None, 5) == [{"ward": "B", "count_all": 1}]


@pytest.mark.parametrize("k", [1, 5])
def test_nothing_to_suppress_leaves_the_table_alone(k: int) -> None:
    t = _table({("A", "Nam"): 10, ("A", "Nữ"): 12})
    out, n = suppress_table(t, "n", ["ward", "sex"], k)
    assert n == 0
    assert out.column("n").to_pylist() == [10, 12]
