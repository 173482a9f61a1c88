"""Building a release: gate -> query -> suppression -> re-identification check -> files -> catalogue.

``build_release(hub, dataset_key, release_name)`` is what ``hub releases build``, the API, the
ingest hook (``hub.publish.freshness``) and the tests call. A refused release raises ``PublishError``;
the refusal is kept on the release (``last_error``) and nothing is published. A build that is not
refused returns a ``BuildResult``: a new version (``BUILT``), or none because the content equals the
latest version's (``UNCHANGED``) or there are no rows (``EMPTY``); the release records when it was
checked (``Release.last_checked``) and what the check found (``last_outcome``).
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.auth.principal import Principal
from hub.catalog.loader import dataset_spec, get_dataset
from hub.catalog.models import Dataset
from hub.contracts.model import FieldInfo
from hub.db import session_scope, utcnow
from hub.errors import ContractError, NotFoundError, PublishError, QueryError
from hub.publish.columns import FieldDoc
from hub.publish.files import ReleaseMeta, release_content, write_release_files
from hub.publish.gate import Catalog, GateReport, SourceField, check_sql
from hub.publish.models import BUILT, EMPTY, UNCHANGED, Release, ReleaseFile, ReleaseVersion
from hub.publish.spec import ReleaseSpec, parse_releases, release_k
from hub.publish.suppress import reidentification_groups, suppress_table
from hub.runtime import Hub
from hub.settings import Settings
from hub.sql import door

log = logging.getLogger(__name__)


def field_kind(f: FieldInfo) -> str:
    """date | geometry | coarse | other, from the contract: which generalization a quasi-identifier
    needs before it may leave in a release (dates: a year or month; geometries, ``x-geometry``: a
    centroid; coarse ones, ``x-coarse``: none, the release is checked for groups smaller than k)."""
    t = f.arrow_type
    if f.format in ("date", "date-time") or pa.types.is_date(t) or pa.types.is_timestamp(t):
        return "date"
    if f.geometry:
        return "geometry"
    if f.coarse:
        return "coarse"
    return "other"


def gate_catalog(settings: Settings, session: Session) -> tuple[Catalog, dict[str, FieldDoc]]:
    """Every dataset's fields with their personal-data class, from the contracts."""
    from hub.contracts import load_contract

    catalog: Catalog = {}
    docs: dict[str, FieldDoc] = {}
    for ds in session.scalars(select(Dataset).where(Dataset.state == "active")):
        if not ds.contract:
            continue
        try:
            contract = load_contract(ds.contract, settings.schemas_dir)
        except ContractError:
            continue
        fields: dict[str, SourceField] = {}
        for f in contract.fields:
            kind = field_kind(f)
            fields[f.name] = SourceField(f.personal, kind, "VARCHAR")  # type: ignore[arg-type]
            docs[f"{ds.key}.{f.name}"] = FieldDoc(f.label_vi, f.label_en, f.description, f.unit)
        catalog[ds.key] = fields
    return catalog, docs


def sync_releases(session: Session) -> list[Release]:
    """Create or update the Release rows of every dataset's ``releases:`` list."""
    out: list[Release] = []
    for ds in session.scalars(select(Dataset).where(Dataset.state == "active")):
        specs = parse_releases(dataset_spec(ds), ds.source_file) if ds.spec.get("releases") else []
        for rel in specs:
            out.append(upsert_release(session, ds, rel, origin="catalog"))
    return out


def upsert_release(session: Session, ds: Dataset, rel: ReleaseSpec, origin: str) -> Release:
    row = session.scalar(select(Release).where(Release.dataset_id == ds.id, Release.name == rel.id))
    if row is None:
        row = Release(dataset_id=ds.id, name=rel.id, title=rel.title.vi, origin=origin, spec={})
        session.add(row)
    row.title, row.title_en = rel.title.vi, rel.title.en
    row.spec = rel.model_dump(mode="json", exclude_none=True)
    row.state = "active"
    session.flush()
    return row


def get_release(session: Session, dataset: str, name: str) -> tuple[Dataset, Release]:
    ds = get_dataset(session, dataset)
    row = session.scalar(select(Release).where(Release.dataset_id == ds.id, Release.name == name))
    if row is None:
        sync_releases(session)
        row = session.scalar(select(Release).where(Release.dataset_id == ds.id, Release.name == name))
    if row is None or row.state != "active":
        raise NotFoundError(f"dataset {ds.key} has no release {name!r}")
    return ds, row


