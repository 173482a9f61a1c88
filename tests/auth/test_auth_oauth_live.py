"""A real OAuth client (authlib's httpx ``OAuth2Client``) against a live hub on 127.0.0.1: client
credentials, authorization code with PKCE through the login page, refresh rotation with reuse
detection, introspection (RFC 7662), revocation (RFC 7009), metadata (RFC 8414) and JWKS."""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from html import unescape
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from authlib.common.security import generate_token
from authlib.deprecate import AuthlibDeprecationWarning
from authlib.integrations.base_client.errors import OAuthError

from hub.auth import tokens, users
from hub.auth.models import AuditEntry
from hub.db import session_scope
from hub.testing.live import live_server
from tests.auth.conftest import PASSWORD, World

with warnings.catch_warnings():
    # authlib prefers the httpx2 package and warns when it falls back to httpx, which is what we have
    warnings.simplefilter("ignore", AuthlibDeprecationWarning)
    from authlib.integrations.httpx_client import OAuth2Client

REDIRECT = "http://127.0.0.1:9/callback"

pytestmark = pytest.mark.integration


@pytest.fixture
def live(world: World) -> Iterator[tuple[World, str, str]]:
    """The province, the live base URL, and a public PKCE client of the consumer agency."""
    with session_scope(world.settings) as s:
        client, _ = users.add_client(
            s,
            "so-gddt",
            "Cổng nội bộ Sở GD&ĐT",
            scope="catalog:read datastore:read",
            grant_types=("authorization_code", "refresh_token"),
            redirect_uris=(REDIRECT,),
            public=True,
            client_id="gddt-portal",
        )
        _, xd_secret = users.add_client(
            s, "so-xd", "Hệ thống xây dựng", scope="catalog:read", client_id="xd-app"
        )
        world.extra["xd-app"] = ("xd-app", xd_secret)
    with live_server(world.settings) as base:
        yield world, base, client.client_id


def _login(base: str, authorize_url: str, username: str, password: str) -> httpx.Response:
    """What a browser does: open the login page, fill in the form, submit it."""
    page = httpx.get(authorize_url)
    assert page.status_code == 200, page.text
    assert "Đăng nhập" in page.text
    assert "Sign in" in page.text
    fields = {
        unescape(k): unescape(v)
        for k, v in re.findall(r'type="hidden" name="([^"]+)" value="([^"]*)"', page.text)
    }
    fields.update(username=username, password=password, decision="allow")
    return httpx.post(f"{base}/oauth/authorize", data=fields)


def test_client_credentials_with_authlib_client(live: tuple[World, str, str]) -> None:
    world, base, _ = live
    cid, secret = world.clients["so-gddt"]
    with OAuth2Client(cid, secret, scope="catalog:read datastore:read") as client:
        token = client.fetch_token(f"{base}/oauth/token", grant_type="client_credentials")
        assert token["token_type"] == "Bearer"
        assert token["expires_in"] == 900
        assert "refresh_token" not in token
        claims = tokens.unverified_claims(token["access_token"])
        assert claims["iss"] == tokens.issuer(world.settings)
        assert claims["aud"] == tokens.audience(world.settings)
        assert claims["sub"] == cid
        assert claims["client_id"] == cid
        assert claims["scope"] == "catalog:read datastore:read"
        assert claims["org"] == world.orgs["so-gddt"]
        assert claims["exp"] - claims["iat"] == 900
        assert tokens.unverified_header(token["access_token"])["typ"] == "at+jwt"
        # the token works on /api/v1 as that client
        r = client.get(f"{base}/api/v1/grants")
        assert r.status_code == 200, r.text
        assert [g["id"] for g in r.json()["grants"]] == [world.grant_id]


def test_wrong_secret_and_unknown_scope_are_refused(live: tuple[World, str, str]) -> None:
    world, base, _ = live
    cid, _secret = world.clients["so-gddt"]
    with OAuth2Client(cid, "not-the-secret") as client, pytest.raises(OAuthError, match="invalid_client"):
        client.fetch_token(f"{base}/oauth/token", grant_type="client_credentials")
    r = httpx.post(
        f"{base}/oauth/token",
        data={"grant_type": "client_credentials", "scope": "no:such"},
        auth=world.clients["so-gddt"],
    )
    assert r.status_code == 400
    assert r.json()["error"] == "invalid_scope"


