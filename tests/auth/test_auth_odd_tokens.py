"""Tokens with odd headers and claims (issue 10, point 4): a ``kid`` that is a list gave a 500 on every
route (the rate limiter hashed it). Whatever JSON a token's header or claims hold, the rate limiter sees
no client, CKAN routes see an anonymous caller and /api/v1 answers 401; a signed token whose claims
have odd types gives a principal of well-typed fields or a 401, never a TypeError."""

from __future__ import annotations

import base64
import json
import math
import time
from collections.abc import Iterator
from typing import Any

import pytest
from joserfc import jwt

from hub.auth import oidc, tokens
from hub.auth.principal import Principal
from hub.auth.ratelimit import client_of
from hub.auth.resolve import resolve_principal
from hub.errors import AuthenticationError
from hub.settings import Settings
from tests.auth.conftest import World
from tests.auth.fake_idp import FakeIdP


def _b64(data: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _unsigned(settings: Settings, header: object, claims: object | None = None) -> str:
    claims = {"iss": tokens.issuer(settings), "exp": int(time.time()) + 600} if claims is None else claims
    return f"{_b64(header)}.{_b64(claims)}.c2lnbmF0dXJl"


ODD_HEADERS: dict[str, object] = {
    "kid-list": {"alg": "ES256", "kid": ["a", "b"]},
    "kid-int": {"alg": "ES256", "kid": 7},
    "kid-dict": {"alg": "ES256", "kid": {"a": 1}},
    "kid-null": {"alg": "ES256", "kid": None},
    "kid-huge": {"alg": "ES256", "kid": "k" * 100_000},
    "alg-missing": {"kid": "x"},
    "alg-list": {"alg": ["ES256"], "kid": "x"},
    "alg-none": {"alg": "none", "kid": "x"},
    "header-list": ["alg", "kid"],
    "header-string": "ES256",
    "header-deep": json.loads('{"a":' * 500 + "1" + "}" * 500),
}


def _checked(settings: Settings, token: str) -> None:
    """The limiter sees no client, CKAN an anonymous caller, /api/v1 a 401."""
    for headers in (
        {"Authorization": f"Bearer {token}"},
        {"authorization": token},
        {"x-ckan-api-key": token},
    ):
        assert client_of(headers, settings) is None
        assert resolve_principal(headers, "10.0.0.9", settings, "ckan").is_anonymous
        with pytest.raises(AuthenticationError):
            resolve_principal(headers, "10.0.0.9", settings, "v1")


@pytest.mark.parametrize("case", list(ODD_HEADERS))
def test_odd_jwt_headers_are_no_client_anonymous_or_a_401(shared_world: World, case: str) -> None:
    _checked(shared_world.settings, _unsigned(shared_world.settings, ODD_HEADERS[case]))


@pytest.mark.parametrize(
    "token",
    [
        "a" * 200_000 + "." + "b" * 1000 + ".c",  # huge
        "***.!!!.###",  # not base64
        base64.urlsafe_b64encode(b"\xff\xfe\x00").decode() + ".e30.x",  # not UTF-8 JSON
        "e30.e30",  # two parts
        "e30.e30.e30.e30",  # four parts
        ".." * 3,
        "Bearer",
    ],
    ids=["huge", "not-base64", "not-utf8", "two-parts", "four-parts", "dots", "word"],
)
def test_malformed_tokens_are_no_client_anonymous_or_a_401(shared_world: World, token: str) -> None:
    _checked(shared_world.settings, token)


@pytest.mark.parametrize(
    "claims",
    [{"iss": ["x"]}, {"iss": {"a": 1}}, {"iss": None}, ["iss"], "claims", 5],
    ids=["iss-list", "iss-dict", "iss-null", "claims-list", "claims-string", "claims-number"],
)
def test_odd_unsigned_claims_are_no_client_anonymous_or_a_401(shared_world: World, claims: object) -> None:
    _checked(shared_world.settings, _unsigned(shared_world.settings, {"alg": "ES256", "kid": "x"}, claims))


# --- signed by the hub's own key, with odd claims --------------------------------------------------


def _signed(world: World, **over: Any) -> str:
    cid, _ = world.clients["so-gddt"]
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": tokens.issuer(world.settings),
        "aud": tokens.audience(world.settings),
        "sub": cid,
        "client_id": cid,
        "scope": "catalog:read datastore:read",
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "jti": tokens.new_jti(),
        "org": world.orgs["so-gddt"],
    }
    claims.update(over)
    return tokens.sign(world.settings, {k: v for k, v in claims.items() if v is not ...})


def _well_typed(p: Principal) -> None:
    for value in (p.subject, p.name, p.client_id, p.org_id, p.token_id):
        assert value is None or isinstance(value, str)
    assert all(isinstance(s, str) for s in p.scopes)


REJECTED: dict[str, dict[str, Any]] = {
    "exp-nan": {"exp": math.nan},
    "exp-infinity": {"exp": math.inf},
    "exp-string": {"exp": "2999-01-01"},
    "exp-true": {"exp": True},
    "exp-missing": {"exp": ...},
    "nbf-nan": {"nbf": math.nan},
    "iat-string": {"iat": "now"},
    "aud-dict": {"aud": {"a": 1}},
    "jti-int": {"jti": 5},
    "jti-list": {"jti": ["a"]},
    "sub-int-client-id-list": {"sub": 5, "client_id": ["so-gddt-system"]},
    "client-id-dict": {"sub": "so-gddt-system", "client_id": {"id": "so-gddt-system"}},
}


