"""Incremental state of a dataset, kept in the summary of its table's snapshots.

The runner commits the state a connector returns (``Connector.next_state``) in the same Iceberg
snapshot that makes the rows visible, as the JSON text of the snapshot property ``hub.state``; the
committed state is therefore always the one of the current snapshot (or of its nearest ancestor that
carries one). A killed or failed run commits no snapshot, so the state cannot move without the data.
"""

from __future__ import annotations

import json
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

from pyiceberg.table import Table

from hub.warehouse.tables import RUN_ID_PROP, STATE_PROP


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
