"""The land registry (Sở Nông nghiệp và Môi trường): land parcels with their owners and certificates.

A parcel is keyed by ward code, map sheet (số tờ) and parcel number (số thửa). Rows are written in bulk
to a SQLite file (``executemany`` in one transaction) and, when a URL is given, to PostgreSQL (``COPY``).
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hub.demo import common as c
from hub.demo import names as vn
from hub.demo.people import Columns, Population, rows

# Land-use purpose codes (mã loại đất) of the cadastral and land-statistics circulars of the ministry.
LAND_USE_CODES: dict[str, str] = {
    "LUC": "Đất chuyên trồng lúa",
    "LUK": "Đất trồng lúa còn lại",
    "BHK": "Đất bằng trồng cây hằng năm khác",
    "NHK": "Đất nương rẫy trồng cây hằng năm khác",
    "CLN": "Đất trồng cây lâu năm",
    "RSX": "Đất rừng sản xuất",
    "RPH": "Đất rừng phòng hộ",
    "RDD": "Đất rừng đặc dụng",
    "NTS": "Đất nuôi trồng thủy sản",
    "LMU": "Đất làm muối",
    "NKH": "Đất nông nghiệp khác",
    "ONT": "Đất ở tại nông thôn",
    "ODT": "Đất ở tại đô thị",
    "TSC": "Đất xây dựng trụ sở cơ quan",
    "CQP": "Đất quốc phòng",
    "CAN": "Đất an ninh",
    "DVH": "Đất xây dựng cơ sở văn hóa",
    "DYT": "Đất xây dựng cơ sở y tế",
    "DGD": "Đất xây dựng cơ sở giáo dục và đào tạo",
    "DTT": "Đất xây dựng cơ sở thể dục thể thao",
    "SKK": "Đất khu công nghiệp",
    "SKN": "Đất cụm công nghiệp",
    "TMD": "Đất thương mại, dịch vụ",
    "SKC": "Đất cơ sở sản xuất phi nông nghiệp",
    "SKS": "Đất sử dụng cho hoạt động khoáng sản",
    "DGT": "Đất giao thông",
    "DTL": "Đất thủy lợi",
    "DNL": "Đất công trình năng lượng",
    "DBV": "Đất công trình bưu chính, viễn thông",
    "DCH": "Đất chợ",
    "TON": "Đất cơ sở tôn giáo",
    "TIN": "Đất cơ sở tín ngưỡng",
    "NTD": "Đất nghĩa trang, nhà tang lễ",
    "SON": "Đất có mặt nước chuyên dùng dạng sông, ngòi, kênh, rạch, suối",
    "MNC": "Đất có mặt nước chuyên dùng",
    "PNK": "Đất phi nông nghiệp khác",
    "BCS": "Đất bằng chưa sử dụng",
    "DCS": "Đất đồi núi chưa sử dụng",
}
# (code, share in a phường, share in a xã, log-normal median area m², sigma)
USE_MIX = [
    ("ODT", 0.62, 0.00, 110, 0.55),
    ("ONT", 0.00, 0.24, 320, 0.6),
    ("LUC", 0.05, 0.34, 4200, 0.7),
    ("LUK", 0.01, 0.06, 2500, 0.7),
    ("CLN", 0.10, 0.22, 2200, 0.8),
    ("BHK", 0.02, 0.04, 1500, 0.7),
    ("NTS", 0.03, 0.05, 3000, 0.8),
    ("TMD", 0.07, 0.01, 450, 0.9),
    ("SKC", 0.03, 0.01, 1800, 1.0),
    ("DGD", 0.01, 0.005, 6000, 0.6),
    ("DYT", 0.005, 0.003, 4000, 0.7),
    ("TON", 0.005, 0.005, 2500, 0.7),
    ("TIN", 0.003, 0.004, 600, 0.7),
    ("NTD", 0.002, 0.006, 3000, 0.8),
    ("TSC", 0.005, 0.003, 1500, 0.6),
    ("DGT", 0.02, 0.01, 2000, 1.0),
    ("DTL", 0.005, 0.008, 2500, 1.0),
    ("SKN", 0.008, 0.002, 20000, 0.8),
    ("CQP", 0.001, 0.001, 9000, 0.8),
    ("PNK", 0.005, 0.005, 800, 0.8),
    ("BCS", 0.001, 0.002, 1200, 0.9),
]
CERT_SERIES = [
    "AA",
    "AB",
    "AC",
    "AD",
    "AE",
    "AG",
    "AH",
    "AK",
    "BA",
    "BB",
    "BC",
    "BD",
    "BE",
    "BH",
    "BK",
    "BL",
    "BM",
    "BN",
    "BO",
    "BP",
    "BQ",
    "BR",
    "BS",
    "BT",
    "BU",
    "BV",
    "BX",
    "BY",
    "CA",
    "CB",
    "CĐ",
    "CE",
    "CH",
    "CI",
    "CK",
    "CL",
    "CM",
    "CN",
    "CO",
    "CP",
    "CQ",
    "CR",
    "CS",
    "CT",
    "CU",
    "CV",
    "CX",
    "CY",
    "DA",
    "DB",
    "DC",
    "DĐ",
    "DE",
    "DH",
    "DI",
    "DK",
    "DL",
    "DM",
    "DN",
    "DO",
    "DP",
    "DQ",
    "DR",
    "DS",
]
HAMLETS = [
    "Ấp Thới Hòa",
    "Ấp Tân Phú",
    "Ấp Mỹ Phước",
    "Ấp Phú Lợi",
    "Ấp Long Hòa",
    "Ấp Hòa Bình",
    "Ấp Đông Thạnh",
    "Ấp Nhơn Lộc",
    "Ấp Trường Thọ",
    "Ấp Thạnh Phú",
    "Ấp An Thạnh",
    "Ấp Phước Long",
    "Ấp Bưng Cốc",
    "Ấp Sóc Mới",
    "Ấp Prey Chóp",
    "Ấp Tà Điếp",
    "Khu vực Bình Thường",
    "Khu vực Thới Bình",
]
ORGS = [
    "Công ty TNHH Thương mại Dịch vụ Tây Đô",
    "Công ty Cổ phần Nông sản Hậu Giang",
    "Hợp tác xã Nông nghiệp Thới Lai",
    "Công ty TNHH Thủy sản Sóc Trăng",
    "Ủy ban nhân dân {ward}",
    "Trường Tiểu học {ward}",
    "Chùa Khmer {ward}",
]
COLUMNS = [
    "ward_code",
    "map_sheet",
    "parcel_number",
    "area_m2",
    "land_use_code",
    "address",
    "owner_name",
    "owner_personal_id",
    "owner_birth_date",
    "certificate_number",
    "certificate_date",
    "geometry",
    "updated_at",
]


def parcels(pop: Population, n: int, seed: int, share: float) -> tuple[Columns, int]:
    rng = c.rng_for(seed, "land")
    wards = c.wards()
    today = c.day(c.as_of())
    ward = np.sort(rng.choice(len(wards), size=n, p=c.ward_probabilities()))
    # within a ward, parcels are numbered 1..k on sheets of up to 250 parcels
    starts = np.r_[0, np.flatnonzero(np.diff(ward)) + 1]
    pos = np.arange(n) - np.repeat(starts, np.diff(np.r_[starts, n]))
    per_sheet = rng.integers(120, 251, size=len(wards))[ward]
    sheet = pos // per_sheet + 1
    number = pos % per_sheet + 1
    is_phuong = np.array([w.kind == "phường" for w in wards])[ward]
    mix_p = np.array([m[1] for m in USE_MIX])
    mix_x = np.array([m[2] for m in USE_MIX])
    u = rng.random(n)
    use_idx = np.where(
        is_phuong,
        np.searchsorted(np.cumsum(mix_p / mix_p.sum()), u),
        np.searchsorted(np.cumsum(mix_x / mix_x.sum()), u),
    )
    use_idx = np.minimum(use_idx, len(USE_MIX) - 1)
    codes = np.array([m[0] for m in USE_MIX], dtype=object)[use_idx]
    median = np.array([m[3] for m in USE_MIX])[use_idx]
    sigma = np.array([m[4] for m in USE_MIX])[use_idx]
    area = np.round(median * np.exp(rng.normal(0, 1, n) * sigma), 1)
    area = np.clip(area, 20, 250_000)

    # owners: adults of the province (one person may own several parcels); some parcels are organizations'
    adult = np.flatnonzero(pop.birth_day <= today - 18 * 366)
    owner = adult[rng.integers(0, len(adult), size=n)]
    org = (rng.random(n) < 0.03) | np.isin(codes, ["DGD", "DYT", "TSC", "CQP", "DGT", "DTL", "TON"])
    ward_names = np.array([w.name for w in wards], dtype=object)[ward]
    owner_name = pop.full_names(owner)
    org_names = c.pick(rng, ORGS, n)
    owner_name = np.where(
        org,
        [o.replace("{ward}", w) for o, w in zip(org_names.tolist(), ward_names.tolist(), strict=True)],
        owner_name,
    )
    owner_id = c.null_where(org, pop.personal_id[owner])
    owner_birth = c.null_where(org, c.iso_dates(pop.birth_day[owner]))

    # certificates: after the owner's 18th birthday and after 1994; 6 % of parcels have none yet
    earliest = np.maximum(c.day(dt.date(1994, 1, 1)), np.where(org, 0, pop.birth_day[owner] + 18 * 366))
    cert_day = earliest + (rng.random(n) ** 0.7 * (today - earliest)).astype(np.int64)
    has_cert = rng.random(n) > 0.06
    cert_no = np.char.add(
        np.char.add(c.pick(rng, CERT_SERIES, n).astype(str), " "),
        np.char.zfill(rng.integers(0, 1_000_000, size=n).astype(str), 6),
    ).astype(object)
    upd_day = np.minimum(cert_day + (rng.random(n) ** 3 * (today - cert_day)).astype(np.int64), today)
    upd_day = np.maximum(upd_day, c.day(dt.date(2016, 1, 1)))
    updated = c.iso_timestamps(upd_day * 86_400 + rng.integers(7 * 3600, 17 * 3600, size=n))

    # addresses
    streets = c.pick(rng, vn.street_pool(), n)
    house = rng.integers(1, 400, size=n)
    town = [
        f"Số {h}, đường {s}, {w}"
        for h, s, w in zip(house.tolist(), streets.tolist(), ward_names.tolist(), strict=True)
    ]
    hamlets = c.pick(rng, HAMLETS, n)
    rural = [f"{h}, {w}" for h, w in zip(hamlets.tolist(), ward_names.tolist(), strict=True)]
    address = np.where(is_phuong & (rng.random(n) < 0.9), town, rural).astype(object)

    cols: Columns = {
        "ward_code": np.array([w.code for w in wards], dtype=object)[ward],
        "map_sheet": sheet.astype(np.int64),
        "parcel_number": number.astype(np.int64),
        "area_m2": area,
        "land_use_code": codes,
        "address": address,
        "owner_name": owner_name.astype(object),
        "owner_personal_id": owner_id,
        "owner_birth_date": owner_birth,
        "certificate_number": c.null_where(~has_cert, cert_no),
        "certificate_date": c.null_where(~has_cert, c.iso_dates(cert_day)),
        "geometry": _polygons(rng, ward, area),
        "updated_at": updated,
    }
    return cols, _spoil(rng, cols, share)


def _polygons(rng: np.random.Generator, ward: np.ndarray, area: np.ndarray) -> np.ndarray:
    """A rotated rectangle of the parcel's area near its ward's centre, as WKT (WGS 84 lon/lat)."""
    wards = c.wards()
    n = len(ward)
    lat0 = np.array([w.lat for w in wards])[ward] + rng.normal(0, 0.018, n)
    lon0 = np.array([w.lon for w in wards])[ward] + rng.normal(0, 0.018, n)
    ratio = rng.uniform(1.2, 4.0, n)
    width = np.sqrt(area / ratio)
    length = width * ratio
    theta = rng.uniform(0, np.pi, n)
    m_lat, m_lon = 1 / 110_600, 1 / 109_700
    corners = [(-0.5, -0.5), (0.5, -0.5), (0.5, 0.5), (-0.5, 0.5), (-0.5, -0.5)]
    xs, ys = [], []
    for a, b in corners:
        dx, dy = a * length, b * width
        xs.append(np.round(lon0 + (dx * np.cos(theta) - dy * np.sin(theta)) * m_lon, 7))
        ys.append(np.round(lat0 + (dx * np.sin(theta) + dy * np.cos(theta)) * m_lat, 7))
    coords = []
    for x, y in zip(xs, ys, strict=True):
        lon, lat = pa.array(x).cast(pa.string()), pa.array(y).cast(pa.string())
        coords.append(pc.binary_join_element_wise(lon, lat, " "))
    ring = pc.binary_join_element_wise(*coords, ", ")
    wkt = pc.binary_join_element_wise(pa.scalar("POLYGON(("), ring, pa.scalar("))"), "")
    return np.array(wkt.to_pylist(), dtype=object)


def _spoil(rng: np.random.Generator, cols: Columns, share: float) -> int:
    idx = c.messy_rows(rng, len(cols["ward_code"]), share)
    for k, i in enumerate(idx.tolist()):
        kind = k % 5
        if kind == 0:
            cols["owner_name"][i] = c.stray_spaces(cols["owner_name"][i], rng)
        elif kind == 1:
            cols["owner_name"][i] = c.nfd(cols["owner_name"][i])
        elif kind == 2 and cols["owner_personal_id"][i] is not None:
            cols["owner_personal_id"][i] = c.wrong_id(cols["owner_personal_id"][i], rng)
        elif kind == 3:  # typed in lower case, with a trailing space
            cols["land_use_code"][i] = cols["land_use_code"][i].lower() + " "
        elif cols["certificate_date"][i] is not None:  # year typed with swapped digits
            d = cols["certificate_date"][i]
            cols["certificate_date"][i] = f"{int(d[:4]) + 50}{d[4:]}"
    return len(idx)


SQLITE_DDL = """CREATE TABLE parcels (
  ward_code TEXT NOT NULL, map_sheet INTEGER NOT NULL, parcel_number INTEGER NOT NULL, area_m2 REAL NOT NULL,
  land_use_code TEXT NOT NULL, address TEXT, owner_name TEXT, owner_personal_id TEXT, owner_birth_date TEXT,
  certificate_number TEXT, certificate_date TEXT, geometry TEXT, updated_at TEXT NOT NULL,
  PRIMARY KEY (ward_code, map_sheet, parcel_number))"""


def write_sqlite(cols: Columns, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    con = sqlite3.connect(tmp)
    try:
        con.execute("PRAGMA journal_mode=OFF")
        con.execute("PRAGMA synchronous=OFF")
        con.execute(SQLITE_DDL)
        con.executemany(f"INSERT INTO parcels VALUES ({', '.join('?' * len(COLUMNS))})", rows(cols))
        con.execute("CREATE INDEX parcels_updated_at ON parcels (updated_at)")
        con.commit()
    finally:
        con.close()
    tmp.replace(path)


PG_DDL = """CREATE TABLE parcels (
  ward_code varchar(5) NOT NULL, map_sheet integer NOT NULL, parcel_number integer NOT NULL,
  area_m2 double precision NOT NULL, land_use_code varchar(10) NOT NULL, address text, owner_name text,
  owner_personal_id varchar(20), owner_birth_date date, certificate_number varchar(20), certificate_date text,
  geometry text, updated_at timestamptz NOT NULL, PRIMARY KEY (ward_code, map_sheet, parcel_number))"""


def write_postgres(cols: Columns, url: str) -> None:
    """Replace table ``parcels`` in the PostgreSQL database at ``url`` (SQLAlchemy or libpq URL)."""
    import psycopg

    conninfo = url.replace("postgresql+psycopg://", "postgresql://").replace(
        "postgresql+psycopg2://", "postgresql://"
    )
    with psycopg.connect(conninfo) as conn:
        conn.execute("DROP TABLE IF EXISTS parcels")
        conn.execute(PG_DDL)
        with conn.cursor().copy(f"COPY parcels ({', '.join(COLUMNS)}) FROM STDIN") as copy:
            for row in rows(cols):
                copy.write_row(row)
        conn.execute("CREATE INDEX parcels_updated_at ON parcels (updated_at)")
