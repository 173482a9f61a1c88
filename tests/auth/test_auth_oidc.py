"""Tokens of an external OpenID Connect issuer (a provincial SSO such as Keycloak), whose discovery
document and JWKS are served by a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey

from hub.auth import oidc
from hub.auth.resolve import resolve_principal
from hub.auth.users import add_user, set_role
from hub.db import session_scope
from hub.errors import AuthenticationError
from hub.settings import Settings
from tests.auth.conftest import World
from tests.auth.fake_idp import FakeIdP


@pytest.fixture
def idp() -> Iterator[FakeIdP]:
    oidc.clear_cache()
    p = FakeIdP()
    yield p
    p.close()
    oidc.clear_cache()


@pytest.fixture
def sso_world(world: World, idp: FakeIdP) -> World:
    world.settings = Settings(
        data_dir=world.settings.data_dir,
        site_url=world.settings.site_url,
        oidc_issuers=[{"issuer": idp.issuer, "audience": "lien-thong-hub"}],
    )
    return world


def test_a_valid_external_token_is_accepted_via_discovery_and_jwks(sso_world: World, idp: FakeIdP) -> None:
    p = resolve_principal({"Authorization": f"Bearer {idp.token()}"}, "10.1.1.1", sso_world.settings, "v1")
    assert p.kind == "user"
    assert p.subject == f"{idp.issuer}#f1e2d3c4"
    assert p.name == "nguyen.van.a"
    assert p.scopes == {"catalog:read", "datastore:read"}
    assert p.org_roles == {}
    assert idp.requests == ["/realms/tinh/.well-known/openid-configuration", "/realms/tinh/certs"]
    # keys are cached: a second token needs no request
    resolve_principal({"Authorization": f"Bearer {idp.token()}"}, None, sso_world.settings, "v1")
    assert len(idp.requests) == 2


def test_a_linked_external_account_gets_its_hub_roles(sso_world: World, idp: FakeIdP) -> None:
    with session_scope(sso_world.settings) as s:
        add_user(s, "nguyen-van-a", None, external_id=f"{idp.issuer}#f1e2d3c4")
        set_role(s, "nguyen-van-a", "so-gddt", "member")
    p = resolve_principal({"Authorization": f"Bearer {idp.token()}"}, None, sso_world.settings, "ckan")
    assert p.name == "nguyen-van-a"
    assert p.org_roles == {sso_world.orgs["so-gddt"]: "member"}


@pytest.mark.parametrize(
    "over",
    [
        {"aud": "another-service"},
        {"exp": int(time.time()) - 300},
        {"nbf": int(time.time()) + 600},
    ],
    ids=["wrong-aud", "expired", "not-yet-valid"],
)
def test_bad_external_tokens_are_rejected(sso_world: World, idp: FakeIdP, over: dict[str, Any]) -> None:
    token = idp.token(**over)
    with pytest.raises(AuthenticationError):
        resolve_principal({"Authorization": f"Bearer {token}"}, None, sso_world.settings, "v1")
    assert resolve_principal({"Authorization": token}, None, sso_world.settings, "ckan").is_anonymous


def test_an_unconfigured_issuer_is_rejected(world: World, idp: FakeIdP) -> None:
    with pytest.raises(AuthenticationError, match="wrong issuer"):
        resolve_principal({"Authorization": f"Bearer {idp.token()}"}, None, world.settings, "v1")
    assert idp.requests == []


def test_a_key_signed_by_someone_else_with_the_idps_kid_is_rejected(sso_world: World, idp: FakeIdP) -> None:
    forger = RSAKey.generate_key(2048, {"alg": "RS256"}, private=True)
    forged = jwt.encode(
        {"alg": "RS256", "kid": idp.keys[0].kid},
        {"iss": idp.issuer, "aud": "lien-thong-hub", "sub": "x", "exp": int(time.time()) + 60},
        forger,
        algorithms=["RS256"],
    )
    with pytest.raises(AuthenticationError, match="bad signature"):
        resolve_principal({"Authorization": f"Bearer {forged}"}, None, sso_world.settings, "v1")


def test_a_rotated_idp_key_is_fetched_when_an_unknown_kid_arrives(
    sso_world: World, idp: FakeIdP, monkeypatch: pytest.MonkeyPatch
) -> None:
    resolve_principal({"Authorization": f"Bearer {idp.token()}"}, None, sso_world.settings, "v1")
    idp.keys.append(RSAKey.generate_key(2048, {"alg": "RS256", "use": "sig"}, private=True, auto_kid=True))
    monkeypatch.setattr(oidc, "REFETCH_MIN", 0.0)
    p = resolve_principal({"Authorization": f"Bearer {idp.token()}"}, None, sso_world.settings, "v1")
    assert p.name == "nguyen.van.a"
    assert idp.requests.count("/realms/tinh/certs") == 2
