"""The ``sql`` connector: SQLite, PostgreSQL (ADBC) and MariaDB (connectorx), incremental reads, errors."""

from __future__ import annotations

import datetime as dt
import socket
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import sqlalchemy as sa

from connectors.sql.connector import SqlConnector
from hub.errors import ConfigError, ConnectorError, SourceUnavailableError
from hub.ingest.connector import ConnectorContext
from hub.testing.conformance import ConformanceCase, ConnectorConformance, read_all

ROWS = [
    (1, "SDK-0001", "Nguyễn Văn Ấn", dt.date(2024, 1, 5), dt.datetime(2024, 2, 1, 8, 0)),
    (2, "SDK-0002", "Trần Thị Ngọc Hường", dt.date(2024, 1, 9), dt.datetime(2024, 2, 2, 8, 0)),
    (3, "SDK-0003", "Lê Đức Thọ", None, dt.datetime(2024, 2, 3, 8, 0)),
]
NEW_ROW = (4, "SDK-0004", "Phạm Ưng Vỹ", dt.date(2024, 2, 1), dt.datetime(2024, 2, 4, 9, 30))


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def sql_connector(config: dict[str, Any], base: Path | str = ".", batch_rows: int = 131_072) -> SqlConnector:
    return SqlConnector.from_dict(config, ConnectorContext(base_dir=str(base), batch_rows=batch_rows))  # type: ignore[return-value]


