"""The catalogue as CKAN sees it: package, resource, organization and group dicts, the licence
register, and the sync of catalog YAML tags, groups and DataStore resources.

Dicts follow CKAN 2.9-2.12's default schema (see docs/ckan-api.md): UUID ids, slug names, naive UTC
ISO timestamps with microseconds, ``license_title`` always present, ``private`` = sharing is not open.
"""

from __future__ import annotations

import mimetypes
import re
import unicodedata
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.catalog.ckan_models import (
    DatasetGroup,
    DatasetTag,
    Group,
    PackageInfo,
    Resource,
    Tag,
    datastore_resource_id,
)
from hub.catalog.models import Dataset, Organization
from hub.db import utcnow
from hub.settings import Settings

GROUPS_FILE = "groups.yaml"

# id, title, url, open (CKAN's built-in register, plus the versioned Creative Commons ids the hub uses)
_LICENSES: tuple[tuple[str, str, str, bool], ...] = (
    ("notspecified", "License not specified", "", False),
    (
        "odc-pddl",
        "Open Data Commons Public Domain Dedication and License (PDDL)",
        "http://www.opendefinition.org/licenses/odc-pddl",
        True,
    ),
    (
        "odc-odbl",
        "Open Data Commons Open Database License (ODbL)",
        "http://www.opendefinition.org/licenses/odc-odbl",
        True,
    ),
    (
        "odc-by",
        "Open Data Commons Attribution License",
        "http://www.opendefinition.org/licenses/odc-by",
        True,
    ),
    ("cc-zero", "Creative Commons CCZero", "http://www.opendefinition.org/licenses/cc-zero", True),
    ("cc-by", "Creative Commons Attribution", "http://www.opendefinition.org/licenses/cc-by", True),
    (
        "cc-by-sa",
        "Creative Commons Attribution Share-Alike",
        "http://www.opendefinition.org/licenses/cc-by-sa",
        True,
    ),
    ("gfdl", "GNU Free Documentation License", "http://www.opendefinition.org/licenses/gfdl", True),
    ("other-open", "Other (Open)", "", True),
    ("other-pd", "Other (Public Domain)", "", True),
    ("other-at", "Other (Attribution)", "", True),
    (
        "uk-ogl",
        "UK Open Government Licence (OGL)",
        "http://reference.data.gov.uk/id/open-government-licence",
        True,
    ),
    (
        "cc-nc",
        "Creative Commons Non-Commercial (Any)",
        "http://creativecommons.org/licenses/by-nc/2.0/",
        False,
    ),
    ("other-nc", "Other (Non-Commercial)", "", False),
    ("other-closed", "Other (Not Open)", "", False),
    ("cc-by-4.0", "Creative Commons Attribution 4.0", "https://creativecommons.org/licenses/by/4.0/", True),
    (
        "cc-by-sa-4.0",
        "Creative Commons Attribution Share-Alike 4.0",
        "https://creativecommons.org/licenses/by-sa/4.0/",
        True,
    ),
    ("cc0-1.0", "Creative Commons CC0 1.0", "https://creativecommons.org/publicdomain/zero/1.0/", True),
)
LICENSES: dict[str, tuple[str, str, bool]] = {lid: (t, u, o) for lid, t, u, o in _LICENSES}


def license_list() -> list[dict[str, Any]]:
    """CKAN's license_list result (booleans as strings, as the built-in register gives them)."""
    out = []
    for lid, (title, url, is_open) in LICENSES.items():
        out.append(
            {
                "id": lid,
                "title": title,
                "url": url,
                "status": "active",
                "maintainer": "",
                "family": "",
                "od_conformance": "approved" if is_open else "not reviewed",
                "osd_conformance": "not reviewed",
                "domain_content": "True" if is_open else "False",
                "domain_data": "False",
                "domain_software": "False",
                "is_generic": "True" if lid.startswith("other") else "False",
            }
        )
    return out


