"""Fixtures shared by the whole suite.

Service fixtures (PostgreSQL, MariaDB) create a database of their own with a unique name and drop it
afterwards: the services outlive a test run. Where a service is missing they skip with the reason,
except with HUB_REQUIRE_SERVICES=1 (CI), where a missing service fails the test.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.db import dispose_engines
from hub.settings import Settings

PG_ADMIN_URL = os.environ.get("HUB_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
MARIADB_ADMIN_URL = os.environ.get("HUB_TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306/test")
REQUIRE_SERVICES = os.environ.get("HUB_REQUIRE_SERVICES") == "1"
# the suite starts many servers that never run a query: their query workers start at the first query
os.environ.setdefault("HUB_QUERY_WORKERS_PRESTART", "false")


def service_missing(what: str, exc: BaseException) -> None:
    """Skip (or fail, under HUB_REQUIRE_SERVICES=1) because ``what`` cannot be reached."""
    reason = f"{what} is not reachable: {type(exc).__name__}: {exc}".splitlines()[0]
    if REQUIRE_SERVICES:
        pytest.fail(f"{reason} (HUB_REQUIRE_SERVICES=1 requires it)")
    pytest.skip(reason)


@pytest.fixture
def settings(tmp_path: Path) -> Iterator[Settings]:
    """Settings of a fresh embedded hub in a temporary data directory."""
    s = Settings(data_dir=tmp_path / "data", site_url="http://127.0.0.1:8000")
    s.ensure_dirs()
    yield s
    dispose_engines()


def _fresh_database(admin_url: str, label: str) -> Iterator[str]:
    import sqlalchemy as sa

    name = f"hubtest_{label}_{uuid.uuid4().hex[:10]}"
    try:
        admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f"CREATE DATABASE {name}"))
    except Exception as exc:
        service_missing(label, exc)
    url = sa.engine.make_url(admin_url).set(database=name)
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        dispose_engines()
        with admin.connect() as conn:
            if admin.dialect.name == "postgresql":
                conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            else:
                conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name}"))
        admin.dispose()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """SQLAlchemy URL of a new, empty PostgreSQL database (dropped afterwards)."""
    yield from _fresh_database(PG_ADMIN_URL, "postgresql")


@pytest.fixture
def mariadb_url() -> Iterator[str]:
    """SQLAlchemy URL of a new, empty MariaDB database (dropped afterwards)."""
    yield from _fresh_database(MARIADB_ADMIN_URL, "mariadb")
