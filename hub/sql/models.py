"""Metadata of the analysts' door: query jobs and each client's daily use.

- ``QueryJob``: one ``POST /api/v1/queries``: who owns it, its SQL, its state and progress, the
  snapshots it read, and its result file (``DATA_DIR/query-results/<id>.parquet``) until it expires.
  Jobs are recorded so that every API process sees them and a restart shows them; ``runner`` names the
  process that runs a job (``host:pid:nonce``) and ``heartbeat_at`` when it last said so, so that a job
  whose process is gone is marked failed ("interrupted") instead of staying "running" for ever.
- ``QueryUsage``: rows returned to one client on one day, counted when ``HUB_QUERY_CLIENT_DAILY_ROWS``
  sets a quota.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Date, Float, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from hub.db import Base, new_id, utcnow

QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED = "queued", "running", "succeeded", "failed", "cancelled"
"""The states of a job; the last three are final."""
FINAL = (SUCCEEDED, FAILED, CANCELLED)
UNFINISHED = (QUEUED, RUNNING)


class QueryJob(Base):
    """A query run in the background, its progress and its result file (see the module docstring)."""

    __tablename__ = "query_jobs"
    __table_args__ = (
        Index("ix_query_jobs_owner_created", "owner", "created"),
        Index("ix_query_jobs_status", "status"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    owner: Mapped[str] = mapped_column(String(300))
    """The caller who may see it (``hub.sql.limits.client_key``: ``client:<id>`` or ``user:<id>``)."""
    sql: Mapped[str] = mapped_column(Text)
    as_of: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(20), default=QUEUED)
    rows: Mapped[int] = mapped_column(BigInteger, default=0)
    """Rows written so far (the final count once it succeeded)."""
    result_bytes: Mapped[int | None] = mapped_column(BigInteger)
    snapshots: Mapped[list[Any]] = mapped_column(JSON, default=list)
    """``[{"table": key, "snapshot": id}, ...]``: what the job reads (a release: its version)."""
    error: Mapped[str | None] = mapped_column(Text)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    created: Mapped[datetime] = mapped_column(default=utcnow)
    started: Mapped[datetime | None] = mapped_column()
    finished: Mapped[datetime | None] = mapped_column()
    seconds: Mapped[float | None] = mapped_column(Float)
    """Seconds it ran (from start to end; while running, as of the last progress update)."""
    result_path: Mapped[str | None] = mapped_column(String(1000))
    """The result file, relative to DATA_DIR; None before it succeeded and once it expired."""
    expires: Mapped[datetime | None] = mapped_column()
    runner: Mapped[str | None] = mapped_column(String(200))
    heartbeat_at: Mapped[datetime | None] = mapped_column()


class QueryUsage(Base):
    """Rows returned to one client on one day (Vietnam time), for ``HUB_QUERY_CLIENT_DAILY_ROWS``."""

    __tablename__ = "query_usage"

    client: Mapped[str] = mapped_column(String(300), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    queries: Mapped[int] = mapped_column(Integer, default=0)
    rows: Mapped[int] = mapped_column(BigInteger, default=0)
