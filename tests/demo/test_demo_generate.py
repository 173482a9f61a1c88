"""The generated province looks like real records to a Vietnamese official, with a small messy share."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import json
import sqlite3
import unicodedata
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from openpyxl import load_workbook
from referencing import Registry, Resource
from vietnam_provinces import ProvinceCode, Ward

from hub.demo.common import PRE2025_UNITS, REFORM_DATE
from hub.demo.generate import DemoPaths, generate, is_generated
from hub.demo.land import LAND_USE_CODES
from hub.settings import PROJECT_ROOT

SCHEMAS = PROJECT_ROOT / "schemas"
CURRENT_WARDS = {f"{int(w.code):05d}" for w in Ward.iter_by_province(ProvinceCode.P_92)}


def _pre2025() -> tuple[set[str], set[str]]:
    provinces, wards = set(), set()
    for line in PRE2025_UNITS.read_text(encoding="utf-8").splitlines():
        parts = line.split("\t")
        if parts[0] == "P":
            provinces.add(parts[1])
        elif parts[0] == "W":
            wards.add(parts[1])
    return provinces, wards


OLD_PROVINCES, OLD_WARDS = _pre2025()


def rows(db: Path, table: str) -> list[dict[str, Any]]:
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in con.execute(f"SELECT * FROM {table}")]
    finally:
        con.close()


def id_ok(pid: str | None, birth: str, sex: str | None = None) -> bool:
    """Structure of a 12-digit personal id (TT 59/2021/TT-BCA) against the holder's birth date and sex."""
    if pid is None or len(pid) != 12 or not pid.isdigit() or pid[:3] not in OLD_PROVINCES:
        return False
    year = int(birth[:4])
    century = int(pid[3]) // 2
    if 1900 + 100 * century != year - year % 100 or pid[4:6] != f"{year % 100:02d}":
        return False
    return sex is None or (int(pid[3]) % 2 == 0) == (sex == "Nam")


def validator(ref: str) -> Draft202012Validator:
    resources = []
    for path in SCHEMAS.rglob("*.schema.json"):
        doc = json.loads(path.read_text(encoding="utf-8"))
        resources.append((doc["$id"], Resource.from_contents(doc)))
    schema = json.loads((SCHEMAS / f"{ref}.schema.json").read_text(encoding="utf-8"))
    return Draft202012Validator(
        schema,
        registry=Registry().with_resources(resources),
        format_checker=Draft202012Validator.FORMAT_CHECKER,
    )


def invalid_share(ref: str, records: list[dict[str, Any]]) -> float:
    v = validator(ref)
    return sum(1 for r in records if not v.is_valid(r)) / len(records)


def test_counts_and_messy_share_of_the_small_province(demo_small: tuple[DemoPaths, dict[str, Any]]) -> None:
    paths, m = demo_small
    assert m["scale"] == "small"
    assert m["counts"]["people"] == 6000
    assert m["counts"]["parcels"] == 2000
    assert m["counts"]["addresses"] == 1500
    for what in ("births", "marriages", "deaths", "parcels", "addresses"):
        share = m["messy"][what] / m["counts"][what]
        assert 0 < share < 0.05, (what, share)
    assert is_generated(paths, "small")
    assert not is_generated(paths, "province")


def test_births_match_the_contract_apart_from_the_messy_rows(
    demo_small: tuple[DemoPaths, dict[str, Any]],
) -> None:
    paths, m = demo_small
    births = rows(paths.civil_status_db, "births")
    assert len(births) == m["counts"]["births"]
    share = invalid_share("civil_status/births.v1", births)
    assert 0 < share < 0.05
    for kind in ("marriages", "deaths"):
        assert 0 < invalid_share(f"civil_status/{kind}.v1", rows(paths.civil_status_db, kind)) < 0.05


def test_personal_ids_have_the_official_structure(demo_small: tuple[DemoPaths, dict[str, Any]]) -> None:
    paths, _ = demo_small
    births = rows(paths.civil_status_db, "births")
    children = [b for b in births if b["child_personal_id"] is not None]
    good = [b for b in children if id_ok(b["child_personal_id"], b["child_birth_date"], b["child_sex"])]
    assert 0.95 < len(good) / len(children) < 1, "a few wrong-structure ids, not more"
    assert {b["child_personal_id"][:3] for b in good} >= {"092", "093", "094"}
    assert all(b["child_personal_id"][3] in "23" for b in good), (
        "children born since 2016: 2000s century digits"
    )
    # parents were born in the 1900s or 2000s, and their ids say so
    mothers = [b for b in births if b["mother_personal_id"]]
    assert len(mothers) / len(births) > 0.9
    assert all(b["mother_personal_id"][3] in "1357" for b in mothers), "mothers: female digits"
    ids = [b["child_personal_id"] for b in children]
    assert len(set(ids)) < len(ids), "some duplicated ids, as real registries hold"


