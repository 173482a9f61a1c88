"""A small hub for the API tests: two agencies, three datasets with warehouse tables, one private.

``build_hub(settings)`` writes catalog YAML files into a temporary catalog folder, syncs them like
``hub serve`` does, and loads tables through the warehouse's own writer (Iceberg snapshots over Parquet).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import yaml

from hub.catalog.ckan import sync_ckan
from hub.catalog.loader import sync_catalog
from hub.db import session_scope
from hub.settings import Settings

ORGS = {
    "so-tai-nguyen-moi-truong": {
        "vi": "Sở Tài nguyên và Môi trường",
        "en": "Department of Natural Resources",
    },
    "so-tu-phap": {"vi": "Sở Tư pháp", "en": "Department of Justice"},
}
DATASETS: list[dict[str, Any]] = [
    {
        "org": "so-tai-nguyen-moi-truong",
        "id": "land.parcels",
        "title": {"vi": "Thửa đất đai", "en": "Land parcels"},
        "description": {"vi": "Danh sách thửa đất và hình thể (đất đai).", "en": "Parcels"},
        "sharing": "open",
        # an open dataset's contract may hold no direct or sensitive personal data (issue 11): the test
        # table keeps its own columns, the contract gives it a data dictionary without personal fields
        "contract": "addresses/digital_addresses.v1",
        "tags": ["đất đai", "bản đồ"],
        "groups": ["dat-dai"],
        "license": "cc-by-4.0",
    },
    {
        "org": "so-tu-phap",
        "id": "civil_status.births",
        "title": {"vi": "Đăng ký khai sinh", "en": "Birth registrations"},
        "sharing": "internal",
        "contract": "civil_status/births.v1",
        "tags": ["hộ tịch"],
        "groups": ["ho-tich"],
    },
    {
        "org": "so-tu-phap",
        "id": "civil_status.marriages",
        "title": {"vi": "Đăng ký kết hôn", "en": "Marriage registrations"},
        "sharing": "open",
        "contract": "education/schools.v1",
        "tags": ["hộ tịch", "kết hôn"],
        "groups": ["ho-tich"],
        "license": "odc-by",
    },
]


def write_catalog(folder: Path) -> None:
    for name, title in ORGS.items():
        (folder / name).mkdir(parents=True, exist_ok=True)
        (folder / name / "organization.yaml").write_text(
            yaml.safe_dump({"name": name, "title": title}, allow_unicode=True), encoding="utf-8"
        )
    for d in DATASETS:
        spec = {k: v for k, v in d.items() if k != "org"}
        path = folder / d["org"] / f"{d['id'].split('.')[1]}.yaml"
        path.write_text(yaml.safe_dump(spec, allow_unicode=True), encoding="utf-8")
    groups = [
        {"name": "dat-dai", "title": {"vi": "Đất đai", "en": "Land"}},
        {"name": "ho-tich", "title": {"vi": "Hộ tịch", "en": "Civil status"}},
    ]
    (folder / "groups.yaml").write_text(yaml.safe_dump(groups, allow_unicode=True), encoding="utf-8")


def make_table(settings: Settings, key: str, table: pa.Table, *, target_rows: int | None = None) -> int:
    """Commit ``table`` as a new snapshot of ``key`` (created if needed); returns the snapshot id."""
    from hub.warehouse.tables import Warehouse
    from hub.warehouse.writer import FileSink

    wh = Warehouse(settings)
    t = wh.ensure_table(key, table.schema)
    sink = FileSink(t, wh.data_dir(t), f"test-{key}", **({"target_rows": target_rows} if target_rows else {}))
    sink.write(table)
    files = sink.close()
    return wh.commit(t, add=files)


def parcels(n: int = 250) -> pa.Table:
    return pa.table(
        {
            "parcel_id": pa.array([f"P{i:05d}" for i in range(n)]),
            "ward_code": pa.array([f"{26734 + i % 5:05d}" for i in range(n)]),
            "area_m2": pa.array([100.0 + i for i in range(n)], pa.float64()),
            "land_use": pa.array(["ODT" if i % 3 == 0 else "LUC" for i in range(n)]),
            "owner_note": pa.array(["Nguyễn Văn Đạt" if i % 2 else None for i in range(n)]),
            "geometry": pa.array(
                [f"POLYGON((105.{i} 21.0, 105.{i} 21.1, 105.{i + 1} 21.1, 105.{i} 21.0))" for i in range(n)]
            ),
        }
    )


def births(n: int = 40) -> pa.Table:
    return pa.table(
        {
            "registration_number": pa.array([f"KS-01-2025-{i:06d}" for i in range(n)]),
            "ward_code": pa.array([f"{26734 + i % 3:05d}" for i in range(n)]),
            "child_birth_date": pa.array([f"2025-01-{1 + i % 28:02d}" for i in range(n)]).cast(pa.date32()),
        }
    )


def marriages(n: int = 30) -> pa.Table:
    return pa.table(
        {
            "registration_number": pa.array([f"KH-{i:04d}" for i in range(n)]),
            "latitude": pa.array([10.0 + i / 100 for i in range(n)]),
            "longitude": pa.array([106.0 + i / 100 for i in range(n)]),
            "count": pa.array(list(range(n)), pa.int32()),
        }
    )


def build_hub(settings: Settings, *, tables: bool = True) -> None:
    write_catalog(settings.catalog_dir)
    with session_scope(settings) as session:
        sync_catalog(session, settings)
        sync_ckan(session, settings)
    if tables:
        make_table(settings, "land.parcels", parcels(), target_rows=100)
        make_table(settings, "civil_status.births", births())
        make_table(settings, "civil_status.marriages", marriages())


def hub_settings(tmp_path: Path, port: int | None = None) -> Settings:
    site = f"http://127.0.0.1:{port}" if port else "http://127.0.0.1:8000"
    s = Settings(data_dir=tmp_path / "data", catalog_dir=tmp_path / "catalog", site_url=site)
    s.ensure_dirs()
    s.catalog_dir.mkdir(parents=True, exist_ok=True)
    return s
