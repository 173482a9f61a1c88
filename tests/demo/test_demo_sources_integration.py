"""The land registry into a real PostgreSQL and the education database into a real MariaDB."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pymysql
import pytest
import sqlalchemy as sa

from hub.demo.generate import generate

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
