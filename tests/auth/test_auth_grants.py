"""Sharing classes and grants: deny by default, per dataset and per consumer, with purpose, legal basis
and expiry; a revocation takes effect on the next request; every change and refusal is recorded."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select

from hub.auth import access, grants
from hub.auth.models import AuditEntry, Grant
from hub.auth.principal import ANONYMOUS, Principal
from hub.catalog.models import Dataset
from hub.db import session_scope, utcnow
from hub.errors import AccessDeniedError, InvalidInputError
from hub.testing.live import live_server
from tests.auth.conftest import World


def _client(world: World, org: str, client_id: str | None = None) -> Principal:
    return Principal(
        kind="client",
        subject=client_id or world.clients[org][0],
        client_id=client_id or world.clients[org][0],
        org_id=world.orgs[org],
        scopes=frozenset({"catalog:read", "datastore:read"}),
    )


def _user(world: World, org: str, role: str = "member") -> Principal:
    return Principal(
        kind="user",
        subject=f"u-{org}",
        name=f"u-{org}",
        org_roles={world.orgs[org]: role},
        scopes=frozenset({"catalog:read", "datastore:read"}),
    )


def _can(world: World, p: Principal, sharing: str) -> bool:
    with session_scope(world.settings) as s:
        ds = s.get(Dataset, world.datasets[sharing])
        assert ds is not None
        return access.can_read(s, p, ds).allowed


def test_the_sharing_classes(world: World) -> None:
    owner, consumer, other = _client(world, "so-tu-phap"), _client(world, "so-gddt"), _client(world, "so-xd")
    assert [_can(world, ANONYMOUS, c) for c in ("open", "shared", "internal")] == [True, False, False]
    assert [_can(world, owner, c) for c in ("open", "shared", "internal")] == [True, True, True]
    assert [_can(world, consumer, c) for c in ("open", "shared", "internal")] == [True, True, False]
    assert [_can(world, other, c) for c in ("open", "shared", "internal")] == [True, False, False]
    assert [_can(world, _user(world, "so-gddt"), c) for c in ("open", "shared", "internal")] == [
        True,
        True,
        False,
    ]


def test_refusals_say_why(world: World) -> None:
    with session_scope(world.settings) as s:
        shared = s.get(Dataset, world.datasets["shared"])
        internal = s.get(Dataset, world.datasets["internal"])
        assert shared is not None
        assert internal is not None
        assert "no active grant" in access.can_read(s, _client(world, "so-xd"), shared).reason
        assert "internal" in access.can_read(s, _client(world, "so-gddt"), internal).reason
        assert "authentication" in access.can_read(s, ANONYMOUS, shared).reason
        d = access.can_read(s, _client(world, "so-gddt"), shared)
        assert d.grant_id == world.grant_id
        narrow = Principal(
            kind="client",
            subject="c",
            client_id="c",
            org_id=world.orgs["so-gddt"],
            scopes=frozenset({"catalog:read"}),
        )
        assert "datastore:read" in access.can_read(s, narrow, shared, scope="datastore:read").reason


def test_revocation_and_expiry_take_effect_on_the_next_check(world: World) -> None:
    consumer = _client(world, "so-gddt")
    assert _can(world, consumer, "shared")
    with session_scope(world.settings) as s:
        grants.revoke(
            s, Principal(kind="system", sysadmin=True, name="ops"), world.grant_id, reason="hết hạn dự án"
        )
    assert not _can(world, consumer, "shared")
    with session_scope(world.settings) as s:
        g = grants.create(
            s,
            Principal(kind="system", sysadmin=True),
            dataset="civil_status.shared_data",
            consumer_org="so-gddt",
            purpose="p",
            legal_basis="lb",
            expires_at=utcnow() + timedelta(hours=1),
        )
    assert _can(world, consumer, "shared")
    with session_scope(world.settings) as s:
        row = s.get(Grant, g.id)
        assert row is not None
        row.expires_at = utcnow() - timedelta(seconds=1)
    assert not _can(world, consumer, "shared")


def test_a_grant_to_one_client_does_not_cover_the_others(world: World) -> None:
    from hub.auth import users

    with session_scope(world.settings) as s:
        grants.revoke(s, Principal(kind="system", sysadmin=True), world.grant_id)
        users.add_client(s, "so-gddt", "EMIS", scope="datastore:read", client_id="gddt-emis")
        grants.create(
            s,
            Principal(kind="system", sysadmin=True),
            dataset=world.datasets["shared"],
            consumer_org="so-gddt",
            consumer_client_id="gddt-emis",
            purpose="p",
            legal_basis="lb",
        )
    assert _can(world, _client(world, "so-gddt", "gddt-emis"), "shared")
    assert not _can(world, _client(world, "so-gddt"), "shared")
    assert not _can(world, _user(world, "so-gddt"), "shared")


def test_who_may_grant(world: World) -> None:
    def try_create(p: Principal) -> None:
        with session_scope(world.settings) as s:
            grants.create(
                s, p, dataset=world.datasets["shared"], consumer_org="so-xd", purpose="p", legal_basis="lb"
            )

    admin = Principal(
        kind="user",
        subject="a",
        name="a",
        org_roles={world.orgs["so-tu-phap"]: "admin"},
        scopes=frozenset({"grants:manage"}),
    )
    editor = Principal(
        kind="user",
        subject="e",
        name="e",
        org_roles={world.orgs["so-tu-phap"]: "editor"},
        scopes=frozenset({"grants:manage"}),
    )
    consumer_admin = Principal(
        kind="user",
        subject="c",
        name="c",
        org_roles={world.orgs["so-gddt"]: "admin"},
        scopes=frozenset({"grants:manage"}),
    )
    for p in (editor, consumer_admin, ANONYMOUS):
        with pytest.raises(AccessDeniedError):
            try_create(p)
    try_create(admin)
    with session_scope(world.settings) as s:
        denied = s.scalars(
            select(AuditEntry).where(AuditEntry.action == "grant.create", AuditEntry.outcome == "denied")
        )
        assert len(list(denied)) == 3


def test_grants_need_purpose_legal_basis_and_a_shared_dataset(world: World) -> None:
    with session_scope(world.settings) as s, pytest.raises(InvalidInputError) as info:
        grants.create(
            s,
            Principal(kind="system", sysadmin=True),
            dataset=world.datasets["internal"],
            consumer_org="so-tu-phap",
            purpose=" ",
            legal_basis="",
        )
    assert set(info.value.errors) == {"dataset", "consumer_org", "purpose", "legal_basis"}


@pytest.fixture
def live(world: World) -> Iterator[tuple[World, str]]:
    with live_server(world.settings) as base:
        yield world, base


@pytest.mark.integration
def test_grants_api(live: tuple[World, str]) -> None:
    world, base = live
    admin = {"Authorization": f"Bearer {world.user_token('an-admin')}"}
    member = {"Authorization": f"Bearer {world.user_token('chi-member')}"}
    consumer = {"Authorization": f"Bearer {world.user_token('dung-consumer')}"}
    body = {
        "dataset": "civil_status.shared_data",
        "consumer_org": "so-xd",
        "purpose": "Cấp phép xây dựng / building permits",
        "legal_basis": "Nghị định 194/2025/NĐ-CP Điều 16",
        "expires_at": "2030-01-01T00:00:00Z",
    }
    r = httpx.post(f"{base}/api/v1/grants", json=body, headers=member)
    assert r.status_code == 403
    assert r.headers["content-type"].startswith("application/problem+json")
    r = httpx.post(f"{base}/api/v1/grants", json=body, headers=admin)
    assert r.status_code == 201, r.text
    g = r.json()
    assert g["consumer_org"] == "so-xd"
    assert g["state"] == "active"
    assert g["expires_at"] == "2030-01-01T00:00:00"
    # the consumer sees only its own grant; the owner sees both
    assert [
        x["consumer_org"] for x in httpx.get(f"{base}/api/v1/grants", headers=consumer).json()["grants"]
    ] == ["so-gddt"]
    assert len(httpx.get(f"{base}/api/v1/grants", headers=admin).json()["grants"]) == 2
    r = httpx.request("DELETE", f"{base}/api/v1/grants/{g['id']}", json={"reason": "xong"}, headers=admin)
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "revoked"
    assert httpx.get(f"{base}/api/v1/grants", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert httpx.get(f"{base}/api/v1/grants").status_code == 401
    with session_scope(world.settings) as s:
        actions = [
            e.action for e in s.scalars(select(AuditEntry).where(AuditEntry.action.startswith("grant.")))
        ]
    assert actions.count("grant.create") == 3  # the world's grant, the refused one, this one
    assert actions.count("grant.revoke") == 1


@pytest.mark.integration
def test_audit_search_api(live: tuple[World, str]) -> None:
    world, base = live
    root = {"Authorization": f"Bearer {world.user_token('root')}"}
    admin = {"Authorization": f"Bearer {world.user_token('an-admin')}"}
    other_admin_client = {"Authorization": f"Bearer {world.client_token('so-xd', 'catalog:read')}"}
    r = httpx.get(f"{base}/api/v1/audit", params={"action": "grant.*"}, headers=root)
    assert r.status_code == 200, r.text
    assert r.json()["entries"][0]["action"] == "grant.create"
    # an organization admin sees the entries about its datasets
    r = httpx.get(f"{base}/api/v1/audit", params={"dataset": "civil_status.shared_data"}, headers=admin)
    assert r.status_code == 200
    assert {e["dataset_id"] for e in r.json()["entries"]} == {world.datasets["shared"]}
    # without audit:read: 403, and the refusal is itself audited
    r = httpx.get(f"{base}/api/v1/audit", headers=other_admin_client)
    assert r.status_code == 403
    r = httpx.get(
        f"{base}/api/v1/audit", params={"action": "audit.search", "outcome": "denied"}, headers=root
    )
    assert r.json()["count"] == 1
    r = httpx.get(f"{base}/api/v1/audit/verify", headers=root)
    assert r.json()["ok"] is True
