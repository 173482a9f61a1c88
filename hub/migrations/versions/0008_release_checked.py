"""Releases remember when they were last checked and what the check found; versions carry the
fingerprint of their content, so that a rebuild of unchanged data makes no new version.

Revision ID: 0008_release_checked
Revises: 0007_grant_publication
"""

import sqlalchemy as sa
from alembic import op

revision = "0008_release_checked"
down_revision = "0007_grant_publication"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("releases") as batch:
        batch.add_column(sa.Column("last_checked", sa.DateTime))
        batch.add_column(sa.Column("last_outcome", sa.String(20)))
    with op.batch_alter_table("release_versions") as batch:
        batch.add_column(sa.Column("content_sha256", sa.String(64)))
    # a release built before this revision was last checked when it was last built
    op.execute(
        "UPDATE releases SET last_checked = last_built, last_outcome = 'built' WHERE last_built IS NOT NULL"
    )


def downgrade() -> None:
    with op.batch_alter_table("release_versions") as batch:
        batch.drop_column("content_sha256")
    with op.batch_alter_table("releases") as batch:
        batch.drop_column("last_outcome")
        batch.drop_column("last_checked")
