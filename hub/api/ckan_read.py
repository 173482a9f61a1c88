"""CKAN read actions: status, packages, search, resources, organizations, groups, tags, licences."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, or_, select

from hub import __version__
from hub.api.ckan_registry import (
    ActionContext,
    action,
    as_bool,
    as_int,
    as_list,
    find_dataset,
    find_organization,
    get_or_bust,
    require_read,
)
from hub.api.errors import SearchQueryError
from hub.auth import access
from hub.catalog.ckan import fold, group_dict, license_list, organization_dict, resource_dict
from hub.catalog.ckan_models import DatasetGroup, DatasetTag, Group, Resource, Tag
from hub.catalog.models import Dataset, Organization
from hub.catalog.search import Doc, SearchParams, run_search
from hub.catalog.search_fq import QuerySyntaxError
from hub.errors import InvalidInputError, NotFoundError

CKAN_VERSION = "2.11.0"
ROWS_MAX = 1000
_SEARCH_PARAMS = {
    "q",
    "fq",
    "fq_list",
    "rows",
    "start",
    "sort",
    "facet",
    "facet.field",
    "facet.limit",
    "facet.mincount",
    "include_private",
    "include_drafts",
    "include_deleted",
    "fl",
    "use_default_schema",
    "qf",
    "bf",
    "boost",
    "tie",
    "defType",
    "mm",
    "df",
    "wt",
    "q.op",
    "facet.sort",
    "hl",
    "callback",
    "_",
}


@action("site_read")
def site_read(ctx: ActionContext, data: dict[str, Any]) -> bool:
    return True


@action("help_show")
def help_show(ctx: ActionContext, data: dict[str, Any]) -> str:
    from hub.api.ckan_registry import ACTIONS

    name = str(get_or_bust(data, "name"))
    if name not in ACTIONS:
        raise NotFoundError("Action function not found")
    return (ACTIONS[name].fn.__doc__ or name).strip()


@action("status_show")
def status_show(ctx: ActionContext, data: dict[str, Any]) -> dict[str, Any]:
    """The site's title, URL, version and plugins."""
    s = ctx.settings
    return {
        "site_title": s.site_title,
        "site_description": "Nền tảng tích hợp, chia sẻ dữ liệu (Liên Thông hub)",
        "site_url": s.site_url,
        "error_emails_to": None,
        "locale_default": "vi",
        "extensions": ["datastore", "dcat", "hub"],
        "ckan_version": CKAN_VERSION,
        "hub_version": __version__,
    }


@action("package_list")
def package_list(ctx: ActionContext, data: dict[str, Any]) -> list[str]:
    """Names of the public active datasets, by name (all of them when no ``limit`` is given)."""
    limit = as_int(data, "limit", None)
    offset = as_int(data, "offset", 0) or 0
    stmt = (
        select(Dataset.name)
        .where(Dataset.state == "active", Dataset.sharing == "open")
        .order_by(Dataset.name)
    )
    if limit is not None:
        stmt = stmt.limit(limit)
    if offset:
        stmt = stmt.offset(offset)
    return list(ctx.session.scalars(stmt))


def _visible(ctx: ActionContext) -> Any:
    """Which private datasets the caller may see in search results (computed once per request)."""
    p = ctx.principal
    state: dict[str, set[str] | None] = {}

    def visible(doc: Doc) -> bool:
        if p.sysadmin or p.kind == "system":
            return True
        if p.is_anonymous:
            return False
        if "ids" not in state:
            state["ids"] = access.readable_ids(ctx.session, p)
        ids = state["ids"]
        return ids is None or doc.package["id"] in ids

    return visible


