"""The public portal pages (server-rendered HTML, Vietnamese with English alongside), no login.

- ``/``: search box (``?q=``), published datasets by organization, and the groups (lĩnh vực)
- ``/dataset/{name}``: description, resources, open-data releases with every version's downloads,
  and the data dictionary of the latest version
- ``/organization/{name}``: an agency and its published datasets

Only the public catalogue is shown (``hub.publish.companion.public_datasets``): the open datasets,
open companion packages of shared and internal data included. Pages carry ETag and Cache-Control
(``hub.api.dcat.cached``).
"""

from __future__ import annotations

import json
from html import escape
from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from hub.api.dcat import cached
from hub.catalog.ckan import download_url
from hub.catalog.ckan_models import Resource
from hub.catalog.models import Dataset, Organization
from hub.errors import NotFoundError
from hub.publish.companion import companion_of, public_datasets, source_of
from hub.publish.freshness import is_stale
from hub.publish.models import Release
from hub.publish.resources import release_file_url
from hub.settings import Settings

router = APIRouter(tags=["portal"])
HTML = "text/html; charset=utf-8"
CACHE = "public, max-age=60"
CSS = """body{font-family:system-ui,sans-serif;max-width:60rem;margin:auto;padding:1rem;color:#222}
header a{text-decoration:none;color:#a50e0e}.en{color:#666;font-size:.9em}table{border-collapse:collapse}
td,th{border:1px solid #ccc;padding:.25rem .5rem;text-align:left}.stale{color:#a50;font-weight:bold}"""


def _t(vi: str | None, en: str | None) -> str:
    out = escape(vi or "")
    if en and en != vi:
        out += f' <span class="en" lang="en">/ {escape(en)}</span>'
    return out


def _page(settings: Settings, title: str, body: str) -> bytes:
    site = escape(settings.site_title)
    return (
        f'<!doctype html><html lang="vi"><head><meta charset="utf-8"><title>{escape(title)} · {site}</title>'
        f'<meta name="viewport" content="width=device-width,initial-scale=1"><style>{CSS}</style>'
        f'<link rel="alternate" type="text/turtle" href="/catalog.ttl"></head><body>'
        f'<header><a href="/"><strong>{site}</strong></a> · <a href="/catalog.ttl">DCAT-AP</a> · '
        f'<a href="/api/3/action/package_list">CKAN API</a></header><main>{body}</main>'
        f'<footer><p class="en">Dữ liệu mở: miễn phí, không cần đăng nhập / Open data: free, no login.</p>'
        f"</footer></body></html>"
    ).encode()


def _settings(request: Request) -> Settings:
    settings = request.app.state.settings
    assert isinstance(settings, Settings)
    return settings


def _session(request: Request) -> Any:
    from hub.api.deps import app_session_factory

    return app_session_factory(request)()


def _dataset_link(ds: Dataset) -> str:
    return f'<li><a href="/dataset/{escape(ds.name)}">{_t(ds.title, ds.title_en)}</a></li>'


def _haystack(d: Dataset) -> str:
    tags = " ".join(d.spec.get("tags", []))
    return " ".join(x or "" for x in (d.title, d.title_en, d.notes, d.notes_en, d.key, tags)).casefold()


@router.get("/", include_in_schema=False)
async def home(request: Request, q: str = "") -> Response:
    settings = _settings(request)

    def work() -> bytes:
        with _session(request) as session:
            datasets = public_datasets(session)
            if q:
                needle = q.casefold()
                datasets = [d for d in datasets if needle in _haystack(d)]
            orgs = {o.id: o for o in session.scalars(select(Organization))}
            by_org: dict[str | None, list[Dataset]] = {}
            groups: dict[str, int] = {}
            for d in datasets:
                by_org.setdefault(d.owner_org_id, []).append(d)
                for g in d.spec.get("groups", []):
                    groups[g] = groups.get(g, 0) + 1
            parts = [
                f"<h1>{escape(settings.site_title)}</h1>",
                '<form action="/" method="get"><label>Tìm kiếm / Search: '
                f'<input type="search" name="q" value="{escape(q)}"></label> '
                "<button>Tìm / Go</button></form>",
                f"<p>{len(datasets)} bộ dữ liệu / datasets</p>",
            ]
            for org_id, items in sorted(
                by_org.items(), key=lambda kv: orgs[kv[0]].title if kv[0] in orgs else ""
            ):
                org = orgs.get(org_id or "")
                head = (f'<a href="/organization/{escape(org.name)}">{_t(org.title, org.title_en)}</a>'
                        if org else "—")  # fmt: skip
                parts.append(f"<h2>{head}</h2><ul>{''.join(_dataset_link(d) for d in items)}</ul>")
            if groups:
                parts.append("<h2>Lĩnh vực <span class='en'>/ Groups</span></h2><ul>")
                parts += [f"<li>{escape(g)} ({n})</li>" for g, n in sorted(groups.items())]
                parts.append("</ul>")
            return _page(settings, "Trang chủ", "".join(parts))

    return cached(request, await run_in_threadpool(work), HTML, CACHE)


