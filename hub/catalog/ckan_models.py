"""CKAN-side metadata of the catalogue: resources, tags, groups, uploads and the CKAN fields of a
package that the core ``Dataset`` model does not carry.

``Dataset`` and ``Organization`` (``hub.catalog.models``) are CKAN's package and organization:
``Dataset.name`` is the CKAN slug, ``Dataset.sharing != "open"`` is CKAN's ``private``.

Resource kinds (``Resource.kind``):

- ``datastore``: the dataset's warehouse table, served by the DataStore API and the download route
  (one per dataset; its id is ``datastore_resource_id(dataset.id)``, stable across restarts);
- ``upload``: a file uploaded through ``resource_create``/``resource_update`` (``Upload`` row);
- ``link``: a URL given by the client;
- ``release``: a file of an open-data release (written by ``hub.publish``).
"""

from __future__ import annotations

import functools
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from hub.db import Base, new_id, utcnow

RESOURCE_KINDS = ("datastore", "upload", "link", "release")
_DATASTORE_NS = uuid.UUID("6f1f8f0e-4b8e-5c57-9a55-6c1e5d1f3b10")


@functools.lru_cache(maxsize=65_536)
def datastore_resource_id(dataset_id: str) -> str:
    """The stable id of a dataset's DataStore resource (uuid5 of the dataset id)."""
    return str(uuid.uuid5(_DATASTORE_NS, dataset_id))


class PackageInfo(Base):
    """The CKAN package fields of a dataset beyond the core model (one row per dataset, optional)."""

    __tablename__ = "ckan_packages"

    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), primary_key=True)
    url: Mapped[str | None] = mapped_column(String(1000))
    version: Mapped[str | None] = mapped_column(String(100))
    author: Mapped[str | None] = mapped_column(String(300))
    author_email: Mapped[str | None] = mapped_column(String(300))
    maintainer: Mapped[str | None] = mapped_column(String(300))
    maintainer_email: Mapped[str | None] = mapped_column(String(300))
    creator_user_id: Mapped[str | None] = mapped_column(String(36))
    extras: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    fields: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    """Other top-level keys a client sent (custom schema fields), echoed back."""


class Resource(Base):
    """A CKAN resource of a dataset."""

    __tablename__ = "resources"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(20), default="link")
    position: Mapped[int] = mapped_column(Integer, default=0)
    state: Mapped[str] = mapped_column(String(20), default="active")
    name: Mapped[str | None] = mapped_column(String(500))
    description: Mapped[str | None] = mapped_column(Text)
    url: Mapped[str] = mapped_column(String(2000), default="")
    url_type: Mapped[str | None] = mapped_column(String(20))
    format: Mapped[str | None] = mapped_column(String(100))
    mimetype: Mapped[str | None] = mapped_column(String(200))
    mimetype_inner: Mapped[str | None] = mapped_column(String(200))
    size: Mapped[int | None] = mapped_column(BigInteger)
    hash: Mapped[str | None] = mapped_column(String(200))
    resource_type: Mapped[str | None] = mapped_column(String(100))
    upload_id: Mapped[str | None] = mapped_column(ForeignKey("uploads.id"))
    path: Mapped[str | None] = mapped_column(String(1000))
    """For ``release`` resources: the file's path relative to ``settings.data_dir``."""
    extras: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created: Mapped[datetime] = mapped_column(default=utcnow)
    last_modified: Mapped[datetime | None] = mapped_column()
    metadata_modified: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow, index=True)


class Upload(Base):
    """A stored upload: ``DATA_DIR/uploads/<id[:2]>/<id>``, with its size and SHA-256."""

    __tablename__ = "uploads"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    filename: Mapped[str] = mapped_column(String(300))
    path: Mapped[str] = mapped_column(String(1000))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    mimetype: Mapped[str | None] = mapped_column(String(200))
    created: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(200))


class Tag(Base):
    """A free tag (``vocabulary_id`` is null) or a vocabulary tag."""

    __tablename__ = "tags"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(100), unique=True, index=True)
    vocabulary_id: Mapped[str | None] = mapped_column(String(36))


class DatasetTag(Base):
    __tablename__ = "dataset_tags"

    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), primary_key=True)
    tag_id: Mapped[str] = mapped_column(
        ForeignKey("tags.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class Group(Base):
    """A CKAN group: a theme (lĩnh vực) datasets belong to."""

    __tablename__ = "groups"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(100), unique=True, index=True)
    title: Mapped[str] = mapped_column(String(300))
    title_en: Mapped[str | None] = mapped_column(String(300))
    description: Mapped[str | None] = mapped_column(Text)
    image_url: Mapped[str | None] = mapped_column(String(500))
    extras: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    state: Mapped[str] = mapped_column(String(20), default="active")
    created: Mapped[datetime] = mapped_column(default=utcnow)
    modified: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class DatasetGroup(Base):
    __tablename__ = "dataset_groups"

    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), primary_key=True)
    group_id: Mapped[str] = mapped_column(
        ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True, index=True
    )


__all__ = [
    "RESOURCE_KINDS",
    "DatasetGroup",
    "DatasetTag",
    "Group",
    "PackageInfo",
    "Resource",
    "Tag",
    "Upload",
    "datastore_resource_id",
]