def make_table(url: str, rows: list[tuple[Any, ...]] = ROWS) -> Callable[[], None]:
    """Create ``khai_sinh`` with ``rows``; returns a function that inserts one newer row."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    meta = sa.MetaData()
    table = sa.Table(
        "khai_sinh",
        meta,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("so_dang_ky", sa.String(20), nullable=False),
        sa.Column("ho_ten", sa.String(100)),
        sa.Column("ngay_sinh", sa.Date),
        sa.Column("cap_nhat", sa.DateTime),
    )
    meta.create_all(engine)
    cols = ["id", "so_dang_ky", "ho_ten", "ngay_sinh", "cap_nhat"]
    with engine.begin() as conn:
        conn.execute(table.insert(), [dict(zip(cols, r, strict=True)) for r in rows])

    def add_row() -> None:
        with engine.begin() as conn:
            conn.execute(table.insert(), [dict(zip(cols, NEW_ROW, strict=True))])

    return add_row


# --- SQLite ----------------------------------------------------------------------------------------------


@pytest.fixture
def sqlite_db(tmp_path: Path) -> tuple[Path, Callable[[], None]]:
    add = make_table(f"sqlite:///{tmp_path / 'hotich.db'}")
    return tmp_path, add


def test_sqlite_table_read_with_types_and_batches(sqlite_db: tuple[Path, Callable[[], None]]) -> None:
    base, _ = sqlite_db
    c = sql_connector({"url": "sqlite:///hotich.db", "table": "khai_sinh"}, base, batch_rows=2)
    batches = read_all(c, "khai_sinh", None)
    assert [b.num_rows for b in batches] == [2, 1]
    t = pa.Table.from_batches(batches)
    assert t.column("ho_ten").to_pylist() == [r[2] for r in ROWS]
    assert t.schema.field("id").type == pa.int64()
    assert t.schema.field("ngay_sinh").type == pa.date32()
    assert t.column("ngay_sinh").to_pylist() == [r[3] for r in ROWS]
    assert t.column("cap_nhat").to_pylist()[0] == dt.datetime(2024, 2, 1, 8, 0)


def test_sqlite_query_and_incremental_cursor(sqlite_db: tuple[Path, Callable[[], None]]) -> None:
    base, add = sqlite_db
    config = {
        "url": "sqlite:///hotich.db",
        "query": "SELECT id, ho_ten, cap_nhat FROM khai_sinh WHERE ho_ten LIKE '%Thị%' OR id > 2;",
        "cursor_field": "cap_nhat",
        "primary_key": ["id"],
    }
    c = sql_connector(config, base)
    spec = c.streams()[0]
    assert (spec.name, spec.cursor_field, spec.write_mode.value) == ("query", "cap_nhat", "upsert")
    assert pa.Table.from_batches(read_all(c, "query", None)).column("id").to_pylist() == [2, 3]
    state = c.next_state("query", None, dt.datetime(2024, 2, 3, 8, 0))
    assert state == {"cursor": "2024-02-03T08:00:00"}
    assert read_all(sql_connector(config, base), "query", state) == []
    add()
    t = pa.Table.from_batches(read_all(sql_connector(config, base), "query", state))
    assert t.column("id").to_pylist() == [4]


SAME_DAY = [
    (1, "SDK-0001", "An", None, dt.datetime(2024, 2, 3, 8, 0)),
    (2, "SDK-0002", "Bình", None, dt.datetime(2024, 2, 3, 8, 0, 0, 500)),
    (3, "SDK-0003", "Châu", None, dt.datetime(2024, 2, 3, 9, 0)),
]


@pytest.mark.parametrize(
    "cursor", ["2024-02-03T08:00:00", "2024-02-03T08:00:00+00:00", "2024-02-03T15:00:00+07:00"]
)
def test_sqlite_datetime_cursor_compares_like_the_stored_text(tmp_path: Path, cursor: str) -> None:
    make_table(f"sqlite:///{tmp_path / 'h.db'}", SAME_DAY)
    c = sql_connector({"url": "sqlite:///h.db", "table": "khai_sinh", "cursor_field": "cap_nhat"}, tmp_path)
    t = pa.Table.from_batches(read_all(c, "khai_sinh", {"cursor": cursor}))
    assert t.column("id").to_pylist() == [2, 3]


def test_config_refuses_passwords_in_the_url_and_needs_table_or_query() -> None:
    with pytest.raises(ConfigError, match="secret reference"):
        sql_connector({"url": "postgresql://u:hunter2@db/x", "table": "t"})
    with pytest.raises(ConfigError, match="exactly one of table or query"):
        sql_connector({"url": "sqlite:///x.db"})
    with pytest.raises(ConfigError, match="never a literal"):
        sql_connector({"url": "postgresql://u@db/x", "table": "t", "password": "hunter2"})


def test_password_reference_is_merged_into_the_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOTICH_DB_PASSWORD", "p@ss/word")
    secret = {"$env": "HOTICH_DB_PASSWORD"}
    c = sql_connector({"url": "postgresql://hotich@db:5433/hotich", "table": "t", "password": secret})
    url = c.url()
    assert url.password == "p@ss/word"
    assert url.drivername == "postgresql+psycopg"
    assert "p@ss/word" not in c.config.model_dump_json()


def test_missing_sqlite_file_and_missing_table(tmp_path: Path) -> None:
    with pytest.raises(SourceUnavailableError):
        read_all(sql_connector({"url": "sqlite:///nope.db", "table": "t"}, tmp_path), "t", None)
    sqlite3.connect(tmp_path / "empty.db").close()
    c = sql_connector({"url": "sqlite:///empty.db", "table": "khai_sinh"}, tmp_path)
    result = c.check()
    assert not result.ok
    assert "khai_sinh" in result.message
    with pytest.raises(ConnectorError) as info:
        read_all(c, "khai_sinh", None)
    assert not info.value.retryable


class TestSqliteConformance(ConnectorConformance):
    @pytest.fixture
    def case(self, sqlite_db: tuple[Path, Callable[[], None]]) -> ConformanceCase:
        base, add = sqlite_db
        return ConformanceCase(
            SqlConnector,
            config={"url": "sqlite:///hotich.db", "table": "khai_sinh", "cursor_field": "cap_nhat"},
            context=ConnectorContext(base_dir=str(base)),
            unreachable_config={"url": "sqlite:///missing.db", "table": "khai_sinh"},
            add_rows=add,
        )


# --- PostgreSQL and MariaDB (real servers) -----------------------------------------------------------


def _unreachable(url: str) -> dict[str, Any]:
    u = sa.engine.make_url(url).set(port=closed_port())
    return {"url": u.render_as_string(hide_password=False), "table": "khai_sinh", "connect_timeout": 3}


@pytest.mark.integration
class TestPostgresConformance(ConnectorConformance):
    @pytest.fixture
    def case(self, postgres_url: str) -> ConformanceCase:
        add = make_table(postgres_url)
        return ConformanceCase(
            SqlConnector,
            config={"url": postgres_url, "table": "public.khai_sinh", "cursor_field": "cap_nhat"},
            unreachable_config=_unreachable(postgres_url),
            add_rows=add,
        )


@pytest.mark.integration
class TestMariadbConformance(ConnectorConformance):
    @pytest.fixture
    def case(self, mariadb_url: str) -> ConformanceCase:
        add = make_table(mariadb_url)
        return ConformanceCase(
            SqlConnector,
            config={"url": mariadb_url, "table": "khai_sinh", "cursor_field": "cap_nhat"},
            unreachable_config=_unreachable(mariadb_url),
            add_rows=add,
        )


@pytest.mark.integration
@pytest.mark.parametrize("fast_path", ["auto", "sqlalchemy"])
def test_postgres_reads_arrow_types_through_each_path(postgres_url: str, fast_path: str) -> None:
    make_table(postgres_url)
    config = {"url": postgres_url, "table": "khai_sinh", "fast_path": fast_path, "cursor_field": "id"}
    c = sql_connector(config)
    t = pa.Table.from_batches(read_all(c, "khai_sinh", {"cursor": 1}))
    assert t.column("ho_ten").to_pylist() == [r[2] for r in ROWS[1:]]
    assert t.schema.field("ngay_sinh").type == pa.date32()
    assert pa.types.is_timestamp(t.schema.field("cap_nhat").type)
    assert t.column("cap_nhat").to_pylist()[0].replace(tzinfo=None) == ROWS[1][4]


@pytest.mark.integration
def test_mariadb_query_with_percent_and_incremental(mariadb_url: str) -> None:
    make_table(mariadb_url)
    config = {"url": mariadb_url, "query": "SELECT id, ho_ten FROM khai_sinh WHERE ho_ten LIKE '%Thị%'"}
    for fast_path in ("auto", "sqlalchemy"):
        t = pa.Table.from_batches(read_all(sql_connector({**config, "fast_path": fast_path}), "query", None))
        assert t.column("ho_ten").to_pylist() == ["Trần Thị Ngọc Hường"]
    # a UTC state with an offset (as the runner stores it) against a DATETIME column
    c = sql_connector({"url": mariadb_url, "table": "khai_sinh", "cursor_field": "cap_nhat"})
    t = pa.Table.from_batches(read_all(c, "khai_sinh", {"cursor": "2024-02-02T15:00:00+07:00"}))
    assert t.column("id").to_pylist() == [3]


@pytest.mark.integration
def test_unreachable_postgres_names_host_and_port(postgres_url: str) -> None:
    config = _unreachable(postgres_url)
    port = sa.engine.make_url(config["url"]).port
    c = sql_connector(config)
    result = c.check()
    assert not result.ok
    assert f"127.0.0.1:{port}" in result.message
    with pytest.raises(SourceUnavailableError) as info:
        read_all(c, "khai_sinh", None)
    assert info.value.retryable
    assert f"127.0.0.1:{port}" in info.value.message