def ts(value: datetime | None) -> str | None:
    """CKAN's timestamp format: naive UTC ISO 8601, microseconds when not zero."""
    return value.isoformat() if value is not None else None


def fold(text: str) -> str:
    """Lower-case, accent-free text for search: ``Đất đai`` -> ``dat dai``."""
    text = text.replace("đ", "d").replace("Đ", "d")
    decomposed = unicodedata.normalize("NFD", text.lower())
    return "".join(c for c in decomposed if unicodedata.category(c) != "Mn")


_MUNGE = re.compile(r"[^a-z0-9_. -]")


def munge_filename(name: str) -> str:
    """CKAN's ``munge_filename``: ASCII lower case, ``[a-z0-9_. -]``, spaces to ``-``, at most 100 chars."""
    name = Path(name).name
    stem, dot, ext = name.rpartition(".")
    if not dot:
        stem, ext = name, ""
    stem = _MUNGE.sub("", fold(stem)).strip().replace(" ", "-")
    ext = _MUNGE.sub("", fold(ext))[:21]
    stem = stem[: 100 - len(ext) - 1] if ext else stem[:100]
    return (f"{stem}.{ext}" if ext else stem) or "file"


@dataclass(frozen=True)
class TableState:
    """The current snapshot of a dataset's warehouse table."""

    snapshot_id: int
    committed: datetime | None = None
    rows: int | None = None


StateLookup = Callable[[Dataset], TableState | None]

_FORMAT_MIME = {
    "CSV": "text/csv",
    "JSON": "application/json",
    "GEOJSON": "application/geo+json",
    "PARQUET": "application/vnd.apache.parquet",
    "XLSX": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "ZIP": "application/zip",
    "PDF": "application/pdf",
    "XML": "application/xml",
    "JSONL": "application/x-ndjson",
}


def clean_format(fmt: str | None, url: str | None = None) -> str:
    """Upper-case known formats; guess from the URL's extension when empty (CKAN's clean_format)."""
    if fmt:
        f = fmt.strip().lstrip(".")
        return f.upper() if f.upper() in _FORMAT_MIME or len(f) <= 5 else f
    if url:
        ext = Path(url.split("?", 1)[0]).suffix.lstrip(".")
        return ext.upper() if ext else ""
    return ""


def guess_mimetype(filename: str, fmt: str | None = None) -> str | None:
    if fmt and fmt.upper() in _FORMAT_MIME:
        return _FORMAT_MIME[fmt.upper()]
    return mimetypes.guess_type(filename)[0]


def download_url(settings: Settings, dataset_id: str, resource_id: str, filename: str) -> str:
    return f"{settings.site_url.rstrip('/')}/dataset/{dataset_id}/resource/{resource_id}/download/{filename}"


def datastore_filename(ds: Dataset) -> str:
    return f"{ds.name}.csv"


def resource_dict(settings: Settings, ds: Dataset, r: Resource, state: TableState | None) -> dict[str, Any]:
    """One resource as CKAN returns it (extras flattened to the top level)."""
    url = r.url or ""
    if r.kind == "datastore":
        url = download_url(settings, ds.id, r.id, datastore_filename(ds))
    elif r.url_type == "upload" or r.kind == "release":
        url = download_url(settings, ds.id, r.id, munge_filename(url.rsplit("/", 1)[-1] or r.name or "file"))
    elif url and "://" not in url:
        url = "http://" + url
    out: dict[str, Any] = dict(r.extras or {})
    out.update(
        {
            "id": r.id,
            "package_id": ds.id,
            "position": r.position,
            "state": r.state,
            "url": url,
            "url_type": r.url_type,
            "name": r.name,
            "description": r.description or "",
            "format": r.format or "",
            "mimetype": r.mimetype,
            "mimetype_inner": r.mimetype_inner,
            "size": r.size,
            "hash": r.hash or "",
            "resource_type": r.resource_type,
            "created": ts(r.created),
            "last_modified": ts(r.last_modified),
            "metadata_modified": ts(r.metadata_modified),
            "cache_url": None,
            "cache_last_updated": None,
            "datastore_active": r.kind == "datastore" and state is not None,
        }
    )
    if r.kind == "datastore" and state is not None:
        out["last_modified"] = ts(state.committed) or out["last_modified"]
        out["hub_snapshot_id"] = str(state.snapshot_id)
    return out


