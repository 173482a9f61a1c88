"""Real clients against the hub's PostgreSQL endpoint: psql (Debian's postgresql-client), psycopg 3
(simple and extended protocol, text and binary, a named cursor read in chunks), SQLAlchemy's inspector
and pandas.read_sql; time travel through the session setting hub.as_of."""

from __future__ import annotations

import os
import shutil
import subprocess
import warnings

import pyarrow as pa
import pytest
import sqlalchemy as sa

from tests.api.support import make_table
from tests.pgwire.conftest import PgHub


def _psql(pg: PgHub, *commands: str, user: str = "owner-client") -> subprocess.CompletedProcess[str]:
    if shutil.which("psql") is None:
        pytest.skip("psql (Debian's postgresql-client) is not installed")
    dsn = pg.dsn(user)
    conninfo = " ".join(f"{k}={v}" for k, v in dsn.items() if k != "password")
    args = ["psql", conninfo, "-X", "-v", "ON_ERROR_STOP=1"]
    for c in commands:
        args += ["-c", c]
    env = {**os.environ, "PGPASSWORD": dsn["password"], "PGCONNECT_TIMEOUT": "10"}
    return subprocess.run(args, capture_output=True, text=True, env=env, timeout=60, check=False)


@pytest.mark.integration
def test_psql_lists_the_tables_the_caller_may_read_and_describes_one(pg: PgHub) -> None:
    owner = _psql(pg, r"\dt", r"\d civil_status.births", "SELECT count(*) AS n FROM civil_status.births")
    assert owner.returncode == 0, owner.stderr
    for name in ("births", "deaths", "marriages"):
        assert f"civil_status | {name}" in owner.stdout
    assert 'Table "civil_status.births"' in owner.stdout
    assert "registration_number | text" in owner.stdout
    assert " 12\n" in owner.stdout
    other = _psql(pg, r"\dt", user="other-client")  # only the open dataset
    assert other.returncode == 0, other.stderr
    assert "marriages" in other.stdout
    assert "births" not in other.stdout
    assert "deaths" not in other.stdout


def test_psycopg_simple_and_extended_protocols(pg: PgHub) -> None:
    with pg.connect(autocommit=True) as conn:
        simple = conn.execute(
            "SELECT ward_code, count(*) AS n FROM civil_status.births GROUP BY 1 ORDER BY 1"
        )
        assert simple.fetchall() == [("26734", 4), ("26735", 4), ("26736", 4)]
        assert [d.name for d in simple.description or []] == ["ward_code", "n"]
        extended = conn.execute(
            "SELECT registration_number FROM civil_status.births WHERE ward_code = %s AND full_name <> %s "
            "ORDER BY 1 LIMIT %s",
            ["26735", "it's", 2],
        )
        assert extended.fetchall() == [("REG-00001",), ("REG-00004",)]
        binary = conn.cursor(binary=True)
        binary.execute(
            "SELECT %s::INTEGER + 1 AS n, 1.5::DOUBLE AS f, DATE '2025-07-01' AS d, true AS t", [41]
        )
        row = binary.fetchone()
        assert row is not None
        assert row == (42, 1.5, row[2], True)
        assert str(row[2]) == "2025-07-01"


def test_a_named_cursor_reads_the_result_in_chunks(pg: PgHub) -> None:
    with pg.connect() as conn:
        with conn.cursor(name="chunks") as cur:
            cur.itersize = 5
            cur.execute("SELECT registration_number FROM civil_status.births ORDER BY 1")
            first = cur.fetchmany(5)
            rest = cur.fetchall()
        conn.commit()
    assert [r[0] for r in first] == [f"REG-{i:05d}" for i in range(5)]
    assert len(rest) == 7


def test_sqlalchemy_inspector_and_pandas(pg: PgHub) -> None:
    pd = pytest.importorskip("pandas")
    engine = sa.create_engine(pg.url("consumer-client"))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # an unknown type would be a warning
            insp = sa.inspect(engine)
            assert "civil_status" in insp.get_schema_names()
            # the consumer holds a grant on births (shared), the marriages are open; deaths are internal
            assert insp.get_table_names(schema="civil_status") == ["births", "marriages"]
            columns = insp.get_columns("births", schema="civil_status")
            assert [c["name"] for c in columns] == ["registration_number", "ward_code", "full_name"]
            assert all(isinstance(c["type"], sa.TEXT) for c in columns)
        with engine.connect() as conn:
            frame = pd.read_sql(
                sa.text(
                    "SELECT ward_code, count(*) AS n FROM civil_status.births "
                    "WHERE ward_code <> :w GROUP BY 1"
                ),
                conn,
                params={"w": "26734"},
            )
        assert sorted(frame.itertuples(index=False, name=None)) == [("26735", 4), ("26736", 4)]
        # reflection and read_sql_table send current_setting('...'::text) and the catalogue's queries
        meta = sa.MetaData()
        meta.reflect(engine, schema="civil_status")
        assert sorted(meta.tables) == ["civil_status.births", "civil_status.marriages"]
        whole = pd.read_sql_table("births", engine, schema="civil_status")
        assert list(whole.columns) == ["registration_number", "ward_code", "full_name"]
        assert len(whole) == 12
    finally:
        engine.dispose()


def test_settings_drivers_send_are_answered_locally(pg: PgHub) -> None:
    with pg.connect(autocommit=True) as conn:
        for statement in (
            "SET extra_float_digits = 3",
            "SET application_name = 'DBeaver 24'",
            "SET search_path TO civil_status, public",
            "SET DateStyle = 'ISO, MDY'",
            "SET client_encoding = 'UTF8'",
            "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY",
        ):
            conn.execute(statement)
        assert conn.execute("SHOW search_path").fetchone() == ("civil_status, public",)
        assert conn.execute("SHOW transaction isolation level").fetchone() == ("read committed",)
        assert conn.execute("SELECT current_schema()").fetchone() == ("civil_status",)
        assert "PostgreSQL" in str(conn.execute("SELECT version()").fetchone())


def test_time_travel_through_the_session_setting(pg: PgHub) -> None:
    key = "civil_status.marriages"
    with pg.connect(autocommit=True) as conn:
        before = conn.execute(f"SELECT count(*) FROM {key}").fetchone()
        first = pg.hub.datastore.table_info(key)
        assert first is not None
        extra = pa.table({c: pa.array(["x"], pa.string()) for c in first.schema.names})
        make_table(pg.settings, key, extra)
        pg.hub.datastore.forget(key)
        assert conn.execute(f"SELECT count(*) FROM {key}").fetchone() == (before[0] + 1,)  # type: ignore[index]
        conn.execute(f"SET hub.as_of = '{key}={first.snapshot_id}'")
        assert conn.execute(f"SELECT count(*) FROM {key}").fetchone() == before
        assert conn.execute("SHOW hub.as_of").fetchone() == (f"{key}={first.snapshot_id}",)
        conn.execute("RESET hub.as_of")
        assert conn.execute(f"SELECT count(*) FROM {key}").fetchone() == (before[0] + 1,)  # type: ignore[index]
