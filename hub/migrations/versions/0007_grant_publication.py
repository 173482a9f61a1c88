"""Grants say whether their purpose allows publication (a release of the consumer may use the data).

Revision ID: 0007_grant_publication
Revises: 0006_run_changes
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_grant_publication"
down_revision = "0006_run_changes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("auth_grants") as batch:
        batch.add_column(
            sa.Column("allow_publication", sa.Boolean, nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("auth_grants") as batch:
        batch.drop_column("allow_publication")