def organization_dict(
    org: Organization, *, package_count: int | None = None, full: bool = False
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": org.id,
        "name": org.name,
        "title": org.title,
        "type": "organization",
        "description": org.description or "",
        "image_url": org.image_url or "",
        "created": ts(org.created),
        "is_organization": True,
        "approval_status": "approved",
        "state": org.state,
    }
    if full:
        out.update(
            {
                "display_name": org.title or org.name,
                "image_display_url": org.image_url or "",
                "num_followers": 0,
                "package_count": package_count or 0,
                "extras": [{"key": k, "value": str(v)} for k, v in sorted((org.extras or {}).items())],
                "groups": [],
                "users": [],
                "tags": [],
            }
        )
        if org.title_en:
            out["title_en"] = org.title_en
    return out


def group_dict(g: Group, *, package_count: int | None = None, full: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": g.id,
        "name": g.name,
        "title": g.title,
        "display_name": g.title or g.name,
        "description": g.description or "",
        "image_display_url": g.image_url or "",
    }
    if full:
        out.update(
            {
                "type": "group",
                "image_url": g.image_url or "",
                "created": ts(g.created),
                "is_organization": False,
                "approval_status": "approved",
                "state": g.state,
                "package_count": package_count or 0,
                "num_followers": 0,
                "extras": [{"key": k, "value": str(v)} for k, v in sorted((g.extras or {}).items())],
                "groups": [],
                "users": [],
                "tags": [],
            }
        )
    return out


def package_dicts(
    session: Session, settings: Settings, datasets: list[Dataset], states: StateLookup
) -> list[dict[str, Any]]:
    """Full CKAN package dicts of ``datasets`` (in that order), loading related rows in bulk."""
    if not datasets:
        return []
    ids = [d.id for d in datasets]
    orgs = (
        {o.id: o for o in session.scalars(select(Organization))}
        if len(ids) > 50
        else {
            o.id: o
            for o in session.scalars(
                select(Organization).where(
                    Organization.id.in_({d.owner_org_id for d in datasets if d.owner_org_id})
                )
            )
        }
    )
    infos: dict[str, PackageInfo] = {}
    tags: dict[str, list[Tag]] = defaultdict(list)
    groups: dict[str, list[Group]] = defaultdict(list)
    resources: dict[str, list[Resource]] = defaultdict(list)
    for chunk in _chunks(ids, 500):
        for info in session.scalars(select(PackageInfo).where(PackageInfo.dataset_id.in_(chunk))):
            infos[info.dataset_id] = info
        for ds_id, tag in session.execute(
            select(DatasetTag.dataset_id, Tag)
            .join(Tag, Tag.id == DatasetTag.tag_id)
            .where(DatasetTag.dataset_id.in_(chunk))
        ):
            tags[ds_id].append(tag)
        for ds_id, group in session.execute(
            select(DatasetGroup.dataset_id, Group)
            .join(Group, Group.id == DatasetGroup.group_id)
            .where(DatasetGroup.dataset_id.in_(chunk), Group.state == "active")
        ):
            groups[ds_id].append(group)
        for r in session.scalars(
            select(Resource)
            .where(Resource.dataset_id.in_(chunk), Resource.state == "active")
            .order_by(Resource.position, Resource.created)
        ):
            resources[r.dataset_id].append(r)
    out = []
    for ds in datasets:
        org = orgs.get(ds.owner_org_id) if ds.owner_org_id else None
        state = states(ds)
        res = [r for r in resources.get(ds.id, []) if r.kind != "datastore" or state is not None]
        out.append(
            _package(
                settings, ds, org, infos.get(ds.id), tags.get(ds.id, []), groups.get(ds.id, []), res, state
            )
        )
    return out


