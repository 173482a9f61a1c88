"""Incremental state of a dataset, kept in the summary of its table's snapshots; runs left behind.

The runner commits the state a connector returns (``Connector.next_state``) in the same Iceberg
snapshot that makes the rows visible, as the JSON text of the snapshot property ``hub.state``; the
committed state is therefore always the one of the current snapshot (or of its nearest ancestor that
carries one). A killed or failed run commits no snapshot, so the state cannot move without the data.

``recover_interrupted_runs`` settles the runs a killed process left ``running``: ``succeeded`` when a
snapshot carries the run id (the process died after its commit), ``failed`` ("killed") otherwise, with
the run's uncommitted files deleted and its quarantine rows taken out again.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

from pyiceberg.table import Table
from sqlalchemy import select

from hub.auth.audit import record as audit
from hub.auth.principal import SYSTEM
from hub.catalog.models import Dataset, Run
from hub.db import session_scope, utcnow
from hub.errors import HubError
from hub.settings import Settings
from hub.warehouse.quarantine import drop_run
from hub.warehouse.tables import RUN_ID_PROP, STATE_PROP, Warehouse

ACTIVE_RUNS: set[str] = set()
"""Ids of the runs this process is executing (never "interrupted")."""


@dataclass
class RecoveredRun:
    """A run found ``running`` with its process gone, and what it was settled as."""

    run_id: str
    dataset: str
    mode: str
    status: str
    snapshot_id: int | None = None
    error: str | None = None
    error_code: str | None = None


def to_json_value(value: Any) -> Any:
    """A cursor value as JSON can hold it: times and dates in ISO 8601, decimals as text."""
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    return value


def dump_state(state: dict[str, Any] | None) -> str:
    return json.dumps(state, default=to_json_value, sort_keys=True, ensure_ascii=False)


def load_state(text: str | None) -> dict[str, Any] | None:
    if not text:
        return None
    value = json.loads(text)
    return value if isinstance(value, dict) else None


def normalize_state(state: dict[str, Any] | None) -> dict[str, Any] | None:
    """``state`` as it will read back after the commit (a JSON round trip)."""
    return load_state(dump_state(state)) if state is not None else None


def committed_state(table: Table) -> dict[str, Any] | None:
    """The incremental state committed with the table's current snapshot (None: read everything)."""
    snap = table.current_snapshot()
    while snap is not None:
        props = snap.summary.additional_properties if snap.summary else {}
        if STATE_PROP in props:
            return load_state(props[STATE_PROP])
        if snap.parent_snapshot_id is None:
            return None
        snap = table.snapshot_by_id(snap.parent_snapshot_id)
    return None


def snapshot_of_run(table: Table, run_id: str) -> int | None:
    """The id of the snapshot committed by run ``run_id``, if there is one."""
    for snap in table.snapshots():
        props = snap.summary.additional_properties if snap.summary else {}
        if props.get(RUN_ID_PROP) == run_id:
            return snap.snapshot_id
    return None


def _process_alive(pid: int | None, hostname: str | None, run_id: str) -> bool:
    """Whether the process of a ``running`` run may still be at work."""
    if run_id in ACTIVE_RUNS:
        return True
    if hostname and hostname != socket.gethostname():
        return True  # another machine: it settles its own runs when it starts
    if pid is None or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie is dead
    except OSError:
        return True


def recover_interrupted_runs(settings: Settings, *, dataset_id: str | None = None) -> list[RecoveredRun]:
    """Settle runs left ``running`` by a process that is gone: ``succeeded`` when a snapshot carries the
    run id (the process died after its commit), otherwise ``failed`` ("killed") with its files removed.

    The warehouse is touched outside any metadata transaction (SQLite allows one writer at a time)."""
    with session_scope(settings) as session:
        query = (
            select(Run.id, Run.pid, Run.hostname, Run.mode, Dataset.key)
            .join(Dataset, Run.dataset_id == Dataset.id)
            .where(Run.status == "running")
        )
        if dataset_id is not None:
            query = query.where(Run.dataset_id == dataset_id)
        candidates: list[tuple[str, int | None, str | None, str, str]] = [
            (row[0], row[1], row[2], row[3], row[4]) for row in session.execute(query).all()
        ]
    out: list[RecoveredRun] = []
    wh: Warehouse | None = None
    for run_id, pid, hostname, mode, key in candidates:
        if _process_alive(pid, hostname, run_id):
            continue
        wh = wh or Warehouse(settings)
        table = wh.table(key) if wh.has_table(key) else None
        snapshot_id = snapshot_of_run(table, run_id) if table is not None else None
        if snapshot_id is None:
            _remove_files_of(wh, key, run_id)
        with session_scope(settings) as session:
            run = session.get(Run, run_id)
            if run is None or run.status != "running":
                continue
            run.finished_at = utcnow()
            if snapshot_id is not None:
                run.status, run.snapshot_id = "succeeded", snapshot_id
                run.error = "the process ended after its commit; the run's snapshot is complete"
            else:
                run.status, run.error_code = "failed", "killed"
                run.error = f"killed: process {pid} on {hostname} ended during the run; nothing was committed"
                run.state_after = run.state_before
            audit(
                session,
                "run.finish",
                SYSTEM,
                outcome="error" if run.status == "failed" else "allowed",
                dataset_id=run.dataset_id,
                snapshot_id=run.snapshot_id,
                reason=run.error,
                details={"run_id": run.id, "status": run.status, "recovered": True},
            )
            out.append(
                RecoveredRun(
                    run_id=run.id,
                    dataset=key,
                    mode=mode,
                    status=run.status,
                    snapshot_id=run.snapshot_id,
                    error=run.error,
                    error_code=run.error_code,
                )
            )
    return out


def _remove_files_of(wh: Warehouse, key: str, run_id: str) -> None:
    """Delete a dead run's uncommitted files and take its quarantine rows out of the current snapshot."""
    if wh.has_table(key):
        table = wh.table(key)
        for path in wh.data_dir(table).glob(f"{run_id}*.parquet"):
            path.unlink(missing_ok=True)  # no snapshot carries the run: none of its files is referenced
    try:
        qtable = wh.quarantine_table(key)
    except HubError:
        return
    if snapshot_of_run(qtable, run_id) is not None:
        drop_run(wh, key, run_id)
    else:
        for path in wh.data_dir(qtable).glob(f"{run_id}*.parquet"):
            path.unlink(missing_ok=True)
