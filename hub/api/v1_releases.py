"""Open-data releases: ``/api/v1/releases`` and the public release files.

- ``GET /api/v1/releases``: every active release with its versions, files and ``stale`` flag (public).
- ``GET /api/v1/releases/{dataset}/{release}``: one release.
- ``POST /api/v1/releases`` ``{"dataset": key, ...ReleaseSpec}``: define (or replace) a release;
  needs ``catalog:write`` and editor rights on the owning organization; the gate checks it first
  (422 naming the column and its source when refused).
- ``POST /api/v1/releases/{dataset}/{release}/build``: build a new version now (same rights).
- ``GET /dataset/{dataset}/release/{release}/{version}/{file}``: a release file, no login (any
  version stays downloadable), with ETag (its SHA-256) and Cache-Control. Data files are attachments
  (``?bom=1`` on a CSV adds a UTF-8 BOM for Excel); ``README.md``, ``datapackage.json`` and
  ``SHA256SUMS`` open in the browser (``inline``, UTF-8).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from pydantic import ValidationError
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool
from starlette.responses import FileResponse, Response, StreamingResponse

from hub.api.dcat import cached
from hub.api.deps import HubDep, SessionDep, SettingsDep, V1PrincipalDep
from hub.api.errors import InvalidBodyError, dumps, loads_json
from hub.auth import access, audit
from hub.auth.principal import Principal
from hub.catalog.loader import get_dataset
from hub.catalog.models import Dataset
from hub.errors import AccessDeniedError, InvalidInputError, NotFoundError
from hub.publish.build import (
    build_release,
    check_message,
    check_release,
    get_release,
    sync_releases,
    upsert_release,
)
from hub.publish.freshness import is_stale
from hub.publish.models import Release, ReleaseFile, ReleaseVersion
from hub.publish.resources import release_file_url
from hub.publish.spec import ReleaseSpec
from hub.settings import Settings

router = APIRouter(tags=["releases"])
CACHE = "public, max-age=60"
MAX_VERSION = 2**31 - 1


def release_dict(settings: Settings, ds: Dataset, rel: Release) -> dict[str, Any]:
    return {
        "dataset": ds.key,
        "dataset_name": ds.name,
        "id": rel.name,
        "title": {"vi": rel.title, "en": rel.title_en},
        "spec": rel.spec,
        "origin": rel.origin,
        "last_built": rel.last_built.isoformat() if rel.last_built else None,
        # a rebuild of unchanged data makes no version: "unchanged, checked at ...; version 2 stays current"
        "last_checked": rel.last_checked.isoformat() if rel.last_checked else None,
        "last_outcome": rel.last_outcome,
        "last_check": (
            check_message(
                rel.last_outcome, rel.last_checked, max((v.version for v in rel.versions), default=None)
            )
            if rel.last_checked
            else None
        ),
        # the message may quote the warehouse (a DuckDB error): only its owners see it (`hub releases list`)
        "last_build_failed": rel.last_error is not None,
        "stale": is_stale(rel),
        "versions": [
            {
                "version": v.version,
                "built_at": v.built_at.isoformat(),
                "rows": v.rows,
                "suppressed": v.suppressed,
                "sources": v.sources,
                "content_sha256": v.content_sha256,
                "files": [
                    {
                        "name": f.name,
                        "format": f.format,
                        "media_type": f.media_type,
                        "size": f.size,
                        "sha256": f.sha256,
                        "url": release_file_url(settings, ds, rel, v.version, f.name),
                    }
                    for f in v.files
                ],
            }
            for v in rel.versions
        ],
    }


@router.get("/api/v1/releases", summary="Open-data releases (public)")
async def list_releases(request: Request, settings: SettingsDep, session: SessionDep) -> Response:
    def work() -> dict[str, Any]:
        sync_releases(session)
        session.commit()
        rows = session.execute(
            select(Release, Dataset).join(Dataset, Release.dataset_id == Dataset.id)
            .where(Release.state == "active", Dataset.state == "active").order_by(Dataset.name, Release.name)
        ).all()  # fmt: skip
        return {"releases": [release_dict(settings, ds, rel) for rel, ds in rows]}

    return cached(request, dumps(await run_in_threadpool(work)), "application/json", CACHE)


@router.get("/api/v1/releases/{dataset}/{release}", summary="One open-data release (public)")
async def show_release(
    dataset: str, release: str, request: Request, settings: SettingsDep, session: SessionDep
) -> Response:
    def work() -> dict[str, Any]:
        ds, rel = get_release(session, dataset, release)
        return release_dict(settings, ds, rel)

    return cached(request, dumps(await run_in_threadpool(work)), "application/json", CACHE)


def _require_writer(session: Any, principal: Principal, ds: Dataset, action: str) -> None:
    decision = access.can_write(session, principal, ds.owner_org_id)
    allowed = decision.allowed and principal.has_scope("catalog:write")
    audit.record(session, action, principal, outcome="allowed" if allowed else "denied", dataset_id=ds.id,
                 reason=decision.reason)  # fmt: skip
    session.commit()
    if not allowed:
        raise AccessDeniedError(
            f"{action} on {ds.key} needs catalog:write and editor rights on its organization"
        )


def _inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with its ``$defs`` references replaced by the definitions (for ``openapi_extra``)."""
    defs = schema.pop("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return walk(defs[ref.removeprefix("#/$defs/")])
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    out: dict[str, Any] = walk(schema)
    return out


def _release_body_schema() -> dict[str, Any]:
    schema = _inline_refs(ReleaseSpec.model_json_schema())
    schema["properties"] = {
        "dataset": {"type": "string", "description": "Dataset key (civil_status.births), id or name."},
        **schema["properties"],
    }
    schema["required"] = ["dataset", *schema.get("required", [])]
    schema["title"] = "ReleaseIn"
    return schema


_RELEASE_BODY = {
    "requestBody": {"required": True, "content": {"application/json": {"schema": _release_body_schema()}}}
}


@router.post(
    "/api/v1/releases",
    status_code=201,
    summary="Define or replace a release (catalog:write)",
    openapi_extra=_RELEASE_BODY,
)
async def create_release(
    request: Request, settings: SettingsDep, session: SessionDep, principal: V1PrincipalDep
) -> dict[str, Any]:
    raw_body = await request.body()
    if not raw_body.strip():
        raise InvalidBodyError("the body is empty: send a JSON object with 'dataset' and the release fields")
    body = loads_json(raw_body, settings)
    if not isinstance(body, dict) or "dataset" not in body:
        raise InvalidInputError("body must be a JSON object with 'dataset' and the release fields")

    def work() -> dict[str, Any]:
        raw = dict(body)
        ds = get_dataset(session, str(raw.pop("dataset")))
        _require_writer(session, principal, ds, "release.define")
        try:
            rel = ReleaseSpec.model_validate(raw)
        except ValidationError as exc:
            errors: dict[str, list[str]] = {}
            for e in exc.errors():
                errors.setdefault(".".join(str(p) for p in e["loc"]) or "body", []).append(e["msg"])
            raise InvalidInputError("invalid release definition", errors) from exc
        check_release(settings, session, ds, rel)  # PublishError (422) when refused
        row = upsert_release(session, ds, rel, origin="api")
        session.commit()
        return release_dict(settings, ds, row)

    return await run_in_threadpool(work)


@router.post("/api/v1/releases/{dataset}/{release}/build", summary="Build a new version now (catalog:write)")
async def build(
    dataset: str,
    release: str,
    settings: SettingsDep,
    hub: HubDep,
    session: SessionDep,
    principal: V1PrincipalDep,
) -> dict[str, Any]:
    def work() -> dict[str, Any]:
        ds, _ = get_release(session, dataset, release)
        _require_writer(session, principal, ds, "release.build")
        build_release(hub, ds.key, release, triggered_by=principal.subject or principal.kind)
        session.expire_all()
        ds, rel = get_release(session, dataset, release)
        return release_dict(settings, ds, rel)

    return await run_in_threadpool(work)


@router.get("/dataset/{dataset}/release/{release}/{version}/{name}", summary="A release file (no login)")
async def release_file(
    dataset: str, release: str, version: int, name: str, request: Request, settings: SettingsDep,
    session: SessionDep,
) -> Response:  # fmt: skip
    def work() -> ReleaseFile:
        ds, rel = get_release(session, dataset, release)
        if not 1 <= version <= MAX_VERSION:  # no such version; the database's integers end at 2**63
            raise NotFoundError(f"release {ds.key}/{release} has no version {version}")
        f = session.scalar(
            select(ReleaseFile).join(ReleaseVersion, ReleaseFile.version_id == ReleaseVersion.id)
            .where(ReleaseVersion.release_id == rel.id, ReleaseVersion.version == version)
            .where(ReleaseFile.name == name)
        )  # fmt: skip
        if f is None or not (settings.data_dir / f.path).is_file():
            raise NotFoundError(f"release {ds.key}/{release} has no file {name!r} in version {version}")
        return f

    f = await run_in_threadpool(work)
    path = settings.data_dir / f.path
    bom = f.format == "csv" and request.query_params.get("bom", "").lower() in ("1", "true", "yes")
    etag = f'"{f.sha256}{"-bom" if bom else ""}"'
    # the description of a version opens in the browser; its data files are downloads
    disposition = "attachment" if f.is_data else "inline"
    headers = {
        "ETag": etag,
        "Cache-Control": "public, max-age=86400, immutable",
        "Content-Disposition": f'{disposition}; filename="{f.name}"',
    }
    if etag in [t.strip() for t in request.headers.get("if-none-match", "").split(",")]:
        return Response(status_code=304, headers=headers)
    textual = f.media_type.startswith("text/") or f.media_type.endswith("json")
    media = f.media_type + ("; charset=utf-8" if textual else "")
    if bom:  # a UTF-8 byte order mark first, so that Excel reads the CSV as UTF-8
        headers["Content-Length"] = str(len(UTF8_BOM) + f.size)
        return StreamingResponse(_with_bom(path), media_type=media, headers=headers)
    return FileResponse(path, media_type=media, headers=headers)


UTF8_BOM = b"\xef\xbb\xbf"


def _with_bom(path: Path) -> Iterator[bytes]:
    yield UTF8_BOM
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 16):
            yield chunk