def check_release(settings: Settings, session: Session, ds: Dataset, rel: ReleaseSpec) -> GateReport:
    """The verdict on a release definition (raises ``PublishError`` when refused): the gate, and the
    owner's right to read what it reads (``authorize_release``)."""
    return authorize_release(settings, session, ds, rel)


def protect(table: pa.Table, report: GateReport, rel: ReleaseSpec, k: int) -> tuple[pa.Table, int]:
    """Small-cell suppression and the re-identification check on a release's rows."""
    suppressed = 0
    if report.aggregated and report.quasi_columns and not rel.person_count:
        raise PublishError(
            f"release {rel.id} groups by quasi-identifiers ({', '.join(report.quasi_columns)}); "
            "declare person_count: the output column that counts persons"
        )
    if rel.person_count:
        measures = {
            c.name
            for c in report.columns
            if c.lineage and all(x.treatment in ("counted", "aggregated") for x in c.lineage)
        }
        dims = [n for n in table.column_names if n not in measures and n != rel.person_count]
        table, suppressed = suppress_table(table, rel.person_count, dims, k)
    if report.aggregated or rel.rows_are_persons:
        small = reidentification_groups(table, report.quasi_columns, rel.person_count, k)
        if small:
            raise PublishError(
                f"release {rel.id}: {len(small)} combination(s) of quasi-identifiers "
                f"({', '.join(report.quasi_columns)}) match fewer than {k} persons; "
                "generalize further or aggregate"
            )
    return table, suppressed


def canonical_order(table: pa.Table, report: GateReport) -> pa.Table:
    """Rows in the order of their values, column by column, unless the release SQL orders them: equal
    data gives equal files (and equal small-cell suppression, whose ties go by row position) whatever
    order the query engine's threads returned the groups in."""
    if report.tree.args.get("order") is not None or not table.num_rows:
        return table
    try:
        return table.sort_by([(name, "ascending") for name in table.column_names])
    except (pa.ArrowNotImplementedError, pa.ArrowTypeError):  # a type without an order: as returned
        return table


def release_principal(ds: Dataset, rel: ReleaseSpec) -> Principal:
    """Whom a release reads data as: its owner, the organization that owns its dataset."""
    return Principal(
        kind="client",
        subject=f"release:{ds.key}/{rel.id}",
        name=f"release {rel.id} of {ds.key}",
        org_id=ds.owner_org_id,
        scopes=frozenset({"datastore:read"}),
    )


def authorize_release(settings: Settings, session: Session, ds: Dataset, rel: ReleaseSpec) -> GateReport:
    """The gate's verdict on a release definition and its owner's right to every dataset it reads
    (another organization's shared data: a grant whose purpose allows publication). Raises
    ``PublishError`` naming the column or the dataset; each decision is audited."""
    spec = dataset_spec(ds)
    catalog, _ = gate_catalog(settings, session)
    report = check_sql(rel.sql or f"SELECT * FROM {spec.id}", catalog)
    door.authorize(
        session, release_principal(ds, rel), report.tree, door.RELEASE, settings=settings, publication=True
    )
    return report


@dataclass(frozen=True)
class BuildResult:
    """What one build found: ``BUILT`` (a new version), ``UNCHANGED`` (the rows and their description
    equal the latest version's: no version, no file, only ``Release.last_checked``) or ``EMPTY`` (no
    rows: nothing published)."""

    dataset: str
    release: str
    outcome: str
    checked_at: datetime
    current: ReleaseVersion | None
    """The new version (``BUILT``), else the latest published version (None if there is none)."""
    rows: int = 0
    suppressed: int = 0

    @property
    def message(self) -> str:
        return check_message(self.outcome, self.checked_at, self.current.version if self.current else None)


def check_message(outcome: str | None, checked_at: datetime | None, version: int | None) -> str:
    """The outcome of a release's last build in words (``hub releases build``, the ingest hook's
    outcomes, the API's ``last_check``)."""
    at = f"{checked_at:%Y-%m-%dT%H:%M:%SZ}" if checked_at else "?"
    if outcome == UNCHANGED:
        return f"unchanged, checked at {at}; version {version} stays current"
    if outcome == EMPTY:
        latest = f"; version {version} is the latest published" if version else ""
        return f"not published: the release has no rows, checked at {at}{latest}"
    return f"version {version}, built at {at}"