def test_names_are_vietnamese_nfc_with_a_few_spoiled(demo_small: tuple[DemoPaths, dict[str, Any]]) -> None:
    paths, _ = demo_small
    names = [b["child_full_name"] for b in rows(paths.civil_status_db, "births")]
    nfc = [n for n in names if unicodedata.is_normalized("NFC", n) and n == n.strip() and "  " not in n]
    assert 0.95 < len(nfc) / len(names) < 1
    assert any(not unicodedata.is_normalized("NFC", n) for n in names), "some NFD names"
    assert any(n != n.strip() or "  " in n for n in names), "some stray spaces"
    with_diacritics = [n for n in nfc if any(ord(ch) > 127 for ch in n)]
    assert len(with_diacritics) / len(nfc) > 0.6
    assert all(2 <= len(n.split()) <= 5 for n in nfc)
    surnames = {n.split()[0] for n in nfc}
    assert {"Nguyễn", "Trần", "Lê"} <= surnames


def test_dates_are_in_order_apart_from_the_messy_rows(demo_small: tuple[DemoPaths, dict[str, Any]]) -> None:
    paths, m = demo_small
    births = rows(paths.civil_status_db, "births")
    in_order = [b for b in births if b["child_birth_date"] <= b["registration_date"]]
    assert 0.97 < len(in_order) / len(births) < 1
    as_of = m["as_of"]
    assert all(b["registration_date"] <= as_of for b in in_order if b["registration_date"][:4] < "2030")
    deaths = rows(paths.civil_status_db, "deaths")
    assert sum(d["death_date"] <= d["registration_date"] for d in deaths) / len(deaths) > 0.97
    assert all(
        d["deceased_birth_date"] <= d["death_date"]
        for d in deaths
        if d["death_date"] <= d["registration_date"]
    )
    marriages = rows(paths.civil_status_db, "marriages")
    adult = [
        x
        for x in marriages
        if dt.date.fromisoformat(x["registration_date"]).year - int(x["wife_birth_date"][:4]) >= 18
    ]
    assert len(adult) / len(marriages) > 0.97


def test_ward_codes_exist_for_the_records_date(demo_small: tuple[DemoPaths, dict[str, Any]]) -> None:
    paths, m = demo_small
    births = [b for b in rows(paths.civil_status_db, "births") if b["registration_date"] <= m["as_of"]]
    reform = REFORM_DATE.isoformat()
    for b in births:
        if b["registration_date"] >= reform:
            assert b["ward_code"] in CURRENT_WARDS, b
        else:
            assert b["ward_code"] in OLD_WARDS, b
    old_only = {b["ward_code"] for b in births if b["registration_date"] < reform} - CURRENT_WARDS
    assert old_only, "records before the reform carry communes the reform merged away"
    assert {p["ward_code"] for p in rows(paths.land_db, "parcels")} <= CURRENT_WARDS
    assert len({p["ward_code"] for p in rows(paths.land_db, "parcels")}) > 80


def test_deaths_xml_export_file(demo_small: tuple[DemoPaths, dict[str, Any]]) -> None:
    from lxml import etree

    paths, m = demo_small
    root = etree.parse(str(paths.deaths_xml)).getroot()
    deaths = root.findall("death")
    assert root.tag == "deaths"
    assert len(deaths) == int(root.get("count")) == m["counts"]["deaths"]
    by_number = {r["registration_number"]: r for r in rows(paths.civil_status_db, "deaths")}
    for d in deaths[:50]:
        stored = by_number[d.findtext("registration_number")]
        assert d.findtext("deceased_full_name") == stored["deceased_full_name"]
        assert d.findtext("ward_code") == stored["ward_code"]


