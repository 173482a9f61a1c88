"""Foundation: organizations, datasets, runs.

Revision ID: 0001_foundation
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001_foundation"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "organizations",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False, unique=True, index=True),
        sa.Column("title", sa.String(300), nullable=False),
        sa.Column("title_en", sa.String(300)),
        sa.Column("description", sa.Text),
        sa.Column("description_en", sa.Text),
        sa.Column("image_url", sa.String(500)),
        sa.Column("email", sa.String(200)),
        sa.Column("extras", sa.JSON, nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("created", sa.DateTime, nullable=False),
        sa.Column("modified", sa.DateTime, nullable=False),
    )
    op.create_table(
        "datasets",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("key", sa.String(200), nullable=False, unique=True, index=True),
        sa.Column("name", sa.String(100), nullable=False, unique=True, index=True),
        sa.Column("owner_org_id", sa.String(36), sa.ForeignKey("organizations.id"), index=True),
        sa.Column("title", sa.String(500), nullable=False),
        sa.Column("title_en", sa.String(500)),
        sa.Column("notes", sa.Text),
        sa.Column("notes_en", sa.Text),
        sa.Column("sharing", sa.String(20), nullable=False),
        sa.Column("license_id", sa.String(100)),
        sa.Column("contract", sa.String(300)),
        sa.Column("spec", sa.JSON, nullable=False),
        sa.Column("source_file", sa.String(1000)),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("created", sa.DateTime, nullable=False),
        sa.Column("modified", sa.DateTime, nullable=False),
    )
    op.create_table(
        "runs",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("dataset_id", sa.String(36), sa.ForeignKey("datasets.id"), nullable=False, index=True),
        sa.Column("status", sa.String(20), nullable=False, index=True),
        sa.Column("mode", sa.String(20), nullable=False),
        sa.Column("started_at", sa.DateTime, nullable=False),
        sa.Column("finished_at", sa.DateTime),
        sa.Column("rows_read", sa.BigInteger, nullable=False),
        sa.Column("rows_loaded", sa.BigInteger, nullable=False),
        sa.Column("rows_quarantined", sa.BigInteger, nullable=False),
        sa.Column("bytes_read", sa.BigInteger, nullable=False),
        sa.Column("seconds", sa.Float),
        sa.Column("snapshot_id", sa.BigInteger),
        sa.Column("error", sa.Text),
        sa.Column("error_code", sa.String(100)),
        sa.Column("reasons", sa.JSON),
        sa.Column("state_before", sa.JSON),
        sa.Column("state_after", sa.JSON),
        sa.Column("pid", sa.Integer),
        sa.Column("hostname", sa.String(200)),
        sa.Column("triggered_by", sa.String(200)),
    )


def downgrade() -> None:
    op.drop_table("runs")
    op.drop_table("datasets")
    op.drop_table("organizations")
