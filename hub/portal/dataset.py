"""What a dataset page tells a journalist: what the data is, who publishes it under which licence, what
it covers, how fresh it is, where it comes from, every file to download and what each column means.

``dataset_view`` gathers it from the package dict (the same one ``package_show`` gives), the releases
of the dataset's source (a companion package shows its source's releases), the last ingest run and the
contracts. Release tables and contracts are read through ``PortalCache``.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, cast

import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from hub.catalog.ckan import LICENSES
from hub.catalog.models import Dataset, Organization, Run
from hub.contracts import load_contract
from hub.errors import HubError
from hub.portal.preview import temporal_coverage
from hub.publish.companion import source_of
from hub.publish.freshness import is_stale
from hub.publish.models import Release, ReleaseFile, ReleaseVersion
from hub.publish.spec import FREQUENCY_DAYS
from hub.settings import Settings

T = TypeVar("T")
FORMAT_LABEL = {
    "csv": "CSV",
    "parquet": "Parquet",
    "json": "JSON",
    "geojson": "GeoJSON",
    "datapackage": "Data Package",
    "md": "Markdown",
    "sha256": "SHA-256",
}


class PortalCache:
    """What the portal read or rendered lately: release versions' data (``data.parquet``, by path: a
    version's files are written once), contracts' data dictionaries (by reference and file time) and
    rendered pages (by URL and language, for one catalogue signature). Owned by the portal's state on
    the app, never a module global."""

    PAGE_SECONDS = 60.0
    """Longest life of a cached page: what depends on the clock (stale flags) is at most this late."""

    def __init__(self, entries: int = 64, pages: int = 256) -> None:
        self._entries = entries
        self._tables: OrderedDict[Path, pa.Table | None] = OrderedDict()
        self._fields: dict[tuple[str, str, float], list[FieldRow]] = {}
        self._coverage: dict[Path, tuple[tuple[str, str] | None, list[str]]] = {}
        self._memo: dict[str, tuple[tuple[Any, ...], Any]] = {}
        self._pages: OrderedDict[tuple[str, ...], tuple[tuple[Any, ...], float, bytes]] = OrderedDict()
        self._max_pages = pages
        self._lock = threading.Lock()

    def page(self, key: tuple[str, ...], signature: tuple[Any, ...]) -> bytes | None:
        """A page rendered for ``key`` while the catalogue had ``signature`` (the search index's: counts
        and last changes of datasets, resources, organizations, groups and runs), younger than
        ``PAGE_SECONDS``; None when there is none."""
        with self._lock:
            found = self._pages.get(key)
            if found is None or found[0] != signature or time.monotonic() - found[1] > self.PAGE_SECONDS:
                return None
            self._pages.move_to_end(key)
            return found[2]

    def keep(self, key: tuple[str, ...], signature: tuple[Any, ...], body: bytes) -> None:
        with self._lock:
            self._pages[key] = (signature, time.monotonic(), body)
            self._pages.move_to_end(key)
            while len(self._pages) > self._max_pages:
                self._pages.popitem(last=False)

    def fields(self, settings: Settings, ref: str) -> list[FieldRow]:
        path = settings.schemas_dir / f"{ref}.schema.json"
        key = (str(settings.schemas_dir), ref, path.stat().st_mtime if path.is_file() else 0.0)
        found = self._fields.get(key)
        if found is None:
            found = self._fields[key] = contract_fields(settings, ref)
        return found

    def memo(self, key: str, signature: tuple[Any, ...], make: Callable[[], T]) -> T:
        """``make()``, kept while the catalogue's signature stays ``signature``."""
        found = self._memo.get(key)
        if found is not None and found[0] == signature:
            return cast(T, found[1])
        value = make()
        self._memo[key] = (signature, value)
        return value

    def coverage(self, path: Path) -> tuple[tuple[str, str] | None, list[str]]:
        """(temporal coverage, ward codes) of a release version's data, worked out once."""
        found = self._coverage.get(path)
        if found is None:
            table = self.get(path)
            wards: list[str] = []
            if table is not None and "ward_code" in table.column_names:
                wards = sorted(str(c) for c in pc.unique(table.column("ward_code")).to_pylist() if c)
            if len(self._coverage) > 4 * self._entries:
                self._coverage.clear()
            found = self._coverage[path] = (temporal_coverage(table) if table is not None else None, wards)
        return found

    def get(self, path: Path) -> pa.Table | None:
        with self._lock:
            if path in self._tables:
                self._tables.move_to_end(path)
                return self._tables[path]
        import pyarrow.parquet as pq

        table = pq.read_table(path) if path.is_file() else None
        with self._lock:
            self._tables[path] = table
            while len(self._tables) > self._entries:
                self._tables.popitem(last=False)
        return table


