"""People, organization roles, OAuth clients, passwords (argon2) and the login lockout.

Every change here is an administrative change and goes to the audit log (``admin.*``).
"""

from __future__ import annotations

import secrets
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from hub.auth import audit
from hub.auth.models import ROLES, LoginAttempt, Membership, OAuthClient, User
from hub.auth.principal import SCOPES, SYSTEM, Principal
from hub.catalog.models import Organization
from hub.db import utcnow
from hub.errors import ConflictError, InvalidInputError, NotFoundError
from hub.settings import Settings

_hasher = PasswordHasher()
CLIENT_GRANT_TYPES = ("client_credentials", "authorization_code", "refresh_token")


def hash_secret(secret: str) -> str:
    return _hasher.hash(secret)


def check_secret(stored: str | None, given: str) -> bool:
    if not stored:
        return False
    try:
        return _hasher.verify(stored, given)
    except (VerificationError, InvalidHashError):
        return False


# --- organizations ----------------------------------------------------------------------------


def get_org(session: Session, ref: str) -> Organization:
    org = session.get(Organization, ref) or session.scalar(
        select(Organization).where(Organization.name == ref)
    )
    if org is None:
        raise NotFoundError(f"organization {ref!r} not found")
    return org


def add_org(
    session: Session, name: str, title: str, *, title_en: str | None = None, actor: Principal = SYSTEM
) -> Organization:
    if session.scalar(select(Organization).where(Organization.name == name)) is not None:
        raise ConflictError(f"organization {name!r} exists")
    org = Organization(name=name, title=title, title_en=title_en, extras={}, state="active")
    session.add(org)
    session.flush()
    audit.record(session, "admin.org.create", actor, details={"org": name})
    return org


# --- users ------------------------------------------------------------------------------------


def get_user(session: Session, ref: str) -> User:
    user = session.get(User, ref) or session.scalar(select(User).where(User.name == ref))
    if user is None:
        raise NotFoundError(f"user {ref!r} not found")
    return user


def add_user(
    session: Session,
    name: str,
    password: str | None,
    *,
    email: str | None = None,
    fullname: str | None = None,
    sysadmin: bool = False,
    external_id: str | None = None,
    actor: Principal = SYSTEM,
) -> User:
    if session.scalar(select(User).where(User.name == name)) is not None:
        raise ConflictError(f"user {name!r} exists")
    if password is not None and len(password) < 8:
        raise InvalidInputError("password too short", {"password": ["at least 8 characters"]})
    user = User(
        name=name,
        email=email,
        fullname=fullname,
        password_hash=hash_secret(password) if password else None,
        sysadmin=sysadmin,
        external_id=external_id,
        state="active",
    )
    session.add(user)
    session.flush()
    audit.record(session, "admin.user.create", actor, details={"user": name, "sysadmin": sysadmin})
    return user


def set_role(
    session: Session, user_ref: str, org_ref: str, role: str | None, *, actor: Principal = SYSTEM
) -> None:
    """Give ``user`` ``role`` in ``org`` (None removes the membership)."""
    if role is not None and role not in ROLES:
        raise InvalidInputError(f"unknown role {role!r}", {"role": [f"one of {', '.join(ROLES)}"]})
    user = get_user(session, user_ref)
    org = get_org(session, org_ref)
    m = session.scalar(select(Membership).where(Membership.user_id == user.id, Membership.org_id == org.id))
    if role is None:
        if m is not None:
            session.delete(m)
    elif m is None:
        session.add(Membership(user_id=user.id, org_id=org.id, role=role))
    else:
        m.role = role
    session.flush()
    audit.record(
        session, "admin.user.role", actor, details={"user": user.name, "org": org.name, "role": role}
    )


def set_sysadmin(session: Session, user_ref: str, value: bool, *, actor: Principal = SYSTEM) -> None:
    user = get_user(session, user_ref)
    user.sysadmin = value
    audit.record(session, "admin.user.sysadmin", actor, details={"user": user.name, "sysadmin": value})


def org_roles(session: Session, user_id: str) -> dict[str, str]:
    return {
        m.org_id: m.role for m in session.scalars(select(Membership).where(Membership.user_id == user_id))
    }


def user_scopes(user: User, roles: dict[str, str]) -> frozenset[str]:
    """Every scope a person may hold; a token narrows it."""
    base = {"catalog:read", "datastore:read", "warehouse:query"}
    if any(r in ("admin", "editor") for r in roles.values()):
        base |= {"catalog:write", "connectors:manage"}
    if any(r == "admin" for r in roles.values()):
        base |= {"grants:manage", "audit:read"}
    if user.sysadmin:
        base = set(SCOPES)
    return frozenset(base)


