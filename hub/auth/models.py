"""Metadata models of access control: people, memberships, OAuth clients, keys, tokens, grants, audit.

Organizations live in ``hub.catalog.models``. The schema is the Alembic revision ``0003_auth``.
Secrets (passwords, client secrets, refresh tokens, authorization codes) are stored only as hashes;
signing keys are stored encrypted (``hub.auth.keys``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Integer, String, Text, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column

from hub.db import Base, new_id, utcnow

ROLES = ("admin", "editor", "member")


class User(Base):
    """A person. ``external_id`` links an account of an external OpenID Connect issuer (``iss#sub``)."""

    __tablename__ = "auth_users"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(100), unique=True, index=True)
    fullname: Mapped[str | None] = mapped_column(String(300))
    email: Mapped[str | None] = mapped_column(String(300))
    password_hash: Mapped[str | None] = mapped_column(String(300))
    sysadmin: Mapped[bool] = mapped_column(Boolean, default=False)
    external_id: Mapped[str | None] = mapped_column(String(500), unique=True)
    state: Mapped[str] = mapped_column(String(20), default="active")
    created: Mapped[datetime] = mapped_column(default=utcnow)


class Membership(Base):
    """A user's role in an organization: admin, editor or member."""

    __tablename__ = "auth_memberships"
    __table_args__ = (UniqueConstraint("user_id", "org_id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("auth_users.id", ondelete="CASCADE"), index=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(20), default="member")
    created: Mapped[datetime] = mapped_column(default=utcnow)


class OAuthClient(Base):
    """One connected system of an organization (X-Road's subsystem). Public clients have no secret."""

    __tablename__ = "auth_clients"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    client_id: Mapped[str] = mapped_column(String(100), unique=True, index=True)
    secret_hash: Mapped[str | None] = mapped_column(String(300))
    name: Mapped[str] = mapped_column(String(300))
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id"), index=True)
    redirect_uris: Mapped[list[str]] = mapped_column(JSON, default=list)
    grant_types: Mapped[list[str]] = mapped_column(JSON, default=list)
    scope: Mapped[str] = mapped_column(Text, default="")
    auth_method: Mapped[str] = mapped_column(String(50), default="client_secret_basic")
    state: Mapped[str] = mapped_column(String(20), default="active")
    created: Mapped[datetime] = mapped_column(default=utcnow)


class SigningKey(Base):
    """A token and checkpoint signing key. Published in the JWKS until ``publish_until`` once retired."""

    __tablename__ = "auth_signing_keys"

    kid: Mapped[str] = mapped_column(String(100), primary_key=True)
    alg: Mapped[str] = mapped_column(String(10))
    private_jwk: Mapped[str] = mapped_column(Text)  # Fernet-encrypted JSON
    public_jwk: Mapped[dict[str, Any]] = mapped_column(JSON)
    created: Mapped[datetime] = mapped_column(default=utcnow)
    retired_at: Mapped[datetime | None] = mapped_column()


class AuthorizationCode(Base):
    __tablename__ = "auth_codes"

    code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(100), index=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("auth_users.id", ondelete="CASCADE"))
    redirect_uri: Mapped[str | None] = mapped_column(Text)
    scope: Mapped[str] = mapped_column(Text, default="")
    code_challenge: Mapped[str | None] = mapped_column(String(200))
    code_challenge_method: Mapped[str | None] = mapped_column(String(10))
    expires_at: Mapped[datetime] = mapped_column()


class RefreshToken(Base):
    """A refresh token (hashed). Rotation: each use marks it ``used_at`` and issues a successor in the same
    ``family_id``; presenting a used one again revokes the whole family (reuse detection)."""

    __tablename__ = "auth_refresh_tokens"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    family_id: Mapped[str] = mapped_column(String(36), index=True)
    client_id: Mapped[str] = mapped_column(String(100), index=True)
    user_id: Mapped[str | None] = mapped_column(ForeignKey("auth_users.id", ondelete="CASCADE"))
    scope: Mapped[str] = mapped_column(Text, default="")
    access_jti: Mapped[str | None] = mapped_column(String(100))
    access_exp: Mapped[datetime | None] = mapped_column()
    issued_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()
    used_at: Mapped[datetime | None] = mapped_column()
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)


