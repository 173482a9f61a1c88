"""Resources, tags, groups, uploads (issue 4).

Revision ID: 0004_ckan
Revises: 0003_auth
"""

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision = "0004_ckan"
down_revision = "0003_auth"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