# --- clients ----------------------------------------------------------------------------------


def add_client(
    session: Session,
    org_ref: str,
    name: str,
    *,
    scope: str,
    grant_types: tuple[str, ...] = ("client_credentials",),
    redirect_uris: tuple[str, ...] = (),
    public: bool = False,
    client_id: str | None = None,
    actor: Principal = SYSTEM,
) -> tuple[OAuthClient, str | None]:
    """A new client of ``org``; returns it and its secret (shown once; stored hashed)."""
    org = get_org(session, org_ref)
    unknown = [s for s in scope.split() if s not in SCOPES]
    if unknown:
        raise InvalidInputError(f"unknown scopes {unknown}", {"scope": [f"one of {', '.join(SCOPES)}"]})
    bad = [g for g in grant_types if g not in CLIENT_GRANT_TYPES]
    if bad:
        raise InvalidInputError(f"unknown grant types {bad}", {"grant_types": list(CLIENT_GRANT_TYPES)})
    if public and "client_credentials" in grant_types:
        raise InvalidInputError("a public client cannot use client_credentials")
    cid = client_id or f"{org.name}-{secrets.token_hex(4)}"
    if session.scalar(select(OAuthClient).where(OAuthClient.client_id == cid)) is not None:
        raise ConflictError(f"client {cid!r} exists")
    secret = None if public else secrets.token_urlsafe(32)
    client = OAuthClient(
        client_id=cid,
        secret_hash=hash_secret(secret) if secret else None,
        name=name,
        org_id=org.id,
        redirect_uris=list(redirect_uris),
        grant_types=list(grant_types),
        scope=" ".join(scope.split()),
        auth_method="none" if public else "client_secret_basic",
        state="active",
    )
    session.add(client)
    session.flush()
    audit.record(
        session,
        "admin.client.create",
        actor,
        details={"client_id": cid, "org": org.name, "scope": client.scope, "grant_types": list(grant_types)},
    )
    return client, secret


def get_client(session: Session, client_id: str) -> OAuthClient | None:
    return session.scalar(select(OAuthClient).where(OAuthClient.client_id == client_id))


def disable_client(session: Session, client_id: str, *, actor: Principal = SYSTEM) -> None:
    client = get_client(session, client_id)
    if client is None:
        raise NotFoundError(f"client {client_id!r} not found")
    client.state = "disabled"
    audit.record(session, "admin.client.disable", actor, details={"client_id": client_id})


# --- login and lockout ------------------------------------------------------------------------


def locked_out(session: Session, settings: Settings, username: str, ip: str | None) -> bool:
    """Too many failures for this account or from this IP within the lockout window."""
    since = utcnow() - timedelta(seconds=settings.login_lockout_seconds)
    for column, value in ((LoginAttempt.username, username), (LoginAttempt.ip, ip)):
        if value is None:
            continue
        last_ok = session.scalar(
            select(func.max(LoginAttempt.ts)).where(column == value, LoginAttempt.success.is_(True))
        )
        start = max(since, last_ok) if last_ok else since
        fails = session.scalar(
            select(func.count())
            .select_from(LoginAttempt)
            .where(column == value, LoginAttempt.success.is_(False), LoginAttempt.ts > start)
        )
        if (fails or 0) >= settings.login_max_failures:
            return True
    return False


def authenticate(
    session: Session, settings: Settings, username: str, password: str, ip: str | None
) -> User | None:
    """The user for these credentials, or None (wrong, unknown, disabled or locked out)."""
    if locked_out(session, settings, username, ip):
        session.add(LoginAttempt(username=username, ip=ip, success=False))
        audit.record(
            session, "auth.login", Principal(ip=ip, name=username), outcome="denied", reason="locked out"
        )
        return None
    user = session.scalar(select(User).where(User.name == username))
    ok = user is not None and user.state == "active" and check_secret(user.password_hash, password)
    keep = timedelta(seconds=max(4 * settings.login_lockout_seconds, 86400))
    session.execute(delete(LoginAttempt).where(LoginAttempt.ts < utcnow() - keep))
    session.add(LoginAttempt(username=username, ip=ip, success=ok))
    session.flush()
    if ok and user is not None:
        audit.record(session, "auth.login", Principal(kind="user", subject=user.id, name=user.name, ip=ip))
    if not ok:
        audit.record(
            session, "auth.login", Principal(ip=ip, name=username), outcome="denied", reason="bad credentials"
        )
        return None
    return user
