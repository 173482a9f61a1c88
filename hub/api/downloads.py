"""Downloads: ``/dataset/{id}/resource/{rid}/download/{filename}`` and ``/datastore/dump/{rid}``.

- uploads and release files are served from disk (Content-Length, Range, ETag);
- links answer 302 to their URL;
- a DataStore resource streams its dataset's current snapshot as CSV (``?bom=1`` adds a UTF-8 BOM for
  Excel), TSV, Parquet, JSON lines or GeoJSON (datasets with a WKT ``geometry`` column or
  latitude/longitude), chosen by the file name's extension or ``?format=``. Rows are streamed batch by
  batch in constant memory and written through to a per-snapshot cache file, so later downloads of the
  same snapshot are served from disk with Content-Length and Range. ETags are the snapshot id and the
  format. Text formats are gzip-compressed when the client accepts it (Range then does not apply).
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
import uuid
import zlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import FileResponse, RedirectResponse, Response, StreamingResponse

from hub.api import download_formats as fmts
from hub.api.deps import app_session_factory
from hub.api.uploads import upload_path
from hub.auth.authorize import authorize_read
from hub.auth.resolve import resolve_principal
from hub.catalog.ckan import munge_filename
from hub.catalog.ckan_models import Resource, Upload
from hub.catalog.models import Dataset
from hub.errors import AccessDenied, NotFoundError
from hub.settings import Settings
from hub.warehouse.datastore import TableInfo

router = APIRouter(tags=["downloads"])
_EXT = {
    "csv": "csv",
    "tsv": "tsv",
    "parquet": "parquet",
    "jsonl": "jsonl",
    "ndjson": "jsonl",
    "json": "jsonl",
    "geojson": "geojson",
}


class _Plan:
    """What one download serves, decided inside the database session."""

    def __init__(self, kind: str, **kw: object) -> None:
        self.kind = kind
        self.__dict__.update(kw)


def _plan(request: Request, dataset_ref: str | None, rid: str) -> _Plan:
    settings: Settings = request.app.state.settings
    session = app_session_factory(request)()
    try:
        r = session.get(Resource, rid)
        if r is None or r.state != "active":
            raise NotFoundError("Resource not found")
        ds = session.get(Dataset, r.dataset_id)
        if ds is None or ds.state != "active" or (dataset_ref not in (None, ds.id, ds.name)):
            raise NotFoundError("Resource not found")
        datastore = request.app.state.hub.datastore
        if ds.sharing != "open":
            principal = resolve_principal(
                request.headers, request.client.host if request.client else None, settings, "ckan"
            )
            auth = authorize_read(
                session,
                principal,
                ds,
                "download",
                scope="datastore:read",
                defer=True,
                details={"resource_id": r.id},
                error=lambda _d: AccessDenied(
                    f"not authorized to download resource {rid} of dataset {ds.id}"
                ),
            )
            # a whole-table download returns every row of the snapshot
            table = datastore.table_info(ds.key) if r.kind == "datastore" else None
            auth.record(snapshot_id=table.snapshot_id if table else None, rows=table.rows if table else None)
            session.commit()
        if r.kind == "datastore":
            info = datastore.table_info(ds.key) if ds.contract else None
            if info is None:
                raise NotFoundError("Resource not found: the dataset's table has no data yet")
            return _Plan("datastore", info=info, name=ds.name, rid=r.id)
        if r.kind == "release" and r.path:
            return _Plan(
                "file",
                path=settings.data_dir / r.path,
                mimetype=r.mimetype,
                etag=r.hash,
                filename=munge_filename(Path(r.path).name),
            )
        if r.upload_id:
            up = session.get(Upload, r.upload_id)
            if up is None:
                raise NotFoundError("Resource file not found")
            return _Plan(
                "file",
                path=upload_path(settings, up),
                mimetype=r.mimetype or up.mimetype,
                etag=up.sha256,
                filename=munge_filename(r.url or up.filename),
            )
        if r.url:
            url = r.url if "://" in r.url else "http://" + r.url
            return _Plan("redirect", url=url)
        raise NotFoundError("Resource has no file")
    finally:
        session.close()


def _format(filename: str | None, request: Request) -> str:
    wanted = request.query_params.get("format")
    if wanted:
        fmt = _EXT.get(wanted.lower().lstrip("."))
    else:
        ext = (filename or "").rsplit(".", 1)[-1].lower() if filename and "." in filename else "csv"
        fmt = _EXT.get(ext)
    if fmt is None:
        raise NotFoundError(f"unknown download format; use one of {', '.join(sorted(set(_EXT.values())))}")
    return fmt


def _gzip(chunks: Iterator[bytes]) -> Iterator[bytes]:
    z = zlib.compressobj(1, zlib.DEFLATED, 31)
    for chunk in chunks:
        out = z.compress(chunk)
        if out:
            yield out
    yield z.flush()


class _Producer:
    """Runs a blocking chunk generator in ONE dedicated thread, handing chunks over a bounded queue.

    Arrow allocates per thread (mimalloc heaps); producing every chunk on the same thread keeps the
    server's memory flat, and the bounded queue keeps at most a few chunks in flight."""

    _END = object()

    def __init__(self, chunks: Iterator[bytes], depth: int = 4) -> None:
        self._queue: queue.Queue[object] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._chunks = chunks
        threading.Thread(target=self._run, name="download-producer", daemon=True).start()

    def _run(self) -> None:
        try:
            for chunk in self._chunks:
                while not self._stop.is_set():
                    try:
                        self._queue.put(chunk, timeout=0.5)
                        break
                    except queue.Full:
                        continue
                if self._stop.is_set():
                    break
        except BaseException as exc:  # handed to the consumer
            self._queue.put(exc)
        finally:
            close = getattr(self._chunks, "close", None)
            if close is not None:
                close()
            self._queue.put(self._END)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            while True:
                item = await run_in_threadpool(self._queue.get)
                if item is self._END:
                    return
                if isinstance(item, BaseException):
                    raise item
                assert isinstance(item, bytes)
                yield item
        finally:
            self._stop.set()


