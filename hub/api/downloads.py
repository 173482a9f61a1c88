"""Downloads: ``/dataset/{id}/resource/{rid}/download/{filename}`` and ``/datastore/dump/{rid}``.

- uploads and release files are served from disk (Content-Length, Range, ETag);
- links answer 302 to their URL;
- a DataStore resource's download is its dataset's current snapshot as CSV (``?bom=1`` adds a UTF-8
  BOM for Excel), TSV, Parquet, JSON lines, CKAN's JSON object, XML or GeoJSON (datasets with a WKT
  ``geometry`` column or latitude/longitude), chosen by the file name's extension or ``?format=``;
- ``/datastore/dump/{rid}`` is CKAN's dump of a DataStore resource: ``?format=csv|tsv|json|xml`` (and
  the hub's parquet, jsonl, geojson), ``bom``, with CKAN's ``_id`` first. With ``q``, ``filters``,
  ``fields``, ``sort``, ``distinct``, ``offset`` or ``limit`` the rows are selected by the DataStore's
  own SELECT (``DataStore.select_sql``, the checks and errors of datastore_search) run in a query
  worker, and streamed batch by batch as the worker sends them.

A whole snapshot is streamed from its files in constant memory and written through to a cache file per
snapshot and format variant, so later downloads of the same snapshot are served from disk with
Content-Length and Range. ETags are the snapshot id, the variant (and the query) and the format. Text
formats are gzip-compressed when the client accepts it (Range then does not apply).

Reads of non-open datasets are decided and audited by ``authorize_read``: a whole snapshot with its
row count at once, a dump with parameters when its stream ends, with the rows the query returned (or
the error, as the SQL doors do).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import FileResponse, RedirectResponse, Response, StreamingResponse

from hub.api import download_formats as fmts
from hub.api.ckan_registry import as_bool, as_int, as_json, as_list
from hub.api.deps import app_session_factory
from hub.api.streaming import Producer as _Producer
from hub.api.streaming import QueryRows
from hub.api.streaming import Streamed as _Streamed
from hub.api.streaming import gzip_chunks as _gzip
from hub.api.uploads import upload_path
from hub.auth.authorize import Authorization, authorize_read
from hub.auth.resolve import resolve_principal
from hub.catalog.ckan import munge_filename
from hub.catalog.ckan_models import Resource, Upload
from hub.catalog.models import Dataset
from hub.errors import AccessDeniedError, BusyError, HubError, InvalidInputError, NotFoundError, QueryError
from hub.runtime import Hub
from hub.settings import Settings
from hub.warehouse.datastore import TABLE, SearchQuery, TableInfo
from hub.warehouse.engine.pool import ResultStream

log = logging.getLogger("hub.api.downloads")
router = APIRouter(tags=["downloads"])
_EXT = {
    "csv": "csv",
    "tsv": "tsv",
    "parquet": "parquet",
    "jsonl": "jsonl",
    "ndjson": "jsonl",
    "json": "json",
    "xml": "xml",
    "geojson": "geojson",
}
_QUERY_KEYS = ("q", "filters", "fields", "sort", "distinct", "offset", "limit")
"""CKAN's dump parameters that select rows (any of them sends the dump through a query worker)."""
_TRUE = ("1", "true", "yes", "on", "t", "y")


