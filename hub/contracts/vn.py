"""Built-in ``x-check``s for Vietnamese data: ``vn-personal-id``, ``vn-ward-code``, ``not-future``.

- ``vn-personal-id``: the 12-digit personal id (TT 59/2021/TT-BCA Art 4): digits 1-3 a province code of
  the pre-2025 list of 63 provinces (the number never changes, so it keeps the old code), digit 4 the
  century and sex (0/1: 1900s male/female, 2/3: 2000s), digits 5-6 the birth year's last two digits. When
  the field has ``x-birth-date-field``, the year and century must agree with that date.
- ``vn-ward-code``: the 5-digit commune code exists in the list in force on the record's date
  (``x-date-field``): the current list (Decision 19/2025/QĐ-TTg, package ``vietnam-provinces``) from
  2025-07-01, the pre-2025 list (``data/pre2025_units.tsv``) before. Without a date: the current list
  (with ``x-date-field`` but a null date: either list).
- ``not-future``: a date not after today in Viet Nam, a date-time not after now.
"""

from __future__ import annotations

import functools
from datetime import date
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hub.contracts.checks import CheckContext, CheckResult, SparseMessages, register_check
from hub.contracts.coerce import as_string, mask
from hub.contracts.fastpath import FixedPattern, byte_columns, byte_lengths, fixed_pattern

REFORM_DATE = date(2025, 7, 1)
_DIGITS = fixed_pattern("^[0-9]{12}$") or FixedPattern([])
_WARD = fixed_pattern("^[0-9]{5}$") or FixedPattern([])
DATA_FILE = Path(__file__).parent / "data" / "pre2025_units.tsv"


@functools.cache
def pre2025_units() -> tuple[dict[str, str], dict[str, str]]:
    """(province code -> name, ward code -> name) before 2025-07-01 (GSO via vietnam-provinces 0.6.0)."""
    provinces: dict[str, str] = {}
    wards: dict[str, str] = {}
    for line in DATA_FILE.read_text(encoding="utf-8").splitlines():
        if not line or line.startswith("#"):
            continue
        parts = line.split("\t")
        if parts[0] == "P":
            provinces[parts[1]] = parts[2]
        elif parts[0] == "W":
            wards[parts[1]] = parts[3]
    return provinces, wards


@functools.cache
def current_wards() -> dict[str, str]:
    """Ward code -> name, from 2025-07-01 (package vietnam-provinces)."""
    from vietnam_provinces import Ward

    return {f"{int(w.code):05d}": w.name for w in Ward.iter_all()}


@functools.cache
def _province_table() -> np.ndarray:
    table = np.zeros(1000, dtype=bool)
    for code in pre2025_units()[0]:
        table[int(code)] = True
    return table


@functools.cache
def _code_tables() -> tuple[np.ndarray, np.ndarray]:
    """Lookup tables over the 100,000 five-digit codes: in the current list, in the pre-2025 list."""
    cur, old = np.zeros(100_000, dtype=bool), np.zeros(100_000, dtype=bool)
    cur[[int(c) for c in current_wards()]] = True
    old[[int(c) for c in pre2025_units()[1]]] = True
    return cur, old


def _year(col: pa.Array | None, n: int) -> np.ndarray:
    if col is None or not (pa.types.is_date(col.type) or pa.types.is_timestamp(col.type)):
        return np.full(n, -1, dtype=np.int64)
    return np.asarray(pc.fill_null(pc.year(col), -1).to_numpy(zero_copy_only=False), dtype=np.int64)


def check_personal_id(values: pa.Array, ctx: CheckContext) -> CheckResult:
    s = as_string(values)
    n = len(s)
    notnull = mask(pc.is_valid(s))
    shape = _DIGITS.match(s) & (byte_lengths(s) == 12)
    b = [np.where(shape, c.astype(np.int32) - 48, 0) for c in byte_columns(s, range(6))]
    prov, cs, yy = b[0] * 100 + b[1] * 10 + b[2], b[3], b[4] * 10 + b[5]
    prov_ok = _province_table()[prov]
    cs_ok = cs <= 3
    birth = _year(ctx.column(ctx.field.birth_date_field), n)
    year = np.where(cs <= 1, 1900, 2000) + yy
    year_ok = (birth < 0) | (birth == year)
    fails = notnull & ~(shape & prov_ok & cs_ok & year_ok)
    messages = SparseMessages(n)
    for i in np.flatnonzero(fails):
        if not shape[i]:
            messages[i] = "a personal id has 12 digits"
        elif not prov_ok[i]:
            messages[i] = f"digits 1-3 ({prov[i]:03d}) are not a province code (pre-2025 list)"
        elif not cs_ok[i]:
            messages[i] = f"digit 4 ({cs[i]}) must be 0-3 (century and sex)"
        else:
            messages[i] = (
                f"digits 4-6 say born in {year[i]}, but {ctx.field.birth_date_field} is in {birth[i]}"
            )
    return CheckResult(fails, messages)


def check_ward_code(values: pa.Array, ctx: CheckContext) -> CheckResult:
    s = as_string(values)
    n = len(s)
    cur, old = _code_tables()
    digits = _WARD.match(s) & (byte_lengths(s) == 5)
    code = np.zeros(n, dtype=np.int64)
    if digits.any():
        code[digits] = np.asarray(
            pc.cast(s.filter(pa.array(digits)), pa.int32()).to_numpy(zero_copy_only=False)
        )
    in_cur = digits & cur[code]
    in_old = digits & old[code]
    dcol = ctx.column(ctx.field.date_field)
    if dcol is None:
        ok = in_cur
        when = np.zeros(n, dtype=np.int8)
    else:
        d = dcol.cast(pa.date32()) if pa.types.is_timestamp(dcol.type) else dcol
        new = mask(pc.greater_equal(d, pa.scalar(REFORM_DATE, pa.date32())))
        before = mask(pc.less(d, pa.scalar(REFORM_DATE, pa.date32())))
        ok = np.where(new, in_cur, np.where(before, in_old, in_cur | in_old))
        when = np.where(before, 1, 0).astype(np.int8)
    fails = mask(pc.is_valid(s)) & ~ok
    messages = SparseMessages(n)
    for i in np.flatnonzero(fails):
        code = s[i].as_py()
        if dcol is not None and when[i] == 1:
            messages[i] = (
                f"ward code {code} is not in the list in force before {REFORM_DATE} ({ctx.field.date_field})"
            )
        else:
            messages[i] = f"ward code {code} is not in the current list (from {REFORM_DATE})"
    return CheckResult(fails, messages)


def check_not_future(values: pa.Array, ctx: CheckContext) -> CheckResult:
    if pa.types.is_date(values.type):
        fails = pc.greater(values.cast(pa.date32()), pa.scalar(ctx.today, pa.date32()))
        return CheckResult(fails, f"is after today ({ctx.today})")
    if pa.types.is_timestamp(values.type):
        now = pa.scalar(ctx.now, pa.timestamp("us", tz="UTC"))
        return CheckResult(pc.greater(values.cast(pa.timestamp("us", tz="UTC")), now), "is in the future")
    return CheckResult(np.zeros(len(values), dtype=bool), "")


register_check("vn-personal-id", check_personal_id, replace=True)
register_check("vn-ward-code", check_ward_code, replace=True)
register_check("not-future", check_not_future, replace=True)
