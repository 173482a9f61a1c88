"""The analysts' door over HTTP: ``/api/v1/query`` (results streamed) and ``/api/v1/queries`` (jobs).

- ``POST /api/v1/query`` ``{"sql", "as_of", "format", "bom"}`` (or ``GET /api/v1/query?sql=...``):
  one read-only SELECT through the one SQL door (``hub.sql.door``, ``API_QUERY``: the SQL policy,
  tables named by dataset key, ``releases."<id>"``, ``AT (VERSION => id)`` / ``AT (TIMESTAMP =>
  '...')`` and ``as_of`` per table, ``authorize_read`` with the scope ``warehouse:query``), run in a
  query worker and streamed batch by batch in constant memory as Arrow IPC stream, Parquet, CSV
  (``bom``: UTF-8 BOM for Excel), TSV or JSON lines (values under ``hub.warehouse.values``' rule),
  chosen by ``format`` or ``Accept``; CSV when neither says. No row cap: the caller's daily quota
  (``HUB_QUERY_CLIENT_DAILY_ROWS``) and the time limit bound it.
- ``X-Hub-Snapshots`` names what was read: ``<dataset key>=<snapshot id>`` for each table (a
  release: ``<dataset key>/<release id>=<version>``), comma-separated, in the order the query names them.
- The first batch is read before the answer starts, so a query that fails is an error status (RFC 9457
  problem JSON), not a cut file; an error after that cuts the body (no final chunk: clients report an
  incomplete read). Reads of non-open data are audited when the stream ends, with the rows returned
  or the error; refusals at once. A table the caller may not read is answered exactly as one that
  does not exist (the audit log holds the reason).
- Per client (``hub.sql.limits``): ``HUB_QUERY_CLIENT_CONCURRENCY`` queries at once (429 with
  ``Retry-After`` beyond); the hub's own limits (workers, queue: 503 with ``Retry-After``) apply too.
- Jobs (``hub.sql.jobs``, callers with a token): ``POST /api/v1/queries`` (202, the job),
  ``GET /api/v1/queries`` (the caller's jobs), ``GET /api/v1/queries/{id}`` (status, progress),
  ``POST /api/v1/queries/{id}/cancel`` and ``DELETE /api/v1/queries/{id}`` (cancel; on a finished
  job, delete its result now), ``GET /api/v1/queries/{id}/result?format=`` (every format above). A
  job of another caller is not found (404); an expired result is gone (410).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.responses import FileResponse, Response

from hub.api import download_formats as fmts
from hub.api.deps import HubDep, V1PrincipalDep
from hub.api.errors import InvalidBodyError, dumps, preferred
from hub.api.streaming import Producer, QueryRows, Streamed, gzip_chunks
from hub.auth.principal import Principal
from hub.errors import AuthenticationError, HubError
from hub.runtime import Hub
from hub.sql import door
from hub.sql.limits import Slot, client_key
from hub.sql.models import SUCCEEDED, QueryJob
from hub.warehouse.engine.pool import ResultStream
from hub.warehouse.values import json_columns, json_rows

router = APIRouter(prefix="/api/v1", tags=["query"])

Format = Literal["arrow", "parquet", "csv", "tsv", "jsonl"]
MEDIA: dict[str, str] = {
    "csv": "text/csv; charset=utf-8",
    "arrow": "application/vnd.apache.arrow.stream",
    "parquet": "application/vnd.apache.parquet",
    "jsonl": "application/x-ndjson",
    "tsv": "text/tab-separated-values; charset=utf-8",
}
"""The formats, the default (CSV) first; ``Accept`` chooses among these media types."""
_EXTENSION = {"arrow": "arrows", "parquet": "parquet", "csv": "csv", "tsv": "tsv", "jsonl": "jsonl"}
_NAMES = {"arrows": "arrow", "ipc": "arrow", "ndjson": "jsonl", **{f: f for f in MEDIA}}
_TEXT = ("csv", "tsv", "jsonl")
_TRUE = ("1", "true", "yes", "on")
SNAPSHOTS_HEADER = "X-Hub-Snapshots"


class NotAcceptableError(HubError):
    """``Accept`` names none of the formats (406)."""

    code = "not_acceptable"
    http_status = 406


class QueryIn(BaseModel):
    """A query: the SQL, and optionally the snapshot or time to read each table at."""

    model_config = ConfigDict(extra="forbid")

    sql: str = Field(description='One SELECT; tables by dataset key (civil_status.births), releases."<id>".')
    as_of: dict[str, str | int] = Field(
        default_factory=dict,
        description='Per dataset key, a snapshot id or an ISO time: {"civil_status.births": 123}. A table '
        "written with AT (VERSION => ...) or AT (TIMESTAMP => ...) in the SQL keeps its own.",
    )
    format: str | None = Field(default=None, description="arrow, parquet, csv, tsv or jsonl (else Accept).")
    bom: bool = Field(default=False, description="CSV/TSV with a UTF-8 BOM, for Excel.")


# --- formats ----------------------------------------------------------------------------------


def choose_format(given: str | None, accept: str | None) -> str:
    """The format ``given`` by name, else the one ``Accept`` ranks first (CSV without either)."""
    if given:
        fmt = _NAMES.get(given.lower().lstrip("."))
        if fmt is None:
            raise InvalidBodyError(f"unknown format {given!r}; use one of {', '.join(MEDIA)}")
        return fmt
    offers = [m.split(";")[0] for m in MEDIA.values()]
    chosen = preferred(accept, offers)
    if accept and not any(
        r.split(";")[0].strip() in ("*/*", chosen, chosen.split("/")[0] + "/*") for r in accept.split(",")
    ):
        raise NotAcceptableError(f"no format matches Accept: {accept}; use one of {', '.join(offers)}")
    return next(f for f, m in MEDIA.items() if m.startswith(chosen))


class _Sink:
    """A write-only file for Arrow's writers that hands over what was written."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.closed = False

    def write(self, data: Any) -> int:
        self.chunks.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def drain(self) -> bytes:
        out = b"".join(self.chunks)
        self.chunks.clear()
        return out


