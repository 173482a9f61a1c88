"""The hub's JWTs: issuing RFC 9068 access tokens and CKAN API tokens, and validating tokens.

Validation (own issuer and external OpenID Connect issuers alike) rejects: ``alg`` none or any
symmetric algorithm (no algorithm confusion: only the asymmetric algorithm of the key found by ``kid``
is accepted), an unknown ``kid``, a wrong ``iss`` or ``aud``, an expired or not-yet-valid token, and
a revoked ``jti``. Every failure is an ``InvalidTokenError`` with a reason that never contains the token.
"""

from __future__ import annotations

import base64
import json
import math
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeGuard

from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, RSAKey
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from hub.auth import keys as keyring_mod
from hub.auth.models import ApiToken, RevokedToken, User
from hub.db import utcnow
from hub.errors import AuthenticationError
from hub.settings import Settings

LEEWAY_SECONDS = 30


class InvalidTokenError(AuthenticationError):
    """A token that must not be accepted; ``str(exc)`` is the reason (safe to log)."""


def issuer(settings: Settings) -> str:
    return settings.site_url.rstrip("/")


def audience(settings: Settings) -> str:
    return settings.token_audience or issuer(settings)


def new_jti() -> str:
    return secrets.token_urlsafe(16)


def sign(
    settings: Settings, claims: dict[str, Any], *, typ: str = "at+jwt", session: Session | None = None
) -> str:
    ring = keyring_mod.keyring(settings, session=session)
    header = {"alg": ring.current_alg, "typ": typ, "kid": ring.current.kid}
    return jwt.encode(header, claims, ring.current, algorithms=[ring.current_alg])