def _read_file(path: Path, chunk: int = 1024 * 1024) -> Iterator[bytes]:
    with open(path, "rb") as f:
        while block := f.read(chunk):
            yield block


def _write_through(chunks: Iterator[bytes], target: Path) -> Iterator[bytes]:
    """Yield ``chunks`` and keep a copy at ``target`` once the whole stream was produced."""
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(f".{target.name}.{uuid.uuid4().hex}.part")
    complete = False
    try:
        with open(part, "wb") as f:
            for chunk in chunks:
                f.write(chunk)
                yield chunk
        complete = True
        os.replace(part, target)
        for old in target.parent.iterdir():
            if (
                old != target
                and not old.name.startswith(".")
                and not old.name.startswith(target.stem.split("-")[0])
            ):
                with contextlib.suppress(OSError):
                    old.unlink()
    finally:
        if not complete:
            with contextlib.suppress(OSError):
                part.unlink()


def _datastore_response(request: Request, plan: _Plan, fmt: str) -> Response:
    settings: Settings = request.app.state.settings
    info: TableInfo = plan.info  # type: ignore[attr-defined]
    bom = fmt == "csv" and request.query_params.get("bom", "").lower() in ("1", "true", "yes")
    variant = f"{info.snapshot_id}{'-bom' if bom else ''}"
    etag = f'"{variant}-{fmt}"'
    filename = f"{plan.name}.{fmt}"  # type: ignore[attr-defined]
    headers = {
        "ETag": etag,
        "Content-Disposition": f'attachment; filename="{filename}"',
        "Cache-Control": "public, max-age=60",
        "Vary": "Accept-Encoding",
    }
    if etag in [t.strip() for t in request.headers.get("if-none-match", "").split(",")]:
        return Response(status_code=304, headers=headers)
    media = fmts.FORMATS[fmt]
    gzip_ok = fmt in fmts.TEXT_FORMATS and "gzip" in request.headers.get("accept-encoding", "").lower()
    cache = settings.data_dir / "cache" / "downloads" / plan.rid / f"{variant}.{fmt}"  # type: ignore[attr-defined]
    if fmt == "parquet" and len(info.files) == 1 and not cache.exists():
        return FileResponse(info.files[0], media_type=media, headers=headers)
    if cache.exists():
        if gzip_ok:
            headers["Content-Encoding"] = "gzip"
            return StreamingResponse(_gzip(_read_file(cache)), media_type=media, headers=headers)
        return FileResponse(cache, media_type=media, headers=headers)
    rows = fmts.batches(info.files, info.schema)
    if fmt in ("csv", "tsv"):
        body = fmts.encode_csv(rows, info.schema, tsv=fmt == "tsv", bom=bom)
    elif fmt == "parquet":
        body = fmts.encode_parquet(rows, info.schema)
    elif fmt == "geojson":
        if fmts.geometry_kind(info.schema) is None:
            raise NotFoundError("this dataset has no geometry (a WKT geometry column or latitude/longitude)")
        body = fmts.encode_geojson(rows, info.schema)
    else:
        body = fmts.encode_jsonl(rows, info.schema)
    body = _write_through(body, cache)
    if gzip_ok:
        headers["Content-Encoding"] = "gzip"
        body = _gzip(body)
    return StreamingResponse(_Producer(body).__aiter__(), media_type=media, headers=headers)