_END_OF_STREAM = b"\xff\xff\xff\xff\x00\x00\x00\x00"


def encode_arrow(
    rows: Iterator[pa.RecordBatch] | Iterator[tuple[pa.RecordBatch, bytearray]], schema: pa.Schema
) -> Iterator[bytes]:
    """The Arrow IPC stream format: the schema, then one message per batch, then the end marker.

    ``rows``: batches, or batches with the IPC message each came in from a query worker
    (``QueryRows.messages``), which is then passed on as it is. Without dictionary columns (the query
    workers send none) each batch's encapsulated message is written as it is, byte for byte what the
    stream writer makes, without the writer's many small copies."""
    if not any(pa.types.is_dictionary(f.type) for f in schema):
        yield schema.serialize().to_pybytes()
        for item in rows:
            batch, message = item if isinstance(item, tuple) else (item, None)
            if message is not None and batch.schema.equals(schema):
                yield message
                continue
            if batch.schema != schema:
                batch = batch.cast(schema)
            yield batch.serialize().to_pybytes()
        yield _END_OF_STREAM
        return
    sink = _Sink()
    with pa.ipc.new_stream(sink, schema) as writer:
        for item in rows:
            writer.write_batch(item[0] if isinstance(item, tuple) else item)
            yield sink.drain()
    yield sink.drain()


def encode_jsonl(rows: Iterator[pa.RecordBatch], schema: pa.Schema) -> Iterator[bytes]:
    """One JSON object per row, values under the hub's JSON rule (``hub.warehouse.values``)."""
    names = schema.names
    for batch in rows:
        for start in range(0, batch.num_rows, 8192):
            part = batch.slice(start, 8192)
            yield b"".join(orjson.dumps(dict(zip(names, r, strict=True))) + b"\n" for r in json_rows(part))


