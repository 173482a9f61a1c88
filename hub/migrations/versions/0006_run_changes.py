"""Runs record their changes by primary key (upsert: inserted/updated; replace: added/deleted).

Revision ID: 0006_run_changes
Revises: 0005_publish
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_run_changes"
down_revision = "0005_publish"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("changes", sa.JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("changes")
