"""What the demo generators share: scales, wards of Cần Thơ, name pools, personal ids, messy values.

Everything random comes from one ``numpy.random.Generator`` seeded per domain, so the same seed and
scale give the same files. Dates are days since 1970-01-01 (int64) until they are written out.
"""

from __future__ import annotations

import datetime as dt
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

PROVINCE_CODE = 92
PROVINCE_NAME = "Thành phố Cần Thơ"
TZ = "+07:00"
EPOCH = dt.date(1970, 1, 1)
REFORM_DATE = dt.date(2025, 7, 1)
# Everything generated is dated on or before this day, so "not in the future" holds on any later clock.
AS_OF = dt.date(2026, 10, 31)

Progress = Callable[[str, int, int | None], None]
"""progress(task, advance, total): called by the generators as they go."""


@dataclass(frozen=True)
class Scale:
    name: str
    people: int
    parcels: int
    addresses: int
    schools_per_ward: float
    school_years: tuple[str, ...]
    messy_share: float = 0.015


SCALES: dict[str, Scale] = {
    "small": Scale(
        "small",
        people=6_000,
        parcels=2_000,
        addresses=1_500,
        schools_per_ward=0.45,
        school_years=("2023-2024", "2024-2025"),
    ),
    "province": Scale(
        "province",
        people=1_200_000,
        parcels=500_000,
        addresses=275_000,
        schools_per_ward=11.0,
        school_years=("2022-2023", "2023-2024", "2024-2025", "2025-2026"),
    ),
}


def as_of() -> dt.date:
    """The generation's reference day: AS_OF, or yesterday if the clock is earlier than that."""
    yesterday = dt.date.today() - dt.timedelta(days=1)  # noqa: DTZ011
    return min(AS_OF, yesterday)


def day(d: dt.date) -> int:
    return (d - EPOCH).days


def rng_for(seed: int, domain: str) -> np.random.Generator:
    """An independent random stream per domain, so adding a field to one domain leaves the others alone."""
    return np.random.default_rng([seed, *domain.encode()])


# --- wards --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WardInfo:
    code: str
    name: str
    kind: str  # "phường" or "xã"
    lat: float
    lon: float
    weight: float  # share of the population


def old_province(ward_code: int) -> str:
    """The pre-2025 province (092 Cần Thơ, 093 Hậu Giang, 094 Sóc Trăng) a Cần Thơ ward code belonged to."""
    return "092" if ward_code <= 31315 else "093" if ward_code <= 31495 else "094"


@lru_cache(maxsize=1)
def wards() -> tuple[WardInfo, ...]:
    """The 103 wards and communes of Cần Thơ after 2025-07-01, from the ``vietnam-provinces`` package.

    Coordinates are an approximation for the demo: the three merged provinces (old Cần Thơ, Hậu Giang,
    Sóc Trăng) own contiguous code ranges, placed in their real part of the Mekong Delta.
    """
    from vietnam_provinces import ProvinceCode, Ward

    out = []
    for w in Ward.iter_by_province(ProvinceCode.P_92):
        code = int(w.code)
        r = np.random.default_rng(code)
        if old_province(code) == "092":  # old Cần Thơ
            lat, lon = 10.05 + r.uniform(-0.06, 0.22), 105.76 + r.uniform(-0.36, 0.04)
        elif old_province(code) == "093":  # old Hậu Giang
            lat, lon = 9.78 + r.uniform(-0.18, 0.15), 105.60 + r.uniform(-0.18, 0.22)
        else:  # old Sóc Trăng
            lat, lon = 9.55 + r.uniform(-0.30, 0.20), 105.95 + r.uniform(-0.25, 0.30)
        kind = w.division_type.value
        weight = (3.0 if kind == "phường" else 1.0) * (1.6 if old_province(code) == "092" else 1.0)
        out.append(WardInfo(f"{code:05d}", w.name, kind, round(lat, 6), round(lon, 6), weight))
    return tuple(out)


def ward_probabilities() -> np.ndarray:
    w = np.array([x.weight for x in wards()], dtype=float)
    out: np.ndarray = w / w.sum()
    return out


