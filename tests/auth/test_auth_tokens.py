"""Token validation on the resource server: every attack of issue 5 point 3 is rejected, as a 401
(AuthenticationError) on /api/v1 and as anonymous on CKAN routes."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey

from hub.auth import keys, tokens
from hub.auth.principal import Principal
from hub.auth.resolve import resolve_principal
from hub.db import session_scope
from hub.errors import AuthenticationError
from hub.settings import Settings
from tests.auth.conftest import World


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _claims(world: World, **over: object) -> dict[str, object]:
    cid, _ = world.clients["so-gddt"]
    now = int(time.time())
    base: dict[str, object] = {
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
    base.update(over)
    return {k: v for k, v in base.items() if v is not None}


def _signed(world: World, **over: object) -> str:
    return tokens.sign(world.settings, _claims(world, **over))


def _v1(world: World, token: str) -> Principal:
    return resolve_principal({"Authorization": f"Bearer {token}"}, "10.0.0.9", world.settings, "v1")


def _ckan(world: World, token: str) -> Principal:
    return resolve_principal({"Authorization": token}, "10.0.0.9", world.settings, "ckan")


def test_a_valid_client_token_gives_the_client_principal(shared_world: World) -> None:
    world = shared_world
    p = _v1(world, _signed(world))
    assert p.kind == "client"
    assert p.client_id == "so-gddt-system"
    assert p.org_id == world.orgs["so-gddt"]
    assert p.scopes == {"catalog:read", "datastore:read"}
    assert p.ip == "10.0.0.9"


@pytest.mark.parametrize(
    "header",
    [
        lambda t: {"Authorization": f"Bearer {t}"},
        lambda t: {"authorization": t},
        lambda t: {"X-CKAN-API-Key": t},
    ],
    ids=["bearer", "raw-authorization", "x-ckan-api-key"],
)
def test_ckan_clients_may_send_the_token_three_ways(shared_world: World, header: object) -> None:
    world = shared_world
    token = world.user_token("dung-consumer")
    p = resolve_principal(header(token), None, world.settings, "ckan")  # type: ignore[operator]
    assert p.kind == "user"
    assert p.name == "dung-consumer"
    assert p.org_roles == {world.orgs["so-gddt"]: "member"}


def _alg_none(world: World) -> str:
    return f"{_b64({'alg': 'none', 'typ': 'at+jwt'})}.{_b64(_claims(world))}."


def _hs256_with_public_key(world: World) -> str:
    """The classic confusion: HMAC-signed with the server's public key (PEM or JWK) as the secret."""
    ring = keys.keyring(world.settings)
    secret = ring.current.as_pem(private=False)
    header = {"alg": "HS256", "typ": "at+jwt", "kid": ring.current.kid}
    signing_input = f"{_b64(header)}.{_b64(_claims(world))}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"


def _foreign_key_same_kid(world: World) -> str:
    ring = keys.keyring(world.settings)
    other = ECKey.generate_key("P-256", private=True)
    header = {"alg": "ES256", "typ": "at+jwt", "kid": ring.current.kid}
    return jwt.encode(header, _claims(world), other, algorithms=["ES256"])


def _unknown_kid(world: World) -> str:
    other = ECKey.generate_key("P-256", private=True)
    return jwt.encode({"alg": "ES256", "kid": "not-a-hub-key"}, _claims(world), other, algorithms=["ES256"])


def _revoked(world: World) -> str:
    token = _signed(world)
    claims = tokens.unverified_claims(token)
    with session_scope(world.settings) as s:
        tokens.revoke_jti(s, str(claims["jti"]), int(claims["exp"]))  # type: ignore[arg-type]
    return token


def _tampered(world: World) -> str:
    token = _signed(world)
    head, _, sig = token.split(".")
    return f"{head}.{_b64(_claims(world, scope='admin'))}.{sig}"


