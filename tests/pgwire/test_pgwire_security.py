"""The PostgreSQL endpoint as an attacker sees it: refused logins (28P01, audited), tables not granted
(42501, audited, worded as a table that does not exist), every escape the DataStore's SQL refuses,
cancel requests, and TLS (offered when configured, declined cleanly when not)."""

from __future__ import annotations

import datetime as dt
import threading
import time
from pathlib import Path

import psycopg
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import select

from hub.auth import tokens
from hub.auth.models import AuditEntry
from hub.db import session_scope
from hub.runtime import Hub
from tests.auth.auth_matrix_world import build_matrix_world
from tests.pgwire.conftest import PgHub, make_settings


def _entries(pg: PgHub, action: str, outcome: str) -> list[AuditEntry]:
    with session_scope(pg.settings) as s:
        return list(
            s.scalars(select(AuditEntry).where(AuditEntry.action == action, AuditEntry.outcome == outcome))
        )


def _refused(pg: PgHub, sql: str, user: str = "owner-client") -> psycopg.Error:
    with pg.connect(user, autocommit=True) as conn, pytest.raises(psycopg.Error) as caught:
        conn.execute(sql).fetchall()
    return caught.value


def test_a_wrong_password_is_28P01_and_audited(pg: PgHub) -> None:
    before = len(_entries(pg, "auth.login", "denied"))
    for user, password in (
        ("owner-client", "not-the-secret"),
        ("owner-client", pg.world.tokens["other-client"]),
    ):
        with pytest.raises(psycopg.OperationalError) as caught:
            pg.connect(user, password)
        assert "28P01" in str(caught.value) or "password authentication failed" in str(caught.value)
    denied = _entries(pg, "auth.login", "denied")
    assert len(denied) == before + 2
    assert denied[-1].details == {"door": "postgresql"}


def test_an_expired_token_is_28P01_and_audited(pg: PgHub) -> None:
    now = int(time.time())
    claims = {
        "iss": tokens.issuer(pg.settings), "aud": tokens.audience(pg.settings), "sub": "owner-client",
        "client_id": "owner-client", "scope": "warehouse:query", "iat": now - 3600, "nbf": now - 3600,
        "exp": now - 600, "jti": tokens.new_jti(),
    }  # fmt: skip
    expired = tokens.sign(pg.settings, claims)
    with pytest.raises(psycopg.OperationalError) as caught:
        pg.connect("owner-client", expired)
    assert "password authentication failed" in str(caught.value)
    assert any(e.reason and "expired" in e.reason for e in _entries(pg, "auth.login", "denied"))


def test_a_read_is_audited_with_its_rows_once_the_client_has_them(pg: PgHub) -> None:
    """The entry is written after the answer is flushed (off the client's wait), before the connection
    reads its next message, and also when the client hangs up at once."""
    before = len(_entries(pg, "query.pg", "allowed"))
    with pg.connect("owner-client", autocommit=True) as conn:
        rows = conn.execute("SELECT ward_code FROM civil_status.births").fetchall()
        conn.execute("SELECT 1").fetchall()  # the next message: the entry is there by now
        entries = _entries(pg, "query.pg", "allowed")
        assert len(entries) == before + 1
        assert entries[-1].rows == len(rows) > 0
        assert entries[-1].snapshot_id is not None
        assert entries[-1].dataset_id is not None
        conn.execute("SELECT registration_number FROM civil_status.births LIMIT 3").fetchall()
    deadline = time.monotonic() + 10  # the client hung up right after its answer
    while len(_entries(pg, "query.pg", "allowed")) < before + 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    entries = _entries(pg, "query.pg", "allowed")
    assert len(entries) == before + 2
    assert entries[-1].rows == 3


def test_a_client_secret_is_exchanged_for_a_token(tmp_path: Path) -> None:
    from hub.auth import users

    settings = make_settings(tmp_path)
    build_matrix_world(settings)
    with session_scope(settings) as s:
        _client, secret = users.add_client(s, "so-gddt", "bi", scope="warehouse:query", client_id="bi-tool")
    assert secret is not None
    with Hub(settings) as hub:
        port = hub.pg_server.start("127.0.0.1", 0)
        dsn = {"host": "127.0.0.1", "port": port, "dbname": "hub", "user": "bi-tool"}
        with psycopg.connect(**dsn, password=secret, autocommit=True) as conn:
            assert conn.execute("SELECT count(*) FROM civil_status.births").fetchone() == (12,)  # granted
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(**dsn, password=secret[:-2] + "xx")


