"""A hub with the access-matrix province (three agencies, a dataset of each sharing class, tokens of
every kind) and its PostgreSQL endpoint on a free port, for the whole module."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from hub.db import dispose_engines
from hub.runtime import Hub
from hub.settings import Settings
from tests.auth.auth_matrix_world import MatrixWorld, build_matrix_world


@dataclass
class PgHub:
    world: MatrixWorld
    hub: Hub
    port: int

    @property
    def settings(self) -> Settings:
        return self.world.settings

    def dsn(self, user: str, password: str | None = None, **extra: Any) -> dict[str, Any]:
        token = password if password is not None else self.world.tokens[user]
        return {
            "host": "127.0.0.1",
            "port": self.port,
            "dbname": "hub",
            "user": user,
            "password": token,
            **extra,
        }

    def connect(
        self, user: str = "owner-client", password: str | None = None, **extra: Any
    ) -> psycopg.Connection:
        return psycopg.connect(**self.dsn(user, password, **extra))

    def url(self, user: str = "owner-client") -> str:
        token = self.world.tokens[user]
        return f"postgresql+psycopg://{user}:{token}@127.0.0.1:{self.port}/hub"


def make_settings(tmp: Path, **extra: Any) -> Settings:
    s = Settings(
        data_dir=tmp / "data", catalog_dir=tmp / "catalog", site_url="http://127.0.0.1:8000", **extra
    )
    s.ensure_dirs()
    s.catalog_dir.mkdir(parents=True, exist_ok=True)
    return s


@pytest.fixture(scope="module")
def pg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PgHub]:
    settings = make_settings(tmp_path_factory.mktemp("pgwire"), query_timeout_seconds=20)
    world = build_matrix_world(settings)
    with Hub(settings) as hub:
        port = hub.pg_server.start("127.0.0.1", 0)
        yield PgHub(world, hub, port)
    dispose_engines()