def search(ctx: ActionContext, params: SearchParams) -> dict[str, Any]:
    idx = ctx.hub.catalog_index.get(ctx.session, ctx.settings, ctx.states(fresh=True))
    try:
        res = run_search(
            idx,
            params,
            _visible(ctx),
            max_chars=ctx.settings.search_max_fq_chars,
            max_nesting=ctx.settings.query_max_nesting,
        )
    except QuerySyntaxError as exc:
        raise SearchQueryError(f"Search Query is invalid: {exc.message}") from exc
    return {
        "count": res.count,
        "facets": res.facets,
        "results": res.results,
        "sort": res.sort,
        "search_facets": res.search_facets,
    }


@action("package_search")
def package_search(ctx: ActionContext, data: dict[str, Any]) -> dict[str, Any]:
    """Search datasets (Solr-like q, fq, fq_list, rows, start, sort, facets, include_private)."""
    unknown = sorted(k for k in data if k not in _SEARCH_PARAMS and not k.startswith("ext_"))
    if unknown:
        raise SearchQueryError(f"Search Query is invalid: Invalid search parameters: {unknown}")
    nesting = ctx.settings.query_max_nesting
    fq_list = as_list(data, "fq_list", max_nesting=nesting) or []
    facet_fields: list[str] = []
    if "facet.field" in data and str(data.get("facet", "true")).lower() != "false":
        facet_fields = [str(f) for f in as_list(data, "facet.field", max_nesting=nesting) or []]
    rows = as_int(data, "rows", 10) or 0
    params = SearchParams(
        q=str(data.get("q") or ""),
        fq=str(data.get("fq") or ""),
        fq_list=[str(f) for f in fq_list],
        rows=min(rows, ROWS_MAX),
        start=as_int(data, "start", 0) or 0,
        sort=str(data.get("sort") or "score desc, metadata_modified desc"),
        facet_fields=facet_fields,
        facet_limit=as_int(data, "facet.limit", 50, minimum=-1) or 0,
        facet_mincount=as_int(data, "facet.mincount", 1) or 0,
        include_private=as_bool(data, "include_private", False),
        include_drafts=as_bool(data, "include_drafts", False),
    )
    if params.sort.strip() == "rank":
        params.sort = "score desc, metadata_modified desc"
    return search(ctx, params)


@action("current_package_list_with_resources")
def current_package_list_with_resources(ctx: ActionContext, data: dict[str, Any]) -> list[dict[str, Any]]:
    """The newest datasets with their resources (10 unless ``limit`` is given, at most 1000)."""
    limit = as_int(data, "limit", 10) or 0
    offset = as_int(data, "offset", 0) or 0
    page = as_int(data, "page", None)
    if page:
        offset = (page - 1) * limit
    params = SearchParams(rows=min(limit, ROWS_MAX), start=offset, include_private=ctx.principal.sysadmin)
    return list(search(ctx, params)["results"])


@action("package_show")
def package_show(ctx: ActionContext, data: dict[str, Any]) -> dict[str, Any]:
    """One dataset by id or name (a private one needs read access: 403 otherwise)."""
    ds = find_dataset(ctx, str(get_or_bust(data, "id", "name_or_id")))
    require_read(ctx, ds)
    return ctx.package(ds)


@action("resource_show")
def resource_show(ctx: ActionContext, data: dict[str, Any]) -> dict[str, Any]:
    """One resource by id."""
    rid = str(get_or_bust(data, "id"))
    r = ctx.session.get(Resource, rid)
    if r is None or r.state != "active":
        raise NotFoundError("Not found: Resource was not found.")
    ds = ctx.session.get(Dataset, r.dataset_id)
    if ds is None or ds.state != "active":
        raise NotFoundError("Not found: Resource was not found.")
    require_read(ctx, ds)
    for res in ctx.package(ds)["resources"]:
        if res["id"] == rid:
            return dict(res)
    raise NotFoundError("Not found: Resource was not found.")


@action("resource_view_list")
def resource_view_list(ctx: ActionContext, data: dict[str, Any]) -> list[Any]:
    resource_show(ctx, {"id": get_or_bust(data, "id")})
    return []