def null_where(mask: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``values`` as an object array, None where ``mask`` is true."""
    out = np.asarray(values).astype(object)
    out[np.asarray(mask, dtype=bool)] = None
    return out


# --- random helpers ---------------------------------------------------------------------------------


def weighted(rng: np.random.Generator, table: dict[str, float], n: int) -> np.ndarray:
    keys = list(table)
    p = np.array([table[k] for k in keys], dtype=float)
    return np.array(keys, dtype=object)[rng.choice(len(keys), size=n, p=p / p.sum())]


def pick(rng: np.random.Generator, pool: list[str], n: int) -> np.ndarray:
    return np.array(pool, dtype=object)[rng.integers(0, len(pool), size=n)]


def join_names(*parts: np.ndarray) -> np.ndarray:
    """Element-wise ' '.join of string arrays (vectorized through Arrow)."""
    arrays = [pa.array(p, type=pa.string()) for p in parts]
    joined = pc.binary_join_element_wise(*arrays, " ")
    return np.array(joined.to_pylist(), dtype=object)


# --- personal ids -------------------------------------------------------------------------------------

# Pre-2025 province codes of birth registration, as people of Cần Thơ carry them (TT 59/2021/TT-BCA).
ID_PREFIXES = {
    "092": 0.66,
    "094": 0.14,
    "093": 0.09,
    "079": 0.03,
    "086": 0.015,
    "089": 0.015,
    "091": 0.012,
    "087": 0.01,
    "095": 0.008,
    "096": 0.006,
    "083": 0.004,
    "001": 0.004,
    "080": 0.003,
    "084": 0.003,
}


def century_sex_digit(birth_years: np.ndarray, male: np.ndarray) -> np.ndarray:
    """Digit 4 of a personal id: 0/1 for 1900s male/female, 2/3 for 2000s, 4/5 for 2100s."""
    century = (birth_years // 100) - 19
    return century * 2 + np.where(male, 0, 1)


def personal_ids(rng: np.random.Generator, birth_days: np.ndarray, male: np.ndarray) -> np.ndarray:
    """Unique, well-formed 12-digit personal ids for people born on ``birth_days``."""
    n = len(birth_days)
    years = birth_dates_years(birth_days)
    prefixes = weighted(rng, ID_PREFIXES, n).astype(np.int64)
    head = prefixes * 10**9 + century_sex_digit(years, male) * 10**8 + (years % 100) * 10**6
    ids = head + rng.integers(0, 10**6, size=n)
    while True:
        _, first, _counts = np.unique(ids, return_index=True, return_counts=True)
        if len(first) == n:
            break
        dup = np.ones(n, dtype=bool)
        dup[first] = False
        ids[dup] = head[dup] + rng.integers(0, 10**6, size=int(dup.sum()))
    return np.array([f"{i:012d}" for i in ids.tolist()], dtype=object)


def birth_dates_years(days: np.ndarray) -> np.ndarray:
    return days.astype("datetime64[D]").astype("datetime64[Y]").astype(np.int64) + 1970


def iso_dates(days: np.ndarray) -> np.ndarray:
    return np.datetime_as_string(days.astype("datetime64[D]"), unit="D").astype(object)


def iso_timestamps(seconds: np.ndarray) -> np.ndarray:
    """Local (UTC+7) timestamps as RFC 3339 text, from seconds since 1970-01-01 local time."""
    text = np.datetime_as_string(seconds.astype("datetime64[s]"), unit="s")
    return np.char.add(text.astype(str), TZ).astype(object)


# --- messy values -------------------------------------------------------------------------------------


def stray_spaces(s: str, rng: np.random.Generator) -> str:
    k = int(rng.integers(0, 3))
    return (" " + s) if k == 0 else (s + "  ") if k == 1 else s.replace(" ", "  ", 1)


def nfd(s: str) -> str:
    return unicodedata.normalize("NFD", s)


def wrong_id(pid: str, rng: np.random.Generator) -> str:
    """A personal id with a broken structure: too short, a letter O for a zero, or a bad province code."""
    k = int(rng.integers(0, 3))
    if k == 0:
        return pid[:-1]
    if k == 1:
        return pid.replace("0", "O", 1) if "0" in pid else "O" + pid[1:]
    return "000" + pid[3:]


def messy_rows(rng: np.random.Generator, n: int, share: float) -> np.ndarray:
    """Indices of the rows to spoil: about ``share`` of ``n``, at least one when n > 50."""
    k = round(n * share)
    if n > 50:
        k = max(k, 1)
    return rng.choice(n, size=min(k, n), replace=False)


# --- the codes before the 2025 reform ------------------------------------------------------------------

PRE2025_UNITS = Path(__file__).resolve().parent.parent / "contracts" / "data" / "pre2025_units.tsv"


@lru_cache(maxsize=1)
def pre2025_communes() -> dict[str, tuple[str, ...]]:
    """Old province code (092 Cần Thơ, 093 Hậu Giang, 094 Sóc Trăng) -> its communes before 2025-07-01.

    Read from the contracts' list of pre-2025 units; empty when that list is not installed."""
    out: dict[str, list[str]] = {"092": [], "093": [], "094": []}
    try:
        lines = PRE2025_UNITS.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return {}
    for line in lines:
        parts = line.split("\t")
        if len(parts) >= 3 and parts[0] == "W" and parts[2] in out:
            out[parts[2]].append(parts[1])
    return {k: tuple(v) for k, v in out.items() if v}


def pre_reform_codes(
    rng: np.random.Generator, codes: np.ndarray, days: np.ndarray, share: float = 0.5
) -> np.ndarray:
    """Ward codes as a record dated ``days`` would carry them: before 2025-07-01, ``share`` of them name a
    commune of the same old province that the reform merged away or renamed (the code was valid then)."""
    old = pre2025_communes()
    if not old:
        return codes
    out = codes.copy()
    before = np.flatnonzero((days < day(REFORM_DATE)) & (rng.random(len(codes)) < share))
    for i in before.tolist():
        code = int(codes[i])
        pool = old.get(old_province(code))
        if pool:
            out[i] = pool[int(rng.integers(len(pool)))]
    return out