ATTACKS = {
    "alg-none": _alg_none,
    "hs256-public-key-confusion": _hs256_with_public_key,
    "forged-signature-same-kid": _foreign_key_same_kid,
    "unknown-kid": _unknown_kid,
    "wrong-iss": lambda w: _signed(w, iss="https://evil.example"),
    "wrong-aud": lambda w: _signed(w, aud="https://another-hub.example"),
    "expired": lambda w: _signed(
        w, iat=int(time.time()) - 3600, nbf=int(time.time()) - 3600, exp=int(time.time()) - 120
    ),
    "not-yet-valid": lambda w: _signed(w, nbf=int(time.time()) + 600),
    "revoked-jti": _revoked,
    "tampered-claims": _tampered,
    "not-a-jwt": lambda w: "abc.def",
    "garbage": lambda w: "eyJ!!!.e30.x",
}


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_attacks_are_401_on_v1_and_anonymous_on_ckan(shared_world: World, attack: str) -> None:
    world = shared_world
    token = ATTACKS[attack](world)
    with pytest.raises(AuthenticationError):
        _v1(world, token)
    p = _ckan(world, token)
    assert p.is_anonymous
    assert p.ip == "10.0.0.9"


def test_scopes_are_narrowed_to_what_the_client_may_hold(world: World) -> None:
    with session_scope(world.settings) as s:
        from hub.auth.users import get_client

        c = get_client(s, "so-gddt-system")
        assert c is not None
        c.scope = "catalog:read"
    p = _v1(world, _signed(world, scope="catalog:read datastore:read admin"))
    assert p.scopes == {"catalog:read"}
    assert not p.sysadmin


def test_a_disabled_client_token_stops_working(world: World) -> None:
    token = _signed(world)
    from hub.auth.users import disable_client

    with session_scope(world.settings) as s:
        disable_client(s, "so-gddt-system")
    with pytest.raises(AuthenticationError):
        _v1(world, token)


def test_revoked_api_token_is_rejected(world: World) -> None:
    token = world.user_token("dung-consumer")
    assert not _v1(world, token).is_anonymous
    jti = tokens.unverified_claims(token)["jti"]
    with session_scope(world.settings) as s:
        from hub.auth.models import ApiToken
        from hub.db import utcnow

        row = s.get(ApiToken, jti)
        assert row is not None
        row.revoked_at = utcnow()
    with pytest.raises(AuthenticationError):
        _v1(world, token)


def test_key_rotation_keeps_old_tokens_valid_until_they_expire(world: World) -> None:
    old = _signed(world)
    old_kid = tokens.unverified_header(old)["kid"]
    with session_scope(world.settings) as s:
        new = keys.rotate(s, world.settings)
    keys.clear_cache()
    ring = keys.keyring(world.settings)
    assert ring.current.kid == new.kid != old_kid
    assert {k["kid"] for k in ring.public_jwks()["keys"]} == {old_kid, new.kid}
    assert _v1(world, old).kind == "client"
    fresh = _signed(world)
    assert tokens.unverified_header(fresh)["kid"] == new.kid
    # once the old key's tokens have expired, it is withdrawn from the JWKS and its tokens fail
    from datetime import timedelta

    from hub.auth.models import SigningKey

    with session_scope(world.settings) as s:
        row = s.get(SigningKey, old_kid)
        assert row is not None
        assert row.retired_at is not None
        row.retired_at -= timedelta(seconds=world.settings.token_ttl_seconds + 120)
    keys.clear_cache()
    assert old_kid not in {k["kid"] for k in keys.keyring(world.settings).public_jwks()["keys"]}
    with pytest.raises(AuthenticationError):
        _v1(world, old)


def test_no_token_is_anonymous_on_both_route_kinds(shared_world: World) -> None:
    world = shared_world
    assert resolve_principal({}, "1.2.3.4", world.settings, "v1").is_anonymous
    assert resolve_principal({}, "1.2.3.4", world.settings, "ckan").is_anonymous


def test_rs256_keys_work_too(world: World) -> None:
    rs = Settings(data_dir=world.settings.data_dir, site_url=world.settings.site_url, token_alg="RS256")
    with session_scope(rs) as s:
        keys.rotate(s, rs)
    keys.clear_cache()
    token = tokens.sign(rs, _claims(world))
    assert tokens.unverified_header(token)["alg"] == "RS256"
    assert resolve_principal({"Authorization": f"Bearer {token}"}, None, rs, "v1").kind == "client"
    assert keys.keyring(rs).public_jwks()["keys"][-1]["kty"] == "RSA"