def test_a_table_not_granted_is_42501_like_one_that_does_not_exist(pg: PgHub) -> None:
    before = len(_entries(pg, "query.pg", "denied"))
    not_granted = _refused(pg, "SELECT * FROM civil_status.deaths", user="consumer-client")
    missing = _refused(pg, "SELECT * FROM civil_status.nothing_here", user="consumer-client")
    assert not_granted.sqlstate == missing.sqlstate == "42501"
    shown = str(not_granted).replace("deaths", "X")
    assert shown == str(missing).replace("nothing_here", "X")
    assert "does not exist or is not readable" in shown
    denied = _entries(pg, "query.pg", "denied")
    assert len(denied) == before + 1
    assert denied[-1].client_id == "consumer-client"
    hidden = _refused(
        pg,
        "SELECT 1 FROM civil_status.marriages WHERE EXISTS (SELECT 1 FROM civil_status.deaths)",
        user="consumer-client",
    )
    assert hidden.sqlstate == "42501"
    assert "relation" in str(_refused(pg, "SELECT * FROM civil_status.deaths", user="other-client"))


def _escape(pg: PgHub, sql: str) -> psycopg.Error:
    err = _refused(pg, sql)
    for marker in ("Nguyễn Văn", "REG-0", "001099012345", "root:x:0"):
        assert marker not in str(err), (sql, str(err))
    return err


def test_escape_files(pg: PgHub) -> None:
    path = str(pg.settings.warehouse_path / "civil_status" / "births" / "data" / "*.parquet")
    assert _escape(pg, f"SELECT * FROM read_parquet('{path}')").sqlstate == "42501"
    assert _escape(pg, f"SELECT * FROM '{path}'").sqlstate == "42501"
    assert _escape(pg, "SELECT * FROM read_text('/etc/passwd')").sqlstate == "42501"


def test_escape_copy(pg: PgHub) -> None:
    assert _escape(pg, "COPY (SELECT 1) TO '/tmp/hub-pg-copy.csv'").sqlstate in ("25006", "0A000")
    assert not Path("/tmp/hub-pg-copy.csv").exists()


def test_escape_attach(pg: PgHub) -> None:
    assert _escape(pg, "ATTACH '/tmp/hub-pg.db' AS x").sqlstate == "25006"


def test_escape_install(pg: PgHub) -> None:
    assert _escape(pg, "INSTALL httpfs").sqlstate == "25006"
    assert _escape(pg, "LOAD httpfs").sqlstate == "25006"


def test_escape_set_of_engine_settings(pg: PgHub) -> None:
    for sql in (
        "SET enable_external_access = true",
        "SET allowed_directories = ['/']",
        "SET memory_limit='9GB'",
    ):
        assert _escape(pg, sql).sqlstate == "42704"
    assert _escape(pg, "SET ROLE postgres").sqlstate == "42501"


def test_escape_pragma(pg: PgHub) -> None:
    assert _escape(pg, "PRAGMA database_list").sqlstate == "25006"


def test_escape_secrets(pg: PgHub) -> None:
    assert _escape(pg, "SELECT * FROM duckdb_secrets()").sqlstate == "42501"
    assert _escape(pg, "SELECT which_secret('s3://x', 's3')").sqlstate == "42501"


def test_escape_engine_settings_read(pg: PgHub) -> None:
    assert _escape(pg, "SELECT * FROM duckdb_settings()").sqlstate == "42501"
    assert _escape(pg, "SELECT current_setting('allowed_directories')").sqlstate == "42704"


def test_escape_macros(pg: PgHub) -> None:
    assert _escape(pg, "CREATE MACRO leak(x) AS x").sqlstate == "25006"
    assert _escape(pg, "CREATE TEMP TABLE t AS SELECT 1").sqlstate == "25006"


def test_escape_several_statements(pg: PgHub) -> None:
    assert _escape(pg, "SELECT 1; SELECT 2").sqlstate == "42601"
    assert _escape(pg, "SELECT 1 FROM pg_catalog.pg_class; ATTACH 'x.db'").sqlstate == "42601"


