"""SQL doors: SQL written outside the hub, from text to rows, through one path.

Every door (CKAN's ``datastore_search_sql``, ``/api/v1/query``, the PostgreSQL protocol, release
builds, ``hub query``) runs a query the same way:

1. ``policy.parse_select``: one read-only SELECT within the size and nesting limits, no denied function;
2. every relation the query names (CTEs resolved by scope) is looked up in the catalogue as the door
   names tables (``Door.datastore_names``: DataStore resource ids, dataset names and keys, with the
   ``_id`` column; otherwise dataset keys such as ``civil_status.births``);
3. ``authorize_read`` decides and audits each dataset; a dataset the caller may not read gives exactly
   the error of one that does not exist;
4. the approved tree, its relations replaced by engine names, runs in a query worker on which exactly
   those snapshots are registered (``hub.warehouse.engine``): no other table, no file;
5. each non-open read is audited with the snapshot read and the rows returned (or the error).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlglot import exp

from hub.auth.authorize import Authorization, authorize_read
from hub.auth.principal import Decision, Principal
from hub.catalog.ckan_models import Resource
from hub.catalog.models import Dataset
from hub.errors import HubError, NotFoundError, PublishError, QueryError
from hub.publish.models import Release
from hub.runtime import Hub
from hub.settings import Settings
from hub.warehouse.engine import policy
from hub.warehouse.engine.pool import ResultStream
from hub.warehouse.engine.tables import TableSource
from hub.warehouse.query import dataset_view
from hub.warehouse.tables import Warehouse

DATASTORE_SCHEMA = "ds"
"""``ds."<resource id>"``: the schema DataStore tables were once named with (still accepted)."""
RELEASES_SCHEMA = "releases"
"""``releases."<release id>"`` (or ``releases."<dataset key>/<release id>"``): the latest version of an
open-data release, readable by everyone at the doors that name tables by dataset key."""


@dataclass(frozen=True)
class Door:
    """How one door names tables and audits reads."""

    action: str
    """The audit log's name of a read through this door."""
    scope: str | None
    """The token scope non-open reads need."""
    datastore_names: bool = False
    """Tables are DataStore resources (resource id, dataset name or key) with the ``_id`` column."""
    explain_refusals: bool = False
    """A refusal names the dataset and the reason (release builds, whose authors are agencies'
    editors); otherwise it is worded exactly as for a table that does not exist."""


DATASTORE_SQL = Door("query.sql", "datastore:read", datastore_names=True)
API_QUERY = Door("query.api", "warehouse:query")
PG_QUERY = Door("query.pg", "warehouse:query")
RELEASE = Door("release.read", None, explain_refusals=True)


@dataclass
class Read:
    """One relation a query reads: as written, the dataset and snapshot, and its authorization (None
    for an open-data release)."""

    shown: str
    source: TableSource
    auth: Authorization | None


@dataclass
class Prepared:
    """A query the policy approved and the caller may run: the SQL text of the approved tree (its
    relations named by engine names) and the snapshots registered under those names."""

    sql: str
    tables: dict[str, TableSource] = field(default_factory=dict)
    reads: list[Read] = field(default_factory=list)

    @property
    def snapshots(self) -> dict[str, int | None]:
        return {r.source.key: r.source.snapshot_id for r in self.reads}

    def audit(self, outcome: str, rows: int | None, reason: str | None = None) -> None:
        for read in self.reads:
            if read.auth is not None:
                read.auth.record(
                    outcome=outcome, snapshot_id=read.source.snapshot_id, rows=rows, reason=reason
                )


def _find(session: Session, door: Door, schema: str | None, name: str) -> Dataset | None:
    """The active dataset with a table that ``schema.name`` names at this door, or None."""
    name_l = name.lower()
    schema_l = schema.lower() if schema else None
    ds: Dataset | None = None
    if door.datastore_names:
        ref = name_l if schema_l in (None, DATASTORE_SCHEMA) else f"{schema_l}.{name_l}"
        r = session.get(Resource, ref)
        if r is not None:
            if r.kind == "datastore" and r.state == "active":
                ds = session.get(Dataset, r.dataset_id)
        else:
            ds = session.scalar(select(Dataset).where((Dataset.name == ref) | (Dataset.key == ref)))
    elif schema_l is not None:
        ds = session.scalar(select(Dataset).where(Dataset.key == f"{schema_l}.{name_l}"))
    if ds is None or ds.state != "active" or not ds.contract:
        return None
    return ds


