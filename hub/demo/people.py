"""The people of the demo province, and what the civil-status registry (Sở Tư pháp) holds about them.

``population()`` draws the residents (name, sex, birth date, ethnicity, ward, 12-digit personal id);
``births()``, ``marriages()`` and ``deaths()`` draw the registrations of 2016 onwards (the electronic
civil-status database) as column dictionaries whose keys are the contracts' field names.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import numpy as np

from hub.demo import common as c
from hub.demo import names as vn

Columns = dict[str, np.ndarray]
E_REGISTRY_START = dt.date(2016, 1, 1)
YEAR = 365.2425

BIRTH_PLACES_HOSPITAL = [
    "Bệnh viện Phụ sản Thành phố Cần Thơ",
    "Bệnh viện Đa khoa Trung ương Cần Thơ",
    "Bệnh viện Nhi đồng Thành phố Cần Thơ",
    "Bệnh viện Sản - Nhi tỉnh Sóc Trăng",
    "Bệnh viện Đa khoa tỉnh Hậu Giang",
    "Bệnh viện Đa khoa Hoàn Mỹ Cửu Long",
    "Bệnh viện Quốc tế Phương Châu",
    "Bệnh viện Đa khoa Thành phố Cần Thơ",
]


@dataclass
class Population:
    surname: np.ndarray
    middle: np.ndarray
    given: np.ndarray
    male: np.ndarray
    birth_day: np.ndarray
    ethnicity: np.ndarray
    ward: np.ndarray  # index into common.wards()
    personal_id: np.ndarray

    def __len__(self) -> int:
        return len(self.birth_day)

    def full_names(self, idx: np.ndarray | None = None) -> np.ndarray:
        sel = slice(None) if idx is None else idx
        middle = self.middle[sel]
        has_middle = middle != ""
        out = np.empty(len(middle), dtype=object)
        if has_middle.any():
            out[has_middle] = c.join_names(
                self.surname[sel][has_middle], middle[has_middle], self.given[sel][has_middle]
            )
        if (~has_middle).any():
            out[~has_middle] = c.join_names(self.surname[sel][~has_middle], self.given[sel][~has_middle])
        return out


def population(n: int, seed: int) -> Population:
    rng = c.rng_for(seed, "people")
    today = c.day(c.as_of())
    ages = np.concatenate([rng.uniform(0, 60, size=int(n * 0.82)), 60 + rng.exponential(11, size=n)])[:n]
    ages = np.clip(ages, 0, 100)
    birth_day = (today - ages * YEAR).astype(np.int64)
    male = rng.random(n) < 0.494
    ward = rng.choice(len(c.wards()), size=n, p=c.ward_probabilities())
    soc_trang = np.array([c.old_province(int(w.code)) == "094" for w in c.wards()])[ward]
    khmer = rng.random(n) < np.where(soc_trang, 0.30, 0.04)
    ethnicity = np.where(
        khmer, "Khmer", c.weighted(rng, {k: v for k, v in vn.ETHNICITIES.items() if k != "Khmer"}, n)
    )
    pools = vn.name_pools()
    surname = c.weighted(rng, vn.SURNAMES_KINH, n)
    surname = np.where(khmer, c.weighted(rng, vn.SURNAMES_KHMER, n), surname)
    surname = np.where(ethnicity == "Hoa", c.weighted(rng, vn.SURNAMES_HOA, n), surname)
    old = birth_day < c.day(dt.date(1990, 1, 1))
    middle = np.where(male, c.pick(rng, pools["middle_male"], n), c.pick(rng, pools["middle_female"], n))
    middle = np.where(male & old & (rng.random(n) < 0.6), "Văn", middle)
    middle = np.where(~male & old & (rng.random(n) < 0.7), "Thị", middle)
    middle = np.where(rng.random(n) < 0.04, "", middle)
    given = np.where(male, c.pick(rng, pools["given_male"], n), c.pick(rng, pools["given_female"], n))
    given = np.where(khmer & (rng.random(n) < 0.4), c.pick(rng, pools["given_khmer"], n), given)
    pid = c.personal_ids(rng, birth_day, male)
    return Population(
        surname.astype(object),
        middle.astype(object),
        given.astype(object),
        male,
        birth_day,
        ethnicity.astype(object),
        ward,
        pid,
    )


def _pick_in_window(
    rng: np.random.Generator, cand: np.ndarray, cand_days: np.ndarray, lo: np.ndarray, hi: np.ndarray
) -> np.ndarray:
    """For each window [lo, hi] of birth days, a random candidate born in it (-1 when there is none).

    ``cand`` are indices sorted by ``cand_days``."""
    a = np.searchsorted(cand_days, lo, side="left")
    b = np.searchsorted(cand_days, hi, side="right")
    ok = b > a
    pos = a + (rng.random(len(lo)) * np.maximum(b - a, 1)).astype(np.int64)
    return np.where(ok, cand[np.minimum(pos, len(cand) - 1)], -1)


def _registration_numbers(prefix: str, reg_days: np.ndarray, ward_codes: np.ndarray) -> np.ndarray:
    """KS-92-2024-000123: the book, the province, the year, a running number within province and year.

    Before 2025-07-01 the book was the old province's (93 Hậu Giang, 94 Sóc Trăng), after it Cần Thơ's."""
    reform = c.day(c.REFORM_DATE)
    province = np.array(
        [
            92 if d >= reform else int(c.old_province(int(w)))
            for d, w in zip(reg_days.tolist(), ward_codes.tolist(), strict=True)
        ],
        dtype=np.int64,
    )
    years = c.birth_dates_years(reg_days)
    group = province * 10_000 + years
    order = np.lexsort((reg_days, group))
    sorted_groups = group[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_groups)) + 1]
    run = np.arange(len(order)) - np.repeat(starts, np.diff(np.r_[starts, len(order)]))
    seq = np.empty(len(reg_days), dtype=np.int64)
    seq[order] = run + 1
    return np.array(
        [
            f"{prefix}-{p}-{y}-{s:06d}"
            for p, y, s in zip(province.tolist(), years.tolist(), seq.tolist(), strict=True)
        ],
        dtype=object,
    )


def _updated_at(rng: np.random.Generator, reg_days: np.ndarray, today: int) -> np.ndarray:
    """Entry time on the day of registration (office hours), and a later correction for 5 %."""
    n = len(reg_days)
    later = np.where(rng.random(n) < 0.05, rng.integers(1, 400, size=n), 0)
    days = np.minimum(reg_days + later, today)
    seconds = days * 86_400 + rng.integers(7 * 3600 + 1800, 17 * 3600, size=n)
    return c.iso_timestamps(seconds)


def _spoil(
    rng: np.random.Generator,
    cols: Columns,
    name_field: str,
    id_field: str,
    date_fields: tuple[str, str],
    share: float,
) -> int:
    """Spoil about ``share`` of the rows the way real registries are spoiled; returns how many."""
    n = len(cols[name_field])
    rows = c.messy_rows(rng, n, share)
    first, second = date_fields
    for k, i in enumerate(rows.tolist()):
        kind = k % 6
        if kind == 0:
            cols[name_field][i] = c.stray_spaces(cols[name_field][i], rng)
        elif kind == 1:
            cols[name_field][i] = c.nfd(cols[name_field][i])
        elif kind == 2 and cols[id_field][i] is not None:
            cols[id_field][i] = c.wrong_id(cols[id_field][i], rng)
        elif kind == 3:  # the same id on two different people
            cols[id_field][i] = cols[id_field][int(rng.integers(0, n))]
        elif kind == 4:  # the later date typed before the earlier one
            cols[first][i], cols[second][i] = cols[second][i], cols[first][i]
        else:  # digits of the year swapped: 2026 -> 2062
            d = cols[second][i]
            swapped = d[:2] + d[3] + d[2] + d[4:]
            cols[second][i] = swapped if swapped != d else f"{int(d[:4]) + 40}{d[4:]}"
    return len(rows)


def births(pop: Population, seed: int, share: float) -> tuple[Columns, int]:
    rng = c.rng_for(seed, "births")
    today = c.day(c.as_of())
    children = np.flatnonzero(pop.birth_day >= c.day(E_REGISTRY_START))
    bday = pop.birth_day[children]
    lag = np.minimum(rng.geometric(1 / 18, size=len(children)), 720)
    reg = np.minimum(bday + lag, today)
    males = np.flatnonzero(pop.male)
    females = np.flatnonzero(~pop.male)
    males = males[np.argsort(pop.birth_day[males])]
    females = females[np.argsort(pop.birth_day[females])]
    y = int(YEAR)
    father = _pick_in_window(rng, males, pop.birth_day[males], bday - 50 * y, bday - 20 * y)
    mother = _pick_in_window(rng, females, pop.birth_day[females], bday - 42 * y, bday - 18 * y)
    father = np.where(rng.random(len(children)) < 0.03, -1, father)
    has_father = father >= 0
    has_mother = mother >= 0
    # The child takes the father's surname and ethnicity, and lives where the mother lives.
    pop.surname[children[has_father]] = pop.surname[father[has_father]]
    pop.ethnicity[children[has_father]] = pop.ethnicity[father[has_father]]
    pop.ward[children[has_mother]] = pop.ward[mother[has_mother]]
    wards = c.wards()
    ward_codes = np.array([w.code for w in wards], dtype=object)
    ward_names = np.array([w.name for w in wards], dtype=object)
    where = rng.random(len(children))
    child_ward_names = np.array(
        [
            x.replace("Xã ", "xã ").replace("Phường ", "phường ")
            for x in ward_names[pop.ward[children]].tolist()
        ],
        dtype=object,
    )
    place = np.where(
        where < 0.72,
        c.pick(rng, BIRTH_PLACES_HOSPITAL, len(children)),
        np.where(where < 0.95, "Trạm Y tế " + child_ward_names, "Tại nhà, " + child_ward_names),
    )

    def names_or_none(idx: np.ndarray) -> np.ndarray:
        out = np.full(len(idx), None, dtype=object)
        ok = idx >= 0
        out[ok] = pop.full_names(idx[ok])
        return out

    def ids_or_none(idx: np.ndarray) -> np.ndarray:
        return c.null_where(idx < 0, pop.personal_id[np.maximum(idx, 0)])

    child_ids = c.null_where(rng.random(len(children)) < 0.01, pop.personal_id[children])
    weight = np.clip(rng.normal(3150, 430, size=len(children)), 1200, 4900).astype(np.int64)
    wards_then = c.pre_reform_codes(rng, ward_codes[pop.ward[children]], reg)
    cols: Columns = {
        "registration_number": _registration_numbers("KS", reg, wards_then),
        "registration_date": c.iso_dates(reg),
        "ward_code": wards_then,
        "child_personal_id": child_ids,
        "child_full_name": pop.full_names(children),
        "child_sex": np.where(pop.male[children], "Nam", "Nữ").astype(object),
        "child_birth_date": c.iso_dates(bday),
        "birth_place": place.astype(object),
        "ethnicity": pop.ethnicity[children].copy(),
        "nationality": np.full(len(children), "Việt Nam", dtype=object),
        "birth_weight_grams": c.null_where(rng.random(len(children)) < 0.04, weight),
        "father_full_name": names_or_none(father),
        "father_personal_id": ids_or_none(father),
        "mother_full_name": names_or_none(mother),
        "mother_personal_id": ids_or_none(mother),
        "updated_at": _updated_at(rng, reg, today),
    }
    spoiled = _spoil(
        rng, cols, "child_full_name", "child_personal_id", ("child_birth_date", "registration_date"), share
    )
    return cols, spoiled


def marriages(pop: Population, seed: int, share: float) -> tuple[Columns, int]:
    rng = c.rng_for(seed, "marriages")
    today = c.day(c.as_of())
    start = c.day(E_REGISTRY_START)
    n = int(len(pop) * 0.0068 * (today - start) / YEAR)
    mday = rng.integers(start, today + 1, size=n)
    y = int(YEAR)
    males = np.flatnonzero(pop.male)
    females = np.flatnonzero(~pop.male)
    males = males[np.argsort(pop.birth_day[males])]
    females = females[np.argsort(pop.birth_day[females])]
    husband = _pick_in_window(rng, males, pop.birth_day[males], mday - 45 * y, mday - 21 * y)
    wife = _pick_in_window(rng, females, pop.birth_day[females], mday - 40 * y, mday - 19 * y)
    ok = (husband >= 0) & (wife >= 0)
    mday, husband, wife = mday[ok], husband[ok], wife[ok]
    ward_codes = np.array([w.code for w in c.wards()], dtype=object)
    wards_then = c.pre_reform_codes(rng, ward_codes[pop.ward[wife]], mday)
    cols: Columns = {
        "registration_number": _registration_numbers("KH", mday, wards_then),
        "registration_date": c.iso_dates(mday),
        "ward_code": wards_then,
        "husband_full_name": pop.full_names(husband),
        "husband_personal_id": pop.personal_id[husband].copy(),
        "husband_birth_date": c.iso_dates(pop.birth_day[husband]),
        "husband_ethnicity": pop.ethnicity[husband].copy(),
        "wife_full_name": pop.full_names(wife),
        "wife_personal_id": pop.personal_id[wife].copy(),
        "wife_birth_date": c.iso_dates(pop.birth_day[wife]),
        "wife_ethnicity": pop.ethnicity[wife].copy(),
        "updated_at": _updated_at(rng, mday, today),
    }
    spoiled = _spoil(
        rng, cols, "wife_full_name", "husband_personal_id", ("husband_birth_date", "registration_date"), share
    )
    return cols, spoiled


def deaths(pop: Population, seed: int, share: float) -> tuple[Columns, int]:
    rng = c.rng_for(seed, "deaths")
    today = c.day(c.as_of())
    start = c.day(E_REGISTRY_START)
    n = int(len(pop) * 0.0058 * (today - start) / YEAR)
    age = (today - pop.birth_day) / YEAR
    w = np.where(age > 40, (age - 35) ** 3, 0.02)
    deceased = rng.choice(len(pop), size=min(n, len(pop) // 10), replace=False, p=w / w.sum())
    earliest = np.maximum(start, pop.birth_day[deceased] + 1)
    dday = earliest + (rng.random(len(deceased)) * (today - earliest)).astype(np.int64)
    reg = np.minimum(dday + rng.integers(1, 30, size=len(deceased)), today)
    ward_codes = np.array([w.code for w in c.wards()], dtype=object)
    place = np.where(
        rng.random(len(deceased)) < 0.7, "Tại nhà", c.pick(rng, BIRTH_PLACES_HOSPITAL, len(deceased))
    )
    # the declarant: another resident of the same ward, usually a relative
    declarant = rng.integers(0, len(pop), size=len(deceased))
    wards_then = c.pre_reform_codes(rng, ward_codes[pop.ward[deceased]], reg)
    cols: Columns = {
        "registration_number": _registration_numbers("KT", reg, wards_then),
        "registration_date": c.iso_dates(reg),
        "ward_code": wards_then,
        "deceased_personal_id": pop.personal_id[deceased].copy(),
        "deceased_full_name": pop.full_names(deceased),
        "deceased_sex": np.where(pop.male[deceased], "Nam", "Nữ").astype(object),
        "deceased_birth_date": c.iso_dates(pop.birth_day[deceased]),
        "death_date": c.iso_dates(dday),
        "death_place": place.astype(object),
        "ethnicity": pop.ethnicity[deceased].copy(),
        "declarant_full_name": pop.full_names(declarant),
        "updated_at": _updated_at(rng, reg, today),
    }
    spoiled = _spoil(
        rng, cols, "deceased_full_name", "deceased_personal_id", ("death_date", "registration_date"), share
    )
    return cols, spoiled


def rows(cols: Columns) -> list[tuple[Any, ...]]:
    """The columns as row tuples (plain Python values), for bulk inserts."""
    lists = [v.tolist() for v in cols.values()]
    return list(zip(*lists, strict=True))