@dataclass
class FieldRow:
    name: str
    type: str
    label_vi: str = ""
    label_en: str = ""
    description: str = ""
    unit: str = ""


@dataclass
class FileView:
    name: str
    format: str
    size: int
    sha256: str
    url: str
    is_data: bool


@dataclass
class VersionView:
    version: int
    built_at: dt.datetime
    rows: int
    suppressed: int
    files: list[FileView]


@dataclass
class ReleaseView:
    name: str
    title: str
    title_en: str | None
    description: dict[str, str]
    """``{"vi": ..., "en": ...}`` (either may be missing)."""
    frequency: str
    stale: bool
    k: int
    person_count: str | None
    last_checked: dt.datetime | None
    latest: VersionView | None
    earlier: list[VersionView]
    dictionary: list[FieldRow]
    table: pa.Table | None = None
    temporal: tuple[str, str] | None = None
    wards: list[str] = field(default_factory=list)

    def file(self, fmt: str) -> FileView | None:
        files = self.latest.files if self.latest else []
        return next((f for f in files if f.format == fmt), None)


@dataclass
class RunView:
    status: str
    finished_at: dt.datetime | None
    rows_read: int
    rows_loaded: int
    rows_quarantined: int


@dataclass
class DatasetView:
    ds: Dataset
    package: dict[str, Any]
    source: Dataset
    organization: Organization | None
    license_title: str
    license_url: str
    license_open: bool
    contact_name: str | None
    contact_email: str | None
    frequency: str | None
    spatial: list[str]
    source_system: str | None
    last_run: RunView | None
    last_updated: dt.datetime | None
    releases: list[ReleaseView]
    datastore_id: str | None
    datastore_rows: int | None
    dictionary: list[FieldRow]

    @property
    def stale(self) -> bool:
        return any(r.stale for r in self.releases)

    @property
    def wards(self) -> list[str]:
        return sorted({w for r in self.releases for w in r.wards})

    @property
    def temporal(self) -> tuple[str, str] | None:
        spans = [r.temporal for r in self.releases if r.temporal]
        if not spans:
            return None
        return min(s[0] for s in spans), max(s[1] for s in spans)


def _file_url(source: Dataset, rel: Release, version: int, name: str) -> str:
    return f"/dataset/{source.name}/release/{rel.name}/{version}/{name}"


def _version(source: Dataset, rel: Release, v: ReleaseVersion) -> VersionView:
    files = [
        FileView(
            f.name,
            FORMAT_LABEL.get(f.format, f.format),
            f.size,
            f.sha256,
            _file_url(source, rel, v.version, f.name),
            f.is_data,
        )
        for f in sorted(v.files, key=_file_order)
    ]
    return VersionView(v.version, v.built_at, v.rows, v.suppressed, files)


def _file_order(f: ReleaseFile) -> tuple[int, str]:
    order = ["csv", "parquet", "json", "geojson", "datapackage", "md", "sha256"]
    return (order.index(f.format) if f.format in order else len(order), f.name)


def _package_fields(settings: Settings, version: ReleaseVersion) -> list[FieldRow]:
    path = settings.data_dir / version.path / "datapackage.json"
    if not path.is_file():
        return []
    try:
        fields = json.loads(path.read_text(encoding="utf-8"))["resources"][0]["schema"]["fields"]
    except (ValueError, KeyError, IndexError):
        return []
    rows = []
    for f in fields:
        title = str(f.get("title") or "")
        vi, _, en = title.partition(" / ")
        rows.append(
            FieldRow(str(f.get("name")), str(f.get("type", "")), vi, en, str(f.get("description") or ""))
        )
    return rows


def contract_fields(settings: Settings, ref: str) -> list[FieldRow]:
    """The data dictionary of a DataStore table: its contract's fields, bilingual labels and units."""
    try:
        contract = load_contract(ref, settings.schemas_dir)
    except HubError:
        return []
    return [
        FieldRow(
            f.name,
            f.json_type if not f.format else f"{f.json_type} ({f.format})",
            f.label_vi or "",
            f.label_en or "",
            f.description or "",
            f.unit or "",
        )
        for f in contract.fields
    ]