class RevokedToken(Base):
    """A revoked access token's ``jti`` (kept until the token would have expired)."""

    __tablename__ = "auth_revoked_tokens"

    jti: Mapped[str] = mapped_column(String(100), primary_key=True)
    expires_at: Mapped[datetime | None] = mapped_column()
    revoked_at: Mapped[datetime] = mapped_column(default=utcnow)


class ApiToken(Base):
    """A person's CKAN API token: a JWT of the hub's issuer whose ``jti`` is this row's id."""

    __tablename__ = "auth_api_tokens"

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("auth_users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    kid: Mapped[str] = mapped_column(String(100))
    scope: Mapped[str] = mapped_column(Text, default="")
    created: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()
    last_access: Mapped[datetime | None] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column()


class Grant(Base):
    """Read access to a shared dataset for a consumer organization (or one of its clients)."""

    __tablename__ = "auth_grants"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), index=True)
    consumer_org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id"), index=True)
    consumer_client_id: Mapped[str | None] = mapped_column(String(100))
    purpose: Mapped[str] = mapped_column(Text)
    legal_basis: Mapped[str] = mapped_column(Text)
    allow_publication: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    """The purpose allows publication: open releases of the consumer may be built from the data."""
    expires_at: Mapped[datetime | None] = mapped_column()
    created: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(300))
    revoked_at: Mapped[datetime | None] = mapped_column()
    revoked_by: Mapped[str | None] = mapped_column(String(300))
    revoke_reason: Mapped[str | None] = mapped_column(Text)


class AuditHead(Base):
    """One row: the sequence number and hash of the last audit entry. Locking it serializes appends."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, default=0)
    hash: Mapped[str] = mapped_column(String(64))
    checkpoint_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    checkpoint_at: Mapped[datetime | None] = mapped_column()


class AuditEntry(Base):
    """One audit entry; ``hash`` = sha256(canonical JSON of the entry including ``prev_hash``)."""

    __tablename__ = "audit_entries"

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    ts: Mapped[datetime] = mapped_column(index=True)
    action: Mapped[str] = mapped_column(String(100), index=True)
    outcome: Mapped[str] = mapped_column(String(20), index=True)
    actor_kind: Mapped[str] = mapped_column(String(20))
    subject: Mapped[str | None] = mapped_column(String(500), index=True)
    actor_name: Mapped[str | None] = mapped_column(String(300))
    client_id: Mapped[str | None] = mapped_column(String(100), index=True)
    org_id: Mapped[str | None] = mapped_column(String(36), index=True)
    dataset_id: Mapped[str | None] = mapped_column(String(36), index=True)
    snapshot_id: Mapped[int | None] = mapped_column(BigInteger)
    rows: Mapped[int | None] = mapped_column(BigInteger)
    grant_id: Mapped[str | None] = mapped_column(String(36))
    reason: Mapped[str | None] = mapped_column(Text)
    ip: Mapped[str | None] = mapped_column(String(100))
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditCheckpoint(Base):
    """A signed statement "entry ``seq`` has hash ``hash``" (compact JWS with the hub's key)."""

    __tablename__ = "audit_checkpoints"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    seq: Mapped[int] = mapped_column(BigInteger, index=True)
    hash: Mapped[str] = mapped_column(String(64))
    ts: Mapped[datetime] = mapped_column(default=utcnow)
    kid: Mapped[str] = mapped_column(String(100))
    signature: Mapped[str] = mapped_column(Text)


class LoginAttempt(Base):
    __tablename__ = "auth_login_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(100), index=True)
    ip: Mapped[str | None] = mapped_column(String(100), index=True)
    ts: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    success: Mapped[bool] = mapped_column(Boolean)