def _package(
    settings: Settings,
    ds: Dataset,
    org: Organization | None,
    info: PackageInfo | None,
    tags: list[Tag],
    groups: list[Group],
    resources: list[Resource],
    state: TableState | None,
) -> dict[str, Any]:
    title, lurl, is_open = LICENSES.get(ds.license_id or "", (ds.license_id, "", False))
    tag_dicts = sorted(
        (
            {
                "id": t.id,
                "name": t.name,
                "display_name": t.name,
                "state": "active",
                "vocabulary_id": t.vocabulary_id,
            }
            for t in tags
        ),
        key=lambda t: str(t["name"]),
    )
    res = [resource_dict(settings, ds, r, state) for r in resources]
    for i, r in enumerate(res):
        r["position"] = i
    extras = dict(info.extras) if info and info.extras else {}
    out: dict[str, Any] = dict(info.fields) if info and info.fields else {}
    out.update(
        {
            "id": ds.id,
            "name": ds.name,
            "title": ds.title,
            "notes": ds.notes or "",
            "url": (info.url if info else None) or "",
            "version": info.version if info else None,
            "author": info.author if info else None,
            "author_email": info.author_email if info else None,
            "maintainer": info.maintainer if info else None,
            "maintainer_email": info.maintainer_email if info else None,
            "license_id": ds.license_id or "",
            "license_title": title,
            "isopen": is_open,
            "owner_org": ds.owner_org_id,
            "organization": organization_dict(org) if org else None,
            "private": ds.sharing != "open",
            "state": ds.state,
            "type": "dataset",
            "metadata_created": ts(ds.created),
            "metadata_modified": ts(ds.modified),
            "creator_user_id": info.creator_user_id if info else None,
            "num_resources": len(res),
            "num_tags": len(tag_dicts),
            "tags": tag_dicts,
            "groups": sorted((group_dict(g) for g in groups), key=lambda g: g["name"]),
            "extras": [{"key": k, "value": str(v)} for k, v in sorted(extras.items())],
            "relationships_as_subject": [],
            "relationships_as_object": [],
            "resources": res,
        }
    )
    if lurl:
        out["license_url"] = lurl
    return out


def _chunks(items: list[str], n: int) -> Iterable[list[str]]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


# --- writes shared by the sync and the API ----------------------------------------------------


def set_tags(session: Session, ds: Dataset, names: Iterable[str]) -> bool:
    """Make ``ds``'s free tags exactly ``names``; True when something changed."""
    wanted = sorted({n.strip() for n in names if n and n.strip()})
    current = {
        t.name: t
        for t in session.scalars(
            select(Tag).join(DatasetTag, DatasetTag.tag_id == Tag.id).where(DatasetTag.dataset_id == ds.id)
        )
    }
    if sorted(current) == wanted:
        return False
    for name, tag in current.items():
        if name not in wanted:
            session.delete(session.get(DatasetTag, (ds.id, tag.id)))
    for name in wanted:
        if name in current:
            continue
        found = session.scalar(select(Tag).where(Tag.name == name))
        if found is None:
            found = Tag(name=name)
            session.add(found)
            session.flush()
        session.add(DatasetTag(dataset_id=ds.id, tag_id=found.id))
    session.flush()
    return True


def set_groups(session: Session, ds: Dataset, groups: Iterable[Group]) -> bool:
    wanted = {g.id for g in groups}
    current = set(session.scalars(select(DatasetGroup.group_id).where(DatasetGroup.dataset_id == ds.id)))
    if wanted == current:
        return False
    for gid in current - wanted:
        session.delete(session.get(DatasetGroup, (ds.id, gid)))
    for gid in wanted - current:
        session.add(DatasetGroup(dataset_id=ds.id, group_id=gid))
    session.flush()
    return True


