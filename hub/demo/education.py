"""Education (Sở Giáo dục và Đào tạo): schools, teacher counts, and enrolment by grade and sex.

Written as one Excel workbook per school year into a drop folder (sheets ``schools`` and ``enrolment``,
the first row holds the field names of the contracts), and, when a URL is given, into MariaDB.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from hub.demo import common as c
from hub.demo import names as vn
from hub.demo.people import Columns, rows

# level -> (code digit, grades, children per grade (mean), name stem)
LEVELS: dict[str, tuple[int, list[int], int, str]] = {
    "Mầm non": (1, [0], 150, "Trường Mầm non"),
    "Tiểu học": (2, [1, 2, 3, 4, 5], 110, "Trường Tiểu học"),
    "Trung học cơ sở": (3, [6, 7, 8, 9], 150, "Trường THCS"),
    "Trung học phổ thông": (4, [10, 11, 12], 230, "Trường THPT"),
}
LEVEL_SHARE = {"Mầm non": 0.34, "Tiểu học": 0.36, "Trung học cơ sở": 0.2, "Trung học phổ thông": 0.1}
NAMESAKES = [
    "Lê Quý Đôn",
    "Châu Văn Liêm",
    "Nguyễn Việt Hồng",
    "Phan Ngọc Hiển",
    "Trần Đại Nghĩa",
    "Lương Thế Vinh",
    "Nguyễn Du",
    "Võ Trường Toản",
    "Bùi Hữu Nghĩa",
    "Đoàn Thị Điểm",
    "Ngô Quyền",
    "Trần Quốc Toản",
    "Nguyễn Trãi",
    "Huỳnh Thúc Kháng",
    "Phan Văn Trị",
    "Lý Tự Trọng",
    "Võ Văn Kiệt",
    "Hoàng Diệu",
]
KINDERGARTEN = ["Hoa Sen", "Họa Mi", "Sơn Ca", "Hướng Dương", "Bông Sen", "Tuổi Thơ", "Vàng Anh", "Hoa Mai"]
SCHOOL_COLUMNS = [
    "school_year",
    "school_code",
    "school_name",
    "level",
    "ward_code",
    "address",
    "latitude",
    "longitude",
    "teacher_count",
    "updated_at",
]
ENROLMENT_COLUMNS = ["school_year", "school_code", "grade", "sex", "student_count"]


def schools_and_enrolment(scale: c.Scale, seed: int) -> tuple[Columns, Columns]:
    rng = c.rng_for(seed, "education")
    wards = c.wards()
    n = max(round(len(wards) * scale.schools_per_ward), len(LEVELS))
    ward = np.sort(rng.choice(len(wards), size=n, p=c.ward_probabilities()))
    level_names = list(LEVEL_SHARE)
    level = np.array(level_names, dtype=object)[
        rng.choice(len(level_names), size=n, p=np.array(list(LEVEL_SHARE.values())))
    ]
    level[: len(level_names)] = level_names  # every level exists even at the smallest scale
    names, codes, addresses = [], [], []
    seq: dict[int, int] = {}
    streets = c.pick(rng, vn.street_pool(), n)
    for i in range(n):
        w = wards[int(ward[i])]
        digit, _, _, stem = LEVELS[str(level[i])]
        seq[digit] = seq.get(digit, 0) + 1
        codes.append(f"{c.PROVINCE_CODE}{digit}{seq[digit]:05d}")
        place = w.name.split(" ", 1)[1]
        r = rng.random()
        if level[i] == "Mầm non":
            names.append(
                f"{stem} {KINDERGARTEN[int(rng.integers(len(KINDERGARTEN)))]} {place}"
                if r < 0.5
                else f"{stem} {place}"
            )
        elif r < 0.45:
            names.append(f"{stem} {NAMESAKES[int(rng.integers(len(NAMESAKES)))]}")
        else:
            names.append(f"{stem} {place}" + ("" if r < 0.8 else f" {int(rng.integers(1, 4))}"))
        addresses.append(f"Số {int(rng.integers(1, 300))}, đường {streets[i]}, {w.name}")
    # names must be unique within the province: number the repeats
    seen: dict[str, int] = {}
    for i, nm in enumerate(names):
        seen[nm] = seen.get(nm, 0) + 1
        if seen[nm] > 1:
            names[i] = f"{nm} (cơ sở {seen[nm]})"
    lat = np.round(np.array([w.lat for w in wards])[ward] + rng.normal(0, 0.015, n), 6)
    lon = np.round(np.array([w.lon for w in wards])[ward] + rng.normal(0, 0.015, n), 6)
    size = rng.lognormal(0, 0.35, n)

    school_rows: dict[str, list[Any]] = {k: [] for k in SCHOOL_COLUMNS}
    enrol_rows: dict[str, list[Any]] = {k: [] for k in ENROLMENT_COLUMNS}
    for y, year in enumerate(scale.school_years):
        start_year = int(year[:4])
        growth = 1 + 0.015 * y
        for i in range(n):
            _, grades, mean, _ = LEVELS[str(level[i])]
            total = 0
            for g in grades:
                for sex, share in (("Nam", 0.515), ("Nữ", 0.485)):
                    k = int(rng.poisson(mean * size[i] * growth * share))
                    total += k
                    enrol_rows["school_year"].append(year)
                    enrol_rows["school_code"].append(codes[i])
                    enrol_rows["grade"].append(g)
                    enrol_rows["sex"].append(sex)
                    enrol_rows["student_count"].append(k)
            ratio = 18 if level[i] == "Mầm non" else 22 if level[i] == "Tiểu học" else 19
            values = [
                year,
                codes[i],
                names[i],
                str(level[i]),
                wards[int(ward[i])].code,
                addresses[i],
                float(lat[i]),
                float(lon[i]),
                max(round(total / ratio), 3),
                f"{start_year}-09-{int(rng.integers(5, 28)):02d}T{int(rng.integers(8, 17)):02d}:00:00{c.TZ}",
            ]
            for column, v in zip(SCHOOL_COLUMNS, values, strict=True):
                school_rows[column].append(v)
    schools = {k: np.array(v, dtype=object) for k, v in school_rows.items()}
    enrolment = {k: np.array(v, dtype=object) for k, v in enrol_rows.items()}
    return schools, enrolment


def spoil(schools: Columns, enrolment: Columns, seed: int, share: float) -> int:
    """Spoil a few rows the way hand-filled workbooks are: sex typed in lower case, a count typed as
    text with a thousands dot, a school name with a trailing space. Returns how many rows."""
    rng = c.rng_for(seed, "education-messy")
    rows_e = c.messy_rows(rng, len(enrolment["sex"]), share)
    for k, i in enumerate(rows_e.tolist()):
        if k % 2 == 0:
            enrolment["sex"][i] = str(enrolment["sex"][i]).lower()
        else:
            enrolment["student_count"][i] = f"{int(enrolment['student_count'][i]) + 1000:,}".replace(",", ".")
    rows_s = c.messy_rows(rng, len(schools["school_name"]), share)
    for i in rows_s.tolist():
        schools["school_name"][i] = f"{schools['school_name'][i]} "
    return len(rows_e) + len(rows_s)


def write_workbooks(schools: Columns, enrolment: Columns, folder: Path) -> list[Path]:
    """One workbook per school year, ``giao-duc_<year>.xlsx``, with sheets ``schools`` and ``enrolment``."""
    from openpyxl import Workbook

    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.xlsx"):
        old.unlink()
    written = []
    for year in sorted(set(schools["school_year"].tolist())):
        wb = Workbook(write_only=True)
        for title, cols in (("schools", schools), ("enrolment", enrolment)):
            ws = wb.create_sheet(title)
            ws.append(list(cols))
            keep = cols["school_year"] == year
            for row in rows({k: v[keep] for k, v in cols.items()}):
                ws.append(list(row))
        path = folder / f"giao-duc_{year}.xlsx"
        tmp = path.with_suffix(".tmp")
        wb.save(tmp)
        tmp.replace(path)
        written.append(path)
    return written


MARIADB_DDL = [
    """CREATE TABLE schools (school_year varchar(9) NOT NULL, school_code varchar(10) NOT NULL,
    school_name varchar(200) NOT NULL, level varchar(40) NOT NULL, ward_code char(5) NOT NULL, address text,
    latitude double, longitude double, teacher_count int, updated_at varchar(32) NOT NULL,
    PRIMARY KEY (school_year, school_code)) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci""",
    """CREATE TABLE enrolment (school_year varchar(9) NOT NULL, school_code varchar(10) NOT NULL,
    grade int NOT NULL, sex varchar(3) NOT NULL, student_count int NOT NULL,
    PRIMARY KEY (school_year, school_code, grade, sex)) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci""",
]


def write_mariadb(schools: Columns, enrolment: Columns, url: str) -> None:
    """Replace tables ``schools`` and ``enrolment`` in the MariaDB database at ``url`` (SQLAlchemy URL)."""
    import pymysql
    from sqlalchemy.engine import make_url

    u = make_url(url)
    conn = pymysql.connect(
        host=u.host or "127.0.0.1",
        port=u.port or 3306,
        user=u.username or "root",
        password=u.password or "",
        database=u.database,
        charset="utf8mb4",
    )
    try:
        with conn.cursor() as cur:
            cur.execute("DROP TABLE IF EXISTS enrolment")
            cur.execute("DROP TABLE IF EXISTS schools")
            for ddl in MARIADB_DDL:
                cur.execute(ddl)
            for table, cols in (("schools", schools), ("enrolment", enrolment)):
                sql = f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join(['%s'] * len(cols))})"
                data = rows(cols)
                for i in range(0, len(data), 5000):
                    cur.executemany(sql, data[i : i + 5000])
        conn.commit()
    finally:
        conn.close()
