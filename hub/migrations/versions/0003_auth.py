"""Principals, OAuth clients, tokens, grants, audit (issue 5).

Revision ID: 0003_auth
Revises: 0002_connectors
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_auth"
down_revision = "0002_connectors"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "auth_users",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False, unique=True, index=True),
        sa.Column("fullname", sa.String(300)),
        sa.Column("email", sa.String(300)),
        sa.Column("password_hash", sa.String(300)),
        sa.Column("sysadmin", sa.Boolean, nullable=False),
        sa.Column("external_id", sa.String(500), unique=True),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("created", sa.DateTime, nullable=False),
    )
    op.create_table(
        "auth_memberships",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("user_id", sa.String(36), sa.ForeignKey("auth_users.id", ondelete="CASCADE"), nullable=False, index=True),
        sa.Column("org_id", sa.String(36), sa.ForeignKey("organizations.id", ondelete="CASCADE"), nullable=False, index=True),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("created", sa.DateTime, nullable=False),
        sa.UniqueConstraint("user_id", "org_id"),
    )
    op.create_table(
        "auth_clients",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("client_id", sa.String(100), nullable=False, unique=True, index=True),
        sa.Column("secret_hash", sa.String(300)),
        sa.Column("name", sa.String(300), nullable=False),
        sa.Column("org_id", sa.String(36), sa.ForeignKey("organizations.id"), nullable=False, index=True),
        sa.Column("redirect_uris", sa.JSON, nullable=False),
        sa.Column("grant_types", sa.JSON, nullable=False),
        sa.Column("scope", sa.Text, nullable=False),
        sa.Column("auth_method", sa.String(50), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("created", sa.DateTime, nullable=False),
    )
    op.create_table(
        "auth_signing_keys",
        sa.Column("kid", sa.String(100), primary_key=True),
        sa.Column("alg", sa.String(10), nullable=False),
        sa.Column("private_jwk", sa.Text, nullable=False),
        sa.Column("public_jwk", sa.JSON, nullable=False),
        sa.Column("created", sa.DateTime, nullable=False),
        sa.Column("retired_at", sa.DateTime),
    )
    op.create_table(
        "auth_codes",
        sa.Column("code_hash", sa.String(64), primary_key=True),
        sa.Column("client_id", sa.String(100), nullable=False, index=True),
        sa.Column("user_id", sa.String(36), sa.ForeignKey("auth_users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("redirect_uri", sa.Text),
        sa.Column("scope", sa.Text, nullable=False),
        sa.Column("code_challenge", sa.String(200)),
        sa.Column("code_challenge_method", sa.String(10)),
        sa.Column("expires_at", sa.DateTime, nullable=False),
    )
    op.create_table(
        "auth_refresh_tokens",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True, index=True),
        sa.Column("family_id", sa.String(36), nullable=False, index=True),
        sa.Column("client_id", sa.String(100), nullable=False, index=True),
        sa.Column("user_id", sa.String(36), sa.ForeignKey("auth_users.id", ondelete="CASCADE")),
        sa.Column("scope", sa.Text, nullable=False),
        sa.Column("access_jti", sa.String(100)),
        sa.Column("access_exp", sa.DateTime),
        sa.Column("issued_at", sa.DateTime, nullable=False),
        sa.Column("expires_at", sa.DateTime, nullable=False),
        sa.Column("used_at", sa.DateTime),
        sa.Column("revoked", sa.Boolean, nullable=False),
    )
    op.create_table(
        "auth_revoked_tokens",
        sa.Column("jti", sa.String(100), primary_key=True),
        sa.Column("expires_at", sa.DateTime),
        sa.Column("revoked_at", sa.DateTime, nullable=False),
    )
    op.create_table(
        "auth_api_tokens",
        sa.Column("id", sa.String(100), primary_key=True),
        sa.Column("user_id", sa.String(36), sa.ForeignKey("auth_users.id", ondelete="CASCADE"), nullable=False, index=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("kid", sa.String(100), nullable=False),
        sa.Column("scope", sa.Text, nullable=False),
        sa.Column("created", sa.DateTime, nullable=False),
        sa.Column("expires_at", sa.DateTime, nullable=False),
        sa.Column("last_access", sa.DateTime),
        sa.Column("revoked_at", sa.DateTime),
    )
    op.create_table(
        "auth_grants",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("dataset_id", sa.String(36), sa.ForeignKey("datasets.id", ondelete="CASCADE"), nullable=False, index=True),
        sa.Column("consumer_org_id", sa.String(36), sa.ForeignKey("organizations.id"), nullable=False, index=True),
        sa.Column("consumer_client_id", sa.String(100)),
        sa.Column("purpose", sa.Text, nullable=False),
        sa.Column("legal_basis", sa.Text, nullable=False),
        sa.Column("expires_at", sa.DateTime),
        sa.Column("created", sa.DateTime, nullable=False),
        sa.Column("created_by", sa.String(300)),
        sa.Column("revoked_at", sa.DateTime),
        sa.Column("revoked_by", sa.String(300)),
        sa.Column("revoke_reason", sa.Text),
    )
    op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("checkpoint_seq", sa.BigInteger, nullable=False),
        sa.Column("checkpoint_at", sa.DateTime),
    )
    op.bulk_insert(
        sa.table(
            "audit_head",
            sa.column("id", sa.Integer),
            sa.column("seq", sa.BigInteger),
            sa.column("hash", sa.String),
            sa.column("checkpoint_seq", sa.BigInteger),
        ),
        [{"id": 1, "seq": 0, "hash": "0" * 64, "checkpoint_seq": 0}],
    )
    op.create_table(
        "audit_entries",
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("ts", sa.DateTime, nullable=False, index=True),
        sa.Column("action", sa.String(100), nullable=False, index=True),
        sa.Column("outcome", sa.String(20), nullable=False, index=True),
        sa.Column("actor_kind", sa.String(20), nullable=False),
        sa.Column("subject", sa.String(500), index=True),
        sa.Column("actor_name", sa.String(300)),
        sa.Column("client_id", sa.String(100), index=True),
        sa.Column("org_id", sa.String(36), index=True),
        sa.Column("dataset_id", sa.String(36), index=True),
        sa.Column("snapshot_id", sa.BigInteger),
        sa.Column("rows", sa.BigInteger),
        sa.Column("grant_id", sa.String(36)),
        sa.Column("reason", sa.Text),
        sa.Column("ip", sa.String(100)),
        sa.Column("details", sa.JSON),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.create_table(
        "audit_checkpoints",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("seq", sa.BigInteger, nullable=False, index=True),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("ts", sa.DateTime, nullable=False),
        sa.Column("kid", sa.String(100), nullable=False),
        sa.Column("signature", sa.Text, nullable=False),
    )
    op.create_table(
        "auth_login_attempts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("username", sa.String(100), nullable=False, index=True),
        sa.Column("ip", sa.String(100), index=True),
        sa.Column("ts", sa.DateTime, nullable=False, index=True),
        sa.Column("success", sa.Boolean, nullable=False),
    )


def downgrade() -> None:
    for name in (
        "auth_login_attempts",
        "audit_checkpoints",
        "audit_entries",
        "audit_head",
        "auth_grants",
        "auth_api_tokens",
        "auth_revoked_tokens",
        "auth_refresh_tokens",
        "auth_codes",
        "auth_signing_keys",
        "auth_clients",
        "auth_memberships",
        "auth_users",
    ):
        op.drop_table(name)
