"""The metadata database: migrations on start, SQLite WAL by default, PostgreSQL through the URL."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from hub.catalog.models import Dataset, Organization, Run
from hub.db import get_engine, session_scope
from hub.settings import Settings


def _roundtrip(settings: Settings) -> None:
    with session_scope(settings) as s:
        org = Organization(name="so-tu-phap", title="Sở Tư pháp", title_en="Department of Justice", extras={})
        s.add(org)
        s.flush()
        ds = Dataset(
            key="civil_status.births",
            name="civil_status-births",
            title="Khai sinh",
            owner_org_id=org.id,
            sharing="shared",
            spec={"id": "civil_status.births"},
        )
        s.add(ds)
        s.flush()
        s.add(Run(dataset_id=ds.id, mode="append", rows_read=3))
    with session_scope(settings) as s:
        ds = s.scalar(sa.select(Dataset).where(Dataset.key == "civil_status.births"))
        assert ds is not None
        assert ds.organization is not None
        assert ds.organization.title == "Sở Tư pháp"
        assert [r.rows_read for r in ds.runs] == [3]
        assert len(ds.id) == 36


def test_sqlite_default_is_wal_and_migrated(settings: Settings) -> None:
    assert settings.database_url.startswith("sqlite:///")
    engine = get_engine(settings)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    assert {"organizations", "datasets", "runs", "alembic_version"} <= set(
        sa.inspect(engine).get_table_names()
    )
    _roundtrip(settings)


@pytest.mark.integration
def test_postgresql_metadata(tmp_path, postgres_url: str) -> None:
    settings = Settings(data_dir=tmp_path, database_url=postgres_url)
    engine = get_engine(settings)
    assert engine.dialect.name == "postgresql"
    _roundtrip(settings)
    # migrations are idempotent: a second start changes nothing
    from hub.db import migrate

    migrate(engine)
    with engine.connect() as conn:
        assert conn.execute(sa.text("select count(*) from datasets")).scalar() == 1
