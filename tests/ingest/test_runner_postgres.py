"""The same runner with PostgreSQL as the metadata database: the Iceberg SQL catalog lives there too."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from hub.ingest.runner import recover_interrupted_runs, run_ingest
from hub.warehouse.quarantine import read_quarantine
from hub.warehouse.query import run_sql
from hub.warehouse.tables import Warehouse, dispose_catalogs
from tests.warehouse.support import KEY, make_env, person

pytestmark = pytest.mark.integration


def test_runner_on_postgresql(tmp_path: Path, postgres_url: str) -> None:
    env = make_env(tmp_path, database_url=postgres_url, write_mode="upsert", invalid_threshold=0.3)
    try:
        env.write_rows([person(i) for i in range(1, 6)] + [person(6, name="x")])
        first = run_ingest(env.settings, KEY)
        assert first.ok, first.error
        assert (first.rows_loaded, first.rows_quarantined) == (5, 1)
        env.write_rows([person(i) for i in range(1, 8) if i != 2] + [person(2, age=40, minute=1)])
        second = run_ingest(env.settings, KEY)
        assert second.ok
        assert second.changed == {"inserted": 2, "updated": 1}

        wh = Warehouse(env.settings)
        count = "SELECT count(*) AS n, sum(age) AS s FROM test.people"
        assert run_sql(wh, count).to_pylist() == [{"n": 7, "s": 220}]
        assert run_sql(wh, count, {KEY: str(first.snapshot_id)}).to_pylist() == [{"n": 5, "s": 150}]
        assert read_quarantine(wh, KEY).column("_hub_row").to_pylist() == [6]
        assert recover_interrupted_runs(env.settings) == []

        engine = sa.create_engine(postgres_url)
        with engine.connect() as conn:
            tables = set(
                conn.execute(sa.text("SELECT table_namespace, table_name FROM iceberg_tables")).all()
            )
            statuses = conn.execute(sa.text("SELECT status FROM runs ORDER BY started_at")).scalars().all()
        engine.dispose()
        assert {("test", "people"), ("test", "people__quarantine")} <= tables
        assert statuses == ["succeeded", "succeeded"]
    finally:
        dispose_catalogs()
