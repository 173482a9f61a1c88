"""DataStore actions over the warehouse: datastore_search, datastore_search_sql, datastore_info.

A dataset's current snapshot is its DataStore resource (``Resource.kind == "datastore"``); the
resource id, the dataset's name or its key (``civil_status.births``) are accepted as ``resource_id``.
"""

from __future__ import annotations

import functools
import gc
import threading
import time
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from hub.api.ckan_registry import (
    ActionContext,
    action,
    as_bool,
    as_int,
    as_json,
    as_list,
    get_or_bust,
    require_read,
)
from hub.auth import access, audit
from hub.catalog.ckan_models import Resource, datastore_resource_id
from hub.catalog.models import Dataset
from hub.errors import NotFoundError, QueryError, ValidationFailed
from hub.warehouse.datastore import SearchQuery, TableInfo, ckan_type, records, search, table_info
from hub.warehouse.sandbox import VIEW_SCHEMA, get_sandbox

router = APIRouter()  # the actions are served by hub.api.ckan's dispatcher

ROWS_MAX = 32_000
_SEARCH_KEYS = {
    "resource_id",
    "id",
    "filters",
    "q",
    "full_text",
    "plain",
    "language",
    "distinct",
    "fields",
    "sort",
    "limit",
    "offset",
    "records_format",
    "include_total",
    "total_estimation_threshold",
    "include_next_page",
    "callback",
    "include_fields_schema",
    "_",
}


OPEN_TTL_SECONDS = 2.0


@dataclass(frozen=True)
class _OpenDataset:
    """What datastore_search needs of an open, active dataset (cached without a session)."""

    id: str
    key: str
    name: str
    contract: str | None
    sharing: str
    state: str


_OPEN: dict[tuple[str, str], tuple[float, _OpenDataset]] = {}
_OPEN_LOCK = threading.Lock()
_OPEN_LOADING: set[tuple[str, str]] = set()


def forget_resolved() -> None:
    """Drop the cached open-dataset lookups (any change to a dataset or resource does this)."""
    with _OPEN_LOCK:
        _OPEN.clear()


@event.listens_for(Session, "before_flush")
def _on_flush(session: Session, _ctx: Any, _instances: Any) -> None:
    if _OPEN and any(
        isinstance(o, (Dataset, Resource)) for o in (*session.new, *session.dirty, *session.deleted)
    ):
        forget_resolved()


def _resolve_open(ctx: ActionContext, ref: str) -> tuple[Dataset | _OpenDataset, str]:
    """``_resolve`` for datastore_search: an open dataset's lookup is cached for a moment, so that
    reads of open data need no metadata-database round trip. Anything else (shared, internal,
    not found) is looked up each time, exactly as ``_resolve`` does."""
    key = (str(ctx.settings.database_url), ref)
    now = time.monotonic()
    hit = _OPEN.get(key)
    if hit is not None and now - hit[0] < OPEN_TTL_SECONDS:
        return hit[1], datastore_resource_id(hit[1].id)
    with _OPEN_LOCK:
        if hit is not None and key in _OPEN_LOADING:  # another request is looking it up again
            return hit[1], datastore_resource_id(hit[1].id)
        _OPEN_LOADING.add(key)
    try:
        try:
            ds, rid = _resolve(ctx, ref)
        except NotFoundError:
            with _OPEN_LOCK:
                _OPEN.pop(key, None)
            raise
        with _OPEN_LOCK:
            if ds.sharing == "open" and ds.state == "active":
                if len(_OPEN) > 4096:
                    _OPEN.clear()
                _OPEN[key] = (now, _OpenDataset(ds.id, ds.key, ds.name, ds.contract, ds.sharing, ds.state))
            else:
                _OPEN.pop(key, None)
    finally:
        with _OPEN_LOCK:
            _OPEN_LOADING.discard(key)
    return ds, rid


_FROZEN: list[bool] = []


def _freeze_once() -> None:
    """After the first search (the DataStore's modules and caches are loaded by then), the objects
    alive are kept out of the cyclic collector's full passes, which would otherwise rescan them and
    stall the requests in flight (``gc.freeze`` moves them to the permanent generation; cheap)."""
    if not _FROZEN:
        _FROZEN.append(True)
        gc.freeze()


def _resolve(ctx: ActionContext, ref: str) -> tuple[Dataset, str]:
    """The dataset of a DataStore resource id, or of a dataset name/key used as an alias."""
    r = ctx.session.get(Resource, ref)
    ds: Dataset | None = None
    if r is not None and r.kind == "datastore" and r.state == "active":
        ds = ctx.session.get(Dataset, r.dataset_id)
    elif r is None:
        ds = ctx.session.scalar(select(Dataset).where((Dataset.name == ref) | (Dataset.key == ref)))
    if ds is None or ds.state != "active" or not ds.contract:
        raise NotFoundError(f'Resource "{ref}" was not found.')
    return ds, datastore_resource_id(ds.id)


