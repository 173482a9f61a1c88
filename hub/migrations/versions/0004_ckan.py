"""Resources, tags, groups, uploads (issue 4).

Revision ID: 0004_ckan
Revises: 0003_auth
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_ckan"
down_revision = "0003_auth"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ckan_packages",
        sa.Column("dataset_id", sa.String(36), sa.ForeignKey("datasets.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("url", sa.String(1000)),
        sa.Column("version", sa.String(100)),
        sa.Column("author", sa.String(300)),
        sa.Column("author_email", sa.String(300)),
        sa.Column("maintainer", sa.String(300)),
        sa.Column("maintainer_email", sa.String(300)),
        sa.Column("creator_user_id", sa.String(36)),
        sa.Column("extras", sa.JSON, nullable=False),
        sa.Column("fields", sa.JSON, nullable=False),
    )
    op.create_table(
        "uploads",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("filename", sa.String(300), nullable=False),
        sa.Column("path", sa.String(1000), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("mimetype", sa.String(200)),
        sa.Column("created", sa.DateTime, nullable=False),
        sa.Column("created_by", sa.String(200)),
    )
    op.create_table(
        "resources",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column(
            "dataset_id", sa.String(36), sa.ForeignKey("datasets.id", ondelete="CASCADE"), nullable=False, index=True
        ),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("name", sa.String(500)),
        sa.Column("description", sa.Text),
        sa.Column("url", sa.String(2000), nullable=False),
        sa.Column("url_type", sa.String(20)),
        sa.Column("format", sa.String(100)),
        sa.Column("mimetype", sa.String(200)),
        sa.Column("mimetype_inner", sa.String(200)),
        sa.Column("size", sa.BigInteger),
        sa.Column("hash", sa.String(200)),
        sa.Column("resource_type", sa.String(100)),
        sa.Column("upload_id", sa.String(36), sa.ForeignKey("uploads.id")),
        sa.Column("path", sa.String(1000)),
        sa.Column("extras", sa.JSON, nullable=False),
        sa.Column("created", sa.DateTime, nullable=False),
        sa.Column("last_modified", sa.DateTime),
        sa.Column("metadata_modified", sa.DateTime, nullable=False, index=True),
    )
    op.create_table(
        "tags",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False, unique=True, index=True),
        sa.Column("vocabulary_id", sa.String(36)),
    )
    op.create_table(
        "dataset_tags",
        sa.Column("dataset_id", sa.String(36), sa.ForeignKey("datasets.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("tag_id", sa.String(36), sa.ForeignKey("tags.id", ondelete="CASCADE"), primary_key=True, index=True),
    )
    op.create_table(
        "groups",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False, unique=True, index=True),
        sa.Column("title", sa.String(300), nullable=False),
        sa.Column("title_en", sa.String(300)),
        sa.Column("description", sa.Text),
        sa.Column("image_url", sa.String(500)),
        sa.Column("extras", sa.JSON, nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("created", sa.DateTime, nullable=False),
        sa.Column("modified", sa.DateTime, nullable=False),
    )
    op.create_table(
        "dataset_groups",
        sa.Column("dataset_id", sa.String(36), sa.ForeignKey("datasets.id", ondelete="CASCADE"), primary_key=True),
        sa.Column(
            "group_id", sa.String(36), sa.ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True, index=True
        ),
    )


def downgrade() -> None:
    for name in ("dataset_groups", "groups", "dataset_tags", "tags", "resources", "uploads", "ckan_packages"):
        op.drop_table(name)