def test_pkce_flow_refresh_rotation_and_reuse_detection(live: tuple[World, str, str]) -> None:
    world, base, client_id = live
    verifier = generate_token(64)
    client = OAuth2Client(
        client_id,
        redirect_uri=REDIRECT,
        scope="catalog:read datastore:read",
        code_challenge_method="S256",
        token_endpoint_auth_method="none",
    )
    url, state = client.create_authorization_url(f"{base}/oauth/authorize", code_verifier=verifier)
    r = _login(base, url, "dung-consumer", PASSWORD)
    assert r.status_code == 302, r.text
    location = r.headers["location"]
    assert location.startswith(REDIRECT)
    assert parse_qs(urlparse(location).query)["state"] == [state]
    token = client.fetch_token(f"{base}/oauth/token", authorization_response=location, code_verifier=verifier)
    claims = tokens.unverified_claims(token["access_token"])
    assert claims["sub"] == world.users["dung-consumer"]
    assert claims["client_id"] == client_id
    assert "refresh_token" in token

    r = client.get(f"{base}/api/v1/grants")
    assert r.status_code == 200

    # rotation: the refresh token is replaced
    first_refresh = token["refresh_token"]
    new = client.refresh_token(f"{base}/oauth/token", refresh_token=first_refresh)
    assert new["refresh_token"] != first_refresh
    second_access = new["access_token"]
    assert (
        httpx.get(f"{base}/api/v1/grants", headers={"Authorization": f"Bearer {second_access}"}).status_code
        == 200
    )

    # reuse of the rotated one: refused, and the whole family is revoked (incl. the newest access token)
    r = httpx.post(
        f"{base}/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": first_refresh, "client_id": client_id},
    )
    assert r.status_code == 400
    assert r.json()["error"] == "invalid_grant"
    r = httpx.post(
        f"{base}/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": new["refresh_token"], "client_id": client_id},
    )
    assert r.json()["error"] == "invalid_grant"
    r = httpx.get(f"{base}/api/v1/grants", headers={"Authorization": f"Bearer {second_access}"})
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith("Bearer")
    with session_scope(world.settings) as s:
        assert s.query(AuditEntry).filter_by(action="auth.refresh_reuse", outcome="denied").count() == 1
    client.close()


def test_pkce_is_required_and_only_s256(live: tuple[World, str, str]) -> None:
    _world, base, client_id = live
    common = {"response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT, "state": "xyz"}
    for extra in (
        {},
        {"code_challenge": "a" * 43, "code_challenge_method": "plain"},
        {"code_challenge": "a" * 43},
    ):
        r = httpx.get(f"{base}/oauth/authorize", params={**common, **extra})
        assert r.status_code == 302
        q = parse_qs(urlparse(r.headers["location"]).query)
        assert q["error"] == ["invalid_request"]
        assert q["state"] == ["xyz"]


def test_login_with_a_wrong_password_shows_the_page_again(live: tuple[World, str, str]) -> None:
    _world, base, client_id = live
    client = OAuth2Client(client_id, redirect_uri=REDIRECT, code_challenge_method="S256")
    url, _ = client.create_authorization_url(f"{base}/oauth/authorize", code_verifier=generate_token(64))
    r = _login(base, url, "dung-consumer", "wrong-password")
    assert r.status_code == 401
    assert "Sai tên đăng nhập hoặc mật khẩu" in r.text
    client.close()


def test_introspection_and_revocation(live: tuple[World, str, str]) -> None:
    world, base, _ = live
    cid, secret = world.clients["so-gddt"]
    other = world.extra["xd-app"]
    access = httpx.post(
        f"{base}/oauth/token", data={"grant_type": "client_credentials"}, auth=(cid, secret)
    ).json()["access_token"]
    r = httpx.post(f"{base}/oauth/introspect", data={"token": access}, auth=(cid, secret))
    body = r.json()
    assert body["active"] is True
    assert body["client_id"] == cid
    assert body["scope"]
    # another agency's client may not learn about this token
    assert httpx.post(f"{base}/oauth/introspect", data={"token": access}, auth=other).json() == {
        "active": False
    }
    # introspection needs client authentication
    assert httpx.post(f"{base}/oauth/introspect", data={"token": access}).status_code == 401
    # revocation: takes effect on the next request
    assert (
        httpx.get(f"{base}/api/v1/grants", headers={"Authorization": f"Bearer {access}"}).status_code == 200
    )
    assert httpx.post(f"{base}/oauth/revoke", data={"token": access}, auth=(cid, secret)).status_code == 200
    assert httpx.post(f"{base}/oauth/introspect", data={"token": access}, auth=(cid, secret)).json() == {
        "active": False
    }
    r = httpx.get(f"{base}/api/v1/grants", headers={"Authorization": f"Bearer {access}"})
    assert r.status_code == 401
    assert "Bearer" in r.headers["www-authenticate"]


def test_metadata_and_jwks(live: tuple[World, str, str]) -> None:
    world, base, _ = live
    meta = httpx.get(f"{base}/.well-known/oauth-authorization-server").json()
    iss = tokens.issuer(world.settings)
    assert meta["issuer"] == iss
    assert meta["token_endpoint"] == f"{iss}/oauth/token"
    assert meta["code_challenge_methods_supported"] == ["S256"]
    assert set(meta["grant_types_supported"]) == {"authorization_code", "client_credentials", "refresh_token"}
    assert "audit:read" in meta["scopes_supported"]
    jwks = httpx.get(f"{base}/.well-known/jwks.json").json()
    assert len(jwks["keys"]) == 1
    key = jwks["keys"][0]
    assert key["kty"] == "EC"
    assert key["alg"] == "ES256"
    assert "d" not in key  # never the private part
