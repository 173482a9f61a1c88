"""Digital addresses (địa chỉ số): about 275,000 addresses of Cần Thơ with coordinates, as one CSV file.

The address code is the province code, the ward code and a running number within the ward
(``92-31135-000123``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from hub.demo import common as c
from hub.demo import names as vn
from hub.demo.people import Columns

COLUMNS = [
    "address_code",
    "ward_code",
    "ward_name",
    "street",
    "house_number",
    "full_address",
    "latitude",
    "longitude",
    "updated_at",
]


def addresses(n: int, seed: int, share: float) -> tuple[Columns, int]:
    rng = c.rng_for(seed, "addresses")
    wards = c.wards()
    ward = np.sort(rng.choice(len(wards), size=n, p=c.ward_probabilities()))
    starts = np.r_[0, np.flatnonzero(np.diff(ward)) + 1]
    seq = np.arange(n) - np.repeat(starts, np.diff(np.r_[starts, n])) + 1
    codes = np.array([w.code for w in wards], dtype=object)[ward]
    names = np.array([w.name for w in wards], dtype=object)[ward]
    # each ward has a handful of streets; houses are numbered along them, some with a sub-number (hẻm)
    pool = vn.street_pool()
    street = np.array(pool, dtype=object)[(ward * 7 + rng.integers(0, 6, size=n)) % len(pool)]
    number = rng.integers(1, 600, size=n).astype(str)
    alley = rng.random(n) < 0.3
    number = np.where(
        alley, np.char.add(np.char.add(number, "/"), rng.integers(1, 80, size=n).astype(str)), number
    )
    house = number.astype(object)
    full = [
        f"{h} {s}, {w}, {c.PROVINCE_NAME}"
        for h, s, w in zip(house.tolist(), street.tolist(), names.tolist(), strict=True)
    ]
    lat = np.round(np.array([w.lat for w in wards])[ward] + rng.normal(0, 0.02, n), 6)
    lon = np.round(np.array([w.lon for w in wards])[ward] + rng.normal(0, 0.02, n), 6)
    today = c.day(c.as_of())
    upd = rng.integers(c.day(c.REFORM_DATE), today + 1, size=n) * 86_400 + rng.integers(
        7 * 3600, 17 * 3600, size=n
    )
    cols: Columns = {
        "address_code": np.array(
            [f"{c.PROVINCE_CODE}-{w}-{s:06d}" for w, s in zip(codes.tolist(), seq.tolist(), strict=True)],
            dtype=object,
        ),
        "ward_code": codes,
        "ward_name": names,
        "street": street,
        "house_number": house,
        "full_address": np.array(full, dtype=object),
        "latitude": lat,
        "longitude": lon,
        "updated_at": c.iso_timestamps(upd),
    }
    spoiled = c.messy_rows(rng, n, share)
    for k, i in enumerate(spoiled.tolist()):
        if k % 3 == 0:
            cols["street"][i] = c.stray_spaces(cols["street"][i], rng)
        elif k % 3 == 1:
            cols["full_address"][i] = c.nfd(cols["full_address"][i])
        else:  # a point dropped outside the province (coordinates swapped)
            cols["latitude"][i], cols["longitude"][i] = cols["longitude"][i], cols["latitude"][i]
    return cols, len(spoiled)


def write_csv(cols: Columns, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.table({k: pa.array(v.tolist()) for k, v in cols.items()})
    tmp = path.with_suffix(".tmp")
    pacsv.write_csv(table, tmp)
    tmp.replace(path)