async def _download(request: Request, dataset_ref: str | None, rid: str, filename: str | None) -> Response:
    plan = await run_in_threadpool(_plan, request, dataset_ref, rid)
    if plan.kind == "redirect":
        return RedirectResponse(plan.url, status_code=302)  # type: ignore[attr-defined]
    if plan.kind == "file":
        path: Path = plan.path  # type: ignore[attr-defined]
        if not path.is_file():
            raise NotFoundError("Resource file not found")
        headers = {"Content-Disposition": f'attachment; filename="{plan.filename}"'}  # type: ignore[attr-defined]
        if plan.etag:  # type: ignore[attr-defined]
            headers["ETag"] = f'"{plan.etag}"'  # type: ignore[attr-defined]
        return FileResponse(
            path,
            media_type=plan.mimetype or "application/octet-stream",  # type: ignore[attr-defined]
            headers=headers,
        )
    return await run_in_threadpool(_datastore_response, request, plan, _format(filename, request))


async def download(dataset_id: str, resource_id: str, filename: str, request: Request) -> Response:
    """A resource's file; for a DataStore resource the extension chooses csv, tsv, parquet, jsonl or
    geojson (``?bom=1``: CSV with a UTF-8 BOM for Excel)."""
    return await _download(request, dataset_id, resource_id, filename)


async def download_unnamed(dataset_id: str, resource_id: str, request: Request) -> Response:
    return await _download(request, dataset_id, resource_id, None)


async def datastore_dump(resource_id: str, request: Request) -> Response:
    """CKAN's bulk download URL of a DataStore resource (``?format=csv|tsv|json|parquet&bom=1``)."""
    return await _download(request, None, resource_id, None)


for _method in ("GET", "HEAD"):
    _doc = _method == "GET"
    router.add_api_route(
        "/dataset/{dataset_id}/resource/{resource_id}/download/{filename}",
        download,
        methods=[_method],
        include_in_schema=_doc,
        summary="Download a resource",
    )
    router.add_api_route(
        "/dataset/{dataset_id}/resource/{resource_id}/download",
        download_unnamed,
        methods=[_method],
        include_in_schema=False,
    )
    router.add_api_route(
        "/datastore/dump/{resource_id}",
        datastore_dump,
        methods=[_method],
        include_in_schema=_doc,
        summary="CKAN DataStore dump",
    )