@dataclass(frozen=True)
class DumpQuery:
    """The rows a dump selects: datastore_search's parameters, and ``limit`` (None: every row)."""

    search: SearchQuery
    limit: int | None
    given: dict[str, Any]
    """The parameters as parsed (the audit entry's details, and the ETag's key)."""

    def key(self) -> str:
        return hashlib.sha256(orjson.dumps(self.given, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


def dump_query(request: Request) -> DumpQuery | None:
    """CKAN's dump parameters of ``request`` checked as datastore_search checks them (409 with the same
    field map); None when none of them is given."""
    data = {k: v for k in _QUERY_KEYS if (v := request.query_params.get(k, "")) != ""}
    if not data:
        return None
    filters = as_json(data, "filters")
    q = as_json(data, "q")
    fields = as_list(data, "fields", comma=True)
    sort = as_list(data, "sort", comma=True)
    search = SearchQuery(
        filters=filters,
        q=q if isinstance(q, str | dict) else None,
        distinct=as_bool(data, "distinct", False),
        fields=[str(f) for f in fields] if fields else None,
        sort=[str(s) for s in sort] if sort else None,
        offset=as_int(data, "offset", 0) or 0,
    )
    limit = as_int(data, "limit", None)
    given = {"filters": filters, "q": search.q, "fields": search.fields, "sort": search.sort}
    given.update(distinct=search.distinct, offset=search.offset or None, limit=limit)
    return DumpQuery(search, limit, {k: v for k, v in given.items() if v is not None and v is not False})


@dataclass
class _Plan:
    """What one download serves, decided inside the database session."""

    kind: str  # "datastore", "file" or "redirect"
    open: bool = True
    name: str = ""
    rid: str = ""
    info: TableInfo | None = None
    path: Path | None = None
    mimetype: str | None = None
    etag: str | None = None
    filename: str = ""
    url: str = ""
    auth: Authorization | None = None
    """A read of a non-open dataset whose audit entry waits for the rows a query returns."""


def _plan(
    request: Request, dataset_ref: str | None, rid: str, *, dump: bool, query: DumpQuery | None
) -> _Plan:
    settings: Settings = request.app.state.settings
    session = app_session_factory(request)()
    try:
        r = session.get(Resource, rid)
        if r is None or r.state != "active" or (dump and r.kind != "datastore"):
            raise NotFoundError("Resource not found" if not dump else "DataStore resource not found")
        ds = session.get(Dataset, r.dataset_id)
        if ds is None or ds.state != "active" or (dataset_ref not in (None, ds.id, ds.name)):
            raise NotFoundError("Resource not found")
        datastore = request.app.state.hub.datastore
        deferred = None
        if ds.sharing != "open":
            principal = resolve_principal(
                request.headers, request.client.host if request.client else None, settings, "ckan"
            )
            details: dict[str, Any] = {"resource_id": r.id}
            if query is not None:
                details["dump"] = query.given
            auth = authorize_read(
                session,
                principal,
                ds,
                "download",
                scope="datastore:read",
                defer=True,
                details=details,
                error=lambda _d: AccessDeniedError(
                    f"not authorized to download resource {rid} of dataset {ds.id}"
                ),
            )
            if r.kind == "datastore" and query is not None:
                deferred = auth  # audited with the rows the query returns
            else:
                # a whole-table download returns every row of the snapshot
                table = datastore.table_info(ds.key) if r.kind == "datastore" else None
                auth.record(
                    snapshot_id=table.snapshot_id if table else None, rows=table.rows if table else None
                )
            session.commit()
        if r.kind == "datastore":
            info = datastore.table_info(ds.key) if ds.contract else None
            if info is None:
                raise NotFoundError("Resource not found: the dataset's table has no data yet")
            open_ = ds.sharing == "open"
            return _Plan("datastore", open=open_, name=ds.name, rid=r.id, info=info, auth=deferred)
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


def _encode(fmt: str, rows: Iterator[pa.RecordBatch], schema: pa.Schema, *, bom: bool) -> Iterator[bytes]:
    if fmt in ("csv", "tsv"):
        return fmts.encode_csv(rows, schema, tsv=fmt == "tsv", bom=bom)
    if fmt == "parquet":
        return fmts.encode_parquet(rows, schema)
    if fmt == "json":
        return fmts.encode_ckan_json(rows, schema)
    if fmt == "xml":
        return fmts.encode_xml(rows, schema)
    if fmt == "geojson":
        if fmts.geometry_kind(schema) is None:
            raise NotFoundError("this dataset has no geometry (a WKT geometry column or latitude/longitude)")
        return fmts.encode_geojson(rows, schema)
    return fmts.encode_jsonl(rows, schema)


def _audit(plan: _Plan, **kw: Any) -> None:
    """Write the deferred audit entry of ``plan``'s read (once) and end its session."""
    auth = plan.auth
    if auth is None:
        return
    plan.auth = None
    try:
        auth.record(snapshot_id=plan.info.snapshot_id if plan.info else None, **kw)
        auth.session.commit()
    finally:
        auth.session.close()


def _query_error(exc: QueryError) -> QueryError | InvalidInputError:
    """A query's failure as datastore_search answers it: 409 ``{"query": [message]}`` (busy: 503)."""
    if isinstance(exc, BusyError):
        return exc
    return InvalidInputError("invalid query", {"query": [exc.message]})


class _QueryRows(QueryRows):
    """A dump's rows from a query worker, counted; closed and audited once, when the stream ends."""

    def __init__(self, result: ResultStream, plan: _Plan) -> None:
        super().__init__(result)
        self.plan = plan

    def close(self, error: str | None = None) -> None:
        if self._closed:
            return
        self._closed = True
        self.error = self.error or error
        complete = self.result.done and self.error is None
        self.result.close()
        _audit(
            self.plan,
            outcome="error" if self.error else "allowed",
            rows=self.result.rows,
            reason=self.error,
            details={"complete": complete},
        )


def _not_modified(request: Request, etag: str) -> bool:
    return etag in [t.strip() for t in request.headers.get("if-none-match", "").split(",")]


def _gzip_ok(request: Request, fmt: str) -> bool:
    return fmt in fmts.TEXT_FORMATS and "gzip" in request.headers.get("accept-encoding", "").lower()


def _head(media: str, headers: dict[str, str]) -> Response:
    """HEAD of a streamed body: GET's headers (no Content-Length, as GET sends none) and no body; the
    body is neither produced nor queried."""
    return StreamingResponse(iter(()), media_type=media, headers=headers)


def _query_response(
    request: Request, plan: _Plan, fmt: str, query: DumpQuery, headers: dict[str, str], bom: bool
) -> Response:
    hub: Hub = request.app.state.hub
    info = plan.info
    assert info is not None
    try:
        sql, params = hub.datastore.select_sql(info, query.search, limit=query.limit)
    except InvalidInputError as exc:
        _audit(plan, outcome="error", reason=exc.message)
        raise
    headers["ETag"] = f'"{info.snapshot_id}-q{query.key()}{"-bom" if bom else ""}-{fmt}"'
    media = fmts.FORMATS[fmt]
    if _not_modified(request, headers["ETag"]):
        _audit(plan, outcome="allowed", rows=0, details={"not_modified": True})
        return Response(status_code=304, headers=headers)
    gzip_ok = _gzip_ok(request, fmt)
    if gzip_ok:
        headers["Content-Encoding"] = "gzip"
    if request.method == "HEAD":
        _audit(plan, outcome="allowed", rows=0, details={"head": True})
        return _head(media, headers)
    try:
        result = hub.pool.run(
            sql,
            {TABLE: info.table_source()},
            params=params,
            timeout=hub.settings.query_timeout_seconds,
            batch_rows=fmts.BATCH_ROWS,
        )
    except QueryError as exc:
        _audit(plan, outcome="error", reason=exc.message)
        raise _query_error(exc) from exc
    rows = _QueryRows(result, plan)
    try:
        body = _encode(fmt, rows.batches(), result.schema, bom=bom)
        rows.prime()
    except QueryError as exc:
        rows.close(exc.message)
        raise _query_error(exc) from exc
    except HubError as exc:
        rows.close(exc.message)
        raise
    except BaseException:
        rows.close("interrupted")
        raise
    if gzip_ok:
        body = _gzip(body)
    return _Streamed(_Producer(body, finish=rows.close), media_type=media, headers=headers)


def _datastore_response(
    request: Request, plan: _Plan, fmt: str, *, dump: bool, query: DumpQuery | None
) -> Response:
    settings: Settings = request.app.state.settings
    info = plan.info
    assert info is not None
    bom = fmt in ("csv", "tsv") and request.query_params.get("bom", "").lower() in _TRUE
    headers = {
        "Content-Disposition": f'attachment; filename="{plan.name}.{fmt}"',
        "Cache-Control": f"{'public' if plan.open else 'private'}, max-age=60",
        "Vary": "Accept-Encoding",
    }
    if query is not None:
        return _query_response(request, plan, fmt, query, headers, bom)
    variant = f"{info.snapshot_id}{'-dump' if dump else ''}{'-bom' if bom else ''}"
    headers["ETag"] = f'"{variant}-{fmt}"'
    if _not_modified(request, headers["ETag"]):
        return Response(status_code=304, headers=headers)
    media = fmts.FORMATS[fmt]
    cache = settings.data_dir / "cache" / "downloads" / plan.rid / f"{variant}.{fmt}"
    if fmt == "parquet" and not dump and len(info.files) == 1 and not cache.exists():
        return FileResponse(info.files[0], media_type=media, headers=headers)
    gzip_ok = _gzip_ok(request, fmt)
    if cache.exists() and not gzip_ok:
        return FileResponse(cache, media_type=media, headers=headers)
    if gzip_ok:
        headers["Content-Encoding"] = "gzip"
    if cache.exists():
        if request.method == "HEAD":
            return _head(media, headers)
        return StreamingResponse(_gzip(_read_file(cache)), media_type=media, headers=headers)
    rows = fmts.batches(info.files, info.schema)
    schema = info.schema
    if dump:
        rows, schema = fmts.with_row_ids(rows), fmts.with_row_id_schema(schema)
    body = _encode(fmt, rows, schema, bom=bom)
    if request.method == "HEAD":
        return _head(media, headers)
    body = _write_through(body, cache)
    if gzip_ok:
        body = _gzip(body)
    return _Streamed(_Producer(body), media_type=media, headers=headers)


async def _download(
    request: Request, dataset_ref: str | None, rid: str, filename: str | None, *, dump: bool = False
) -> Response:
    query = dump_query(request) if dump else None
    fmt = _format(filename, request) if dump else None
    plan = await run_in_threadpool(_plan, request, dataset_ref, rid, dump=dump, query=query)
    if plan.kind == "redirect":
        return RedirectResponse(plan.url, status_code=302)
    if plan.kind == "file":
        path = plan.path
        if path is None or not path.is_file():
            raise NotFoundError("Resource file not found")
        headers = {"Content-Disposition": f'attachment; filename="{plan.filename}"'}
        if plan.etag:
            headers["ETag"] = f'"{plan.etag}"'
        return FileResponse(path, media_type=plan.mimetype or "application/octet-stream", headers=headers)
    fmt = fmt or _format(filename, request)
    return await run_in_threadpool(_datastore_response, request, plan, fmt, dump=dump, query=query)


async def download(dataset_id: str, resource_id: str, filename: str, request: Request) -> Response:
    """A resource's file; for a DataStore resource the extension chooses csv, tsv, parquet, jsonl,
    json (CKAN's object), xml or geojson (``?bom=1``: CSV or TSV with a UTF-8 BOM for Excel)."""
    return await _download(request, dataset_id, resource_id, filename)


async def download_unnamed(dataset_id: str, resource_id: str, request: Request) -> Response:
    return await _download(request, dataset_id, resource_id, None)


async def datastore_dump(resource_id: str, request: Request) -> Response:
    """CKAN's dump of a DataStore resource: ``?format=csv|tsv|json|xml`` (also parquet, jsonl, geojson),
    ``bom``, and ``q``, ``filters`` (JSON), ``fields``, ``sort``, ``distinct``, ``offset``, ``limit`` as
    datastore_search takes them (every row when no ``limit`` is given)."""
    return await _download(request, None, resource_id, None, dump=True)


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
