"""Uploaded resource files: stored under ``DATA_DIR/uploads``, with a size limit and a SHA-256.

A caller may pass ``check``: it sees the complete file (a temporary path) before it is stored, and refuses
it by raising (the privacy scan of uploads to open datasets, ``hub.catalog.privacy_scan``)."""

from __future__ import annotations

import hashlib
import mimetypes
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from hub.catalog.ckan_models import Upload
from hub.db import new_id
from hub.errors import InvalidInputError
from hub.settings import Settings

CHUNK = 1024 * 1024


def upload_path(settings: Settings, upload: Upload) -> Path:
    return settings.data_dir / upload.path


def store_upload(
    settings: Settings,
    session: Session,
    fileobj: Any,
    filename: str,
    *,
    created_by: str | None = None,
    check: Callable[[Path], None] | None = None,
) -> Upload:
    """Copy ``fileobj`` (an ``UploadFile`` or any object with ``read``) into the upload store.

    Gives CKAN's 409 ``{"upload": ["File upload too large"]}`` past ``settings.upload_max_bytes``.
    ``check(path)`` runs on the whole file before it takes its place; what it raises leaves nothing."""
    uid = new_id()
    rel = Path("uploads") / uid[:2] / uid
    target = settings.data_dir / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".part")
    digest = hashlib.sha256()
    size = 0
    source = getattr(fileobj, "file", fileobj)
    try:
        with open(tmp, "wb") as out:
            while True:
                chunk = source.read(CHUNK)
                if not chunk:
                    break
                size += len(chunk)
                if size > settings.upload_max_bytes:
                    raise InvalidInputError("File upload too large", {"upload": ["File upload too large"]})
                digest.update(chunk)
                out.write(chunk)
        if check is not None:
            check(tmp)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()
    mimetype = getattr(fileobj, "content_type", None)
    if not mimetype or mimetype == "application/octet-stream":
        mimetype = mimetypes.guess_type(filename)[0] or mimetype
    upload = Upload(
        id=uid,
        filename=filename,
        path=str(rel),
        size=size,
        sha256=digest.hexdigest(),
        mimetype=mimetype,
        created_by=created_by,
    )
    session.add(upload)
    session.flush()
    return upload
