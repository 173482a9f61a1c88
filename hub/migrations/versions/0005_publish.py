"""Releases and release files (issue 6).

Revision ID: 0005_publish
Revises: 0004_ckan
"""

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision = "0005_publish"
down_revision = "0004_ckan"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