@action("package_autocomplete")
def package_autocomplete(ctx: ActionContext, data: dict[str, Any]) -> list[dict[str, Any]]:
    """Datasets whose name or title contains ``q`` (accent-insensitive), at most ``limit``."""
    q = fold(str(get_or_bust(data, "q", "incomplete")))
    limit = as_int(data, "limit", 10) or 10
    idx = ctx.hub.catalog_index.get(ctx.session, ctx.settings, ctx.states(fresh=True))
    out: list[dict[str, Any]] = []
    for doc in sorted(idx.docs, key=lambda d: d.package["name"]):
        pkg = doc.package
        if doc.private or pkg["state"] != "active":
            continue
        if q in fold(pkg["name"]):
            out.append(
                {
                    "name": pkg["name"],
                    "title": pkg["title"],
                    "match_field": "name",
                    "match_displayed": pkg["name"],
                }
            )
        elif q in fold(pkg.get("title") or ""):
            out.append(
                {
                    "name": pkg["name"],
                    "title": pkg["title"],
                    "match_field": "title",
                    "match_displayed": f"{pkg['title']} ({pkg['name']})",
                }
            )
        if len(out) >= limit:
            break
    return out


@action("license_list")
def license_list_action(ctx: ActionContext, data: dict[str, Any]) -> list[dict[str, Any]]:
    return license_list()


@action("tag_list")
def tag_list(ctx: ActionContext, data: dict[str, Any]) -> list[Any]:
    """Names of free tags used by public datasets (``query`` filters by substring)."""
    query = str(data.get("query") or data.get("q") or "")
    stmt = (
        select(Tag)
        .join(DatasetTag, DatasetTag.tag_id == Tag.id)
        .join(Dataset, Dataset.id == DatasetTag.dataset_id)
        .where(Dataset.state == "active", Dataset.sharing == "open", Tag.vocabulary_id.is_(None))
        .distinct()
        .order_by(Tag.name)
    )
    if data.get("vocabulary_id"):
        return []
    tags = [t for t in ctx.session.scalars(stmt) if query.lower() in t.name.lower()]
    if as_bool(data, "all_fields", False):
        return [{"id": t.id, "name": t.name, "vocabulary_id": None} for t in tags]
    return [t.name for t in tags]


# --- organizations and groups ----------------------------------------------------------------------


def _org_counts(ctx: ActionContext) -> dict[str, int]:
    p = ctx.principal
    cond = Dataset.sharing == "open"
    if p.sysadmin or p.kind == "system":
        cond = Dataset.sharing.is_not(None)
    elif p.orgs():
        cond = or_(Dataset.sharing == "open", Dataset.owner_org_id.in_(p.orgs()))
    rows = ctx.session.execute(
        select(Dataset.owner_org_id, func.count())
        .where(Dataset.state == "active", cond)
        .group_by(Dataset.owner_org_id)
    )
    return {org_id: n for org_id, n in rows if org_id}


def _group_counts(ctx: ActionContext) -> dict[str, int]:
    rows = ctx.session.execute(
        select(DatasetGroup.group_id, func.count())
        .join(Dataset, Dataset.id == DatasetGroup.dataset_id)
        .where(Dataset.state == "active", Dataset.sharing == "open")
        .group_by(DatasetGroup.group_id)
    )
    return {group_id: n for group_id, n in rows}


def _sorted(items: list[dict[str, Any]], sort: str) -> list[dict[str, Any]]:
    bits = (sort or "title asc").split()
    key = bits[0]
    desc = len(bits) > 1 and bits[1].lower() == "desc"
    if key not in ("name", "title", "package_count"):
        raise InvalidInputError("invalid sort", {"sort": [f"Cannot sort by field `{key}`"]})
    if key == "package_count":
        return sorted(items, key=lambda d: (d["package_count"], d["name"]), reverse=desc)
    return sorted(items, key=lambda d: (fold(str(d[key] or "")), d["name"]), reverse=desc)


