"""Metadata of open-data releases: releases, their versions, and the files of each version."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from hub.db import Base, new_id, utcnow

BUILT, UNCHANGED, EMPTY = "built", "unchanged", "empty"
"""Outcomes of a release build (``Release.last_outcome``)."""


class Release(Base):
    """A release definition of a dataset (from its catalog file or ``POST /api/v1/releases``).

    ``last_built`` is when the latest version's files were written; ``last_checked`` is when a build
    last ran to its end, whether it made a version or not, and ``last_outcome`` what it found
    (``BUILT``, ``UNCHANGED``: the data was that of the latest version, ``EMPTY``: no rows, nothing
    published). Freshness (``hub.publish.freshness.is_stale``) counts from ``last_checked``.
    """

    __tablename__ = "releases"
    __table_args__ = (UniqueConstraint("dataset_id", "name", name="uq_releases_dataset_name"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(80))
    title: Mapped[str] = mapped_column(String(500))
    title_en: Mapped[str | None] = mapped_column(String(500))
    spec: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    origin: Mapped[str] = mapped_column(String(20), default="catalog")  # catalog | api
    state: Mapped[str] = mapped_column(String(20), default="active")
    created: Mapped[datetime] = mapped_column(default=utcnow)
    modified: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    last_built: Mapped[datetime | None] = mapped_column()
    last_checked: Mapped[datetime | None] = mapped_column()
    last_outcome: Mapped[str | None] = mapped_column(String(20))  # built | unchanged | empty
    last_error: Mapped[str | None] = mapped_column(Text)

    versions: Mapped[list[ReleaseVersion]] = relationship(
        back_populates="release", order_by="ReleaseVersion.version", cascade="all, delete-orphan"
    )


class ReleaseVersion(Base):
    """One build of a release: its files stay downloadable after later builds."""

    __tablename__ = "release_versions"
    __table_args__ = (UniqueConstraint("release_id", "version", name="uq_release_versions_version"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    release_id: Mapped[str] = mapped_column(ForeignKey("releases.id", ondelete="CASCADE"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    built_at: Mapped[datetime] = mapped_column(default=utcnow)
    rows: Mapped[int] = mapped_column(BigInteger, default=0)
    suppressed: Mapped[int] = mapped_column(Integer, default=0)
    sources: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # dataset key -> snapshot id
    lineage: Mapped[list[Any]] = mapped_column(JSON, default=list)
    path: Mapped[str] = mapped_column(String(1000))  # relative to settings.data_dir
    triggered_by: Mapped[str | None] = mapped_column(String(200))
    content_sha256: Mapped[str | None] = mapped_column(String(64))
    """Fingerprint of the version's data and description (``hub.publish.files.ReleaseContent``): a
    build whose fingerprint equals the latest version's makes no new version."""

    release: Mapped[Release] = relationship(back_populates="versions")
    files: Mapped[list[ReleaseFile]] = relationship(
        back_populates="version", order_by="ReleaseFile.name", cascade="all, delete-orphan"
    )


class ReleaseFile(Base):
    """A file of a release version, with its size and SHA-256."""

    __tablename__ = "release_files"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    version_id: Mapped[str] = mapped_column(ForeignKey("release_versions.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    format: Mapped[str] = mapped_column(String(40))
    media_type: Mapped[str] = mapped_column(String(100))
    path: Mapped[str] = mapped_column(String(1000))  # relative to settings.data_dir
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    resource_id: Mapped[str | None] = mapped_column(String(36))
    is_data: Mapped[bool] = mapped_column(Boolean, default=True)

    version: Mapped[ReleaseVersion] = relationship(back_populates="files")
