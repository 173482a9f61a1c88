"""Metadata models of registered connector instances, their encrypted secrets, and dataset schedules."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from hub.db import Base, new_id, utcnow


class ConnectorInstance(Base):
    """A connector configured by an agency at run time (``hub connectors add``, ``POST /api/v1/connectors``).

    ``config`` holds secret *references* only (``{"$secret": "<instance>/<key>"}``); the values are in
    ``connector_secrets``, encrypted."""

    __tablename__ = "connector_instances"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(100), unique=True, index=True)
    connector: Mapped[str] = mapped_column(String(100))
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    owner_org_id: Mapped[str | None] = mapped_column(ForeignKey("organizations.id"), index=True)
    description: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str | None] = mapped_column(String(200))
    created: Mapped[datetime] = mapped_column(default=utcnow)
    modified: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class ConnectorSecret(Base):
    """One secret value, encrypted with a key derived from ``HUB_SECRET_KEY``."""

    __tablename__ = "connector_secrets"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(300), unique=True, index=True)
    instance_id: Mapped[str] = mapped_column(
        ForeignKey("connector_instances.id", ondelete="CASCADE"), index=True
    )
    ciphertext: Mapped[str] = mapped_column(Text)
    created: Mapped[datetime] = mapped_column(default=utcnow)

    def __repr__(self) -> str:  # never the ciphertext
        return f"ConnectorSecret(name={self.name!r})"


class DatasetSchedule(Base):
    """Scheduling state of a dataset: the worker's lease (one run at a time) and the last attempt."""

    __tablename__ = "dataset_schedules"

    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), primary_key=True)
    lease_holder: Mapped[str | None] = mapped_column(String(200))
    lease_expires: Mapped[datetime | None] = mapped_column()
    last_started_at: Mapped[datetime | None] = mapped_column()
    last_finished_at: Mapped[datetime | None] = mapped_column()
    last_status: Mapped[str | None] = mapped_column(String(20))
    last_error: Mapped[str | None] = mapped_column(Text)
    last_run_id: Mapped[str | None] = mapped_column(String(36))
    failures: Mapped[int] = mapped_column(Integer, default=0)
    retry_at: Mapped[datetime | None] = mapped_column()