def _table(ctx: ActionContext, ds: Dataset | _OpenDataset, ref: str) -> TableInfo:
    info = table_info(ctx.settings, ds.key)
    if info is None:
        raise NotFoundError(f'Resource "{ref}" was not found.')
    return info


@functools.lru_cache(maxsize=256)
def _field_info(schemas_dir: str, contract: str) -> dict[str, dict[str, str]]:
    try:
        from pathlib import Path

        from hub.contracts import load_contract

        c = load_contract(contract, Path(schemas_dir))
    except Exception:  # the data dictionary is optional: no labels when the contract cannot be read
        return {}
    out = {}
    for f in c.fields:
        label = f.label_vi or f.label_en or ""
        if f.label_vi and f.label_en:
            label = f"{f.label_vi} ({f.label_en})"
        out[f.name] = {"label": label, "notes": f.description or "", "type_override": ""}
    return out


def _fields(
    ctx: ActionContext, ds: Dataset | _OpenDataset, fields: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    infos = _field_info(str(ctx.settings.schemas_dir), ds.contract) if ds.contract else {}
    for f in fields:
        if f["id"] in infos:
            f["info"] = infos[f["id"]]
    return fields


def _links(ctx: ActionContext, offset: int, limit: int) -> dict[str, str]:
    if ctx.method == "GET":
        # the request's own parameters, as it encoded them, without offset (no decode and re-encode)
        params = "&".join(p for p in ctx.query_string.split("&") if p and p.split("=", 1)[0] != "offset")
        start = f"{ctx.path}?{params}" if params else ctx.path
        rest = f"&{params}" if params else ""
        links = {"start": start, "next": f"{ctx.path}?offset={offset + limit}{rest}"}
        if offset - limit > 0:
            links["prev"] = f"{ctx.path}?offset={offset - limit}{rest}"
        return links
    links = {"start": ctx.path, "next": f"{ctx.path}?offset={offset + limit}"}
    if offset - limit > 0:
        links["prev"] = f"{ctx.path}?offset={offset - limit}"
    return links


@action("datastore_search")
def datastore_search(ctx: ActionContext, data: dict[str, Any]) -> dict[str, Any]:
    """Rows of a DataStore table: filters, q, distinct, fields, sort, limit (100, at most 32000), offset."""
    unknown = sorted(k for k in data if k not in _SEARCH_KEYS)
    if unknown:
        raise ValidationFailed(
            "unknown parameters", {k: [f"The input field {k} was not expected."] for k in unknown}
        )
    ref = str(get_or_bust(data, "resource_id", "id"))
    ds, rid = _resolve_open(ctx, ref)
    require_read(ctx, ds, "datastore.search", scope="datastore:read")  # type: ignore[arg-type]
    info = _table(ctx, ds, ref)
    fmt = str(data.get("records_format") or "objects")
    if fmt not in ("objects", "lists", "csv", "tsv"):
        raise ValidationFailed("records_format", {"records_format": [f'invalid value "{fmt}"']})
    filters = as_json(data, "filters")
    q = as_json(data, "q")
    if data.get("full_text") and not q:
        q = str(data["full_text"])
    limit = min(as_int(data, "limit", 100) or 0, ROWS_MAX)
    offset = as_int(data, "offset", 0) or 0
    fields = as_list(data, "fields", comma=True)
    sort = as_list(data, "sort", comma=True)
    query = SearchQuery(
        filters=filters,
        q=q if isinstance(q, (str, dict)) else None,
        distinct=as_bool(data, "distinct", False),
        fields=[str(f) for f in fields] if fields else None,
        sort=[str(s) for s in sort] if sort else None,
        limit=limit,
        offset=offset,
        include_total=as_bool(data, "include_total", True),
    )
    res = search(ctx.settings, rid, info, query)
    _freeze_once()
    if ds.sharing != "open":
        audit.record(
            ctx.session,
            "datastore.search",
            ctx.principal,
            dataset_id=ds.id,
            snapshot_id=info.snapshot_id,
            rows=len(res.rows),
        )
    out: dict[str, Any] = {
        "resource_id": rid,
        "fields": _fields(ctx, ds, res.fields),
        "records": records(res, fmt),
        "records_format": fmt,
        "include_total": query.include_total,
        "limit": limit,
        "_links": _links(ctx, offset, limit),
        "total_was_estimated": False,
        "hub_snapshot_id": str(info.snapshot_id),
    }
    if query.include_total:
        out["total"] = res.total
    for key in ("filters", "q", "sort", "fields", "distinct", "plain", "language", "offset"):
        if key in data:
            out[key] = {"filters": filters, "q": q}.get(key, data[key])
    if as_bool(data, "include_next_page", False):
        out["include_next_page"] = True
        if not res.sort and res.last_id is not None and len(res.rows) == limit and not query.distinct:
            base = filters if isinstance(filters, dict) else ({"$or": filters} if filters else {})
            out["next_page"] = {**base, "_id": {"gt": res.last_id}}
    return out


def _sql_resolver(ctx: ActionContext, reads: list[tuple[Any, Any, Any]]) -> Any:
    """Resolves table names of a query; the non-open datasets read are collected in ``reads``
    (dataset, table info, decision), to be audited with the rows the query returned."""
    box = get_sandbox(ctx.settings)

    def resolve(name: str, schema: str | None) -> str | None:
        ref = f"{schema}.{name}" if schema else name
        if schema == VIEW_SCHEMA:
            ref = name
        try:
            ds, rid = _resolve(ctx, ref)
        except NotFoundError:
            return None
        decision = access.can_read(ctx.session, ctx.principal, ds, scope="datastore:read")
        if not decision.allowed:
            audit.record(
                ctx.session,
                "query.sql",
                ctx.principal,
                outcome="denied",
                dataset_id=ds.id,
                reason=decision.reason,
            )
            return None
        info = table_info(ctx.settings, ds.key)
        if info is None:
            return None
        if ds.sharing != "open":
            reads.append((ds, info, decision))
        return box.ensure_view(info.source(rid))

    return resolve


@action("datastore_search_sql")
def datastore_search_sql(ctx: ActionContext, data: dict[str, Any]) -> dict[str, Any]:
    """One read-only SELECT over DataStore tables (``FROM "<resource id>"``), sandboxed and time-limited."""
    sql = str(get_or_bust(data, "sql"))
    box = get_sandbox(ctx.settings)
    reads: list[tuple[Any, Any, Any]] = []

    def audit_reads(outcome: str, rows: int | None, reason: str | None = None) -> None:
        for ds, info, decision in reads:
            audit.record(
                ctx.session,
                "query.sql",
                ctx.principal,
                outcome=outcome,
                dataset_id=ds.id,
                snapshot_id=info.snapshot_id,
                rows=rows,
                grant_id=decision.grant_id,
                reason=reason or decision.reason,
                details={"sql": sql[:2000]},
            )

    try:
        table, truncated = box.run_select(
            sql, _sql_resolver(ctx, reads), max_rows=ROWS_MAX, timeout=ctx.settings.query_timeout_seconds
        )
    except QueryError as exc:
        audit_reads("error", None, exc.message)
        ctx.session.commit()  # keep the audit entries of refused tables
        raise
    audit_reads("allowed", table.num_rows)
    out: dict[str, Any] = {
        "sql": sql,
        "records": records(table, "objects"),
        "fields": [{"id": f.name, "type": ckan_type(f.type)} for f in table.schema],
    }
    if truncated:
        out["records_truncated"] = True
    return out


@action("datastore_info")
def datastore_info(ctx: ActionContext, data: dict[str, Any]) -> dict[str, Any]:
    """A DataStore table's row count, snapshot and fields (with the contract's data dictionary)."""
    ref = str(get_or_bust(data, "resource_id", "id"))
    ds, rid = _resolve(ctx, ref)
    require_read(ctx, ds, "datastore.info", scope="datastore:read")
    info = _table(ctx, ds, ref)
    rows = info.rows
    if rows is None:
        rows = search(ctx.settings, rid, info, SearchQuery(limit=0)).total
    fields = _fields(ctx, ds, [{"id": f.name, "type": ckan_type(f.type)} for f in info.schema])
    for f, af in zip(fields, info.schema, strict=True):
        f["schema"] = {
            "native_type": ckan_type(af.type),
            "notnull": not af.nullable,
            "index_name": None,
            "is_index": False,
            "uniquekey": False,
        }
    meta = {
        "id": rid,
        "count": rows,
        "table_type": "BASE TABLE",
        "size": None,
        "db_size": None,
        "idx_size": None,
        "aliases": [ds.name, ds.key],
        "snapshot_id": str(info.snapshot_id),
        "snapshot_committed": info.committed.isoformat() if info.committed else None,
    }
    return {"meta": meta, "fields": fields, "schema": {f["id"]: f["type"] for f in fields}}