def _text_ready(rows: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """Batches CSV can write: intervals (which Arrow's CSV writer refuses) as ISO 8601 durations."""
    for batch in rows:
        odd = [i for i, f in enumerate(batch.schema) if pa.types.is_interval(f.type)]
        if odd:
            texts = json_columns(pa.record_batch([batch.column(i) for i in odd], names=[str(i) for i in odd]))
            cols = list(batch.columns)
            for i, values in zip(odd, texts, strict=True):
                cols[i] = pa.array(values, pa.string())
            batch = pa.record_batch(cols, names=batch.schema.names)
        yield batch


def encode(fmt: str, rows: Iterator[pa.RecordBatch], schema: pa.Schema, *, bom: bool) -> Iterator[bytes]:
    if fmt == "arrow":
        return encode_arrow(rows, schema)
    if fmt == "parquet":
        return fmts.encode_parquet(rows, schema)
    if fmt == "jsonl":
        return encode_jsonl(rows, schema)
    return fmts.encode_csv(_text_ready(rows), schema, tsv=fmt == "tsv", bom=bom)


def snapshots_header(snapshots: list[tuple[str, int | None]]) -> str:
    return ", ".join(f"{key}={'none' if snap is None else snap}" for key, snap in snapshots)


def _headers(fmt: str, name: str, snapshots: list[tuple[str, int | None]]) -> dict[str, str]:
    return {
        "Content-Disposition": f'attachment; filename="{name}.{_EXTENSION[fmt]}"',
        "Cache-Control": "no-store",
        SNAPSHOTS_HEADER: snapshots_header(snapshots),
    }


def _gzip_ok(request: Request, fmt: str) -> bool:
    return fmt in _TEXT and "gzip" in request.headers.get("accept-encoding", "").lower()


# --- /api/v1/query ----------------------------------------------------------------------------


class _Run(QueryRows):
    """One query's stream: its batches counted; at its end (once) the stream closed, the reads audited
    with the rows returned (or the error), the session ended and the client's slot freed."""

    def __init__(self, result: ResultStream, prepared: door.Prepared, session: Session, slot: Slot) -> None:
        super().__init__(result)
        self.prepared = prepared
        self.session = session
        self.slot = slot

    def guard(self, body: Iterator[bytes]) -> Iterator[bytes]:
        """``body`` (the encoded batches), an encoder's failure recorded as the query's error."""
        try:
            yield from body
        except Exception as exc:
            self.error = self.error or f"the result could not be written: {str(exc).splitlines()[0][:300]}"
            raise

    def close(self, error: str | None = None) -> None:
        if self._closed:
            return
        self._closed = True
        self.error = self.error or error
        rows = self.result.rows
        try:
            self.result.close()
            self.prepared.audit("error" if self.error else "allowed", rows, self.error)
            self.session.commit()
        finally:
            self.session.close()
            self.slot.release(rows)


def _start(hub: Hub, principal: Principal, query: QueryIn, fmt: str, gzip: bool) -> Response:
    slot = hub.query_limits.acquire(principal)
    session = hub.session_factory()
    try:
        result, prepared = door.stream(hub, session, principal, query.sql, door.API_QUERY, as_of=query.as_of)
    except BaseException:
        session.close()
        slot.release()
        raise
    run = _Run(result, prepared, session, slot)
    try:
        if fmt == "arrow":  # the workers' IPC messages passed on
            body = encode_arrow(run.messages(), result.schema)
        else:
            body = encode(fmt, run.batches(), result.schema, bom=query.bom and fmt in ("csv", "tsv"))
        run.prime()
    except HubError as exc:
        run.close(exc.message)
        raise
    except BaseException:
        run.close("interrupted")
        raise
    body = run.guard(body)
    headers = _headers(fmt, "query", [(r.source.key, r.source.snapshot_id) for r in prepared.reads])
    if gzip:
        headers["Content-Encoding"] = "gzip"
        body = gzip_chunks(body)
    headers["Vary"] = "Accept, Accept-Encoding"
    return Streamed(Producer(body, finish=run.close), media_type=MEDIA[fmt], headers=headers)


@router.post("/query", summary="Run one SQL query; the result streamed as Arrow, Parquet, CSV or JSON lines")
async def post_query(query: QueryIn, request: Request, hub: HubDep, principal: V1PrincipalDep) -> Response:
    fmt = choose_format(query.format, request.headers.get("accept"))
    return await run_in_threadpool(_start, hub, principal, query, fmt, _gzip_ok(request, fmt))


def _as_of_params(values: list[str]) -> dict[str, str | int]:
    out: dict[str, str | int] = {}
    for value in values:
        key, sep, when = value.partition("=")
        if not sep or not key.strip() or not when.strip():
            raise InvalidBodyError(f"as_of={value!r}: write as_of=<dataset key>=<snapshot id or ISO time>")
        out[key.strip()] = when.strip()
    return out


@router.get("/query", summary="Run one SQL query given in the URL (?sql=...), streamed as POST answers it")
async def get_query(
    request: Request,
    hub: HubDep,
    principal: V1PrincipalDep,
    sql: str = Query(description="One SELECT."),
    format: str | None = Query(default=None, description="arrow, parquet, csv, tsv or jsonl."),
    as_of: list[str] = Query(default=[], description="<dataset key>=<snapshot id or ISO time> (repeatable)."),
    bom: str = Query(default="", description="1: CSV/TSV with a UTF-8 BOM (Excel)."),
) -> Response:
    query = QueryIn(sql=sql, as_of=_as_of_params(as_of), format=format, bom=bom.lower() in _TRUE)
    fmt = choose_format(query.format, request.headers.get("accept"))
    return await run_in_threadpool(_start, hub, principal, query, fmt, _gzip_ok(request, fmt))


# --- /api/v1/queries: jobs --------------------------------------------------------------------


def _owner(principal: Principal) -> str:
    if principal.is_anonymous:
        raise AuthenticationError(
            "query jobs belong to their caller: send a token (Authorization: Bearer ...); "
            "without one, use POST /api/v1/query"
        )
    return client_key(principal)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat() + "Z"


def job_dict(hub: Hub, job: QueryJob) -> dict[str, Any]:
    url = f"{hub.settings.site_url.rstrip('/')}/api/v1/queries/{job.id}"
    result = None
    if job.status == SUCCEEDED and job.result_path:
        result = {
            "rows": job.rows,
            "bytes": job.result_bytes,
            "expires": _iso(job.expires),
            "formats": {f: f"{url}/result?format={f}" for f in MEDIA},
        }
    return {
        "id": job.id,
        "url": url,
        "status": job.status,
        "sql": job.sql,
        "as_of": job.as_of,
        "snapshots": job.snapshots,
        "progress": {"rows": job.rows, "seconds": round(job.seconds or 0.0, 3)},
        "created": _iso(job.created),
        "started": _iso(job.started),
        "finished": _iso(job.finished),
        "error": job.error,
        "cancel_requested": job.cancel_requested,
        "result": result,
    }


def _json(content: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(dumps(content), status, media_type="application/json", headers=dict(headers or {}))


@router.post("/queries", status_code=202, summary="Submit a query as a job (its result kept as a file)")
async def submit_job(query: QueryIn, hub: HubDep, principal: V1PrincipalDep) -> Response:
    owner = _owner(principal)

    def work() -> QueryJob:
        return hub.jobs.submit(
            owner,
            query.sql,
            query.as_of,
            lambda s: door.prepare(hub, s, principal, query.sql, door.API_QUERY, as_of=query.as_of),
        )

    job = await run_in_threadpool(work)
    body = job_dict(hub, job)
    return _json(body, 202, {"Location": body["url"]})


@router.get("/queries", summary="The caller's query jobs, newest first")
async def list_jobs(hub: HubDep, principal: V1PrincipalDep) -> Response:
    owner = _owner(principal)
    jobs = await run_in_threadpool(hub.jobs.jobs_of, owner)
    return _json({"queries": [job_dict(hub, j) for j in jobs]})


@router.get("/queries/{job_id}", summary="A query job: status, progress, snapshots, result")
async def show_job(job_id: str, hub: HubDep, principal: V1PrincipalDep) -> Response:
    job = await run_in_threadpool(hub.jobs.get, job_id, _owner(principal))
    return _json(job_dict(hub, job))


@router.post("/queries/{job_id}/cancel", summary="Cancel a query job (its worker is freed)")
async def cancel_job(job_id: str, hub: HubDep, principal: V1PrincipalDep) -> Response:
    job = await run_in_threadpool(hub.jobs.cancel, job_id, _owner(principal))
    return _json(job_dict(hub, job))


@router.delete("/queries/{job_id}", summary="Cancel a query job, or delete a finished job's result now")
async def delete_job(job_id: str, hub: HubDep, principal: V1PrincipalDep) -> Response:
    job = await run_in_threadpool(hub.jobs.discard, job_id, _owner(principal))
    return _json(job_dict(hub, job))


@router.get("/queries/{job_id}/result", summary="A query job's result in any format")
async def job_result(
    job_id: str,
    request: Request,
    hub: HubDep,
    principal: V1PrincipalDep,
    format: str | None = Query(default=None, description="arrow, parquet, csv, tsv or jsonl."),
    bom: str = Query(default="", description="1: CSV/TSV with a UTF-8 BOM (Excel)."),
) -> Response:
    owner = _owner(principal)
    fmt = choose_format(format, request.headers.get("accept"))
    job = await run_in_threadpool(hub.jobs.get, job_id, owner)
    path = await run_in_threadpool(hub.jobs.result_file, job_id, owner)
    snapshots = [(str(s.get("table")), s.get("snapshot")) for s in job.snapshots]
    headers = _headers(fmt, f"query-{job_id}", snapshots)
    if fmt == "parquet":
        return FileResponse(path, media_type=MEDIA[fmt], headers=headers)
    gzip = _gzip_ok(request, fmt)
    with_bom = bom.lower() in _TRUE and fmt in ("csv", "tsv")
    body = _file_body(path, fmt, with_bom)
    if gzip:
        headers["Content-Encoding"] = "gzip"
        body = gzip_chunks(body)
    return Streamed(Producer(body), media_type=MEDIA[fmt], headers=headers)


def _file_body(path: Path, fmt: str, bom: bool) -> Iterator[bytes]:
    schema = pq.read_schema(path)
    return encode(fmt, fmts.batches((str(path),), schema), schema, bom=bom)