def _list(ctx: ActionContext, data: dict[str, Any], kind: str) -> list[Any]:
    all_fields = as_bool(data, "all_fields", False)
    default_limit = 25 if all_fields else 1000
    limit = min(as_int(data, "limit", default_limit) or default_limit, default_limit)
    offset = as_int(data, "offset", 0) or 0
    q = str(data.get("q") or "").lower()
    names = as_list(
        data,
        "organizations" if kind == "org" else "groups",
        comma=True,
        max_nesting=ctx.settings.query_max_nesting,
    )
    if kind == "org":
        counts = _org_counts(ctx)
        objs: list[Any] = list(
            ctx.session.scalars(select(Organization).where(Organization.state == "active"))
        )
        dicts = [organization_dict(o, package_count=counts.get(o.id, 0), full=True) for o in objs]
    else:
        counts = _group_counts(ctx)
        objs = list(ctx.session.scalars(select(Group).where(Group.state == "active")))
        dicts = [group_dict(g, package_count=counts.get(g.id, 0), full=True) for g in objs]
    if q:
        dicts = [d for d in dicts if q in f"{d['name']} {d['title']} {d['description']}".lower()]
    if names:
        dicts = [d for d in dicts if d["name"] in names]
    dicts = _sorted(dicts, str(data.get("sort") or data.get("order_by") or "title asc"))
    dicts = dicts[offset : offset + limit]
    if not all_fields:
        return [d["name"] for d in dicts]
    if not as_bool(data, "include_extras", False):
        for d in dicts:
            d.pop("extras", None)
    return dicts


@action("organization_list")
def organization_list(ctx: ActionContext, data: dict[str, Any]) -> list[Any]:
    """Organization names, or dicts with ``all_fields`` (at most 25; 1000 names)."""
    return _list(ctx, data, "org")


@action("group_list")
def group_list(ctx: ActionContext, data: dict[str, Any]) -> list[Any]:
    """Group names, or dicts with ``all_fields``."""
    return _list(ctx, data, "group")


@action("organization_show")
def organization_show(ctx: ActionContext, data: dict[str, Any]) -> dict[str, Any]:
    """One organization by id or name (``include_datasets`` adds a page of its datasets)."""
    org = find_organization(ctx, str(get_or_bust(data, "id")))
    out = organization_dict(org, package_count=_org_counts(ctx).get(org.id, 0), full=True)
    if as_bool(data, "include_datasets", False):
        params = SearchParams(
            fq=f'owner_org:"{org.id}"', rows=as_int(data, "limit", 1000) or 1000, include_private=True
        )
        out["packages"] = search(ctx, params)["results"]
    return out


def _find_group(ctx: ActionContext, id_or_name: str) -> Group:
    g = ctx.session.scalar(select(Group).where((Group.id == id_or_name) | (Group.name == id_or_name)))
    if g is None or g.state != "active":
        raise NotFoundError("Not found")
    return g


@action("group_show")
def group_show(ctx: ActionContext, data: dict[str, Any]) -> dict[str, Any]:
    """One group by id or name."""
    g = _find_group(ctx, str(get_or_bust(data, "id")))
    out = group_dict(g, package_count=_group_counts(ctx).get(g.id, 0), full=True)
    if as_bool(data, "include_datasets", False):
        out["packages"] = search(ctx, SearchParams(fq=f'groups:"{g.name}"', rows=1000))["results"]
    return out


@action("group_package_show")
def group_package_show(ctx: ActionContext, data: dict[str, Any]) -> list[dict[str, Any]]:
    """The datasets of a group (``limit``, default 10)."""
    g = _find_group(ctx, str(get_or_bust(data, "id")))
    limit = as_int(data, "limit", 10) or 10
    params = SearchParams(fq=f'groups:"{g.name}"', rows=min(limit, ROWS_MAX), sort="metadata_modified desc")
    return list(search(ctx, params)["results"])


__all__ = ["resource_dict"]
