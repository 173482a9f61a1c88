"""The ingest runner: ``hub ingest DATASET``.

One run reads the dataset's source through its connector, checks every batch against the contract,
streams valid rows into new Parquet files of the dataset's Iceberg table and invalid rows (with their
reasons) into its quarantine table, then commits one snapshot per table. The incremental state moves
in the data snapshot's summary (``hub.state``, see ``hub.ingest.state``), so it can only move with the
data. Write modes: ``append``, ``replace`` (the snapshot holds exactly the rows read) and ``upsert``
(by primary key; only the files holding changed keys are rewritten, see ``hub.warehouse.changes``).

A run passes through ``running`` to ``succeeded`` or ``failed`` in the ``runs`` table. A process killed
mid-run leaves its run ``running``; ``recover_interrupted_runs`` (called when the CLI, server or worker
starts) marks it ``failed`` ("killed") unless a snapshot carries its run id, and removes its files.

Before anything is committed, ``check_shrink`` refuses a run that would empty the table or shrink it by
more than ``HUB_INGEST_MAX_DROP_SHARE`` (a source turned to garbage must not empty a loaded table),
unless the run was started with ``allow_shrink=True`` (``hub ingest --allow-shrink``).
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.table import Table
from sqlalchemy import select

from hub.auth.audit import record as audit
from hub.auth.principal import SYSTEM
from hub.catalog.loader import dataset_spec, get_dataset, load_catalog, upsert_dataset, upsert_organization
from hub.catalog.models import Dataset, Run
from hub.catalog.spec import DatasetSpec
from hub.contracts import Contract, Validator, load_contract
from hub.db import session_scope, utcnow
from hub.errors import ConfigError, ConflictError, HubError, IngestError, ThresholdExceededError
from hub.ingest.connector import ROW_COLUMN, WriteMode
from hub.ingest.hooks import Committed, RunHooks
from hub.ingest.memory import tune_malloc
from hub.ingest.modes import Staged, WriteStrategy, strategy_for
from hub.ingest.prefetch import prefetch
from hub.ingest.registry import build_connector
from hub.ingest.state import (
    ACTIVE_RUNS,
    committed_state,
    dump_state,
    normalize_state,
    recover_interrupted_runs,
)
from hub.settings import Settings
from hub.warehouse.quarantine import QUARANTINE_TABLE_SCHEMA, ReasonCounter, drop_run, with_run
from hub.warehouse.tables import MODE_PROP, RUN_ID_PROP, STATE_PROP, Warehouse
from hub.warehouse.writer import BackgroundSink, FileSink

__all__ = ["Progress", "RunResult", "check_shrink", "recover_interrupted_runs", "run_ingest"]

Progress = Callable[[int], None]
"""Called after every batch with the number of rows it held (an increment, as rich's ``advance``)."""


@dataclass
class RunResult:
    """What a run did. ``status`` is ``succeeded`` or ``failed``; ``error`` says why it failed."""

    run_id: str
    dataset: str
    mode: str
    status: str = "running"
    rows_read: int = 0
    rows_loaded: int = 0
    rows_quarantined: int = 0
    bytes_read: int = 0
    seconds: float = 0.0
    snapshot_id: int | None = None
    error: str | None = None
    error_code: str | None = None
    reasons: dict[str, Any] | None = None
    state_before: dict[str, Any] | None = None
    state_after: dict[str, Any] | None = None
    changed: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    """Seconds spent reading the source, validating, writing files and committing."""
    releases: list[tuple[str, str, str]] = field(default_factory=list)
    """Open-data releases rebuilt after the run: (dataset, release, outcome)."""

    @property
    def ok(self) -> bool:
        return self.status == "succeeded"


class _Clock:
    """Adds the seconds spent in a ``with clock(name):`` block to ``timings[name]``."""

    def __init__(self, timings: dict[str, float]) -> None:
        self.timings = timings

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - start


def _sync_dataset(session: Any, settings: Settings, key: str) -> Dataset:
    """Sync ``key``'s catalog file (if it has one) into the metadata DB, then return the dataset."""
    orgs, datasets = load_catalog(settings.catalog_dir)
    match = [d for d in datasets if key in (d.spec.id, d.spec.ckan_name)]
    if match:
        for org in orgs:
            if org.name == match[0].organization:
                upsert_organization(session, org)
        upsert_dataset(session, match[0])
    return get_dataset(session, key)


def _start_run(
    settings: Settings,
    dataset_id: str,
    key: str,
    mode: str,
    state: Any,
    who: str | None,
    allow_shrink: bool = False,
) -> str:
    recover_interrupted_runs(settings, dataset_id=dataset_id)
    with session_scope(settings) as session:
        busy = session.scalar(select(Run).where(Run.dataset_id == dataset_id, Run.status == "running"))
        if busy is not None:
            raise ConflictError(
                f"dataset {key} is already being ingested by run {busy.id} "
                f"(pid {busy.pid} on {busy.hostname})"
            )
        run = Run(
            dataset_id=dataset_id,
            status="running",
            mode=mode,
            started_at=utcnow(),
            pid=os.getpid(),
            hostname=socket.gethostname(),
            triggered_by=who,
            state_before=state,
            rows_read=0,
            rows_loaded=0,
            rows_quarantined=0,
            bytes_read=0,
        )
        session.add(run)
        session.flush()
        details: dict[str, Any] = {"run_id": run.id, "mode": mode}
        if allow_shrink:
            details["allow_shrink"] = True
        audit(session, "run.start", SYSTEM, dataset_id=dataset_id, details=details)
        ACTIVE_RUNS.add(run.id)
        return run.id


def check_shrink(
    *,
    dataset: str,
    mode: WriteMode | str,
    current_rows: int,
    rows_read: int,
    rows_after: int,
    max_drop_share: float,
    allow_shrink: bool = False,
) -> None:
    """Refuse a run that would empty a loaded table or shrink it by more than ``max_drop_share``.

    A source that turns to garbage (a CSV cut to its header, an XML export whose record tag was
    renamed) still reads "successfully", with no or few rows; in replace mode that would empty the
    table. So before anything is committed the runner asks what the run would make the table:

    ========  ==============================  ===================================================
    mode      rows the table would hold       refused (``IngestError``) unless ``allow_shrink``
    ========  ==============================  ===================================================
    replace   the valid rows read             the table holds rows and the run would leave none,
                                              or would remove more than ``max_drop_share`` of them
    upsert    the current rows + new keys     never: an upsert removes no row (a key missing from
                                              the source stays; there is no delete-missing
                                              variant), and a run with few rows is a normal
                                              incremental run
    append    the current rows + rows read    never: nothing is removed
    ========  ==============================  ===================================================

    The rule is about rows a run would *remove*, so only a mode whose strategy may remove rows
    (``WriteStrategy.removes_rows``, see ``hub.ingest.modes``; a future delete-missing upsert, say) is
    checked, with the rows its strategy would leave (``rows_after``). Zero rows left is refused
    whatever the share (even ``1.0``): emptying a table always takes the explicit option. An empty
    table is never protected (nothing to lose).
    """
    strategy = strategy_for(mode)
    if allow_shrink or not strategy.removes_rows or current_rows <= 0:
        return
    dropped = current_rows - rows_after
    if rows_after > 0 and dropped <= max_drop_share * current_rows:
        return
    what = "empty the table" if rows_after <= 0 else f"leave {rows_after:,} rows"
    raise IngestError(
        f"dataset {dataset}: this {strategy.mode.value} run would {what}, which holds {current_rows:,} "
        f"rows now ({rows_read:,} rows read from the source), a drop of {dropped / current_rows:.0%}; "
        f"HUB_INGEST_MAX_DROP_SHARE (ingest_max_drop_share) allows a drop of at most "
        f"{max_drop_share:.0%} and never to zero. Nothing was committed. A source that turned to "
        f"garbage (a file cut short, a renamed tag) must not empty a loaded table; if the source "
        f"really shrank, run it again with `hub ingest {dataset} --allow-shrink`."
    )


# The reader and the Parquet writer run in threads of their own; on a machine of up to 3 cores they
# keep the cores busy, and slicing each batch over more threads only adds contention (measured: one
# validating thread ingests ~25% more rows/s than two on 2 cores).
_VALIDATE_THREADS = None if (os.cpu_count() or 1) > 3 else 1


def _closing(batches: Iterator[pa.RecordBatch]) -> Generator[pa.RecordBatch, None, None]:
    """``batches`` read in the caller's thread, closable as ``prefetch`` is (closing closes the source)."""
    try:
        yield from batches
    finally:
        close = getattr(batches, "close", None)
        if close is not None:
            close()


@dataclass
class _Ingest:
    """The work of one run, between the ``running`` record and its final status. ``_Ingest.open``
    prepares it (the contract, the table, the writers: the run's first I/O); the steps are then
    ``read``, ``check_threshold``, ``check_shrink`` and ``commit``, or ``abort``; ``close`` ends it."""

    settings: Settings
    key: str
    spec: DatasetSpec
    strategy: WriteStrategy
    result: RunResult
    progress: Progress | None
    contract: Contract
    validator: Validator
    primary_key: tuple[str, ...]
    wh: Warehouse
    table: Table
    sink: BackgroundSink
    qsink: FileSink | None = None
    reasons: ReasonCounter = field(default_factory=ReasonCounter)
    cursor_max: Any = None
    batches: int = 0
    quarantine_committed: bool = False

    @classmethod
    def open(
        cls,
        settings: Settings,
        key: str,
        spec: DatasetSpec,
        strategy: WriteStrategy,
        result: RunResult,
        progress: Progress | None,
    ) -> _Ingest:
        """Load the contract, check that the write mode can run, create or evolve the table and start
        the data writer."""
        contract = load_contract(spec.contract, settings.schemas_dir)
        primary_key = tuple(spec.primary_key or contract.primary_key)
        if strategy.needs_primary_key and not primary_key:
            raise ConfigError(f"dataset {key} uses write_mode {strategy.mode.value} but has no primary key")
        wh = Warehouse(settings)
        direct = [f.name for f in contract.fields if f.personal == "direct"]
        table = wh.evolve(
            wh.ensure_table(key, contract.arrow_schema, no_metrics=direct), contract.arrow_schema
        )
        sink = BackgroundSink(FileSink(table, wh.data_dir(table), result.run_id))
        return cls(
            settings=settings,
            key=key,
            spec=spec,
            strategy=strategy,
            result=result,
            progress=progress,
            contract=contract,
            validator=Validator(contract),
            primary_key=primary_key,
            wh=wh,
            table=table,
            sink=sink,
        )

    @property
    def threshold(self) -> float:
        if self.spec.invalid_threshold is not None:
            return self.spec.invalid_threshold
        return self.settings.invalid_threshold

    def read(self) -> None:
        if self.spec.source is None:
            raise ConfigError(f"dataset {self.key} has no source: block; nothing to ingest")
        with session_scope(self.settings) as session:
            connector = build_connector(
                self.settings,
                self.spec.source,
                session=session,
                dataset_spec=self.spec,
                arrow_schema=self.contract.arrow_schema,
            )
        stream = connector.stream(self.spec.source.stream).name
        state_in = self.strategy.state_to_read(self.result.state_before)
        at = datetime.now(UTC)
        clock = _Clock(self.result.timings)
        source = connector.read(stream, state_in)
        batches = prefetch(source) if connector.prefetch(stream) else _closing(source)
        try:  # closing stops the prefetch thread (and the source) also when a batch fails
            while True:
                with clock("read"):
                    batch = next(batches, None)
                if batch is None:
                    break
                if batch.num_rows:
                    self._consume(batch, clock, at)
        finally:
            batches.close()
        self.result.state_after = normalize_state(connector.next_state(stream, state_in, self.cursor_max))

    def _consume(self, batch: pa.RecordBatch, clock: _Clock, at: datetime) -> None:
        """Validate one batch and hand its rows to the data and quarantine writers."""
        if ROW_COLUMN not in batch.schema.names:
            start = self.result.rows_read + 1
            batch = batch.append_column(
                ROW_COLUMN, pa.array(range(start, start + batch.num_rows), pa.int64())
            )
        self.result.rows_read += batch.num_rows
        self.result.bytes_read += batch.nbytes
        with clock("validate"):
            verdict = self.validator.validate(batch, threads=_VALIDATE_THREADS)
        with clock("write"):
            if verdict.n_valid:
                self.sink.write(verdict.valid)
                self._track_cursor(verdict.valid)
            if verdict.n_invalid:
                self.result.rows_quarantined += verdict.n_invalid
                self.reasons.add(verdict.invalid)
                self._quarantine_sink().write(with_run(verdict.invalid, self.result.run_id, at))
        self.batches += 1
        if self.batches % 16 == 0:  # hand memory freed by finished batches back to the system
            pa.default_memory_pool().release_unused()
        if self.progress is not None:
            self.progress(batch.num_rows)

    def _quarantine_sink(self) -> FileSink:
        if self.qsink is None:
            qtable = self.wh.ensure_table(
                self.key, QUARANTINE_TABLE_SCHEMA, quarantine=True, no_metrics=["record"]
            )
            self.qsink = FileSink(qtable, self.wh.data_dir(qtable), self.result.run_id)
        return self.qsink

    def _track_cursor(self, valid: pa.RecordBatch) -> None:
        cursor_field = self.spec.cursor_field
        if not cursor_field or cursor_field not in valid.schema.names:
            return
        value = pc.max(valid.column(cursor_field)).as_py()
        if value is not None and (self.cursor_max is None or value > self.cursor_max):
            self.cursor_max = value

    def check_threshold(self) -> None:
        r = self.result
        if r.rows_read and r.rows_quarantined / r.rows_read > self.threshold:
            share = r.rows_quarantined / r.rows_read
            raise ThresholdExceededError(
                f"{r.rows_quarantined} of {r.rows_read} rows ({share:.1%}) are invalid, "
                f"more than the threshold of {self.threshold:.1%}; nothing was committed. Reasons:\n"
                + self.reasons.text()
            )

    def check_shrink(self, allow_shrink: bool) -> None:
        """``check_shrink`` with this run's numbers and the rows its strategy would leave."""
        if allow_shrink or not self.strategy.removes_rows:
            return  # let through whatever the count: spare a run that removes no row the manifest read
        r = self.result
        current_rows = sum(f.record_count for f in self.wh.data_file_entries(self.table))
        check_shrink(
            dataset=self.key,
            mode=self.strategy.mode,
            current_rows=current_rows,
            rows_read=r.rows_read,
            rows_after=self.strategy.rows_after(current_rows, r.rows_read - r.rows_quarantined),
            max_drop_share=self.settings.ingest_max_drop_share,
            allow_shrink=allow_shrink,
        )

    def commit(self) -> None:
        """The quarantine's snapshot, then the data's, as the write strategy makes it."""
        r = self.result
        if self.qsink is not None and (qfiles := self.qsink.close()):
            self.wh.commit(self.qsink.table, add=qfiles, properties={RUN_ID_PROP: r.run_id})
            self.quarantine_committed = True
        files = self.sink.close()
        written = self.strategy.commit(
            Staged(
                warehouse=self.wh,
                table=self.table,
                files=files,
                rows=self.sink.rows,
                run_id=r.run_id,
                primary_key=self.primary_key,
                properties={
                    RUN_ID_PROP: r.run_id,
                    STATE_PROP: dump_state(r.state_after),
                    MODE_PROP: self.strategy.mode.value,
                },
                state_moved=r.state_after != r.state_before,
            )
        )
        r.rows_loaded = written.rows_loaded
        r.changed = written.changed
        r.snapshot_id = written.snapshot_id
        if r.snapshot_id is None:  # nothing new: the run's snapshot is the current one
            snap = self.table.current_snapshot()
            r.snapshot_id = snap.snapshot_id if snap else None

    def abort(self) -> None:
        self.sink.abort()
        if self.qsink is not None:
            self.qsink.abort()
        if self.quarantine_committed:
            drop_run(self.wh, self.key, self.result.run_id)

    def close(self) -> None:
        """Stop the run's validation threads (after ``commit`` or ``abort``)."""
        self.validator.close()


def _finish(settings: Settings, result: RunResult, dataset_id: str) -> None:
    with session_scope(settings) as session:
        run = session.get(Run, result.run_id)
        assert run is not None
        run.status = result.status
        run.finished_at = utcnow()
        for name in (
            "rows_read",
            "rows_loaded",
            "rows_quarantined",
            "bytes_read",
            "seconds",
            "snapshot_id",
            "error",
            "error_code",
            "reasons",
            "state_after",
        ):
            setattr(run, name, getattr(result, name))
        run.changes = dict(result.changed) or None
        audit(
            session,
            "run.finish",
            SYSTEM,
            outcome="allowed" if result.ok else "error",
            dataset_id=dataset_id,
            snapshot_id=result.snapshot_id,
            rows=result.rows_loaded,
            reason=result.error,
            details={
                "run_id": result.run_id,
                "status": result.status,
                "rows_read": result.rows_read,
                "rows_quarantined": result.rows_quarantined,
                **({"changes": result.changed} if result.changed else {}),
            },
        )
    ACTIVE_RUNS.discard(result.run_id)


def run_ingest(
    settings: Settings,
    key: str,
    *,
    progress: Progress | None = None,
    triggered_by: str | None = None,
    allow_shrink: bool = False,
    hooks: RunHooks | None = None,
) -> RunResult:
    """Ingest dataset ``key`` once. Catalog problems raise; a failed run returns ``status="failed"``.

    ``allow_shrink`` lets a replace run empty the table or remove more than
    ``settings.ingest_max_drop_share`` of its rows (see ``check_shrink``); the run's audit entry
    ``run.start`` records that it was given. When the run commits a new snapshot, the subscribers of
    ``hooks`` hear of it (``RunHooks.after_commit``; publish rebuilds the releases that read the
    dataset) and what they did is ``RunResult.releases``; without hooks nobody is told."""
    tune_malloc()
    started = time.monotonic()
    with session_scope(settings) as session:
        ds = _sync_dataset(session, settings, key)
        dataset_id, key, spec = ds.id, ds.key, dataset_spec(ds)
    strategy = strategy_for(spec.write_mode)
    mode = strategy.mode
    wh = Warehouse(settings)
    state = committed_state(wh.table(key)) if wh.has_table(key) else None
    previous_snapshot = wh.current_snapshot_id(key) if wh.has_table(key) else None
    run_id = _start_run(settings, dataset_id, key, mode.value, state, triggered_by, allow_shrink)
    result = RunResult(run_id=run_id, dataset=key, mode=mode.value, state_before=state)
    work: _Ingest | None = None
    try:
        work = _Ingest.open(settings, key, spec, strategy, result, progress)
        work.read()
        work.check_threshold()
        work.check_shrink(allow_shrink)
        with _Clock(result.timings)("commit"):
            work.commit()
        result.status = "succeeded"
    except BaseException as exc:
        result.status = "failed"
        result.state_after = result.state_before
        result.error = exc.message if isinstance(exc, HubError) else f"{type(exc).__name__}: {exc}"
        result.error_code = exc.code if isinstance(exc, HubError) else IngestError.code
        if work is not None:
            if work.reasons.rows:
                result.reasons = work.reasons.summary()
            try:
                work.abort()
            finally:
                result.snapshot_id = None
        if not isinstance(exc, Exception):
            result.seconds = time.monotonic() - started
            _finish(settings, result, dataset_id)
            raise
    else:
        if work.reasons.rows:
            result.reasons = work.reasons.summary()
    finally:
        if work is not None:
            work.close()  # its threads end with the run
    result.seconds = time.monotonic() - started
    _finish(settings, result, dataset_id)
    if (
        hooks is not None
        and result.ok
        and result.snapshot_id is not None
        and result.snapshot_id != previous_snapshot
    ):
        result.releases = hooks.after_commit(
            Committed(settings, key, run_id, mode, result.snapshot_id, previous_snapshot)
        )
    return result
