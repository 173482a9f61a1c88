"""Freshness of releases: rebuild after ingests and by frequency; the ``stale`` flag.

- ``after_ingest(settings, dataset_key)``: rebuilds every release that reads that dataset and has
  ``rebuild_on_ingest: true``. Publishing reacts to ingests by subscribing to them: ``subscribe(hooks)``
  adds it to a ``hub.ingest.hooks.RunHooks`` (after every commit of a new snapshot) where the runtime
  is assembled (``hub ingest``, ``hub worker``, ``hub demo run``); the ingest runner never imports
  publish.
- ``rebuild_due(settings)``: rebuilds every release whose last build is older than its frequency
  (``hub releases rebuild-due``; ``subscribe`` also has the worker run it every
  ``STALE_CHECK_SECONDS``).
- ``is_stale(release, now)``: true when the last check (a build, or a rebuild that found the data
  unchanged or empty) is older than the declared frequency allows (or it was never built); shown in
  the API, CKAN resource extras, DCAT and the portal.

Each outcome is a line of words (``version 3, built at ...``, ``unchanged, checked at ...``, ``not
published: the release has no rows, ...``, ``failed: ...``): a release never fails the ingest or the
schedule that triggered it.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable

from sqlalchemy import select

from hub.catalog.ckan_models import Resource
from hub.catalog.models import Dataset
from hub.db import session_scope, utcnow
from hub.errors import HubError
from hub.ingest.hooks import Committed, Followup, RunHooks
from hub.publish.build import build_release, sync_releases
from hub.publish.companion import companion_of
from hub.publish.models import Release
from hub.publish.resources import set_package_stale
from hub.publish.spec import FREQUENCY_DAYS
from hub.runtime import Hub
from hub.settings import Settings
from hub.warehouse.engine import policy

log = logging.getLogger(__name__)

STALE_CHECK_SECONDS = 600.0
"""How often a worker looks for releases older than their frequency (``rebuild_due``)."""


def subscribe(hooks: RunHooks, *, stale_check_seconds: float = STALE_CHECK_SECONDS) -> RunHooks:
    """Publish's side of the ingest events: after every commit of a new snapshot, rebuild the releases
    that read the dataset (what was rebuilt is the run's ``RunResult.releases``); and let a worker
    rebuild the stale releases every ``stale_check_seconds`` (0: never)."""
    hooks.on_after_commit(_rebuild_after_commit)
    if stale_check_seconds > 0:
        hooks.every(stale_check_seconds, rebuild_due)
    return hooks


def _rebuild_after_commit(event: Committed) -> list[Followup]:
    return after_ingest(event.settings, event.dataset)


def is_stale(release: Release, now: dt.datetime | None = None) -> bool:
    """Older than its frequency allows, counted from the last check (a rebuild that found the data
    unchanged or empty checked it as much as one that made a version)."""
    checked = release.last_checked or release.last_built
    if checked is None:
        return True
    days = FREQUENCY_DAYS.get(str(release.spec.get("frequency", "monthly")))
    if days is None:
        return False
    return (now or utcnow()) - checked > dt.timedelta(days=days)


def _sources(release: Release, dataset_key: str) -> list[str]:
    sql = release.spec.get("sql")
    if not sql:
        return [dataset_key]
    return [t for t in _tables(sql)]


def _tables(sql: str) -> list[str]:
    """The dataset keys a release's SQL reads (CTEs resolved by scope, as the query engine does)."""
    try:
        tree = policy.parse_select(sql)
        return sorted({f"{schema}.{name}".lower() for schema, name in policy.referenced(tree) if schema})
    except HubError:
        return []


def _releases(settings: Settings, wanted: Callable[[Release, Dataset], bool]) -> list[tuple[str, str]]:
    """(dataset, release) of the active releases that ``wanted`` picks, the catalogue synced first."""
    with session_scope(settings) as session:
        sync_releases(session)
        rows = session.execute(
            select(Release, Dataset)
            .join(Dataset, Release.dataset_id == Dataset.id)
            .where(Release.state == "active")
        )
        return [(ds.key, rel.name) for rel, ds in rows if wanted(rel, ds)]


def after_ingest(settings: Settings, dataset_key: str) -> list[tuple[str, str, str]]:
    """Rebuild the releases that read ``dataset_key``; returns (dataset, release, outcome) triples."""

    def wanted(rel: Release, ds: Dataset) -> bool:
        sources = _sources(rel, ds.key)
        # a release over several datasets is built once each of them has data
        return (
            bool(rel.spec.get("rebuild_on_ingest", True))
            and dataset_key in sources
            and all(_has_data(settings, s) for s in sources)
        )

    return _build_all(settings, _releases(settings, wanted), f"ingest:{dataset_key}")


def _has_data(settings: Settings, key: str) -> bool:
    from hub.warehouse.tables import Warehouse

    wh = Warehouse(settings)
    return wh.has_table(key) and wh.current_snapshot_id(key) is not None


def rebuild_due(settings: Settings, now: dt.datetime | None = None) -> list[tuple[str, str, str]]:
    """Rebuild every release that is stale (never built, or older than its frequency)."""
    todo = _releases(settings, lambda rel, _ds: is_stale(rel, now))
    out = _build_all(settings, todo, "schedule")
    mark_stale(settings, now)
    return out


def mark_stale(settings: Settings, now: dt.datetime | None = None) -> int:
    """Write each release's ``stale`` flag into its CKAN resources' extras; returns how many are stale."""
    stale_count = 0
    with session_scope(settings) as session:
        by_dataset: dict[str, bool] = {}
        for rel in session.scalars(select(Release).where(Release.state == "active")):
            stale = is_stale(rel, now)
            stale_count += stale
            ds = session.get(Dataset, rel.dataset_id)
            companion = companion_of(session, ds) if ds is not None else None
            home = rel.dataset_id if companion is None or companion.state != "active" else companion.id
            if rel.versions:
                by_dataset[home] = by_dataset.get(home, False) or stale
            query = select(Resource).where(Resource.kind == "release", Resource.dataset_id == home)
            for r in session.scalars(query):
                if (r.extras or {}).get("hub_release") == rel.name and r.extras.get("hub_stale") != stale:
                    r.extras = {**r.extras, "hub_stale": stale}
        for dataset_id, stale in by_dataset.items():
            set_package_stale(session, dataset_id, stale)
    return stale_count


def _build_all(settings: Settings, todo: list[tuple[str, str]], why: str) -> list[tuple[str, str, str]]:
    """Build each (dataset, release) of ``todo`` in a runtime of its own (its query worker starts
    only when there is something to build)."""
    if not todo:
        return []
    with Hub(settings) as hub:
        return [_build(hub, d, r, why) for d, r in todo]


def _build(hub: Hub, dataset: str, name: str, why: str) -> tuple[str, str, str]:
    """One release's outcome: ``version N, built at ...``, ``unchanged, checked at ...``, ``not
    published: the release has no rows, ...`` or ``failed: <why>``; never an exception."""
    try:
        result = build_release(hub, dataset, name, triggered_by=why)
    except HubError as exc:
        log.warning("release %s/%s not rebuilt: %s", dataset, name, exc.message)
        return dataset, name, f"failed: {exc.message}"
    return dataset, name, result.message
