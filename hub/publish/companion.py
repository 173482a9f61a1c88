"""Open companion packages: how the open releases of shared and internal data reach the public.

A release is open data whatever the sharing class of the dataset it is derived from. An open dataset
carries its releases' files itself. A shared (dùng chung) or internal (dùng riêng) dataset stays
private, and its open releases live in an *open companion package*:

- key ``<dataset key>.open``, CKAN name ``<dataset name>-open``, sharing ``open``, owned by the same
  organization; titles "<title> (dữ liệu mở)" / "<title> (open data)"; tags, groups (lĩnh vực),
  spatial coverage, frequency and contact copied from the source; the licence of its releases;
- its resources are the release files (``Resource.kind = "release"``);
- it names its source in the package extras (``hub_derived_from``: the source's name; ``hub_source_sharing``)
  and in DCAT (``prov:wasDerivedFrom`` and ``dct:source``).

So every reader (``package_list``, ``package_search``, ``package_show``,
``current_package_list_with_resources``, ``/catalog.*`` and the portal) sees the same public packages:
the active open datasets, companions included (``public_datasets``). The companion exists once the
source has a built release version; ``sync_companions`` (run at every start) keeps them in step.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.catalog.ckan import ensure_group, set_groups, set_tags, touch
from hub.catalog.ckan_models import PackageInfo, Resource
from hub.catalog.models import Dataset
from hub.publish.models import Release, ReleaseVersion

SUFFIX_KEY = ".open"
SUFFIX_NAME = "-open"
COPIED = ("tags", "groups", "spatial", "frequency", "contact", "temporal")


def is_companion(ds: Dataset) -> bool:
    return bool((ds.spec or {}).get("derived_from"))


def source_of(session: Session, ds: Dataset) -> Dataset:
    """The dataset whose releases ``ds`` publishes: itself, or a companion's source."""
    key = (ds.spec or {}).get("derived_from")
    if not key:
        return ds
    return session.scalar(select(Dataset).where(Dataset.key == key)) or ds


def companion_of(session: Session, ds: Dataset) -> Dataset | None:
    return session.scalar(select(Dataset).where(Dataset.key == ds.key + SUFFIX_KEY))


def public_home(session: Session, ds: Dataset) -> Dataset:
    """Where the release files of ``ds`` are published: ``ds`` when it is open, else its companion."""
    if ds.sharing == "open":
        return ds
    return ensure_companion(session, ds)


def _license(session: Session, ds: Dataset) -> str:
    rel = session.scalar(
        select(Release).where(Release.dataset_id == ds.id, Release.state == "active").order_by(Release.name)
    )
    return str((rel.spec or {}).get("license") or "cc-by-4.0") if rel is not None else "cc-by-4.0"


def ensure_companion(session: Session, ds: Dataset) -> Dataset:
    """The open companion package of ``ds`` (created or brought up to date)."""
    spec: dict[str, Any] = {k: v for k, v in (ds.spec or {}).items() if k in COPIED and v}
    spec.update({"derived_from": ds.key, "license": _license(session, ds)})
    c = companion_of(session, ds)
    if c is None:
        c = Dataset(key=ds.key + SUFFIX_KEY, name=ds.name + SUFFIX_NAME, title=ds.title, spec={})
        session.add(c)
    wanted = {
        "owner_org_id": ds.owner_org_id,
        "title": f"{ds.title} (dữ liệu mở)",
        "title_en": f"{ds.title_en} (open data)" if ds.title_en else "Open data",
        "notes": (
            f"Dữ liệu mở đã khử định danh, tổng hợp từ bộ dữ liệu «{ds.title}» qua các bản phát hành đã "
            "được kiểm tra. " + (ds.notes or "")
        ).strip(),
        "notes_en": (
            f"De-identified open data derived from «{ds.title_en or ds.title}» through checked releases. "
            + (ds.notes_en or "")
        ).strip(),
        "sharing": "open",
        "license_id": spec["license"],
        "contract": None,
        "spec": spec,
        "state": "active",
    }
    changed = False
    for attr, value in wanted.items():
        if getattr(c, attr) != value:
            setattr(c, attr, value)
            changed = True
    session.flush()
    changed = set_tags(session, c, spec.get("tags") or []) or changed
    changed = set_groups(session, c, [ensure_group(session, n) for n in spec.get("groups") or []]) or changed
    info = session.get(PackageInfo, c.id) or PackageInfo(dataset_id=c.id, extras={}, fields={})
    contact = spec.get("contact") or {}
    extras = {
        "hub_key": c.key,
        "sharing": "open",
        "hub_derived_from": ds.name,
        "hub_source_sharing": ds.sharing,
        **{k: str(spec[k]) for k in ("frequency", "spatial") if spec.get(k)},
    }
    if ds.title_en:
        extras["title_en"] = wanted["title_en"]
    fields = (extras, contact.get("name"), contact.get("email"))
    if (info.extras, info.maintainer, info.maintainer_email) != fields:
        info.extras, info.maintainer, info.maintainer_email = fields
        session.add(info)
        changed = True
    if changed:
        touch(c)
    session.flush()
    return c


def _retire(session: Session, c: Dataset) -> None:
    if c.state != "deleted":
        c.state = "deleted"
        touch(c)


def sync_companions(session: Session) -> list[Dataset]:
    """Every dataset with a built release version publishes it where it should (its companion when it
    is not open); release resources follow; a companion whose source became open, or lost every
    version, is retired. Returns the active companions."""
    with_versions = set(
        session.scalars(
            select(Release.dataset_id).join(ReleaseVersion, ReleaseVersion.release_id == Release.id)
        )
    )
    out: list[Dataset] = []
    for ds in session.scalars(select(Dataset).where(Dataset.state == "active")).all():
        if is_companion(ds):
            source = source_of(session, ds)
            if source is ds or source.sharing == "open" or source.id not in with_versions:
                _retire(session, ds)
            continue
        if ds.id not in with_versions:
            continue
        home = public_home(session, ds)
        if home is not ds:
            out.append(home)
        others = [ds.id] + ([c.id] if (c := companion_of(session, ds)) is not None and c is not home else [])
        for r in session.scalars(
            select(Resource).where(Resource.kind == "release", Resource.dataset_id.in_(others))
        ):
            if r.dataset_id != home.id:
                r.dataset_id = home.id
                touch(home)
        if home is ds and (c := companion_of(session, ds)) is not None:
            _retire(session, c)
    session.flush()
    return out


def public_datasets(session: Session) -> list[Dataset]:
    """The public catalogue: the active open datasets (companions of shared and internal data
    included), by name. Every reader of the catalogue shows exactly these."""
    return list(
        session.scalars(
            select(Dataset).where(Dataset.state == "active", Dataset.sharing == "open").order_by(Dataset.name)
        )
    )