def test_land_parcels(demo_small: tuple[DemoPaths, dict[str, Any]]) -> None:
    paths, m = demo_small
    parcels = rows(paths.land_db, "parcels")
    assert len(parcels) == m["counts"]["parcels"]
    codes = [p["land_use_code"] for p in parcels]
    official = [c for c in codes if c in LAND_USE_CODES]
    assert 0.98 < len(official) / len(codes) < 1, "a few codes typed wrong"
    assert {"ODT", "ONT", "LUC", "CLN"} <= set(official)
    assert len({(p["ward_code"], p["map_sheet"], p["parcel_number"]) for p in parcels}) == len(parcels)
    assert all(p["geometry"].startswith("POLYGON((") and p["area_m2"] > 0 for p in parcels)
    owners = [p for p in parcels if p["owner_personal_id"] and p["owner_birth_date"]]
    assert sum(id_ok(p["owner_personal_id"], p["owner_birth_date"]) for p in owners) / len(owners) > 0.97
    certified = [p for p in parcels if p["certificate_date"] and p["owner_birth_date"]]
    assert all(p["certificate_date"] > p["owner_birth_date"] for p in certified)
    assert 0 < invalid_share("land/parcels.v1", parcels) < 0.05


def test_education_workbooks_per_school_year(demo_small: tuple[DemoPaths, dict[str, Any]]) -> None:
    paths, m = demo_small
    books = sorted(paths.education_drop.glob("*.xlsx"))
    assert [b.name for b in books] == ["giao-duc_2023-2024.xlsx", "giao-duc_2024-2025.xlsx"]
    schools: list[dict[str, Any]] = []
    enrolment: list[dict[str, Any]] = []
    for book in books:
        wb = load_workbook(book, read_only=True)
        assert wb.sheetnames == ["schools", "enrolment"]
        for sheet, into in (("schools", schools), ("enrolment", enrolment)):
            values = list(wb[sheet].iter_rows(values_only=True))
            into.extend(dict(zip(values[0], r, strict=True)) for r in values[1:])
        wb.close()
    assert len(schools) == m["counts"]["schools"]
    assert len(enrolment) == m["counts"]["enrolment"]
    assert {s["level"] for s in schools} == {"Mầm non", "Tiểu học", "Trung học cơ sở", "Trung học phổ thông"}
    assert {s["school_year"] for s in schools} == {"2023-2024", "2024-2025"}
    assert all(s["ward_code"] in CURRENT_WARDS for s in schools)
    first_year = [s["school_name"].strip() for s in schools if s["school_year"] == "2023-2024"]
    assert len(set(first_year)) == len(first_year)
    # hand-filled workbooks: a few typing mistakes the contracts catch
    assert 0 < invalid_share("education/enrolment.v1", enrolment) < 0.05
    assert {e["sex"] for e in enrolment} >= {"Nam", "Nữ"}
    assert invalid_share("education/schools.v1", schools) < 0.05
    assert m["messy"]["education"] > 0


def test_digital_addresses_csv(demo_small: tuple[DemoPaths, dict[str, Any]]) -> None:
    paths, m = demo_small
    with paths.addresses_csv.open(encoding="utf-8", newline="") as f:
        records = list(csv.DictReader(f))
    assert len(records) == m["counts"]["addresses"]
    assert {r["ward_code"] for r in records} <= CURRENT_WARDS
    typed = [{**r, "latitude": float(r["latitude"]), "longitude": float(r["longitude"])} for r in records]
    assert 0 < invalid_share("addresses/digital_addresses.v1", typed) < 0.05


def test_same_seed_same_files(demo_small: tuple[DemoPaths, dict[str, Any]], tmp_path: Path) -> None:
    paths, _ = demo_small
    again = generate(tmp_path / "again", "small")
    assert again["counts"] == demo_small[1]["counts"]
    again_paths = DemoPaths(tmp_path / "again")

    def digest(p: Path) -> str:
        return hashlib.sha256(p.read_bytes()).hexdigest()

    assert digest(again_paths.addresses_csv) == digest(paths.addresses_csv)
    assert rows(again_paths.land_db, "parcels") == rows(paths.land_db, "parcels")
    other = generate(tmp_path / "other", "small", seed=7)
    assert rows(DemoPaths(tmp_path / "other").civil_status_db, "births") != rows(
        paths.civil_status_db, "births"
    )
    assert other["counts"]["parcels"] == 2000


def test_unknown_scale_is_refused(tmp_path: Path) -> None:
    from hub.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown scale"):
        generate(tmp_path, "county")


def test_demo_refuses_a_hub_port_taken_before_doing_any_work(tmp_path: Path) -> None:
    import socket

    from hub.demo.run import run_demo_outcome
    from hub.errors import ConfigError
    from hub.settings import Settings

    settings = Settings(data_dir=tmp_path / "data", catalog_dir=tmp_path / "catalog")
    with pytest.raises(ConfigError, match="also the civil-status service's port"):
        run_demo_outcome(settings, port=8765, service_port=8765)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match=f"port {port} is in use"):
            run_demo_outcome(settings, port=port, service_port=port + 1)
    assert not (tmp_path / "data" / "demo").exists()  # nothing generated