def issue_access_token(
    settings: Settings,
    *,
    subject: str,
    client_id: str,
    scope: str,
    org_id: str | None,
    ttl: int | None = None,
    extra: dict[str, Any] | None = None,
    session: Session | None = None,
) -> tuple[str, dict[str, Any]]:
    """An RFC 9068 access token and its claims."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": issuer(settings),
        "aud": audience(settings),
        "sub": subject,
        "client_id": client_id,
        "scope": scope,
        "iat": now,
        "nbf": now,
        "exp": now + (ttl or settings.token_ttl_seconds),
        "jti": new_jti(),
    }
    if org_id:
        claims["org"] = org_id
    claims.update(extra or {})
    return sign(settings, claims, session=session), claims


def issue_api_token(
    session: Session,
    settings: Settings,
    user: User,
    name: str,
    *,
    scope: str,
    days: int | None = None,
    seconds: int | None = None,
) -> tuple[str, ApiToken]:
    """A person's CKAN API token (a JWT of the hub's issuer, revocable by its ``jti``)."""
    ring = keyring_mod.keyring(settings, session=session)
    jti = new_jti()
    now = int(time.time())
    exp = now + (seconds or 86400 * (days or settings.api_token_ttl_days))
    claims = {
        "iss": issuer(settings),
        "aud": audience(settings),
        "sub": user.id,
        "client_id": "ckan-api-token",
        "scope": scope,
        "iat": now,
        "nbf": now,
        "exp": exp,
        "jti": jti,
        "token_use": "api_token",
        "name": user.name,
    }
    row = ApiToken(
        id=jti,
        user_id=user.id,
        name=name,
        kid=str(ring.current.kid),
        scope=scope,
        expires_at=utcnow() + timedelta(seconds=exp - now),
    )
    session.add(row)
    session.flush()
    return sign(settings, claims, typ="JWT", session=session), row


@dataclass(frozen=True)
class VerifiedToken:
    claims: dict[str, Any]
    issuer_kind: str  # "hub" or "external"
    external: dict[str, str] | None = None


def unverified_header(token: str) -> dict[str, Any]:
    try:
        header_b64 = token.split(".")[0]
        padded = header_b64 + "=" * (-len(header_b64) % 4)
        header = json.loads(base64.urlsafe_b64decode(padded))
    except Exception as exc:
        raise InvalidTokenError("malformed token") from exc
    if not isinstance(header, dict):
        raise InvalidTokenError("malformed token header")
    return header


def unverified_claims(token: str) -> dict[str, Any]:
    try:
        part = token.split(".")[1]
        data = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    except Exception as exc:
        raise InvalidTokenError("malformed token") from exc
    if not isinstance(data, dict):
        raise InvalidTokenError("malformed token claims")
    return data


def verify_signature(token: str, key: ECKey | RSAKey) -> dict[str, Any]:
    """Verify ``token``'s signature with ``key`` under the one algorithm its key type allows."""
    header = unverified_header(token)
    alg = header.get("alg")
    if not isinstance(alg, str) or alg.lower() == "none":
        raise InvalidTokenError("alg none is not accepted")
    if alg not in keyring_mod.ASYMMETRIC_ALGS:
        raise InvalidTokenError(f"algorithm {alg} is not accepted")
    expected = {"EC": ("ES256", "ES384"), "RSA": ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")}
    key_alg = key.as_dict(private=False).get("alg")
    allowed = (key_alg,) if key_alg else expected.get(key.key_type, ())
    if alg not in allowed:
        raise InvalidTokenError(f"algorithm {alg} does not match the key {header.get('kid')}")
    try:
        obj = jws.deserialize_compact(token, key, algorithms=[alg])
        claims = json.loads(obj.payload)
    except (JoseError, ValueError) as exc:
        raise InvalidTokenError(f"bad signature ({type(exc).__name__})") from exc
    if not isinstance(claims, dict):
        raise InvalidTokenError("claims are not an object")
    return claims


def check_claims(claims: dict[str, Any], *, iss: str, aud: str, now: float | None = None) -> None:
    now = time.time() if now is None else now
    if claims.get("iss") != iss:
        raise InvalidTokenError("wrong issuer")
    token_aud = claims.get("aud")
    auds = token_aud if isinstance(token_aud, list) else [token_aud]
    if aud not in auds:
        raise InvalidTokenError("wrong audience")
    exp = claims.get("exp")
    if not _is_time(exp):
        raise InvalidTokenError("no expiry")
    if now > exp + LEEWAY_SECONDS:
        raise InvalidTokenError("expired")
    for name in ("nbf", "iat"):
        if name in claims and not _is_time(claims[name]):
            raise InvalidTokenError(f"{name} is not a time")
    nbf = claims.get("nbf")
    if nbf is not None and now + LEEWAY_SECONDS < nbf:
        raise InvalidTokenError("not yet valid")
    iat = claims.get("iat")
    if iat is not None and now + LEEWAY_SECONDS < iat:
        raise InvalidTokenError("issued in the future")


def _is_time(value: Any) -> TypeGuard[int | float]:
    """A NumericDate: a finite number (JSON also gives NaN and infinities, which compare as never)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def verify_hub_token(session: Session, settings: Settings, token: str) -> dict[str, Any]:
    """Claims of a valid token of the hub's own issuer (access token or CKAN API token)."""
    header = unverified_header(token)
    kid = header.get("kid")
    ring = keyring_mod.keyring(settings)
    key = ring.published.get(kid) if isinstance(kid, str) else None
    if key is None and isinstance(kid, str) and kid in ring.all_public:
        raise InvalidTokenError("key is retired")
    if key is None:
        ring = keyring_mod.keyring(settings, refresh=True)
        key = ring.published.get(kid) if isinstance(kid, str) else None
    if key is None:
        raise InvalidTokenError("unknown kid")
    claims = verify_signature(token, key)
    check_claims(claims, iss=issuer(settings), aud=audience(settings))
    jti = claims.get("jti")
    if not isinstance(jti, str):
        raise InvalidTokenError("no jti")
    if claims.get("token_use") == "api_token":
        row = session.get(ApiToken, jti)
        if row is None or row.revoked_at is not None:
            raise InvalidTokenError("API token revoked")
    elif session.get(RevokedToken, jti) is not None:
        raise InvalidTokenError("token revoked")
    return claims


def revoke_jti(session: Session, jti: str, exp: int | float | None) -> None:
    """Revoke an access token by its ``jti`` (rows of tokens that have expired anyway are pruned)."""
    session.execute(delete(RevokedToken).where(RevokedToken.expires_at < utcnow()))
    if session.get(RevokedToken, jti) is None:
        expires: datetime | None = None
        if exp:
            expires = utcnow() + timedelta(seconds=max(0.0, float(exp) - time.time()))
        session.add(RevokedToken(jti=jti, expires_at=expires))
        session.flush()


def api_tokens_of(session: Session, user_id: str) -> list[ApiToken]:
    return list(
        session.scalars(
            select(ApiToken)
            .where(ApiToken.user_id == user_id, ApiToken.revoked_at.is_(None))
            .order_by(ApiToken.created)
        )
    )
