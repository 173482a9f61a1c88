"""Land parcels in a real PostgreSQL and education in a real MariaDB: written, then ingested."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pymysql
import pytest
import sqlalchemy as sa
import yaml

from hub.demo.generate import generate
from hub.ingest.runner import run_ingest
from hub.settings import PROJECT_ROOT, Settings

pytestmark = pytest.mark.integration


def test_land_parcels_into_postgresql(postgres_url: str, tmp_path: Path) -> None:
    manifest = generate(tmp_path / "demo", "small", land_url=postgres_url)
    assert manifest["land_url"] is True
    engine = sa.create_engine(postgres_url)
    try:
        with engine.connect() as conn:
            n = conn.execute(sa.text("SELECT count(*) FROM parcels")).scalar_one()
            row = conn.execute(
                sa.text(
                    "SELECT ward_code, map_sheet, parcel_number, land_use_code, updated_at, owner_birth_date "
                    "FROM parcels WHERE land_use_code = 'ODT' "
                    "ORDER BY ward_code, map_sheet, parcel_number LIMIT 1"
                )
            ).one()
            keys = conn.execute(
                sa.text(
                    "SELECT count(*) FROM pg_indexes "
                    "WHERE tablename = 'parcels' AND indexdef LIKE '%updated_at%'"
                )
            ).scalar_one()
    finally:
        engine.dispose()
    assert n == manifest["counts"]["parcels"]
    assert len(row.ward_code) == 5
    assert isinstance(row.updated_at, dt.datetime)
    assert row.updated_at.utcoffset() is not None
    assert keys == 1
    # a second generation replaces the table instead of failing or doubling it
    generate(tmp_path / "demo", "small", land_url=postgres_url)
    engine = sa.create_engine(postgres_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM parcels")).scalar_one() == n
    finally:
        engine.dispose()


def test_education_into_mariadb(mariadb_url: str, tmp_path: Path) -> None:
    manifest = generate(tmp_path / "demo", "small", education_url=mariadb_url)
    url = sa.engine.make_url(mariadb_url)
    conn = pymysql.connect(
        host=url.host,
        port=url.port or 3306,
        user=url.username,
        password=url.password or "",
        database=url.database,
        charset="utf8mb4",
    )
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM schools")
            assert cur.fetchone()[0] == manifest["counts"]["schools"]
            cur.execute("SELECT count(*) FROM enrolment")
            assert cur.fetchone()[0] == manifest["counts"]["enrolment"]
            cur.execute("SELECT school_name, level FROM schools WHERE level = 'Trung học phổ thông' LIMIT 1")
            name, level = cur.fetchone()
            cur.execute(
                "SELECT sum(e.student_count) FROM enrolment e JOIN schools s "
                "ON s.school_code = e.school_code AND s.school_year = e.school_year "
                "WHERE e.grade BETWEEN 10 AND 12"
            )
            upper_secondary = cur.fetchone()[0]
    finally:
        conn.close()
    assert name.startswith("Trường THPT")
    assert level == "Trung học phổ thông"
    assert upper_secondary > 0


def _catalog_with(settings: Settings, agency: str, dataset_file: str, config: dict[str, object]) -> Settings:
    """A one-dataset catalog: the demo's definition with its source config replaced."""
    folder = settings.data_dir / "catalog" / agency
    folder.mkdir(parents=True)
    shutil.copy(PROJECT_ROOT / "catalog" / agency / "organization.yaml", folder)
    spec = yaml.safe_load((PROJECT_ROOT / "catalog" / agency / dataset_file).read_text(encoding="utf-8"))
    spec["source"] = {"connector": "sql", "config": config}
    (folder / dataset_file).write_text(yaml.safe_dump(spec, allow_unicode=True), encoding="utf-8")
    return settings.model_copy(update={"catalog_dir": settings.data_dir / "catalog"})


def test_land_parcels_ingested_from_postgresql(postgres_url: str, settings: Settings) -> None:
    manifest = generate(settings.data_dir / "demo", "small", land_url=postgres_url)
    config = {
        "url": postgres_url,
        "table": "parcels",
        "cursor_field": "updated_at",
        "primary_key": ["ward_code", "map_sheet", "parcel_number"],
    }
    s = _catalog_with(settings, "so-nong-nghiep-moi-truong", "parcels.yaml", config)
    result = run_ingest(s, "land.parcels")
    assert result.status == "succeeded", result.error
    assert result.rows_read == manifest["counts"]["parcels"]
    assert 0 < result.rows_quarantined <= manifest["messy"]["parcels"]
    again = run_ingest(s, "land.parcels")
    assert again.status == "succeeded", again.error
    assert again.rows_loaded == 0


def test_schools_ingested_from_mariadb(mariadb_url: str, settings: Settings) -> None:
    manifest = generate(settings.data_dir / "demo", "small", education_url=mariadb_url)
    s = _catalog_with(
        settings, "so-giao-duc-dao-tao", "schools.yaml", {"url": mariadb_url, "table": "schools"}
    )
    result = run_ingest(s, "education.schools")
    assert result.status == "succeeded", result.error
    assert result.rows_read == manifest["counts"]["schools"]
    assert result.rows_quarantined == 0, (
        "the database holds clean rows; only the workbooks have typing mistakes"
    )
