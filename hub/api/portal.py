"""The public portal (server-rendered Jinja2 pages, Vietnamese first, English beside it), no login.

- ``/``: search box, the domains (lĩnh vực) and organizations with counts, the latest releases, what
  open data is here and its reuse terms;
- ``/dataset``: search results with facets, sort and paging, all in the URL (``hub.portal.query``);
- ``/dataset/{name}`` and its resource pages: ``hub.api.portal_dataset``;
- ``/organization``, ``/organization/{name}``, ``/group``, ``/group/{name}``, ``/about``;
- ``/sitemap.xml``, ``/robots.txt`` and ``/favicon.ico`` (the SVG icon).

The search is ``package_search`` itself (``hub.api.ckan_read.package_search``, called with the
parameters a CKAN client would send, as an anonymous caller): the portal and the API cannot disagree.
Only the public catalogue is shown (``hub.publish.companion.public_datasets``). ``?lang=en`` (or ``vi``)
switches the language of any page and is remembered in a cookie (``hub.portal.i18n``). Pages carry
ETag and Cache-Control and vary by that cookie; bad input (odd characters, a page past the end, an
unknown filter value) gives a page that says so, never a 500; a name that does not exist, the HTML 404.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any
from xml.sax.saxutils import escape as xml_escape

from fastapi import APIRouter, Request
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from hub.api import portal_dataset
from hub.api.ckan_read import package_search
from hub.api.ckan_registry import ActionContext
from hub.api.dcat import cached
from hub.api.portal_render import lang_of, lifespan, page, portal_cache, render, respond, settings_of
from hub.catalog.ckan_models import Group
from hub.catalog.models import Dataset, Organization
from hub.errors import HubError, NotFoundError
from hub.portal.i18n import Tr, group_title
from hub.portal.query import FACETS, ROWS, SORT_WORDS, SORTS, SearchRequest, quote
from hub.publish.companion import SUFFIX_NAME, public_datasets
from hub.publish.models import Release, ReleaseVersion

router = APIRouter(tags=["portal"], lifespan=lifespan)
router.include_router(portal_dataset.router)  # /dataset/{name}, its resources and previews


def search(
    ctx: ActionContext, req: SearchRequest, *, rows: int = ROWS, facets: Sequence[str] = FACETS
) -> tuple[dict[str, Any], bool]:
    """``package_search`` for ``req``: (its result, whether the query was refused). A refused query is
    answered as no result (the page says why), never as an error."""
    empty: dict[str, Any] = {"count": 0, "results": [], "facets": {}, "search_facets": {}}
    if req.beyond:
        return empty, False
    try:
        return package_search(ctx, req.data(rows=rows, facets=facets)), False
    except HubError:
        return empty, True


def facet_items(
    result: dict[str, Any], name: str, label: Callable[[str, str], tuple[str, str | None]]
) -> list[dict[str, Any]]:
    items = result.get("search_facets", {}).get(name, {}).get("items", [])
    out = [
        {"name": i["name"], "label": label(i["name"], str(i["display_name"])), "count": i["count"]}
        for i in items
    ]
    return sorted(out, key=lambda i: (-int(i["count"]), str(i["label"][0])))


def labeller(
    request: Request, ctx: ActionContext, t: Tr
) -> Callable[[str, str, str], tuple[str, str | None]]:
    """Names of facet values in the page's language: organizations and groups by their titles (read
    once per state of the catalogue), places by their names, the rest as they are."""
    session = ctx.session

    def read() -> tuple[dict[str, tuple[str, str | None]], dict[str, tuple[str, str | None]]]:
        orgs = {o.name: (o.title, o.title_en) for o in session.scalars(select(Organization))}
        groups = {g.name: group_title(g.name, g.title, g.title_en) for g in session.scalars(select(Group))}
        return orgs, groups

    signature = ctx.hub.catalog_index.get(session, ctx.settings, ctx.states(fresh=True)).signature
    orgs, groups = portal_cache(request).memo("names", signature, read)

    def label(facet: str, value: str, display: str) -> tuple[str, str | None]:
        if facet == "organization" and value in orgs:
            return t.pick(*orgs[value])
        if facet == "groups":
            return t.pick(*groups.get(value, group_title(value, display)))
        if facet == "spatial":
            from hub.api.spatial import find_place

            place = find_place("province" if len(value) <= 2 else "ward", value)
            if place is not None:
                return t.pick(place.name, place.name_en)
        return display, None

    return label


def result_cards(results: list[dict[str, Any]], t: Tr) -> list[dict[str, Any]]:
    out = []
    for pkg in results:
        extras = {e["key"]: e["value"] for e in pkg.get("extras", [])}
        org = pkg.get("organization") or {}
        out.append(
            {
                "name": pkg["name"],
                "title": t.pick(pkg.get("title"), extras.get("title_en")),
                "notes": (pkg.get("notes") or "")[:240],
                "organization": org.get("title"),
                "formats": sorted({r["format"] for r in pkg.get("resources", []) if r.get("format")}),
                "modified": (pkg.get("metadata_modified") or "")[:10],
                "stale": extras.get("hub_releases_stale") == "true",
            }
        )
    return out


def search_context(
    request: Request, ctx: ActionContext, req: SearchRequest, t: Tr, path: str
) -> dict[str, Any]:
    result, refused = search(ctx, req)
    label = labeller(request, ctx, t)
    facets = []
    for name in ("groups", "organization", "tags", "res_format", "license_id", "spatial"):
        items = facet_items(result, name, lambda v, d, n=name: label(n, v, d))  # type: ignore[misc]
        for i in items:
            i["active"] = i["name"] in req.filters.get(name, [])
            i["url"] = req.toggled(path, name, i["name"])
        facets.append({"name": name, "items": items})
    active = [{"facet": n, "label": label(n, v, v), "url": req.toggled(path, n, v)} for n, v in req.active()]
    count = int(result["count"])
    return {
        "req": req,
        "result": result,
        "refused": refused,
        "count": count,
        "facets": facets,
        "active": active,
        "cards": result_cards(result["results"], t),
        "pages": req.pages(count),
        "base_path": path,
        "sorts": [(k, t(SORT_WORDS[k])) for k in SORTS],
    }


@router.get("/", include_in_schema=False)
async def home(request: Request) -> Response:
    if "q" in request.query_params:  # the search box of the error pages (and of the first portal)
        return RedirectResponse(f"/dataset?{request.url.query}", status_code=302)
    t = lang_of(request)

    def work(ctx: ActionContext) -> bytes | Response:
        result, _ = search(ctx, SearchRequest(sort="modified"), rows=6)
        label = labeller(request, ctx, t)
        groups = facet_items(result, "groups", lambda v, d: label("groups", v, d))
        orgs = facet_items(result, "organization", lambda v, d: label("organization", v, d))
        return render(
            request,
            "portal/home.html",
            {
                "count": result["count"],
                "groups": groups,
                "orgs": orgs,
                "latest": latest_releases(ctx.session, t),
                "recent": result_cards(result["results"], t),
            },
            t,
        )

    return await page(request, t, work)


def latest_releases(session: Any, t: Tr, limit: int = 6) -> list[dict[str, Any]]:
    rows = session.execute(
        select(ReleaseVersion, Release, Dataset)
        .join(Release, ReleaseVersion.release_id == Release.id)
        .join(Dataset, Release.dataset_id == Dataset.id)
        .where(Release.state == "active", Dataset.state == "active")
        .order_by(ReleaseVersion.built_at.desc())
        .limit(limit * 3)
    ).all()
    # where each release is published: the dataset when it is open, else its open companion package
    wanted = {ds.name if ds.sharing == "open" else ds.name + SUFFIX_NAME for _, _, ds in rows}
    public = set(
        session.scalars(
            select(Dataset.name).where(
                Dataset.name.in_(wanted), Dataset.state == "active", Dataset.sharing == "open"
            )
        )
    )
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for version, rel, ds in rows:
        if rel.id in seen:
            continue
        seen.add(rel.id)
        name = ds.name if ds.sharing == "open" else ds.name + SUFFIX_NAME
        if name not in public:
            continue
        out.append(
            {
                "dataset": name,
                "title": t.pick(rel.title, rel.title_en),
                "version": version.version,
                "built": version.built_at,
                "rows": version.rows,
            }
        )
        if len(out) >= limit:
            break
    return out


@router.get("/dataset", include_in_schema=False)
async def dataset_search(request: Request) -> Response:
    t = lang_of(request)
    req = SearchRequest.from_params(request.query_params.multi_items())

    def work(ctx: ActionContext) -> bytes | Response:
        return render(
            request, "portal/search.html", {"s": search_context(request, ctx, req, t, "/dataset")}, t
        )

    return await page(request, t, work)


def _collection(request: Request, t: Tr, kind: str, name: str, ctx: ActionContext) -> bytes:
    """An organization's or a group's page: what it is, and its datasets searched like ``/dataset``."""
    session = ctx.session
    if kind == "organization":
        obj: Any = session.scalar(
            select(Organization).where(Organization.name == name, Organization.state == "active")
        )
        titles = (obj.title, obj.title_en) if obj is not None else ("", None)
        description = (obj.description, obj.description_en) if obj is not None else ("", None)
    else:
        obj = session.scalar(select(Group).where(Group.name == name, Group.state == "active"))
        titles = group_title(obj.name, obj.title, obj.title_en) if obj is not None else ("", None)
        description = (obj.description, None) if obj is not None else ("", None)
    if obj is None:
        raise NotFoundError(f"{kind} {name!r} not found")
    field = "organization" if kind == "organization" else "groups"
    req = SearchRequest.from_params(request.query_params.multi_items(), [f"{field}:{quote(obj.name)}"])
    path = f"/{kind}/{obj.name}"
    context = {
        "s": search_context(request, ctx, req, t, path),
        "kind": kind,
        "obj": obj,
        "title": t.pick(*titles),
        "description": t.pick(*description),
    }
    return render(request, "portal/collection.html", context, t)


@router.get("/organization/{name}", include_in_schema=False)
async def organization_page(name: str, request: Request) -> Response:
    t = lang_of(request)
    return await page(request, t, lambda ctx: _collection(request, t, "organization", name, ctx))


@router.get("/group/{name}", include_in_schema=False)
async def group_page(name: str, request: Request) -> Response:
    t = lang_of(request)
    return await page(request, t, lambda ctx: _collection(request, t, "group", name, ctx))


def _list(request: Request, t: Tr, kind: str, ctx: ActionContext) -> bytes:
    facet = "organization" if kind == "organization" else "groups"
    result, _ = search(ctx, SearchRequest(), rows=0, facets=(facet,))
    counts = {i["name"]: i["count"] for i in result["search_facets"].get(facet, {}).get("items", [])}
    items = []
    if kind == "organization":
        for o in ctx.session.scalars(select(Organization).where(Organization.state == "active")):
            items.append(
                {
                    "name": o.name,
                    "title": t.pick(o.title, o.title_en),
                    "count": counts.get(o.name, 0),
                    "description": t.pick(o.description, o.description_en)[0],
                }
            )
    else:
        for g in ctx.session.scalars(select(Group).where(Group.state == "active")):
            items.append(
                {
                    "name": g.name,
                    "title": t.pick(*group_title(g.name, g.title, g.title_en)),
                    "count": counts.get(g.name, 0),
                    "description": g.description or "",
                }
            )
    items.sort(key=lambda i: (-int(i["count"]), str(i["title"][0])))
    return render(request, "portal/list.html", {"kind": kind, "items": items}, t)


@router.get("/organization", include_in_schema=False)
async def organizations(request: Request) -> Response:
    t = lang_of(request)
    return await page(request, t, lambda ctx: _list(request, t, "organization", ctx))


@router.get("/group", include_in_schema=False)
async def groups(request: Request) -> Response:
    t = lang_of(request)
    return await page(request, t, lambda ctx: _list(request, t, "group", ctx))


@router.get("/about", include_in_schema=False)
async def about(request: Request) -> Response:
    t = lang_of(request)
    base = settings_of(request).site_url.rstrip("/")
    return respond(request, t, render(request, "portal/about.html", {"base": base}, t))


@router.get("/favicon.ico", include_in_schema=False)
async def favicon() -> Response:
    """Browsers ask for /favicon.ico on pages that name no icon (a file, a JSON answer): the hub's SVG."""
    return RedirectResponse(
        "/static/favicon.svg", status_code=301, headers={"Cache-Control": "public, max-age=86400"}
    )


