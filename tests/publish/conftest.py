# ruff: noqa: E501  (SQL and fixture rows read best on one line)
"""A small hub of our own for the publication tests: a catalog folder with births and parcels
(the repository's contracts), synthetic rows written straight into the warehouse."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import yaml

from hub.catalog.loader import sync_catalog
from hub.contracts import load_contract
from hub.db import session_scope
from hub.runtime import Hub
from hub.settings import PROJECT_ROOT, Settings

WARDS = ["31117", "31120", "31123"]
FIRST = ["An", "Bình", "Cúc", "Dũng", "Giang", "Hà", "Khánh", "Lan", "Minh", "Ngọc", "Phúc", "Quân"]
LAST = ["Nguyễn", "Trần", "Lê", "Phạm", "Huỳnh"]

BIRTHS_RELEASE = {
    "id": "births-by-ward-month",
    "title": {"vi": "Số trẻ sinh theo xã/phường, tháng và giới tính", "en": "Births by ward, month and sex"},
    "sql": "SELECT ward_code, CAST(date_trunc('month', registration_date) AS DATE) AS month, child_sex, "
    "count(*) AS births "
    "FROM civil_status.births GROUP BY ALL ORDER BY ALL",
    "frequency": "monthly",
    "person_count": "births",
}
PARCELS_RELEASE = {
    "id": "parcels-without-owner",
    "title": {"vi": "Thửa đất chưa có chủ sử dụng", "en": "Parcels without owners"},
    "sql": "SELECT ward_code, map_sheet, parcel_number, area_m2, land_use_code, hub_centroid(geometry) AS centroid "
    "FROM land.parcels WHERE owner_personal_id IS NULL AND owner_name IS NULL ORDER BY ALL",
    "frequency": "monthly",
    "geometry": "centroid",
    "rows_are_persons": False,
}


def _births(n: int, seed: int = 7) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        # one big ward, two small ones: small cells to suppress
        ward = WARDS[0] if rng.random() < 0.8 else rng.choice(WARDS[1:])
        reg = dt.date(2025, rng.randint(1, 3), rng.randint(1, 28))
        birth = reg - dt.timedelta(days=rng.randint(1, 60))
        rows.append({
            "registration_number": f"KS-92-2025-{i:06d}",
            "registration_date": reg,
            "ward_code": ward,
            "child_personal_id": f"0922{rng.randint(10**7, 10**8 - 1)}",
            "child_full_name": f"{rng.choice(LAST)} {rng.choice(['Văn', 'Thị'])} {rng.choice(FIRST)} {i:04d}",
            "child_sex": rng.choice(["Nam", "Nữ"]),
            "child_birth_date": birth,
            "birth_place": f"Số {rng.randint(1, 300)} đường {rng.choice(FIRST)}, phường {ward}",
            "ethnicity": rng.choice(["Kinh", "Khmer", "Hoa"]),
            "nationality": "Việt Nam",
            "birth_weight_grams": rng.randint(2500, 4000),
            "father_full_name": f"{rng.choice(LAST)} Văn {rng.choice(FIRST)} {i:04d}",
            "father_personal_id": f"0920{rng.randint(10**7, 10**8 - 1)}",
            "mother_full_name": f"{rng.choice(LAST)} Thị {rng.choice(FIRST)} {i:04d}",
            "mother_personal_id": f"0921{rng.randint(10**7, 10**8 - 1)}",
            "updated_at": dt.datetime(2025, 4, 1, tzinfo=dt.UTC),
        })  # fmt: skip
    return rows


def _parcels(n: int, seed: int = 3) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        x, y = 105.7 + rng.random() / 10, 10.0 + rng.random() / 10
        owned = rng.random() < 0.7
        rows.append({
            "ward_code": rng.choice(WARDS), "map_sheet": 1 + i // 50, "parcel_number": i + 1,
            "area_m2": round(50 + rng.random() * 500, 1), "land_use_code": rng.choice(["ODT", "CLN", "LUC"]),
            "address": f"Số {i + 1} hẻm {rng.randint(1, 99)} đường Trần Hưng Đạo" if owned else None,
            "owner_name": f"{rng.choice(LAST)} Văn Chủ {i:04d}" if owned else None,
            "owner_personal_id": f"0923{rng.randint(10**7, 10**8 - 1)}" if owned else None,
            "owner_birth_date": dt.date(1970, 1, 1) + dt.timedelta(days=rng.randint(0, 9000)) if owned else None,
            "certificate_number": None, "certificate_date": None,
            "geometry": f"POLYGON(({x} {y}, {x + 0.001} {y}, {x + 0.001} {y + 0.001}, {x} {y + 0.001}, {x} {y}))",
            "updated_at": dt.datetime(2025, 4, 1, tzinfo=dt.UTC),
        })  # fmt: skip
    return rows


def _write(settings: Settings, key: str, contract_ref: str, rows: list[dict[str, Any]]) -> None:
    from hub.warehouse.tables import Warehouse

    schema = load_contract(contract_ref, settings.schemas_dir).arrow_schema
    table = pa.Table.from_pylist(rows, schema=schema)
    wh = Warehouse(settings)
    wh.ensure_table(key, schema).append(table)


def write_catalog(
    root: Path, births_releases: list[dict[str, Any]], parcels_releases: list[dict[str, Any]]
) -> None:
    org = root / "so-tu-phap"
    org.mkdir(parents=True, exist_ok=True)
    (org / "organization.yaml").write_text(
        yaml.safe_dump({"name": "so-tu-phap", "title": {"vi": "Sở Tư pháp", "en": "Department of Justice"},
                        "email": "stp@example.vn"}, allow_unicode=True), encoding="utf-8")  # fmt: skip
    (org / "births.yaml").write_text(yaml.safe_dump({
        "id": "civil_status.births", "title": {"vi": "Đăng ký khai sinh", "en": "Birth registrations"},
        "description": {"vi": "Khai sinh", "en": "Births"}, "sharing": "shared",
        "contract": "civil_status/births.v1", "k_anonymity": 5, "spatial": "92", "frequency": "daily",
        "tags": ["hộ tịch"], "releases": births_releases,
    }, allow_unicode=True), encoding="utf-8")  # fmt: skip
    land = root / "so-nong-nghiep-moi-truong"
    land.mkdir(parents=True, exist_ok=True)
    (land / "organization.yaml").write_text(
        yaml.safe_dump({"name": "so-nong-nghiep-moi-truong", "title": {"vi": "Sở Nông nghiệp và Môi trường"}},
                       allow_unicode=True), encoding="utf-8")  # fmt: skip
    (land / "parcels.yaml").write_text(yaml.safe_dump({
        "id": "land.parcels", "title": {"vi": "Thửa đất", "en": "Land parcels"}, "sharing": "shared",
        "contract": "land/parcels.v1", "k_anonymity": 5, "spatial": "92", "releases": parcels_releases,
    }, allow_unicode=True), encoding="utf-8")  # fmt: skip


@pytest.fixture
def births_rows() -> list[dict[str, Any]]:
    return _births(400)


@pytest.fixture
def parcels_rows() -> list[dict[str, Any]]:
    return _parcels(120)


@pytest.fixture
def publish_settings(
    tmp_path: Path, births_rows: list[dict[str, Any]], parcels_rows: list[dict[str, Any]]
) -> Iterator[Settings]:
    """A hub with births and parcels in the warehouse and one release each in the catalog."""
    from hub.db import dispose_engines

    catalog = tmp_path / "catalog"
    write_catalog(catalog, [BIRTHS_RELEASE], [PARCELS_RELEASE])
    s = Settings(data_dir=tmp_path / "data", catalog_dir=catalog, schemas_dir=PROJECT_ROOT / "schemas",
                 site_url="http://127.0.0.1:8000")  # fmt: skip
    s.ensure_dirs()
    with session_scope(s) as session:
        sync_catalog(session, s)
    _write(s, "civil_status.births", "civil_status/births.v1", births_rows)
    _write(s, "land.parcels", "land/parcels.v1", parcels_rows)
    yield s
    dispose_engines()


@pytest.fixture
def publish_hub(publish_settings: Settings) -> Iterator[Hub]:
    """The runtime of ``publish_settings`` (its query worker builds the releases)."""
    with Hub(publish_settings) as hub:
        yield hub
