"""External OpenID Connect issuers (a provincial or national single sign-on such as Keycloak).

Each entry of ``HUB_OIDC_ISSUERS`` names an ``issuer`` and the ``audience`` the hub expects; optional
``jwks_uri`` skips discovery, ``username_claim`` (default ``preferred_username``) names the person.
Keys come from ``<issuer>/.well-known/openid-configuration`` -> ``jwks_uri`` and are cached for five
minutes; an unknown ``kid`` refetches them (at most once every 30 seconds per issuer).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, RSAKey

from hub.auth.tokens import InvalidTokenError, check_claims, verify_signature
from hub.settings import Settings

JWKS_TTL = 300.0
REFETCH_MIN = 30.0


@dataclass
class _IssuerKeys:
    keys: dict[str, ECKey | RSAKey] = field(default_factory=dict)
    fetched_at: float = 0.0


_cache: dict[str, _IssuerKeys] = {}
_lock = threading.Lock()


def configured(settings: Settings) -> dict[str, dict[str, str]]:
    return {str(c["issuer"]).rstrip("/"): c for c in settings.oidc_issuers if c.get("issuer")}


def _fetch(conf: dict[str, str]) -> dict[str, ECKey | RSAKey]:
    iss = conf["issuer"].rstrip("/")
    with httpx.Client(timeout=5.0) as client:
        jwks_uri = conf.get("jwks_uri")
        if not jwks_uri:
            meta = client.get(f"{iss}/.well-known/openid-configuration")
            meta.raise_for_status()
            doc = meta.json()
            if not isinstance(doc, dict) or str(doc.get("issuer", "")).rstrip("/") != iss:
                raise InvalidTokenError("discovery document names another issuer")
            jwks_uri = doc.get("jwks_uri")
            if not isinstance(jwks_uri, str):
                raise ValueError("the discovery document names no jwks_uri")
        resp = client.get(jwks_uri)
        resp.raise_for_status()
        data = resp.json()
    found = data.get("keys") if isinstance(data, dict) else None
    if not isinstance(found, list):
        raise ValueError("the JWKS has no list of keys")
    out: dict[str, ECKey | RSAKey] = {}
    for k in found:
        if not isinstance(k, dict) or k.get("use", "sig") != "sig" or not isinstance(k.get("kid"), str):
            continue
        try:
            if k.get("kty") == "RSA":
                out[k["kid"]] = RSAKey.import_key(k)
            elif k.get("kty") == "EC":
                out[k["kid"]] = ECKey.import_key(k)
        except (JoseError, TypeError, ValueError):  # a key the hub cannot use: its tokens fail as unknown kid
            continue
    return out


def _key(conf: dict[str, str], kid: str) -> ECKey | RSAKey | None:
    iss = conf["issuer"].rstrip("/")
    now = time.monotonic()
    entry = _cache.get(iss)
    if entry and kid in entry.keys and now - entry.fetched_at < JWKS_TTL:
        return entry.keys[kid]
    with _lock:
        entry = _cache.get(iss)
        stale = entry is None or now - entry.fetched_at >= JWKS_TTL
        missing = entry is not None and kid not in entry.keys and now - entry.fetched_at >= REFETCH_MIN
        if stale or missing:
            try:
                entry = _IssuerKeys(_fetch(conf), now)
            except (httpx.HTTPError, KeyError, ValueError) as exc:
                raise InvalidTokenError(f"keys of issuer {iss} unavailable ({type(exc).__name__})") from exc
            _cache[iss] = entry
    assert entry is not None
    return entry.keys.get(kid)


def verify_external(settings: Settings, token: str, iss: str, header: dict[str, Any]) -> dict[str, Any]:
    """Claims of a valid token of the configured external issuer ``iss``."""
    conf = configured(settings).get(iss.rstrip("/"))
    if conf is None:
        raise InvalidTokenError("wrong issuer")
    kid = header.get("kid")
    if not isinstance(kid, str):
        raise InvalidTokenError("no kid")
    key = _key(conf, kid)
    if key is None:
        raise InvalidTokenError("unknown kid")
    claims = verify_signature(token, key)
    check_claims(claims, iss=iss, aud=conf.get("audience") or settings.token_audience or settings.site_url)
    return claims


def clear_cache() -> None:
    _cache.clear()