@router.get("/robots.txt", include_in_schema=False)
async def robots(request: Request) -> Response:
    base = settings_of(request).site_url.rstrip("/")
    lines = ["User-agent: *", "Disallow: /api/", "Disallow: /datastore/", "Disallow: /oauth/", "Allow: /"]
    body = "\n".join([*lines, "", f"Sitemap: {base}/sitemap.xml", ""])
    return cached(request, body.encode(), "text/plain; charset=utf-8", "public, max-age=3600")


@router.get("/sitemap.xml", include_in_schema=False)
async def sitemap(request: Request) -> Response:
    """Every page of the portal: the lists, each public dataset (with its last change), organization and
    group."""
    from hub.api.deps import app_session_factory

    base = settings_of(request).site_url.rstrip("/")

    def work() -> bytes:
        with app_session_factory(request)() as session:
            urls: list[tuple[str, str | None]] = [
                (p, None) for p in ("/", "/dataset", "/organization", "/group", "/about")
            ]
            urls += [(f"/dataset/{d.name}", d.modified.date().isoformat()) for d in public_datasets(session)]
            orgs = session.scalars(
                select(Organization.name).where(Organization.state == "active").order_by(Organization.name)
            )
            urls += [(f"/organization/{n}", None) for n in orgs]
            used = select(Group.name).where(Group.state == "active").order_by(Group.name)
            urls += [(f"/group/{n}", None) for n in session.scalars(used)]
        lines = [
            '<?xml version="1.0" encoding="UTF-8"?>',
            '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">',
        ]
        for path, modified in urls:
            last = f"<lastmod>{modified}</lastmod>" if modified else ""
            lines.append(f"<url><loc>{xml_escape(base + path)}</loc>{last}</url>")
        lines.append("</urlset>\n")
        return "\n".join(lines).encode()

    return cached(request, await run_in_threadpool(work), "application/xml", "public, max-age=3600")
