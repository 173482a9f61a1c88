"""Connector registrations, secrets, schedules (issue 3).

Revision ID: 0002_connectors
Revises: 0001_foundation
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_connectors"
down_revision = "0001_foundation"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "connector_instances",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False, unique=True, index=True),
        sa.Column("connector", sa.String(100), nullable=False),
        sa.Column("config", sa.JSON, nullable=False),
        sa.Column("owner_org_id", sa.String(36), sa.ForeignKey("organizations.id"), index=True),
        sa.Column("description", sa.Text),
        sa.Column("created_by", sa.String(200)),
        sa.Column("created", sa.DateTime, nullable=False),
        sa.Column("modified", sa.DateTime, nullable=False),
    )
    op.create_table(
        "connector_secrets",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("name", sa.String(300), nullable=False, unique=True, index=True),
        sa.Column(
            "instance_id",
            sa.String(36),
            sa.ForeignKey("connector_instances.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("ciphertext", sa.Text, nullable=False),
        sa.Column("created", sa.DateTime, nullable=False),
    )
    op.create_table(
        "dataset_schedules",
        sa.Column("dataset_id", sa.String(36), sa.ForeignKey("datasets.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("lease_holder", sa.String(200)),
        sa.Column("lease_expires", sa.DateTime),
        sa.Column("last_started_at", sa.DateTime),
        sa.Column("last_finished_at", sa.DateTime),
        sa.Column("last_status", sa.String(20)),
        sa.Column("last_error", sa.Text),
        sa.Column("last_run_id", sa.String(36)),
        sa.Column("failures", sa.Integer, nullable=False, server_default="0"),
        sa.Column("retry_at", sa.DateTime),
    )


def downgrade() -> None:
    op.drop_table("dataset_schedules")
    op.drop_table("connector_secrets")
    op.drop_table("connector_instances")
