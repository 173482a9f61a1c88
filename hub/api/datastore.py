"""DataStore actions over the warehouse: datastore_search, datastore_search_sql, datastore_info.

A dataset's current snapshot is its DataStore resource (``Resource.kind == "datastore"``); the
resource id, the dataset's name or its key (``civil_status.births``) are accepted as ``resource_id``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter
from sqlalchemy import select

from hub.api.ckan_registry import (
    ActionContext,
    action,
    as_bool,
    as_int,
    as_json,
    as_list,
    get_or_bust,
    in_memory,
)
from hub.auth.authorize import authorize_read
from hub.catalog.ckan_models import Resource, datastore_resource_id
from hub.catalog.models import Dataset
from hub.errors import InvalidInputError, NotFoundError
from hub.sql import door
from hub.warehouse.datastore import SearchQuery, SearchResult, TableInfo, ckan_type, records

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


@dataclass(frozen=True)
class _OpenDataset:
    """What datastore_search needs of an open, active dataset (cached without a session)."""

    id: str
    key: str
    name: str
    contract: str | None
    sharing: str
    state: str


def _resolve_open(ctx: ActionContext, ref: str) -> tuple[Dataset | _OpenDataset, str]:
    """``_resolve`` for datastore_search: an open dataset's lookup is cached for a moment (and dropped
    at once when a dataset or resource changes in this hub), so that reads of open data need no
    metadata-database round trip. Anything else (shared, internal, not found) is looked up each time,
    exactly as ``_resolve`` does."""
    cache = ctx.hub.open_datasets
    hit = cache.peek(ref)
    if isinstance(hit, _OpenDataset):
        return hit, datastore_resource_id(hit.id)
    ds, rid = _resolve(ctx, ref)
    if ds.sharing == "open" and ds.state == "active":
        cache.put(ref, _OpenDataset(ds.id, ds.key, ds.name, ds.contract, ds.sharing, ds.state))
    else:
        cache.invalidate(ref)
    return ds, rid


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
    info = ctx.hub.datastore.table_info(ds.key)
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


IN_MEMORY_ROWS = 1_000
"""The largest page datastore_search answers on the event loop (``datastore_search_in_memory``)."""


@dataclass(frozen=True)
class _SearchRequest:
    """A datastore_search's parameters, checked."""

    fmt: str
    filters: Any
    q: Any
    query: SearchQuery

    @classmethod
    def of(cls, data: dict[str, Any]) -> _SearchRequest:
        fmt = str(data.get("records_format") or "objects")
        if fmt not in ("objects", "lists", "csv", "tsv"):
            raise InvalidInputError("records_format", {"records_format": [f'invalid value "{fmt}"']})
        filters = as_json(data, "filters")
        q = as_json(data, "q")
        if data.get("full_text") and not q:
            q = str(data["full_text"])
        fields = as_list(data, "fields", comma=True)
        sort = as_list(data, "sort", comma=True)
        query = SearchQuery(
            filters=filters,
            q=q if isinstance(q, (str, dict)) else None,
            distinct=as_bool(data, "distinct", False),
            fields=[str(f) for f in fields] if fields else None,
            sort=[str(s) for s in sort] if sort else None,
            limit=min(as_int(data, "limit", 100) or 0, ROWS_MAX),
            offset=as_int(data, "offset", 0) or 0,
            include_total=as_bool(data, "include_total", True),
        )
        return cls(fmt, filters, q, query)


def _search_ref(data: dict[str, Any]) -> str:
    unknown = sorted(k for k in data if k not in _SEARCH_KEYS)
    if unknown:
        raise InvalidInputError(
            "unknown parameters", {k: [f"The input field {k} was not expected."] for k in unknown}
        )
    return str(get_or_bust(data, "resource_id", "id"))


