"""People's CKAN API tokens (``api_token_create``, ``api_token_list``, ``api_token_revoke``).

A token is a JWT of the hub's own issuer (``token_use: api_token``) whose ``jti`` is the row id in
``auth_api_tokens``; revoking it marks the row, and the resource server checks the row on every call.
Only the person (or a sysadmin) manages their tokens; an OAuth client cannot.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from hub.auth import audit, tokens, users
from hub.auth.models import ApiToken
from hub.auth.principal import Principal
from hub.db import utcnow
from hub.errors import AccessDeniedError, InvalidInputError, NotFoundError
from hub.settings import Settings

UNITS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
MAX_SECONDS = 100 * 365 * 86400
"""The longest lifetime a token may be given (a century: past it, dates leave what the database holds)."""


def _owner(session: Session, principal: Principal, user_ref: str | None) -> Any:
    if principal.kind not in ("user", "system"):
        raise AccessDeniedError("only people manage API tokens")
    ref = user_ref or principal.subject
    if not ref:
        raise InvalidInputError("Missing value", {"user": ["Missing value"]})
    user = users.get_user(session, ref)
    if not (principal.sysadmin or principal.kind == "system" or user.id == principal.subject):
        raise AccessDeniedError(f"User {principal.name} not authorized to manage the tokens of {user.name}")
    return user


def create(
    session: Session,
    settings: Settings,
    principal: Principal,
    *,
    user: str | None,
    name: str,
    expires_in: int | None = None,
    unit: str = "day",
) -> str:
    if not name:
        raise InvalidInputError("Missing value", {"name": ["Missing value"]})
    owner = _owner(session, principal, user)
    if unit not in UNITS:
        raise InvalidInputError("invalid unit", {"unit": [f"one of {', '.join(UNITS)}"]})
    seconds = expires_in * UNITS[unit] if expires_in else None
    if seconds is not None and not 0 < seconds <= MAX_SECONDS:
        message = f"a token lives more than 0 and at most {MAX_SECONDS // 86400} days"
        raise InvalidInputError("invalid expires_in", {"expires_in": [message]})
    roles = users.org_roles(session, owner.id)
    scope = " ".join(sorted(users.user_scopes(owner, roles)))
    token, row = tokens.issue_api_token(session, settings, owner, name, scope=scope, seconds=seconds)
    audit.record(session, "auth.api_token.create", principal, details={"user": owner.name, "jti": row.id})
    return token


def token_dict(row: ApiToken) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "user_id": row.user_id,
        "created_at": row.created.isoformat(),
        "last_access": row.last_access.isoformat() if row.last_access else None,
        "expires_at": row.expires_at.isoformat(),
    }


def list_tokens(session: Session, principal: Principal, *, user: str | None) -> list[dict[str, Any]]:
    owner = _owner(session, principal, user)
    return [token_dict(r) for r in tokens.api_tokens_of(session, owner.id)]


def revoke(
    session: Session, principal: Principal, *, token: str | None = None, jti: str | None = None
) -> None:
    if token and not jti:
        try:
            jti = str(tokens.unverified_claims(token).get("jti") or "")
        except tokens.InvalidTokenError as exc:
            raise InvalidInputError("invalid token", {"token": ["not a token of this hub"]}) from exc
    if not jti:
        raise InvalidInputError("Missing value", {"jti": ["Missing value"]})
    row = session.get(ApiToken, jti)
    if row is None:
        raise NotFoundError("Not found: API token")
    _owner(session, principal, row.user_id)
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        audit.record(session, "auth.api_token.revoke", principal, details={"jti": jti})
