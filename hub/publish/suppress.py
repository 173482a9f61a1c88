"""Small-cell suppression with complementary suppression, and the re-identification check.

An aggregate release is a table of cells: one row per combination of its *dimension* columns (ward,
month, sex, ...) with a *person count* (``person_count`` of the release spec) and possibly other
measures. The algorithm:

1. **Primary suppression.** Every cell counting ``0 < n < k`` persons is suppressed: its count and
   measures become null and its ``suppressed`` flag is true.
2. **Which totals an intruder knows.** We assume every marginal total is known (published or not)
   elsewhere): for each non-empty subset S of the dimensions, the sums over S within each group of
   the remaining dimensions (row totals, column totals, ..., the grand total), *except totals below
   k*, which a publisher following the same rule suppresses too. Each known total is a linear
   equation over the suppressed cells it contains.
3. **Complementary suppression.** A suppressed cell is *recoverable* if the system of those
   equations determines its value: its unit vector lies in the row space of the equations' matrix
   (the null space of that matrix, from the eigenvectors of its Gram matrix). While any suppressed
   small cell (primary) is recoverable, we suppress one more cell: the smallest published cell
   sharing a known total with it, preferring one-dimensional lines (row or column totals). This
   repeats until no small cell is recoverable, or no candidate is left: then the build fails and
   asks for a coarser release (a sparse table can make a small cell recoverable whatever we hide;
   absent combinations count as known zeros).

The ``recoverable`` function is the same audit the tests run on every release.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from threadpoolctl import threadpool_limits

from hub.errors import PublishError

SUPPRESSED = "suppressed"


@dataclass(frozen=True)
class Total:
    """A known marginal total: which cells it sums, and over how many dimensions."""

    cells: tuple[int, ...]
    value: int
    order: int


def known_totals(dims: Sequence[Sequence[object]], counts: Sequence[int], k: int) -> list[Total]:
    """Every marginal total of at least ``k`` over the cells (``dims[i]`` is cell i's dimension values)."""
    n_dims = len(dims[0]) if dims else 0
    totals: list[Total] = []
    for order in range(1, n_dims + 1):
        for summed in combinations(range(n_dims), order):
            keep = [d for d in range(n_dims) if d not in summed]
            groups: dict[tuple[object, ...], list[int]] = defaultdict(list)
            for i, values in enumerate(dims):
                groups[tuple(values[d] for d in keep)].append(i)
            for cells in groups.values():
                value = sum(counts[i] for i in cells)
                if value >= k:
                    totals.append(Total(tuple(cells), value, order))
    if n_dims == 0 and counts and sum(counts) >= k:
        totals.append(Total(tuple(range(len(counts))), sum(counts), 0))
    return totals


def recoverable(suppressed: set[int], totals: Sequence[Total]) -> set[int]:
    """The suppressed cells whose value the known totals determine."""
    unknowns = sorted(suppressed)
    if not unknowns:
        return set()
    col = {cell: j for j, cell in enumerate(unknowns)}
    rows = [[col[c] for c in t.cells if c in col] for t in totals]
    rows = [list(r) for r in {tuple(r) for r in rows if r}]
    if not rows:
        return set()
    m = np.zeros((len(rows), len(unknowns)))
    for i, r in enumerate(rows):
        m[i, r] = 1.0
    # x_j is determined iff every vector of the null space of m is zero at j
    with threadpool_limits(1):  # BLAS threads only fight each other on small matrices
        gram = m.T @ m
        eigenvalues, vectors = np.linalg.eigh(gram)
    null = vectors[:, eigenvalues < 1e-7 * max(1.0, float(eigenvalues.max(initial=0.0)))]
    if null.shape[1] == 0:
        return set(unknowns)
    norms = np.linalg.norm(null, axis=1)
    return {unknowns[j] for j in range(len(unknowns)) if norms[j] < 1e-8}


def choose_suppression(dims: Sequence[Sequence[object]], counts: Sequence[int], k: int) -> set[int]:
    """The cells to suppress: primary (``0 < n < k``) and complementary, as described above."""
    primary = {i for i, n in enumerate(counts) if 0 < n < k}
    suppressed = set(primary)
    if not suppressed:
        return suppressed
    totals = known_totals(dims, counts, k)
    by_cell: dict[int, list[Total]] = defaultdict(list)
    for t in totals:
        for c in t.cells:
            by_cell[c].append(t)
    while True:
        _close_lines(suppressed, totals, counts)
        exposed = recoverable(suppressed, totals) & primary
        if not exposed:
            return suppressed
        for cell in sorted(exposed):
            candidates = [
                (t.order, counts[c], c) for t in by_cell[cell] for c in t.cells if c not in suppressed
            ]
            if not candidates:  # the cell is pinned down through other totals: widen the search
                candidates = [
                    (t.order, counts[c], c)
                    for t in totals
                    if any(c in suppressed for c in t.cells)
                    for c in t.cells
                    if c not in suppressed
                ]
            if not candidates:
                raise PublishError(
                    f"cell {cell} cannot be protected by complementary suppression: the known totals "
                    "determine it whatever else is hidden; coarsen the release (fewer dimensions)"
                )
            suppressed.add(min(candidates)[2])


def _close_lines(suppressed: set[int], totals: Sequence[Total], counts: Sequence[int]) -> None:
    """The fast pass: while a known total contains exactly one suppressed cell, suppress another one."""
    changed = True
    while changed:
        changed = False
        for t in sorted(totals, key=lambda t: t.order):
            inside = [c for c in t.cells if c in suppressed]
            if len(inside) != 1:
                continue
            free = [(counts[c], c) for c in t.cells if c not in suppressed]
            if free:
                suppressed.add(min(free)[1])
                changed = True


def suppress_table(table: pa.Table, count_column: str, dims: Sequence[str], k: int) -> tuple[pa.Table, int]:
    """Suppress small cells of ``table``; return the table (with a ``suppressed`` flag) and how many."""
    if count_column not in table.column_names:
        raise PublishError(f"person_count column {count_column!r} is not an output column of the release")
    counts = [int(v or 0) for v in table.column(count_column).to_pylist()]
    dim_values = (
        list(zip(*(table.column(d).to_pylist() for d in dims), strict=True)) if dims else [() for _ in counts]
    )
    chosen = choose_suppression(dim_values, counts, k)
    mask = pa.array([i in chosen for i in range(len(counts))], pa.bool_())
    out = table
    for name in table.column_names:
        if name in dims:
            continue
        i = out.schema.get_field_index(name)
        col = out.column(name)
        out = out.set_column(i, name, pc.if_else(mask, pa.nulls(len(counts), col.type), col))
    return out.append_column(SUPPRESSED, mask), len(chosen)


def reidentification_groups(
    table: pa.Table, quasi_columns: Sequence[str], count_column: str | None, k: int
) -> list[dict[str, object]]:
    """Combinations of quasi-identifier values that the published rows show for fewer than ``k`` persons.

    Suppressed rows count for nothing (their numbers are not published). In a row-level release
    every row is one person.
    """
    if not quasi_columns or table.num_rows == 0:
        return []
    rows = table
    if SUPPRESSED in rows.column_names:
        rows = rows.filter(pc.invert(rows.column(SUPPRESSED)))
    if count_column:
        rows = rows.filter(pc.is_valid(rows.column(count_column)))
        grouped = rows.group_by(list(quasi_columns)).aggregate([(count_column, "sum")])
        total = f"{count_column}_sum"
    else:
        grouped = rows.group_by(list(quasi_columns)).aggregate([([], "count_all")])
        total = "count_all"
    small = grouped.filter(pc.less(grouped.column(total), k))
    result: list[dict[str, object]] = small.to_pylist()
    return result