@action("datastore_search")
def datastore_search(ctx: ActionContext, data: dict[str, Any]) -> dict[str, Any]:
    """Rows of a DataStore table: filters, q, distinct, fields, sort, limit (100, at most 32000), offset."""
    ref = _search_ref(data)
    ds, rid = _resolve_open(ctx, ref)
    auth = None
    if isinstance(ds, Dataset):  # not a cached open dataset: decide (and audit) the read
        auth = authorize_read(
            ctx.session, ctx.principal, ds, "datastore.search", scope="datastore:read", defer=True
        )
    info = _table(ctx, ds, ref)
    req = _SearchRequest.of(data)
    res = ctx.hub.datastore.search(info, req.query)
    if auth is not None:
        auth.record(snapshot_id=info.snapshot_id, rows=len(res.rows))
    return _search_result(ctx, data, ds, rid, info, req, res)


@in_memory("datastore_search")
def datastore_search_in_memory(ctx: ActionContext, data: dict[str, Any]) -> dict[str, Any] | None:
    """datastore_search of an open dataset answered from memory alone, or None.

    The dataset, its snapshot and the equality lookup of the filtered column are already held by the
    runtime, the filters are text equalities on one column, and the page has at most
    ``IN_MEMORY_ROWS`` rows: the answer takes a fraction of a millisecond and touches no database or
    file. Anything else (None) runs ``datastore_search`` in a thread. Open data is read without an
    audit entry on both paths."""
    ref = _search_ref(data)
    hit = ctx.hub.open_datasets.peek(ref)
    if not isinstance(hit, _OpenDataset):
        return None
    info = ctx.hub.datastore.cached_table_info(hit.key)
    if info is None:
        return None
    req = _SearchRequest.of(data)
    filters = req.query.filters
    if req.query.limit > IN_MEMORY_ROWS or not isinstance(filters, dict) or len(filters) != 1:
        return None
    res = ctx.hub.datastore.search_in_memory(info, req.query)
    if res is None:
        return None
    return _search_result(ctx, data, hit, datastore_resource_id(hit.id), info, req, res)


def _search_result(
    ctx: ActionContext,
    data: dict[str, Any],
    ds: Dataset | _OpenDataset,
    rid: str,
    info: TableInfo,
    req: _SearchRequest,
    res: SearchResult,
) -> dict[str, Any]:
    query = req.query
    out: dict[str, Any] = {
        "resource_id": rid,
        "fields": _fields(ctx, ds, res.fields),
        "records": records(res, req.fmt),
        "records_format": req.fmt,
        "include_total": query.include_total,
        "limit": query.limit,
        "_links": _links(ctx, query.offset, query.limit),
        "total_was_estimated": False,
        "hub_snapshot_id": str(info.snapshot_id),
    }
    if query.include_total:
        out["total"] = res.total
    # the request's parameters echoed, as CKAN does (not ``fields``: the result's field list has that key)
    for key in ("filters", "q", "sort", "distinct", "plain", "language", "offset"):
        if key in data:
            out[key] = {"filters": req.filters, "q": req.q}.get(key, data[key])
    if as_bool(data, "include_next_page", False):
        out["include_next_page"] = True
        if not res.sort and res.last_id is not None and len(res.rows) == query.limit and not query.distinct:
            filters = req.filters
            base = filters if isinstance(filters, dict) else ({"$or": filters} if filters else {})
            out["next_page"] = {**base, "_id": {"gt": res.last_id}}
    return out


@action("datastore_search_sql")
def datastore_search_sql(ctx: ActionContext, data: dict[str, Any]) -> dict[str, Any]:
    """One read-only SELECT over DataStore tables (``FROM "<resource id>"``, a dataset's name or key),
    run in a query worker that sees only the tables the caller may read (``hub.sql.door``)."""
    sql = get_or_bust(data, "sql")
    if not isinstance(sql, str):
        raise InvalidInputError("sql must be text", {"sql": ["Must be a string"]})
    table, truncated, _ = door.run(
        ctx.hub, ctx.session, ctx.principal, sql, door.DATASTORE_SQL, max_rows=ROWS_MAX
    )
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
    authorize_read(ctx.session, ctx.principal, ds, "datastore.info", scope="datastore:read")
    info = _table(ctx, ds, ref)
    rows = info.rows
    if rows is None:
        rows = ctx.hub.datastore.search(info, SearchQuery(limit=0)).total
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
