"""Releases and release files (issue 6).

Revision ID: 0005_publish
Revises: 0004_ckan
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_publish"
down_revision = "0004_ckan"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "releases",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("dataset_id", sa.String(36), sa.ForeignKey("datasets.id", ondelete="CASCADE"),
                  nullable=False, index=True),
        sa.Column("name", sa.String(80), nullable=False),
        sa.Column("title", sa.String(500), nullable=False),
        sa.Column("title_en", sa.String(500)),
        sa.Column("spec", sa.JSON, nullable=False),
        sa.Column("origin", sa.String(20), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("created", sa.DateTime, nullable=False),
        sa.Column("modified", sa.DateTime, nullable=False),
        sa.Column("last_built", sa.DateTime),
        sa.Column("last_error", sa.Text),
        sa.UniqueConstraint("dataset_id", "name", name="uq_releases_dataset_name"),
    )
    op.create_table(
        "release_versions",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("release_id", sa.String(36), sa.ForeignKey("releases.id", ondelete="CASCADE"),
                  nullable=False, index=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("built_at", sa.DateTime, nullable=False),
        sa.Column("rows", sa.BigInteger, nullable=False),
        sa.Column("suppressed", sa.Integer, nullable=False),
        sa.Column("sources", sa.JSON, nullable=False),
        sa.Column("lineage", sa.JSON, nullable=False),
        sa.Column("path", sa.String(1000), nullable=False),
        sa.Column("triggered_by", sa.String(200)),
        sa.UniqueConstraint("release_id", "version", name="uq_release_versions_version"),
    )
    op.create_table(
        "release_files",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("version_id", sa.String(36), sa.ForeignKey("release_versions.id", ondelete="CASCADE"),
                  nullable=False, index=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("format", sa.String(40), nullable=False),
        sa.Column("media_type", sa.String(100), nullable=False),
        sa.Column("path", sa.String(1000), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("resource_id", sa.String(36)),
        sa.Column("is_data", sa.Boolean, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("release_files")
    op.drop_table("release_versions")
    op.drop_table("releases")