def _dictionary(settings: Settings, path: str) -> str:
    package_file = settings.data_dir / path / "datapackage.json"
    if not package_file.exists():
        return ""
    fields = json.loads(package_file.read_text(encoding="utf-8"))["resources"][0]["schema"]["fields"]
    rows = "".join(
        f"<tr><td><code>{escape(f['name'])}</code></td><td>{escape(f['type'])}</td>"
        f"<td>{escape(f.get('title', ''))}</td><td>{escape(f.get('description', ''))}</td></tr>"
        for f in fields
    )
    return (
        "<h4>Từ điển dữ liệu <span class='en'>/ Data dictionary</span></h4><table><tr><th>Cột / Column</th>"
        f"<th>Kiểu / Type</th><th>Tên / Title</th><th>Mô tả / Description</th></tr>{rows}</table>"
    )


@router.get("/dataset/{name}", include_in_schema=False)
async def dataset_page(name: str, request: Request) -> Response:
    settings = _settings(request)

    def companion_url() -> str | None:
        """A shared or internal dataset is not public; its open companion package is."""
        with _session(request) as session:
            source = session.scalar(select(Dataset).where((Dataset.name == name) | (Dataset.key == name)))
            c = companion_of(session, source) if source is not None else None
            return f"/dataset/{c.name}" if c is not None and c.state == "active" else None

    def work() -> bytes:
        with _session(request) as session:
            ds = next((d for d in public_datasets(session) if name in (d.name, d.key, d.id)), None)
            if ds is None:
                raise NotFoundError(f"dataset {name!r} is not in the public catalogue")
            org = session.get(Organization, ds.owner_org_id) if ds.owner_org_id else None
            parts = [f"<h1>{_t(ds.title, ds.title_en)}</h1>"]
            if org:
                parts.append(
                    f'<p><a href="/organization/{escape(org.name)}">{_t(org.title, org.title_en)}</a></p>'
                )
            parts.append(
                f"<p>{escape(ds.notes or '')}</p><p class='en' lang='en'>{escape(ds.notes_en or '')}</p>"
            )
            parts.append(f'<p>Metadata: <a href="/dataset/{escape(ds.name)}.ttl">Turtle</a> · '
                         f'<a href="/dataset/{escape(ds.name)}.jsonld">JSON-LD</a> · '
                         f'<a href="/dataset/{escape(ds.name)}.rdf">RDF/XML</a></p>')  # fmt: skip
            if ds.sharing == "open":
                parts.append(_resources(settings, session, ds))
            source = source_of(session, ds)  # an open companion package shows its source's releases
            releases = session.scalars(
                select(Release).where(Release.dataset_id == source.id, Release.state == "active")
            ).all()
            if releases:
                parts.append(
                    "<h2>Dữ liệu mở đã khử định danh <span class='en'>/ De-identified releases</span></h2>"
                )
            for rel in releases:
                parts.append(_release(settings, source, rel))
            return _page(settings, ds.title, "".join(parts))

    moved = await run_in_threadpool(companion_url)
    if moved is not None:
        return RedirectResponse(moved, status_code=302)
    return cached(request, await run_in_threadpool(work), HTML, CACHE)