def _release(
    settings: Settings, session: Session, source: Dataset, rel: Release, cache: PortalCache
) -> ReleaseView:
    versions = sorted(rel.versions, key=lambda v: -v.version)
    latest = versions[0] if versions else None
    spec = rel.spec or {}
    view = ReleaseView(
        name=rel.name,
        title=rel.title,
        title_en=rel.title_en,
        description=dict(spec["description"])
        if isinstance(spec.get("description"), dict)
        else ({"vi": str(spec["description"])} if spec.get("description") else {}),
        frequency=str(spec.get("frequency") or "monthly"),
        stale=is_stale(rel),
        k=int(spec.get("k") or (source.spec or {}).get("k_anonymity") or 5),
        person_count=spec.get("person_count"),
        last_checked=rel.last_checked or rel.last_built,
        latest=_version(source, rel, latest) if latest else None,
        earlier=[_version(source, rel, v) for v in versions[1:]],
        dictionary=_package_fields(settings, latest) if latest else [],
    )
    if latest is not None:
        path = settings.data_dir / latest.path / "data.parquet"
        view.table = cache.get(path)
        view.temporal, view.wards = cache.coverage(path)
    return view


def _last_run(session: Session, ds: Dataset) -> RunView | None:
    run = session.scalar(
        select(Run)
        .where(Run.dataset_id == ds.id, Run.status != "running")
        .order_by(Run.started_at.desc())
        .limit(1)
    )
    if run is None:
        return None
    return RunView(run.status, run.finished_at, run.rows_read, run.rows_loaded, run.rows_quarantined)


def dataset_view(
    settings: Settings,
    session: Session,
    ds: Dataset,
    package: dict[str, Any],
    cache: PortalCache,
    datastore_rows: Callable[[Dataset], int | None],
) -> DatasetView:
    """The dataset page of ``ds`` (a public dataset) whose CKAN package dict is ``package``."""
    source = source_of(session, ds)
    spec = ds.spec or {}
    src_spec = source.spec or {}
    org = session.get(Organization, ds.owner_org_id) if ds.owner_org_id else None
    title, url, is_open = LICENSES.get(ds.license_id or "", (ds.license_id or "", "", False))
    contact = spec.get("contact") or src_spec.get("contact") or {}
    releases = [
        _release(settings, session, source, rel, cache)
        for rel in session.scalars(
            select(Release)
            .options(selectinload(Release.versions).selectinload(ReleaseVersion.files))
            .where(Release.dataset_id == source.id, Release.state == "active")
            .order_by(Release.name)
        )
    ]
    conn = src_spec.get("source") or {}
    system = None
    if isinstance(conn, dict) and conn.get("connector"):
        system = str(conn["connector"]) + (f" · {conn['stream']}" if conn.get("stream") else "")
    run = _last_run(session, source)
    has_table = next((r for r in package.get("resources", []) if r.get("url_type") == "datastore"), None)
    rows = datastore_rows(ds) if has_table else None
    moments = [ds.modified, run.finished_at if run and run.status == "succeeded" else None]
    moments += [r.latest.built_at for r in releases if r.latest]
    return DatasetView(
        ds=ds,
        package=package,
        source=source,
        organization=org,
        license_title=title or (ds.license_id or ""),
        license_url=url,
        license_open=is_open,
        contact_name=contact.get("name"),
        contact_email=contact.get("email") or (org.email if org else None),
        frequency=spec.get("frequency") or src_spec.get("frequency"),
        spatial=str(spec.get("spatial") or src_spec.get("spatial") or "").replace(",", " ").split(),
        source_system=system,
        last_run=run,
        last_updated=max((m for m in moments if m), default=None),
        releases=releases,
        datastore_id=has_table["id"] if has_table else None,
        datastore_rows=rows,
        dictionary=cache.fields(settings, ds.contract) if ds.contract and has_table else [],
    )


def overdue(frequency: str | None, last: dt.datetime | None, now: dt.datetime) -> bool:
    """Whether a dataset without releases is older than its declared frequency allows."""
    days = FREQUENCY_DAYS.get(str(frequency)) if frequency else None
    return bool(days is not None and last is not None and now - last > dt.timedelta(days=days))