def latest_version(session: Session, release_id: str) -> ReleaseVersion | None:
    return session.scalar(
        select(ReleaseVersion)
        .where(ReleaseVersion.release_id == release_id)
        .order_by(ReleaseVersion.version.desc())
        .limit(1)
    )


def build_release(hub: Hub, dataset: str, name: str, *, triggered_by: str | None = None) -> BuildResult:
    """Build a release: a new version (files written, catalogue updated) when its content changed.

    The gate checks the SQL, the owner's rights are checked again (a revoked grant stops the next
    version), and the tree the gate approved runs in a query worker that sees only those datasets.
    The rows and their description are fingerprinted in memory (``hub.publish.files.release_content``):
    equal to the latest version's, nothing is written (``UNCHANGED``); no rows, nothing is published
    (``EMPTY``). Either way the release records when it was checked."""
    settings = hub.settings
    with session_scope(settings) as session:
        ds, row = get_release(session, dataset, name)
        spec = dataset_spec(ds)
        rel = ReleaseSpec.model_validate(row.spec)
        k = release_k(rel, spec)
        catalog, docs = gate_catalog(settings, session)
        try:
            report = check_sql(rel.sql or f"SELECT * FROM {spec.id}", catalog)
            for key in report.datasets:  # the current snapshots, not those cached for a moment
                hub.datastore.forget(key)
            try:
                table, _, prepared = door.run(
                    hub, session, release_principal(ds, rel), report.tree, door.RELEASE, publication=True
                )
            except QueryError as exc:
                raise PublishError(f"release SQL failed: {exc.message}") from exc
            snapshots = prepared.snapshots
            table, suppressed = protect(canonical_order(table, report), report, rel, k)
            meta = ReleaseMeta(
                name=f"{ds.name}-{rel.id}", title={"vi": rel.title.vi, "en": rel.title.en},
                license_id=rel.license, k=k, geometry=rel.geometry,
            )  # fmt: skip
            content = release_content(table, meta, report=report, docs=docs, person_count=rel.person_count)
        except PublishError as exc:
            row.last_error = exc.message
            session.commit()
            raise
        checked = utcnow()
        row.last_checked, row.last_error = checked, None
        latest = latest_version(session, row.id)
        if table.num_rows == 0 or (latest is not None and latest.content_sha256 == content.sha256):
            row.last_outcome = EMPTY if table.num_rows == 0 else UNCHANGED
            session.flush()
            session.expunge_all()
            log.info("release %s/%s: %s", ds.key, rel.id, check_message(row.last_outcome, checked,
                     latest.version if latest else None))  # fmt: skip
            return BuildResult(ds.key, rel.id, row.last_outcome, checked, latest, table.num_rows, suppressed)
        number = (latest.version if latest else 0) + 1
        rel_path = Path("releases") / ds.key / rel.id / str(number)
        folder = settings.data_dir / rel_path
        if folder.exists():
            shutil.rmtree(folder)
        files = write_release_files(
            content,
            folder,
            extra={"dataset": ds.key, "release": rel.id, "version": number, "sources": snapshots},
        )
        version = ReleaseVersion(
            release_id=row.id, version=number, rows=table.num_rows, suppressed=suppressed, sources=snapshots,
            lineage=_lineage(report), path=str(rel_path), triggered_by=triggered_by,
            content_sha256=content.sha256, built_at=checked,
        )  # fmt: skip
        session.add(version)
        session.flush()
        for f in files:
            session.add(ReleaseFile(
                version_id=version.id, name=f.name, format=f.format, media_type=f.media_type,
                path=str(rel_path / f.name), size=f.size, sha256=f.sha256, is_data=f.is_data,
            ))  # fmt: skip
        session.flush()
        row.last_built, row.last_outcome = checked, BUILT
        from hub.publish.resources import publish_resources

        publish_resources(settings, session, ds, row, version)
        session.expunge_all()
        return BuildResult(ds.key, rel.id, BUILT, checked, version, table.num_rows, suppressed)


def _lineage(report: GateReport) -> list[dict[str, Any]]:
    return [
        {"column": c.name, "sources": [{"source": x.source, "personal": x.personal, "treatment": x.treatment}
                                       for x in c.lineage]}
        for c in report.columns
    ]  # fmt: skip