def test_escape_catalogue_mixed_with_data(pg: PgHub) -> None:
    err = _escape(pg, "SELECT * FROM pg_catalog.pg_class, civil_status.deaths")
    assert err.sqlstate in ("42501", "42601", "0A000")


def test_cancel_stops_a_slow_query(pg: PgHub) -> None:
    t = "civil_status.marriages"
    slow = f"SELECT count(*) FROM {t} a, {t} b, {t} c, {t} d, {t} e, {t} f, {t} g, {t} h, {t} i, {t} j"
    with pg.connect(autocommit=True) as conn:
        # cancel_safe (libpq 17's non-blocking cancel): the older conn.cancel() blocks holding the GIL
        # until the server answers, and the server runs in this very process
        timer = threading.Timer(1.5, conn.cancel_safe)
        timer.start()
        started = time.monotonic()
        with pytest.raises(psycopg.errors.QueryCanceled):
            conn.execute(slow).fetchall()
        assert time.monotonic() - started < 10
        assert conn.execute("SELECT 1").fetchone() == (1,)  # the connection goes on


def test_sslmode_prefer_connects_without_tls(pg: PgHub) -> None:
    with pg.connect(sslmode="prefer", autocommit=True) as conn:
        assert conn.pgconn.ssl_in_use is False
        assert conn.execute("SELECT 1").fetchone() == (1,)
    with pytest.raises(psycopg.OperationalError):
        pg.connect(sslmode="require")


def _self_signed(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "pg.crt", folder / "pg.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


def test_tls_with_a_certificate(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    settings = make_settings(tmp_path, pg_tls_cert=cert, pg_tls_key=key)
    world = build_matrix_world(settings)
    with Hub(settings) as hub:
        port = hub.pg_server.start("127.0.0.1", 0)
        dsn = {"host": "127.0.0.1", "port": port, "dbname": "hub", "user": "owner-client"}
        token = world.tokens["owner-client"]
        with psycopg.connect(**dsn, password=token, sslmode="verify-full", sslrootcert=str(cert)) as conn:
            assert conn.pgconn.ssl_in_use is True
            assert conn.execute("SELECT count(*) FROM civil_status.deaths").fetchone() == (12,)
        with psycopg.connect(**dsn, password=token, sslmode="disable") as plain:
            assert plain.pgconn.ssl_in_use is False


def test_the_clients_limits_of_the_http_door_hold_here_too(tmp_path: Path) -> None:
    """HUB_QUERY_CLIENT_CONCURRENCY and HUB_QUERY_CLIENT_DAILY_ROWS count PostgreSQL queries too: a second
    query while a cursor holds the first is 53400, and so is a query once the day's rows are used up."""
    settings = make_settings(tmp_path, query_client_concurrency=1, query_client_daily_rows=20)
    world = build_matrix_world(settings)
    with Hub(settings) as hub:
        port = hub.pg_server.start("127.0.0.1", 0)
        dsn = {"host": "127.0.0.1", "port": port, "dbname": "hub", "user": "owner-client"}
        token = world.tokens["owner-client"]
        with (
            psycopg.connect(**dsn, password=token) as first,
            psycopg.connect(**dsn, password=token) as second,
        ):
            held = first.cursor("held")  # a server-side cursor: the query stays open between fetches
            held.execute("SELECT * FROM civil_status.deaths")
            assert len(held.fetchmany(1)) == 1
            with pytest.raises(psycopg.errors.ConfigurationLimitExceeded, match="already runs 1"):
                second.execute("SELECT count(*) FROM civil_status.deaths")
            second.rollback()
            held.close()
            first.commit()
            assert second.execute("SELECT count(*) FROM civil_status.deaths").fetchone() == (12,)
            second.commit()
            # 1 + 1 rows so far; 12 more reach 14, the next 12 pass the quota of 20 (counted at the end)
            assert len(second.execute("SELECT * FROM civil_status.deaths").fetchall()) == 12
            assert len(second.execute("SELECT * FROM civil_status.deaths").fetchall()) == 12
            second.commit()
            with pytest.raises(psycopg.errors.ConfigurationLimitExceeded, match="quota"):
                second.execute("SELECT 1 FROM civil_status.deaths")
