"""The metadata database: engine, declarative base, sessions and migrations.

SQLite in WAL mode under the data directory by default; PostgreSQL through ``HUB_DATABASE_URL``.
The schema is owned by the Alembic migrations in ``hub/migrations``; ``migrate()`` applies them and
runs on every start (CLI and server), so a fresh data directory needs no setup step.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

from hub.settings import Settings

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


class Base(DeclarativeBase):
    """Declarative base of every metadata model (catalog, auth, publish, ...)."""


def new_id() -> str:
    """A new UUID as text: CKAN clients require UUID ids."""
    return str(uuid.uuid4())


def utcnow() -> datetime:
    """Naive UTC now (CKAN's timestamp convention: naive UTC, microseconds)."""
    return datetime.now(UTC).replace(tzinfo=None)


def _set_sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cur = dbapi_connection.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets WAL mode, a busy timeout and foreign keys."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _set_sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


_engines: dict[str, Engine] = {}
_migrated: set[str] = set()
_lock = threading.Lock()


def get_engine(settings: Settings) -> Engine:
    """The process-wide engine of ``settings.database_url``, migrated on first use."""
    url = settings.database_url
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            settings.ensure_dirs()
            engine = make_engine(url)
            _engines[url] = engine
        if url not in _migrated:
            migrate(engine)
            _migrated.add(url)
    return engine


def dispose_engines() -> None:
    """Close every cached engine (tests and forked workers call this)."""
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()
        _migrated.clear()


def session_factory(settings: Settings) -> sessionmaker[Session]:
    """Sessions of the metadata database of ``settings``; each carries the settings in ``Session.info``
    (the audit log signs checkpoints with the hub's key and writes its witness from them)."""
    return sessionmaker(bind=get_engine(settings), expire_on_commit=False, info={"settings": settings})


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session of ``factory`` that commits on success, rolls back on error and always closes."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


@contextmanager
def session_scope(settings: Settings) -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    with transaction(session_factory(settings)) as session:
        yield session


def alembic_config(engine: Engine) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["connection"] = None
    cfg.attributes["engine"] = engine
    return cfg


def migrate(engine: Engine) -> None:
    """Apply every pending Alembic migration to ``engine`` (idempotent)."""
    from alembic import command

    cfg = alembic_config(engine)
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, "head")
