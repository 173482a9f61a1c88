"""The analysts' door: query jobs (``/api/v1/queries``) and each client's daily use of the SQL door.

Revision ID: 0009_query_jobs
Revises: 0008_release_checked
"""

import sqlalchemy as sa
from alembic import op

revision = "0009_query_jobs"
down_revision = "0008_release_checked"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "query_jobs",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("owner", sa.String(300), nullable=False),
        sa.Column("sql", sa.Text, nullable=False),
        sa.Column("as_of", sa.JSON, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("rows", sa.BigInteger, nullable=False),
        sa.Column("result_bytes", sa.BigInteger),
        sa.Column("snapshots", sa.JSON, nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("cancel_requested", sa.Boolean, nullable=False),
        sa.Column("created", sa.DateTime, nullable=False),
        sa.Column("started", sa.DateTime),
        sa.Column("finished", sa.DateTime),
        sa.Column("seconds", sa.Float),
        sa.Column("result_path", sa.String(1000)),
        sa.Column("expires", sa.DateTime),
        sa.Column("runner", sa.String(200)),
        sa.Column("heartbeat_at", sa.DateTime),
    )
    op.create_index("ix_query_jobs_owner_created", "query_jobs", ["owner", "created"])
    op.create_index("ix_query_jobs_status", "query_jobs", ["status"])
    op.create_table(
        "query_usage",
        sa.Column("client", sa.String(300), primary_key=True),
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("queries", sa.Integer, nullable=False),
        sa.Column("rows", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("query_usage")
    op.drop_index("ix_query_jobs_status", table_name="query_jobs")
    op.drop_index("ix_query_jobs_owner_created", table_name="query_jobs")
    op.drop_table("query_jobs")
