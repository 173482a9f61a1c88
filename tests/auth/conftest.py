"""A small province for access-control tests: three agencies, datasets of each sharing class, people
with each role, one client per agency, and one grant of the shared dataset to the consumer agency."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from argon2 import PasswordHasher

from hub.auth import grants, tokens, users
from hub.auth.principal import SCOPES, SYSTEM
from hub.catalog.models import Dataset
from hub.db import dispose_engines, session_scope
from hub.settings import Settings

PASSWORD = "mat-khau-an-toan-1"


@dataclass
class World:
    settings: Settings
    orgs: dict[str, str] = field(default_factory=dict)  # name -> id
    datasets: dict[str, str] = field(default_factory=dict)  # sharing -> id
    users: dict[str, str] = field(default_factory=dict)  # name -> id
    clients: dict[str, tuple[str, str]] = field(default_factory=dict)  # org name -> (client_id, secret)
    grant_id: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def client_token(self, org: str, scope: str | None = None) -> str:
        cid, _ = self.clients[org]
        with session_scope(self.settings) as s:
            client = users.get_client(s, cid)
            assert client is not None
            token, _ = tokens.issue_access_token(
                self.settings,
                subject=cid,
                client_id=cid,
                scope=scope or client.scope,
                org_id=client.org_id,
                session=s,
            )
        return token

    def user_token(self, name: str, scope: str | None = None) -> str:
        with session_scope(self.settings) as s:
            u = users.get_user(s, name)
            allowed = users.user_scopes(u, users.org_roles(s, u.id))
            token, _ = tokens.issue_api_token(
                s, self.settings, u, "test", scope=scope or " ".join(sorted(allowed))
            )
        return token


def build_world(settings: Settings) -> World:
    w = World(settings)
    with session_scope(settings) as s:
        for name, title in (
            ("so-tu-phap", "Sở Tư pháp"),
            ("so-gddt", "Sở Giáo dục và Đào tạo"),
            ("so-xd", "Sở Xây dựng"),
        ):
            w.orgs[name] = users.add_org(s, name, title).id
        for sharing in ("open", "shared", "internal"):
            ds = Dataset(
                key=f"civil_status.{sharing}_data",
                name=f"{sharing}-data",
                owner_org_id=w.orgs["so-tu-phap"],
                title=f"Dữ liệu {sharing}",
                sharing=sharing,
                spec={},
                state="active",
            )
            s.add(ds)
            s.flush()
            w.datasets[sharing] = ds.id
        w.users["root"] = users.add_user(s, "root", PASSWORD, sysadmin=True).id
        for name, org, role in (
            ("an-admin", "so-tu-phap", "admin"),
            ("binh-editor", "so-tu-phap", "editor"),
            ("chi-member", "so-tu-phap", "member"),
            ("dung-consumer", "so-gddt", "member"),
            ("em-other", "so-xd", "member"),
        ):
            w.users[name] = users.add_user(s, name, PASSWORD).id
            users.set_role(s, name, org, role)
        w.users["giang-noorg"] = users.add_user(s, "giang-noorg", PASSWORD).id
        for org in w.orgs:
            client, secret = users.add_client(
                s, org, f"system of {org}", scope=" ".join(SCOPES), client_id=f"{org}-system"
            )
            assert secret is not None
            w.clients[org] = (client.client_id, secret)
        g = grants.create(
            s,
            SYSTEM,
            dataset=w.datasets["shared"],
            consumer_org="so-gddt",
            purpose="Tuyển sinh lớp 1 / first-grade enrolment",
            legal_basis="Nghị định 194/2025/NĐ-CP Điều 16",
        )
        w.grant_id = g.id
    return w


@pytest.fixture(autouse=True)
def _cheap_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """argon2 at its production cost takes half a second per hash on a busy test machine; the tests
    check the logic, not the hash strength (verification reads the parameters from the hash)."""
    monkeypatch.setattr(users, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


@pytest.fixture
def world(settings: Settings) -> World:
    """A fresh province (for tests that change it)."""
    return build_world(settings)


@pytest.fixture(scope="module")
def shared_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """One province per test module (for tests that only read it)."""
    s = Settings(data_dir=tmp_path_factory.mktemp("world") / "data", site_url="http://127.0.0.1:8000")
    s.ensure_dirs()
    original = users._hasher
    users._hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    try:
        w = build_world(s)
    finally:
        users._hasher = original
    yield w
    dispose_engines()
