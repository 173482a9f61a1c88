"""The SQL console: browser sessions and saved queries (``hub.console.models``).

Revision ID: 0010_console
Revises: 0009_query_jobs
"""

import sqlalchemy as sa
from alembic import op

revision = "0010_console"
down_revision = "0009_query_jobs"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "console_sessions",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.String(36), sa.ForeignKey("auth_users.id", ondelete="CASCADE")),
        sa.Column("state", sa.String(100)),
        sa.Column("sealed", sa.Text, nullable=False),
        sa.Column("csrf", sa.String(100), nullable=False),
        sa.Column("next_path", sa.String(500), nullable=False),
        sa.Column("family_id", sa.String(36)),
        sa.Column("access_expires", sa.DateTime),
        sa.Column("created", sa.DateTime, nullable=False),
        sa.Column("last_seen", sa.DateTime, nullable=False),
        sa.Column("expires", sa.DateTime, nullable=False),
    )
    op.create_index("ix_console_sessions_user_id", "console_sessions", ["user_id"])
    op.create_index("ix_console_sessions_expires", "console_sessions", ["expires"])
    op.create_table(
        "console_saved_queries",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column(
            "owner_id", sa.String(36), sa.ForeignKey("auth_users.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("org_id", sa.String(36), sa.ForeignKey("organizations.id", ondelete="SET NULL")),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("sql", sa.Text, nullable=False),
        sa.Column("created", sa.DateTime, nullable=False),
        sa.Column("updated", sa.DateTime, nullable=False),
    )
    op.create_index("ix_console_saved_queries_owner_id", "console_saved_queries", ["owner_id"])
    op.create_index("ix_console_saved_queries_org_id", "console_saved_queries", ["org_id"])


def downgrade() -> None:
    op.drop_index("ix_console_saved_queries_org_id", table_name="console_saved_queries")
    op.drop_index("ix_console_saved_queries_owner_id", table_name="console_saved_queries")
    op.drop_table("console_saved_queries")
    op.drop_index("ix_console_sessions_expires", table_name="console_sessions")
    op.drop_index("ix_console_sessions_user_id", table_name="console_sessions")
    op.drop_table("console_sessions")