def _source(hub: Hub, key: str, as_of: str | int | None, row_id: bool) -> TableSource | None:
    if as_of is None:
        info = hub.datastore.table_info(key)
        return None if info is None else info.table_source(row_id)
    wh = Warehouse(hub.settings)
    if not wh.has_table(key):
        return None
    view = dataset_view(wh, key, as_of)
    return TableSource(key, view.snapshot_id, view.files, view.schema, row_id)


def release_source(session: Session, settings: Settings, name: str) -> TableSource | None:
    """The latest version of the release ``name`` (``<release id>`` when no other dataset has a release
    of that id, or ``<dataset key or name>/<release id>``) as a table, or None."""
    dataset_ref, _, release_id = name.rpartition("/")
    query = (
        select(Release, Dataset)
        .join(Dataset, Release.dataset_id == Dataset.id)
        .where(Release.name == release_id, Release.state == "active", Dataset.state == "active")
    )
    if dataset_ref:
        query = query.where((Dataset.key == dataset_ref) | (Dataset.name == dataset_ref))
    found = session.execute(query).all()
    if len(found) != 1:
        return None
    rel, ds = found[0]
    latest = max(rel.versions, key=lambda v: v.version, default=None)
    path = settings.data_dir / latest.path / "data.parquet" if latest is not None else None
    if latest is None or path is None or not path.is_file():
        return None
    return TableSource(f"{ds.key}/{rel.name}", latest.version, (str(path),), pq.read_schema(path))


def _refusal(door: Door, schema: str | None, name: str, ds: Dataset) -> Callable[[Decision], HubError]:
    def error(decision: Decision) -> HubError:
        if door.explain_refusals:
            return PublishError(f"the release may not read {ds.key}: {decision.reason}", dataset=ds.key)
        return policy.unknown(schema, name)

    return error


def _limits(settings: Settings) -> policy.Limits:
    return policy.Limits(settings.query_max_sql_chars, settings.query_max_nesting)


def authorize(
    session: Session,
    principal: Principal,
    sql: str | exp.Query,
    door: Door,
    *,
    settings: Settings,
    publication: bool = False,
) -> list[Authorization]:
    """Check ``sql`` and decide every dataset it reads, without running it (a release's definition);
    each decision is audited."""
    tree = sql if isinstance(sql, exp.Query) else policy.parse_select(sql, _limits(settings))
    text = sql if isinstance(sql, str) else sql.sql(dialect="duckdb")
    out: dict[str, Authorization] = {}
    for schema, name in policy.referenced(tree):
        ds = _find(session, door, schema, name)
        if ds is None:
            if door.explain_refusals:
                raise PublishError(f"the release reads {schema}.{name}, which is not a dataset with a table")
            raise policy.unknown(schema, name)
        if ds.id not in out:
            out[ds.id] = authorize_read(
                session,
                principal,
                ds,
                door.action,
                scope=door.scope,
                publication=publication,
                details={"sql": text[:2000]},
                error=_refusal(door, schema, name, ds),
            )
    return list(out.values())


