"""The warehouse: one Apache Iceberg table per dataset, in pyiceberg's SQL catalog.

The catalog (named ``hub``) lives in the metadata database (``settings.database_url``: SQLite or
PostgreSQL); the tables' metadata and Parquet (zstd) files live under ``settings.warehouse_path``.
Dataset key ``civil_status.births`` is namespace ``civil_status``, table ``births``; its rejected rows
go to ``births__quarantine`` in the same namespace.

Every snapshot the runner commits carries the run id and the incremental state in its summary
(``hub.run-id``, ``hub.state``), so that data and state move in one atomic commit.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import unquote, urlparse

import pyarrow as pa
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.exceptions import NamespaceAlreadyExistsError, NoSuchTableError, TableAlreadyExistsError
from pyiceberg.io.pyarrow import schema_to_pyarrow
from pyiceberg.manifest import DataFile
from pyiceberg.table import Table
from pyiceberg.table.snapshots import Snapshot

from hub.errors import NotFoundError, QueryError
from hub.settings import Settings

QUARANTINE_SUFFIX = "__quarantine"
RUN_ID_PROP = "hub.run-id"
STATE_PROP = "hub.state"
MODE_PROP = "hub.mode"
TABLE_PROPERTIES = {
    "write.parquet.compression-codec": "zstd",
    "format-version": "2",
}
METRICS_PROPERTY = "write.metadata.metrics.column."  # + column name: Iceberg's per-column metrics mode

_catalogs: dict[tuple[str, str], SqlCatalog] = {}
_catalog_lock = threading.Lock()


def get_catalog(settings: Settings) -> SqlCatalog:
    """The process-wide pyiceberg SQL catalog of ``settings`` (its tables live in the metadata DB)."""
    settings.ensure_dirs()
    cache_key = (settings.database_url, str(settings.warehouse_path))
    with _catalog_lock:
        catalog = _catalogs.get(cache_key)
        if catalog is None:
            uri = settings.database_url
            if uri.startswith("sqlite") and "timeout=" not in uri:
                uri += ("&" if "?" in uri else "?") + "timeout=30"  # wait for the writer, do not fail
            catalog = SqlCatalog(
                "hub",
                uri=uri,
                warehouse=f"file://{settings.warehouse_path}",
                pool_pre_ping="true",
            )
            _catalogs[cache_key] = catalog
    return catalog


def dispose_catalogs() -> None:
    """Close the catalogs' database connections (tests, forked workers)."""
    with _catalog_lock:
        for catalog in _catalogs.values():
            catalog.engine.dispose()
        _catalogs.clear()


def split_key(key: str) -> tuple[str, str]:
    """``civil_status.births`` -> (``civil_status``, ``births``)."""
    if key.count(".") != 1:
        raise NotFoundError(f"dataset key {key!r} must look like <domain>.<dataset>")
    ns, name = key.split(".", 1)
    return ns, name


def local_path(uri: str) -> str:
    """A ``file://`` URI (or a plain path) as a local file system path."""
    if uri.startswith("file:"):
        return unquote(urlparse(uri).path)
    return uri


def _small_type(t: pa.DataType) -> pa.DataType:
    if pa.types.is_large_string(t):
        return pa.string()
    if pa.types.is_large_binary(t):
        return pa.binary()
    if pa.types.is_large_list(t) or pa.types.is_list(t):
        vf = t.value_field
        return pa.list_(vf.with_type(_small_type(vf.type)))
    if pa.types.is_struct(t):
        return pa.struct([f.with_type(_small_type(f.type)) for f in t])
    return t


def file_schema(table: Table) -> pa.Schema:
    """The Arrow schema data files of ``table`` are written with: Iceberg field ids, 32-bit offsets."""
    schema = schema_to_pyarrow(table.schema(), include_field_ids=True)
    return pa.schema([f.with_type(_small_type(f.type)) for f in schema])


@dataclass(frozen=True)
class SnapshotInfo:
    """One snapshot of a dataset table, as ``hub history`` shows it."""

    snapshot_id: int
    parent_id: int | None
    timestamp: datetime
    operation: str
    summary: dict[str, str] = field(default_factory=dict)
    current: bool = False

    @property
    def run_id(self) -> str | None:
        return self.summary.get(RUN_ID_PROP)

    @property
    def records(self) -> int | None:
        total = self.summary.get("total-records")
        return int(total) if total is not None else None