@router.get("/dataset/{name}/resource/{rid}", include_in_schema=False)
async def resource_page(name: str, rid: str, request: Request) -> Response:
    """CKAN's resource page URL (harvesters and DCAT distributions name it): what the file is, and
    its download link. Resources of datasets outside the public catalogue are not found."""
    settings = _settings(request)

    def work() -> bytes:
        with _session(request) as session:
            ds = next((d for d in public_datasets(session) if name in (d.name, d.key, d.id)), None)
            r = session.get(Resource, rid) if ds is not None else None
            if ds is None or r is None or r.dataset_id != ds.id or r.state != "active":
                raise NotFoundError(f"resource {rid!r} of dataset {name!r} is not in the public catalogue")
            if r.kind == "release" and r.url:
                url = r.url
            else:
                filename = f"{ds.name}.csv" if r.kind == "datastore" else (r.url or "file").rsplit("/", 1)[-1]
                url = r.url if r.kind == "link" and r.url else download_url(settings, ds.id, r.id, filename)
            size = f" · {r.size:,} B" if r.size else ""
            body = (
                f"<h1>{escape(r.name or ds.title)}</h1>"
                f'<p><a href="/dataset/{escape(ds.name)}">{_t(ds.title, ds.title_en)}</a></p>'
                f"<p>{escape(r.description or '')}</p>"
                f"<p>Định dạng / Format: {escape(r.format or '')}{size}</p>"
                f'<p><a href="{escape(url)}">Tải xuống <span class="en" lang="en">/ Download</span></a></p>'
            )
            return _page(settings, r.name or ds.title, body)

    return cached(request, await run_in_threadpool(work), HTML, CACHE)


def _resources(settings: Settings, session: Any, ds: Dataset) -> str:
    rows = session.scalars(
        select(Resource)
        .where(Resource.dataset_id == ds.id, Resource.state == "active", Resource.kind != "release")
        .order_by(Resource.position)
    ).all()  # fmt: skip
    if not rows:
        return ""
    items = "".join(
        f'<li><a href="{escape(download_url(settings, ds.id, r.id, ds.name + ".csv"))}">'
        f"{escape(r.name or ds.name)}</a> {escape(r.format or '')}</li>"
        for r in rows
    )
    return f"<h2>Tài nguyên <span class='en'>/ Resources</span></h2><ul>{items}</ul>"


def _release(settings: Settings, ds: Dataset, rel: Release) -> str:
    stale = ' <span class="stale">cần cập nhật / stale</span>' if is_stale(rel) else ""
    out = [f"<h3>{_t(rel.title, rel.title_en)}{stale}</h3>"]
    freq = escape(str(rel.spec.get("frequency", "")))
    k = rel.spec.get("k") or ds.spec.get("k_anonymity", 5)
    out.append(f"<p>Tần suất / Frequency: {freq} · k = {escape(str(k))}</p>")
    for v in sorted(rel.versions, key=lambda v: -v.version):
        links = " · ".join(
            f'<a href="{escape(release_file_url(settings, ds, rel, v.version, f.name))}">'
            f"{escape(f.name)}</a> "
            f"<small>({f.size:,} B, sha256 {f.sha256[:12]}…)</small>"
            for f in v.files
        )
        out.append(f"<p>v{v.version} · {v.built_at:%Y-%m-%d %H:%M} UTC · {v.rows} dòng / rows: {links}</p>")
    latest = max(rel.versions, key=lambda v: v.version, default=None)
    if latest is not None:
        out.append(_dictionary(settings, latest.path))
    return "".join(out)


@router.get("/organization/{name}", include_in_schema=False)
async def organization_page(name: str, request: Request) -> Response:
    settings = _settings(request)

    def work() -> bytes:
        with _session(request) as session:
            org = session.scalar(select(Organization).where(Organization.name == name))
            if org is None:
                raise NotFoundError(f"organization {name!r} not found")
            items = [d for d in public_datasets(session) if d.owner_org_id == org.id]
            body = (
                f"<h1>{_t(org.title, org.title_en)}</h1><p>{escape(org.description or '')}</p>"
                f"<p class='en' lang='en'>{escape(org.description_en or '')}</p>"
                f"<h2>Bộ dữ liệu <span class='en'>/ Datasets</span></h2>"
                f"<ul>{''.join(_dataset_link(d) for d in items)}</ul>"
            )
            return _page(settings, org.title, body)

    return cached(request, await run_in_threadpool(work), HTML, CACHE)