@pytest.mark.parametrize("case", list(REJECTED))
def test_signed_tokens_with_odd_claims_are_a_401(shared_world: World, case: str) -> None:
    token = _signed(shared_world, **REJECTED[case])
    with pytest.raises(AuthenticationError):
        resolve_principal({"Authorization": f"Bearer {token}"}, None, shared_world.settings, "v1")
    assert resolve_principal({"Authorization": token}, None, shared_world.settings, "ckan").is_anonymous
    # the limiter checks the signature and times only (no database): a signed token may name its client
    assert client_of({"authorization": f"Bearer {token}"}, shared_world.settings) in (None, "so-gddt-system")


ACCEPTED: dict[str, dict[str, Any]] = {
    "scope-int": {"scope": 5},
    "scope-dict": {"scope": {"catalog:read": True}},
    "scope-list-of-odd-things": {"scope": ["catalog:read", 5, None, ["admin"], {"admin": 1}]},
    "org-list": {"org": ["so-gddt"]},
    "azp-list": {"azp": ["x"]},
}


@pytest.mark.parametrize("case", list(ACCEPTED))
def test_signed_tokens_with_odd_optional_claims_give_a_well_typed_principal(
    shared_world: World, case: str
) -> None:
    token = _signed(shared_world, **ACCEPTED[case])
    p = resolve_principal({"Authorization": f"Bearer {token}"}, None, shared_world.settings, "v1")
    assert p.kind == "client"
    assert p.client_id == "so-gddt-system"
    _well_typed(p)
    assert p.scopes <= {"catalog:read", "datastore:read"}
    assert client_of({"authorization": f"Bearer {token}"}, shared_world.settings) == "so-gddt-system"


def test_a_person_s_token_with_odd_claims_gives_a_well_typed_principal(shared_world: World) -> None:
    token = shared_world.user_token("dung-consumer")
    claims = tokens.unverified_claims(token)
    odd = tokens.sign(
        shared_world.settings, {**claims, "client_id": 5, "azp": ["x"], "org": {"a": 1}}, typ="JWT"
    )
    p = resolve_principal({"Authorization": odd}, None, shared_world.settings, "ckan")
    assert p.kind == "user"
    assert p.name == "dung-consumer"
    assert p.client_id is None
    _well_typed(p)


# --- an external OpenID Connect issuer ------------------------------------------------------------


class _BrokenKey:
    """A JWKS entry the hub cannot import (the IdP publishes it next to its good key)."""

    def __init__(self, entry: object) -> None:
        self.entry = entry
        self.kid = "broken"

    def as_dict(self, private: bool = False) -> object:
        return self.entry


@pytest.fixture
def idp() -> Iterator[FakeIdP]:
    oidc.clear_cache()
    p = FakeIdP()
    yield p
    p.close()
    oidc.clear_cache()


@pytest.fixture
def sso_settings(shared_world: World, idp: FakeIdP) -> Settings:
    return shared_world.settings.model_copy(
        update={"oidc_issuers": [{"issuer": idp.issuer, "audience": "lien-thong-hub"}]}
    )


@pytest.mark.parametrize(
    "over",
    [
        {"scope": 5},
        {"scope": ["catalog:read", 7]},
        {"azp": ["a"], "client_id": {"b": 1}},
        {"jti": {"a": 1}},
        {"preferred_username": ["a", "b"]},
    ],
    ids=["scope-int", "scope-list", "azp-list", "jti-dict", "username-list"],
)
def test_external_tokens_with_odd_claims_give_a_well_typed_principal(
    sso_settings: Settings, idp: FakeIdP, over: dict[str, Any]
) -> None:
    p = resolve_principal({"Authorization": f"Bearer {idp.token(**over)}"}, None, sso_settings, "v1")
    assert p.kind == "user"
    _well_typed(p)
    assert client_of({"authorization": f"Bearer {idp.token(**over)}"}, sso_settings) is not None


@pytest.mark.parametrize(
    "over",
    [{"sub": 5}, {"sub": None}, {"exp": math.nan}, {"aud": ["x", {"y": 1}]}],
    ids=["sub-int", "sub-null", "exp-nan", "aud-odd"],
)
def test_external_tokens_with_odd_required_claims_are_a_401(
    sso_settings: Settings, idp: FakeIdP, over: dict[str, Any]
) -> None:
    with pytest.raises(AuthenticationError):
        resolve_principal({"Authorization": f"Bearer {idp.token(**over)}"}, None, sso_settings, "v1")


@pytest.mark.parametrize(
    "entry",
    ["not-a-key", ["x"], {"kty": "RSA", "kid": "broken", "n": "!!", "e": "AQAB"}, {"kty": "EC", "kid": 5}],
    ids=["string", "list", "bad-modulus", "kid-int"],
)
def test_a_jwks_entry_the_hub_cannot_use_is_skipped(
    sso_settings: Settings, idp: FakeIdP, entry: object
) -> None:
    good = idp.keys[0]
    claims = _external_claims(idp)
    idp.keys.append(_BrokenKey(entry))  # type: ignore[arg-type]
    token = jwt.encode({"alg": "RS256", "kid": good.kid}, claims, good, algorithms=["RS256"])
    assert resolve_principal({"Authorization": f"Bearer {token}"}, None, sso_settings, "v1").kind == "user"
    broken = _unsigned(sso_settings, {"alg": "RS256", "kid": "broken"}, claims)
    with pytest.raises(AuthenticationError):
        resolve_principal({"Authorization": f"Bearer {broken}"}, None, sso_settings, "v1")


def _external_claims(idp: FakeIdP) -> dict[str, Any]:
    claims: dict[str, Any] = tokens.unverified_claims(idp.token(key=idp.keys[0]))
    return claims