def _snapshot_info(snap: Snapshot, current_id: int | None) -> SnapshotInfo:
    summary = dict(snap.summary.additional_properties) if snap.summary else {}
    operation = snap.summary.operation.value if snap.summary else "unknown"
    return SnapshotInfo(
        snapshot_id=snap.snapshot_id,
        parent_id=snap.parent_snapshot_id,
        timestamp=datetime.fromtimestamp(snap.timestamp_ms / 1000, tz=UTC),
        operation=operation,
        summary=summary,
        current=snap.snapshot_id == current_id,
    )


class Warehouse:
    """The dataset tables of one hub. Cheap to build: the catalog is shared per process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.catalog = get_catalog(settings)

    # --- tables ----------------------------------------------------------------------------------
    def table(self, key: str) -> Table:
        """The Iceberg table of dataset ``key``; ``NotFoundError`` when it was never loaded."""
        try:
            return self.catalog.load_table(split_key(key))
        except NoSuchTableError as exc:
            raise NotFoundError(f"dataset {key!r} has no table yet (run `hub ingest {key}`)") from exc

    def quarantine_table(self, key: str) -> Table:
        ns, name = split_key(key)
        try:
            return self.catalog.load_table((ns, name + QUARANTINE_SUFFIX))
        except NoSuchTableError as exc:
            raise NotFoundError(f"dataset {key!r} has no quarantine table yet") from exc

    def has_table(self, key: str) -> bool:
        return bool(self.catalog.table_exists(split_key(key)))

    def ensure_table(
        self, key: str, schema: pa.Schema, *, quarantine: bool = False, no_metrics: Iterable[str] = ()
    ) -> Table:
        """The table of ``key`` (or its quarantine table), created from ``schema`` when missing.

        ``no_metrics``: columns whose values must not appear in the table's metadata (direct personal
        identifiers, raw quarantined records): their Iceberg metrics mode is ``none``, so manifests
        carry no lower/upper bounds of them, and their Parquet files no min/max statistics."""
        ns, name = split_key(key)
        ident = (ns, name + QUARANTINE_SUFFIX if quarantine else name)
        hidden = {METRICS_PROPERTY + c: "none" for c in no_metrics}
        try:
            table = self.catalog.load_table(ident)
        except NoSuchTableError:
            pass
        else:
            if any(table.metadata.properties.get(k) != v for k, v in hidden.items()):
                with table.transaction() as tx:
                    tx.set_properties(hidden)
                table.refresh()
            return table
        with contextlib.suppress(NamespaceAlreadyExistsError):
            self.catalog.create_namespace(ns)
        try:
            return self.catalog.create_table(ident, schema=schema, properties={**TABLE_PROPERTIES, **hidden})
        except TableAlreadyExistsError:
            return self.ensure_table(key, schema, quarantine=quarantine, no_metrics=no_metrics)

    def evolve(self, table: Table, schema: pa.Schema) -> Table:
        """Add the columns of ``schema`` that ``table`` lacks (a contract gained optional fields).
        Columns are never dropped or retyped here: old snapshots keep reading as they were."""
        current = set(table.schema().column_names)
        if all(name in current for name in schema.names):
            return table
        added = pa.schema([f.with_nullable(True) for f in schema if f.name not in current])
        with table.update_schema() as update:
            update.union_by_name(added)
        table.refresh()
        return table

    def keys(self) -> list[str]:
        """Every dataset key with a table (quarantine tables left out)."""
        out: list[str] = []
        for ns in self.catalog.list_namespaces():
            for ident in self.catalog.list_tables(ns):
                if not ident[-1].endswith(QUARANTINE_SUFFIX):
                    out.append(".".join(ident))
        return sorted(out)

    def arrow_schema(self, key: str, table: Table | None = None) -> pa.Schema:
        """The Arrow schema of the dataset's table (without Iceberg field ids)."""
        table = table if table is not None else self.table(key)
        schema = schema_to_pyarrow(table.schema(), include_field_ids=False)
        return pa.schema([f.with_type(_small_type(f.type)) for f in schema])

    # --- snapshots -------------------------------------------------------------------------------
    def current_snapshot_id(self, key: str) -> int | None:
        snap = self.table(key).current_snapshot()
        return snap.snapshot_id if snap else None

    def snapshots(self, key: str) -> list[SnapshotInfo]:
        """The table's snapshots, oldest first."""
        table = self.table(key)
        current = table.current_snapshot()
        cid = current.snapshot_id if current else None
        snaps = sorted(table.snapshots(), key=lambda s: (s.timestamp_ms, s.sequence_number or 0))
        return [_snapshot_info(s, cid) for s in snaps]

    def resolve_as_of(self, key: str, as_of: str, table: Table | None = None) -> int:
        """A snapshot id from a snapshot id or an ISO 8601 time (the snapshot current at that time)."""
        table = table if table is not None else self.table(key)
        text = as_of.strip()
        if re.fullmatch(r"-?\d{6,}", text):
            sid = int(text)
            if table.snapshot_by_id(sid) is None:
                raise NotFoundError(f"dataset {key!r} has no snapshot {sid} (see `hub history {key}`)")
            return sid
        try:
            when = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError as exc:
            raise QueryError(
                f"--as-of {as_of!r} is neither a snapshot id nor an ISO 8601 time (2026-01-31T12:00:00Z)"
            ) from exc
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        snap = table.snapshot_as_of_timestamp(int(when.timestamp() * 1000), inclusive=True)
        if snap is None:
            raise NotFoundError(f"dataset {key!r} had no snapshot yet at {when.isoformat()}")
        return snap.snapshot_id

    # --- files -----------------------------------------------------------------------------------
    def data_file_entries(self, table: Table, snapshot_id: int | None = None) -> list[DataFile]:
        """The live data files of a snapshot of ``table`` (default: the current one)."""
        snap = table.current_snapshot() if snapshot_id is None else table.snapshot_by_id(snapshot_id)
        if snap is None:
            if snapshot_id is not None:
                raise NotFoundError(f"table {table.name()} has no snapshot {snapshot_id}")
            return []
        return list(_snapshot_files(table, snap))

    def data_files(self, key: str, snapshot_id: int | None = None) -> list[str]:
        """Local paths of the Parquet files of a snapshot of ``key`` (default: the current one)."""
        return [local_path(f.file_path) for f in self.data_file_entries(self.table(key), snapshot_id)]

    def quarantine_files(self, key: str, snapshot_id: int | None = None) -> list[str]:
        """Local paths of the quarantine table's current Parquet files (empty when there is none)."""
        try:
            table = self.quarantine_table(key)
        except NotFoundError:
            return []
        return [local_path(f.file_path) for f in self.data_file_entries(table, snapshot_id)]

    def data_dir(self, table: Table) -> Path:
        """Where new data files of ``table`` are written."""
        path = Path(local_path(table.location())) / "data"
        path.mkdir(parents=True, exist_ok=True)
        return path

    # --- commits ---------------------------------------------------------------------------------
    def commit(
        self,
        table: Table,
        *,
        add: list[DataFile],
        delete: list[DataFile] | None = None,
        properties: dict[str, str] | None = None,
    ) -> int:
        """One atomic snapshot adding ``add`` and removing ``delete``; returns the new snapshot id."""
        props = dict(properties or {})
        with table.transaction() as txn:
            update = txn.update_snapshot(snapshot_properties=props)
            if delete:
                with update.overwrite() as producer:
                    for f in delete:
                        producer.delete_data_file(f)
                    for f in add:
                        producer.append_data_file(f)
            else:
                with update.fast_append() as producer:
                    for f in add:
                        producer.append_data_file(f)
        table.refresh()
        snap = table.current_snapshot()
        assert snap is not None
        return snap.snapshot_id


_FILES_CACHE: dict[tuple[str, int], tuple[DataFile, ...]] = {}
_FILES_LOCK = threading.Lock()


def _snapshot_files(table: Table, snap: Snapshot) -> tuple[DataFile, ...]:
    """Data files of a snapshot; cached, since a snapshot never changes."""
    cache_key = (snap.manifest_list, snap.snapshot_id)
    with _FILES_LOCK:
        hit = _FILES_CACHE.get(cache_key)
    if hit is not None:
        return hit
    files: list[DataFile] = []
    for manifest in snap.manifests(table.io):
        for entry in manifest.fetch_manifest_entry(table.io, discard_deleted=True):
            files.append(entry.data_file)
    result = tuple(files)
    with _FILES_LOCK:
        if len(_FILES_CACHE) > 2048:
            _FILES_CACHE.clear()
        _FILES_CACHE[cache_key] = result
    return result
