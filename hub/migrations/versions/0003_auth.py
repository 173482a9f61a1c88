"""Principals, OAuth clients, tokens, grants, audit log (issue 5).

Revision ID: 0003_auth
Revises: 0002_connectors
"""

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision = "0003_auth"
down_revision = "0002_connectors"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
