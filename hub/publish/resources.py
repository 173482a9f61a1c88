"""Release files as CKAN resources, and the public URLs of release files.

Every data file of every version becomes a resource (``kind = "release"``, ``path`` relative to the
data directory) so CKAN clients see them; earlier versions' resources stay, named with their version.
The resources belong to the dataset when it is open, else to its open companion package
(``hub.publish.companion``). The public download route is
``/dataset/{dataset}/release/{release}/{version}/{file}`` (no login: releases are open data whatever
the sharing class of the dataset they are derived from).
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hub.catalog.ckan import touch
from hub.catalog.ckan_models import PackageInfo, Resource
from hub.catalog.models import Dataset
from hub.publish.companion import public_home
from hub.publish.models import Release, ReleaseVersion
from hub.settings import Settings

FORMAT_LABEL = {"csv": "CSV", "parquet": "Parquet", "json": "JSON", "geojson": "GeoJSON"}


def release_file_url(settings: Settings, ds: Dataset, rel: Release, version: int, name: str) -> str:
    return f"{settings.site_url.rstrip('/')}/dataset/{ds.name}/release/{rel.name}/{version}/{name}"


def publish_resources(
    settings: Settings, session: Session, ds: Dataset, rel: Release, version: ReleaseVersion
) -> None:
    """Add the data files of ``version`` as resources of ``ds``'s public home (``ds`` when it is open,
    else its open companion package), after its existing resources."""
    home = public_home(session, ds)
    position = session.scalar(select(func.max(Resource.position)).where(Resource.dataset_id == home.id))
    position = -1 if position is None else position
    for f in version.files:
        if not f.is_data:
            continue
        position += 1
        r = Resource(
            dataset_id=home.id,
            kind="release",
            position=position,
            name=f"{rel.title} (v{version.version}, {FORMAT_LABEL.get(f.format, f.format)})",
            description=f"{rel.title_en or rel.title}: open-data release {rel.name}, v{version.version}",
            url=release_file_url(settings, ds, rel, version.version, f.name),
            format=FORMAT_LABEL.get(f.format, f.format),
            mimetype=f.media_type,
            size=f.size,
            hash=f"sha256:{f.sha256}",
            resource_type="release",
            path=f.path,
            extras={"hub_release": rel.name, "hub_release_version": version.version, "hub_stale": False},
            last_modified=version.built_at,
        )
        session.add(r)
        session.flush()
        f.resource_id = r.id
    set_package_stale(session, home.id, False)
    touch(home)


def set_package_stale(session: Session, dataset_id: str, stale: bool) -> None:
    """CKAN package extra ``hub_releases_stale``: is any release of the dataset stale?"""
    info = session.get(PackageInfo, dataset_id)
    if info is None:
        info = PackageInfo(dataset_id=dataset_id, extras={}, fields={})
        session.add(info)
    info.extras = {**(info.extras or {}), "hub_releases_stale": "true" if stale else "false"}