def ensure_group(session: Session, name: str, title: str | None = None, **fields: Any) -> Group:
    group = session.scalar(select(Group).where(Group.name == name))
    if group is None:
        group = Group(name=name, title=title or name, extras={})
        session.add(group)
    elif title and group.title != title:
        group.title = title
    for key, value in fields.items():
        if getattr(group, key) != value:
            setattr(group, key, value)
    session.flush()
    return group


def touch(ds: Dataset) -> None:
    """Bump ``metadata_modified`` (CKAN bumps it whenever a package or its resources change)."""
    ds.modified = utcnow()


def _load_group_specs(settings: Settings) -> dict[str, dict[str, Any]]:
    path = settings.catalog_dir / GROUPS_FILE
    if not path.is_file():
        return {}
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or []
    items = data.get("groups", []) if isinstance(data, dict) else data
    return {str(g["name"]): g for g in items if isinstance(g, dict) and "name" in g}


def _text(value: Any, lang: str) -> str | None:
    if isinstance(value, dict):
        return value.get(lang)
    return str(value) if value is not None and lang == "vi" else None


def sync_ckan(session: Session, settings: Settings) -> None:
    """After ``sync_catalog``: tags, groups, package fields and DataStore resources of catalog datasets.

    Groups are created from their names; ``catalog/groups.yaml`` (a list of ``{name, title: {vi, en},
    description: {vi, en}}``) gives them titles.
    """
    group_specs = _load_group_specs(settings)
    for name, g in group_specs.items():
        ensure_group(
            session,
            name,
            _text(g.get("title"), "vi") or name,
            title_en=_text(g.get("title"), "en"),
            description=_text(g.get("description"), "vi"),
        )
    for ds in session.scalars(
        select(Dataset).where(Dataset.source_file.is_not(None), Dataset.state == "active")
    ):
        spec = ds.spec or {}
        changed = set_tags(session, ds, spec.get("tags") or [])
        groups = [ensure_group(session, n) for n in spec.get("groups") or []]
        changed = set_groups(session, ds, groups) or changed
        changed = _sync_info(session, ds, spec) or changed
        if spec.get("contract"):
            changed = _ensure_datastore_resource(session, ds) or changed
        if changed:
            touch(ds)
    session.flush()


def _sync_info(session: Session, ds: Dataset, spec: dict[str, Any]) -> bool:
    info = session.get(PackageInfo, ds.id) or PackageInfo(dataset_id=ds.id, extras={}, fields={})
    contact = spec.get("contact") or {}
    extras = {k: str(v) for k, v in (spec.get("extras") or {}).items()}
    for key in ("frequency", "spatial", "contract"):
        if spec.get(key):
            extras[key] = str(spec[key])
    extras["hub_key"] = ds.key
    extras["sharing"] = ds.sharing
    if ds.title_en:
        extras["title_en"] = ds.title_en
    wanted = {"maintainer": contact.get("name"), "maintainer_email": contact.get("email"), "extras": extras}
    if session.get(PackageInfo, ds.id) is not None and all(getattr(info, k) == v for k, v in wanted.items()):
        return False
    for key, value in wanted.items():
        setattr(info, key, value)
    session.add(info)
    session.flush()
    return True


def _ensure_datastore_resource(session: Session, ds: Dataset) -> bool:
    rid = datastore_resource_id(ds.id)
    r = session.get(Resource, rid)
    title = ds.title
    if r is not None and r.name == title and r.state == "active":
        return False
    if r is None:
        r = Resource(id=rid, dataset_id=ds.id, kind="datastore", position=0, url="", extras={})
        session.add(r)
    r.name, r.state, r.format, r.mimetype = title, "active", "CSV", "text/csv"
    r.url_type = "datastore"
    r.description = ds.notes or ""
    session.flush()
    return True
