"""Turns a request's credentials into a ``Principal``.

Route families differ as in CKAN: on CKAN routes (``/api/3/action``) a missing or invalid token means
anonymous; on the hub's own routes (``/api/v1``) an invalid token is a 401 (``AuthenticationError``).

Credentials are read from ``Authorization: Bearer <token>``, a raw token in ``Authorization`` (as
CKAN clients send their API token) or ``X-CKAN-API-Key``. Tokens of the hub's own issuer (OAuth access
tokens and people's CKAN API tokens) and of the configured external OpenID Connect issuers are
accepted. The token itself is never logged; only the reason it was rejected.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.auth import oidc, tokens
from hub.auth.models import OAuthClient, User
from hub.auth.principal import ANONYMOUS, SCOPES, Principal
from hub.auth.tokens import InvalidTokenError
from hub.auth.users import org_roles, user_scopes
from hub.db import session_scope
from hub.errors import AuthenticationError
from hub.settings import Settings

RouteKind = Literal["ckan", "v1", "public"]
log = logging.getLogger("hub.auth")


def _get(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        value = headers.get(name.lower())
    if value is None:
        for k, v in headers.items():
            if k.lower() == name.lower():
                return v
    return value


def extract_token(headers: Mapping[str, str]) -> str | None:
    """The token of a request, from ``Authorization`` (Bearer or raw) or ``X-CKAN-API-Key``."""
    auth = (_get(headers, "Authorization") or "").strip()
    if auth:
        scheme, _, rest = auth.partition(" ")
        if rest and scheme.lower() == "bearer":
            return rest.strip() or None
        if not rest:
            return auth  # CKAN: the raw API token in Authorization
    key = (_get(headers, "X-CKAN-API-Key") or "").strip()
    return key or None


def resolve_principal(
    headers: Mapping[str, str], client_ip: str | None, settings: Settings, route_kind: RouteKind
) -> Principal:
    """The principal of a request with these (case-insensitive) ``headers``."""
    anonymous = dataclasses.replace(ANONYMOUS, ip=client_ip)
    token = extract_token(headers)
    if token is None:
        return anonymous
    try:
        with session_scope(settings) as session:
            return principal_from_token(session, settings, token, client_ip)
    except InvalidTokenError as exc:
        log.info("token rejected on a %s route: %s", route_kind, exc)
        if route_kind == "v1":
            raise AuthenticationError(f"invalid token: {exc}") from None
        return anonymous


def principal_from_token(
    session: Session, settings: Settings, token: str, client_ip: str | None
) -> Principal:
    if token.count(".") != 2:
        raise InvalidTokenError("not a JWT")
    header = tokens.unverified_header(token)
    iss = tokens.unverified_claims(token).get("iss")
    if not isinstance(iss, str):
        raise InvalidTokenError("no issuer")
    if iss == tokens.issuer(settings):
        claims = tokens.verify_hub_token(session, settings, token)
        return _hub_principal(session, claims, client_ip)
    if iss.rstrip("/") in oidc.configured(settings):
        claims = oidc.verify_external(settings, token, iss, header)
        return _external_principal(session, settings, iss, claims, client_ip)
    raise InvalidTokenError("wrong issuer")


def _scopes(claims: dict[str, Any]) -> set[str]:
    raw = claims.get("scope") or claims.get("scp") or ""
    items = raw.split() if isinstance(raw, str) else raw if isinstance(raw, list) else []
    return {s for s in items if isinstance(s, str) and s in SCOPES}


def _text(claims: dict[str, Any], *names: str) -> str | None:
    """The first of the claims ``names`` that is a non-empty string (other JSON values count as absent)."""
    for name in names:
        value = claims.get(name)
        if isinstance(value, str) and value:
            return value
    return None


def _user_principal(
    session: Session, user: User, claims: dict[str, Any], client_ip: str | None, subject: str
) -> Principal:
    if user.state != "active":
        raise InvalidTokenError("user disabled")
    roles = org_roles(session, user.id)
    scopes = frozenset(_scopes(claims) & user_scopes(user, roles))
    org = claims.get("org")
    org_id = (
        org if isinstance(org, str) and org in roles else (next(iter(roles)) if len(roles) == 1 else None)
    )
    return Principal(
        kind="user",
        subject=subject,
        name=user.name,
        client_id=_text(claims, "client_id", "azp"),
        org_id=org_id,
        org_roles=roles,
        scopes=scopes,
        sysadmin=user.sysadmin and "admin" in scopes,
        token_id=_text(claims, "jti"),
        ip=client_ip,
    )


def _hub_principal(session: Session, claims: dict[str, Any], client_ip: str | None) -> Principal:
    sub = claims.get("sub")
    client_id = claims.get("client_id")
    user = session.get(User, sub) if isinstance(sub, str) else None
    if user is not None:
        return _user_principal(session, user, claims, client_ip, user.id)
    if claims.get("token_use") == "api_token":
        raise InvalidTokenError("user not found")
    if not isinstance(client_id, str):
        raise InvalidTokenError("no client_id")
    client = session.scalar(select(OAuthClient).where(OAuthClient.client_id == client_id))
    if client is None or client.state != "active" or sub != client.client_id:
        raise InvalidTokenError("client not found or disabled")
    scopes = frozenset(_scopes(claims) & set(client.scope.split()))
    return Principal(
        kind="client",
        subject=client.client_id,
        name=client.name,
        client_id=client.client_id,
        org_id=client.org_id,
        org_roles={},
        scopes=scopes,
        sysadmin=False,
        token_id=_text(claims, "jti"),
        ip=client_ip,
    )


def _external_principal(
    session: Session, settings: Settings, iss: str, claims: dict[str, Any], client_ip: str | None
) -> Principal:
    sub = claims.get("sub")
    if not isinstance(sub, str):
        raise InvalidTokenError("no subject")
    subject = f"{iss.rstrip('/')}#{sub}"
    user = session.scalar(select(User).where(User.external_id == subject))
    if user is not None:
        return _user_principal(session, user, claims, client_ip, user.id)
    conf = oidc.configured(settings)[iss.rstrip("/")]
    name = claims.get(conf.get("username_claim", "preferred_username")) or sub
    return Principal(
        kind="user",
        subject=subject,
        name=str(name),
        client_id=_text(claims, "azp", "client_id"),
        scopes=frozenset(_scopes(claims) & {"catalog:read", "datastore:read"}),
        token_id=_text(claims, "jti"),
        ip=client_ip,
    )