def prepare(
    hub: Hub,
    session: Session,
    principal: Principal,
    sql: str | exp.Query,
    door: Door,
    *,
    as_of: Mapping[str, str | int] | None = None,
    publication: bool = False,
) -> Prepared:
    """Check ``sql`` (text, or a tree the release gate already approved) and authorize its reads; the
    allowed reads are audited later, with what the query returned (``Prepared.audit``)."""
    tree = sql if isinstance(sql, exp.Query) else policy.parse_select(sql, _limits(hub.settings))
    text = sql if isinstance(sql, str) else sql.sql(dialect="duckdb")
    wanted_as_of = {k.lower(): v for k, v in (as_of or {}).items()}
    used_as_of: set[str] = set()
    prepared = Prepared(sql="")
    bound: dict[tuple[str, str | int | None], str] = {}

    def register(
        key: tuple[str, str | int | None], shown: str, source: TableSource, auth: Authorization | None
    ) -> str:
        engine_name = f"_t{len(prepared.tables) + 1}"
        prepared.tables[engine_name] = source
        prepared.reads.append(Read(shown, source, auth))
        bound[key] = engine_name
        return engine_name

    def resolve(schema: str | None, name: str, when: str | None) -> str:
        shown = f"{schema}.{name}" if schema else name
        if schema and schema.lower() == RELEASES_SCHEMA and not door.datastore_names:
            if when is not None:
                raise QueryError(f"{shown}: a release is read at its latest version (no time travel)")
            release = release_source(session, hub.settings, name)
            if release is None:
                raise policy.unknown(schema, name)
            key = (release.key, release.snapshot_id)
            return bound.get(key) or register(key, shown, release, None)  # open data: no decision
        ds = _find(session, door, schema, name)
        if ds is None:
            if door.explain_refusals:
                raise PublishError(f"the release reads {schema}.{name}, which is not a dataset with a table")
            raise policy.unknown(schema, name)
        at: str | int | None = when
        if at is None and ds.key in wanted_as_of:
            at = wanted_as_of[ds.key]
            used_as_of.add(ds.key)
        if (ds.id, at) in bound:
            return bound[(ds.id, at)]
        auth = authorize_read(
            session,
            principal,
            ds,
            door.action,
            scope=door.scope,
            publication=publication,
            defer=True,
            details={"sql": text[:2000]},
            error=_refusal(door, schema, name, ds),
        )
        try:
            source = _source(hub, ds.key, at, door.datastore_names)
        except NotFoundError as exc:
            raise QueryError(f"{ds.key}: {exc.message}") from exc
        if source is None:
            if door.explain_refusals:
                raise PublishError(f"no data yet for {ds.key} (run `hub ingest {ds.key}` first)")
            raise policy.unknown(schema, name)
        return register((ds.id, at), shown, source, auth)

    prepared.sql, _bound = policy.bind(tree, resolve)
    unused = set(wanted_as_of) - used_as_of
    if unused:
        raise QueryError(f"as-of names datasets the query does not read: {', '.join(sorted(unused))}")
    return prepared


def run(
    hub: Hub,
    session: Session,
    principal: Principal,
    sql: str | exp.Query,
    door: Door,
    *,
    max_rows: int | None = None,
    timeout: float | None = None,
    as_of: Mapping[str, str | int] | None = None,
    publication: bool = False,
) -> tuple[pa.Table, bool, Prepared]:
    """Run one query through ``door``: the rows (at most ``max_rows``), whether there were more, and
    what was read. Reads are audited with the outcome; refusals and errors are committed at once."""
    prepared = prepare(hub, session, principal, sql, door, as_of=as_of, publication=publication)
    try:
        table, truncated = hub.pool.query(
            prepared.sql,
            prepared.tables,
            timeout=timeout if timeout is not None else hub.settings.query_timeout_seconds,
            max_rows=max_rows,
        )
    except QueryError as exc:
        prepared.audit("error", None, exc.message)
        session.commit()  # keep the audit entries of the failed query
        raise
    prepared.audit("allowed", table.num_rows)
    return table, truncated, prepared


def stream(
    hub: Hub,
    session: Session,
    principal: Principal,
    sql: str | exp.Query,
    door: Door,
    *,
    timeout: float | None = None,
    as_of: Mapping[str, str | int] | None = None,
    cancel: threading.Event | None = None,
) -> tuple[ResultStream, Prepared]:
    """Start one query through ``door`` and return its result stream (the caller closes it and audits
    the rows with ``prepared.audit``). Setting ``cancel`` before the first rows are ready stops the
    query (``QueryError`` of kind ``canceled``, audited as an error)."""
    prepared = prepare(hub, session, principal, sql, door, as_of=as_of)
    try:
        result = hub.pool.run(
            prepared.sql,
            prepared.tables,
            timeout=timeout if timeout is not None else hub.settings.query_timeout_seconds,
            cancel=cancel,
        )
    except QueryError as exc:
        prepared.audit("error", None, exc.message)
        session.commit()
        raise
    return result, prepared
