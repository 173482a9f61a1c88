"""The portal's dataset pages: ``/dataset/{name}`` and ``/dataset/{name}/resource/{rid}``.

A dataset page answers a journalist's questions (``hub.portal.dataset``), previews the data
(``hub.portal.preview``: a table from the DataStore or a release file, a chart of an aggregate release,
a map of geometries or coordinates), shows copy-ready examples (``hub.portal.snippets``) and carries
schema.org ``Dataset`` JSON-LD. A shared or internal dataset's URL redirects to its open companion
package; anything else outside the public catalogue is the HTML 404.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy import select
from starlette.responses import RedirectResponse, Response

from hub.api.ckan_registry import ActionContext
from hub.api.datastore import datastore_search
from hub.api.portal_render import lang_of, page, portal_cache, render
from hub.api.spatial import find_place
from hub.catalog.ckan import download_url
from hub.catalog.ckan_models import Resource
from hub.catalog.models import Dataset
from hub.errors import HubError, NotFoundError
from hub.portal import preview as pv
from hub.portal.dataset import DatasetView, dataset_view
from hub.portal.i18n import Tr, group_title
from hub.portal.snippets import snippets
from hub.publish.companion import companion_of

router = APIRouter()


def _find(ctx: ActionContext, name: str) -> Dataset | None:
    """The dataset of a name, an id or a key (one indexed lookup each, the name first)."""
    for column in (Dataset.name, Dataset.id, Dataset.key):
        ds = ctx.session.scalar(select(Dataset).where(column == name))
        if ds is not None:
            return ds
    return None


def _public(ctx: ActionContext, name: str) -> Dataset | None:
    ds = _find(ctx, name)
    if ds is None or ds.state != "active" or ds.sharing != "open":
        return None
    return ds


def _companion_url(ctx: ActionContext, name: str) -> str | None:
    """A shared or internal dataset is not public; its open companion package is."""
    source = _find(ctx, name)
    if source is None or source.sharing == "open":
        return None
    c = companion_of(ctx.session, source)
    return f"/dataset/{c.name}" if c is not None and c.state == "active" else None


def _package(ctx: ActionContext, ds: Dataset) -> dict[str, Any]:
    """The package dict of ``ds`` from the search index (the one package_search returns)."""
    idx = ctx.hub.catalog_index.get(ctx.session, ctx.settings, ctx.states(fresh=True))
    n = idx.by_id.get(ds.id)
    return idx.docs[n].package if n is not None else ctx.package(ds)


def _sources(view: DatasetView, t: Tr) -> list[tuple[str, str]]:
    out = (
        [("datastore", t("datastore_table"))] if view.datastore_id and view.datastore_rows is not None else []
    )
    out += [
        (f"release:{r.name}", t.pick(r.title, r.title_en)[0]) for r in view.releases if r.table is not None
    ]
    return out


def _preview(
    ctx: ActionContext, view: DatasetView, params: pv.PreviewParams, t: Tr, path: str
) -> dict[str, Any]:
    sources = _sources(view, t)
    keys = [k for k, _ in sources]
    chosen = params.source if params.source in keys else (keys[0] if keys else "")
    params.source = chosen
    out: dict[str, Any] = {
        "sources": sources,
        "chosen": chosen,
        "params": params,
        "table": None,
        "chart": None,
        "map": None,
        "path": path,
    }
    if chosen == "datastore" and view.datastore_id:
        columns = [f.name for f in view.dictionary]
        try:
            result = datastore_search(ctx, params.datastore_data(view.datastore_id, columns))
            out["table"] = pv.datastore_table(result, chosen, params)
        except HubError as exc:
            out["table"] = pv.Table(chosen, [], [], [], 0, 1, error=exc.message)
        found = pv.coordinates(out["table"].columns or columns)
        if found:
            label = next((c for c in columns if c.endswith("_name") or c == "name"), None)
            fields = ",".join([*found, *([label] if label else [])])
            out["map"] = {
                "kind": "points",
                "lat": found[0],
                "lon": found[1],
                "label": label or "",
                "url": f"/api/3/action/datastore_search?resource_id={view.datastore_id}&fields={fields}"
                "&limit=5000&records_format=objects",
            }
    elif chosen.startswith("release:"):
        rel = next(r for r in view.releases if f"release:{r.name}" == chosen)
        assert rel.table is not None
        out["table"] = pv.release_table(rel.table, chosen, params)
        out["release"] = rel
        if rel.person_count or not rel.file("GeoJSON"):
            out["chart"] = pv.chart(rel.table, rel.person_count, params)
        geo = rel.file("GeoJSON")
        if geo is not None:
            out["map"] = {"kind": "geojson", "url": geo.url, "label": ""}
    return out


def _json_ld(view: DatasetView, base: str, table_csv: str | None) -> str:
    pkg = view.package
    ds = view.ds
    data: dict[str, Any] = {
        "@context": "https://schema.org",
        "@type": "Dataset",
        "name": ds.title,
        "alternateName": ds.title_en or None,
        "description": ds.notes or ds.title,
        "url": f"{base}/dataset/{ds.name}",
        "identifier": ds.id,
        "keywords": [tag["name"] for tag in pkg.get("tags", [])],
        "isAccessibleForFree": True,
        "license": view.license_url or view.license_title,
        "inLanguage": "vi",
        "dateModified": view.last_updated.isoformat() if view.last_updated else None,
        "dateCreated": ds.created.isoformat(),
    }
    if view.organization is not None:
        org = view.organization
        data["publisher"] = data["creator"] = {
            "@type": "GovernmentOrganization",
            "name": org.title,
            "url": f"{base}/organization/{org.name}",
        }
    places = [p for p in (find_place("province" if len(c) <= 2 else "ward", c) for c in view.spatial) if p]
    if places:
        data["spatialCoverage"] = [{"@type": "Place", "name": p.name} for p in places]
    if view.temporal:
        data["temporalCoverage"] = f"{view.temporal[0]}/{view.temporal[1]}"
    downloads = [
        {"@type": "DataDownload", "encodingFormat": f.format, "contentUrl": base + f.url, "name": f.name}
        for r in view.releases
        if r.latest
        for f in r.latest.files
        if f.is_data
    ]
    if table_csv:
        downloads.insert(
            0,
            {
                "@type": "DataDownload",
                "encodingFormat": "CSV",
                "name": f"{ds.name}.csv",
                "contentUrl": table_csv,
            },
        )
    if downloads:
        data["distribution"] = downloads
    text = json.dumps({k: v for k, v in data.items() if v is not None}, ensure_ascii=False)
    return text.replace("</", "<\\/")


@router.get("/dataset/{name}", include_in_schema=False)
async def dataset_page(name: str, request: Request) -> Response:
    t = lang_of(request)
    params = pv.PreviewParams.from_params(request.query_params.multi_items())

    def work(ctx: ActionContext) -> bytes | Response:
        ds = _public(ctx, name)
        if ds is None:
            moved = _companion_url(ctx, name)
            if moved is not None:
                return RedirectResponse(moved, status_code=302)
            raise NotFoundError(f"dataset {name!r} is not in the public catalogue")
        if ds.name != name:
            return RedirectResponse(f"/dataset/{ds.name}", status_code=301)

        def rows(d: Dataset) -> int | None:
            info = ctx.hub.datastore.table_info(d.key, max_age=2.0) if d.contract else None
            return info.rows if info is not None else None

        view = dataset_view(ctx.settings, ctx.session, ds, _package(ctx, ds), portal_cache(request), rows)
        base = ctx.settings.site_url.rstrip("/")
        path = f"/dataset/{ds.name}"
        latest = next((r.latest for r in view.releases if r.latest), None)
        table_csv = csv_url = parquet_url = None
        if view.datastore_id:
            table_csv = csv_url = download_url(ctx.settings, ds.id, view.datastore_id, f"{ds.name}.csv")
        elif latest is not None:
            csv = next((f for f in latest.files if f.format == "CSV"), None)
            parquet = next((f for f in latest.files if f.format == "Parquet"), None)
            csv_url = base + csv.url if csv else None
            parquet_url = base + parquet.url if parquet else None
        groups = [
            (*t.pick(*group_title(g["name"], g.get("title"))), g["name"])
            for g in view.package.get("groups", [])
        ]
        places = [(c, find_place("province" if len(c) <= 2 else "ward", c)) for c in view.spatial]
        context = {
            "v": view,
            "ds": ds,
            "title": t.pick(ds.title, ds.title_en),
            "notes": t.pick(ds.notes, ds.notes_en),
            "org_title": t.pick(view.organization.title, view.organization.title_en)
            if view.organization
            else None,
            "groups": groups,
            "places": places,
            "wards": [(w, find_place("ward", w)) for w in view.wards],
            "preview": _preview(ctx, view, params, t, path),
            "json_ld": _json_ld(view, base, table_csv),
            "snippets": snippets(
                base, ds.name, datastore_id=view.datastore_id, csv_url=csv_url, parquet_url=parquet_url
            ),
            "csv_url": table_csv,
            "source_public": view.source.sharing == "open",
            "base": base,
        }
        return render(request, "portal/dataset.html", context, t)

    return await page(request, t, work)


@router.get("/dataset/{name}/resource/{rid}", include_in_schema=False)
async def resource_page(name: str, rid: str, request: Request) -> Response:
    """CKAN's resource page URL (harvesters and DCAT distributions name it): what the file is, and its
    download link. Resources of datasets outside the public catalogue are not found."""
    t = lang_of(request)

    def work(ctx: ActionContext) -> bytes | Response:
        ds = _public(ctx, name)
        r = ctx.session.get(Resource, rid) if ds is not None else None
        if ds is None or r is None or r.dataset_id != ds.id or r.state != "active":
            raise NotFoundError(f"resource {rid!r} of dataset {name!r} is not in the public catalogue")
        if r.kind == "release" and r.url:
            url = r.url
        else:
            filename = f"{ds.name}.csv" if r.kind == "datastore" else (r.url or "file").rsplit("/", 1)[-1]
            url = r.url if r.kind == "link" and r.url else download_url(ctx.settings, ds.id, r.id, filename)
        context = {"ds": ds, "r": r, "url": url, "title": t.pick(ds.title, ds.title_en)}
        return render(request, "portal/resource.html", context, t)

    return await page(request, t, work)
