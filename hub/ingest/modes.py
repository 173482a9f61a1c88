"""Write modes: how a run's rows become the table's next snapshot, one strategy per mode.

The runner streams a run's valid rows into new Parquet files of the table (*staged*: written, not
visible to any reader), then hands them to the dataset's ``WriteStrategy``:

=========  ======================  ===========================================  ========================
mode       reads                   commits                                      shrink guard
=========  ======================  ===========================================  ========================
append     the rows after the      the staged files added (Iceberg ``append``); never: no row removed
           committed state         no snapshot when nothing was read and the
                                   state did not move
replace    the whole source (no    the staged files in place of every current   the table would keep
           state is passed)        file (``overwrite``); the keys added and     the valid rows read
                                   deleted are counted when there is a key
upsert     the rows after the      the current files that hold a changed key    never: no row removed
           committed state         rewritten with the staged rows
                                   (``hub.warehouse.changes.upsert``); no
                                   snapshot when no key changed and the state
                                   did not move; the staged files that the
                                   snapshot does not reference are deleted
=========  ======================  ===========================================  ========================

``strategy_for(mode)`` gives the strategy of a ``WriteMode`` (or of its name as a catalog file writes
it); modes are compared only as ``WriteMode`` members. A new mode is a new strategy in ``STRATEGIES``:
the runner has no branch per mode. The shrink guard itself is ``hub.ingest.runner.check_shrink``; a
strategy says whether its runs may remove rows (``removes_rows``) and how many rows the table would
hold after one (``rows_after``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar

from pyiceberg.manifest import DataFile
from pyiceberg.table import Table

from hub.errors import ConfigError
from hub.ingest.connector import WriteMode
from hub.warehouse.changes import UpsertPlan, replace_changes, upsert
from hub.warehouse.tables import Warehouse, local_path

__all__ = ["STRATEGIES", "Staged", "WriteStrategy", "Written", "strategy_for"]


@dataclass
class Staged:
    """A run's valid rows, written as data files of ``table`` and not committed yet."""

    warehouse: Warehouse
    table: Table
    files: list[DataFile]
    rows: int
    run_id: str
    primary_key: tuple[str, ...]
    properties: dict[str, str]
    """The new snapshot's summary properties (run id, incremental state, mode)."""
    state_moved: bool
    """The incremental state changed: a snapshot is due even when no row changed (it carries the state)."""


@dataclass
class Written:
    """What a strategy committed: rows loaded, the new snapshot (None: none was made), changes by key."""

    rows_loaded: int
    snapshot_id: int | None = None
    changed: dict[str, int] = field(default_factory=dict)


class WriteStrategy(ABC):
    """How one write mode reads, commits and is guarded (see the module docstring)."""

    mode: ClassVar[WriteMode]
    reads_everything: ClassVar[bool] = False
    """The connector gets no state: the run reads the whole source."""
    removes_rows: ClassVar[bool] = False
    """A run may remove rows from the table, so the shrink guard checks it."""
    needs_primary_key: ClassVar[bool] = False

    def state_to_read(self, committed: dict[str, Any] | None) -> dict[str, Any] | None:
        """The state handed to ``Connector.read``: the committed one, or None to read everything."""
        return None if self.reads_everything else committed

    def rows_after(self, current_rows: int, valid_rows: int) -> int:
        """How many rows the table would hold after a run with ``valid_rows`` valid rows (what the
        shrink guard compares with ``current_rows``). Default: a mode that removes no row keeps at
        least the current ones."""
        return current_rows

    @abstractmethod
    def commit(self, staged: Staged) -> Written:
        """Make ``staged`` the table's next snapshot (or none); on failure, leave no file of its own."""


class Append(WriteStrategy):
    mode = WriteMode.APPEND

    def rows_after(self, current_rows: int, valid_rows: int) -> int:
        return current_rows + valid_rows

    def commit(self, staged: Staged) -> Written:
        written = Written(rows_loaded=staged.rows)
        if staged.files or staged.state_moved:
            written.snapshot_id = staged.warehouse.commit(
                staged.table, add=staged.files, properties=staged.properties
            )
        return written


class Replace(WriteStrategy):
    mode = WriteMode.REPLACE
    reads_everything = True  # the new snapshot must hold exactly the source's rows
    removes_rows = True

    def rows_after(self, current_rows: int, valid_rows: int) -> int:
        return valid_rows

    def commit(self, staged: Staged) -> Written:
        wh = staged.warehouse
        current = wh.data_file_entries(staged.table)
        changed = replace_changes(staged.files, current, staged.primary_key)
        props = dict(staged.properties)
        if changed:
            props["hub.replace"] = f"added={changed['added']},deleted={changed['deleted']}"
        snapshot_id = wh.commit(staged.table, add=staged.files, delete=current, properties=props)
        return Written(rows_loaded=staged.rows, snapshot_id=snapshot_id, changed=changed)


class Upsert(WriteStrategy):
    mode = WriteMode.UPSERT
    needs_primary_key = True

    def commit(self, staged: Staged) -> Written:
        wh, table = staged.warehouse, staged.table
        out = wh.data_dir(table) / f"{staged.run_id}-u.parquet"
        plan: UpsertPlan | None = None
        written: Written | None = None
        try:
            plan = upsert(staged.files, wh.data_file_entries(table), staged.primary_key, table, out)
            written = Written(
                rows_loaded=plan.changed, changed={"inserted": plan.inserted, "updated": plan.updated}
            )
            if plan.changed or staged.state_moved:
                props = {
                    **staged.properties,
                    "hub.upsert": f"inserted={plan.inserted},updated={plan.updated}",
                }
                written.snapshot_id = wh.commit(table, add=plan.add, delete=plan.delete, properties=props)
        except BaseException:
            out.unlink(missing_ok=True)
            raise
        finally:
            committed = plan is not None and written is not None and written.snapshot_id is not None
            kept = {f.file_path for f in plan.add} if plan is not None and committed else set()
            for f in staged.files:  # staged files that the snapshot does not reference
                if f.file_path not in kept:
                    Path(local_path(f.file_path)).unlink(missing_ok=True)
        return written


STRATEGIES: MappingProxyType[WriteMode, WriteStrategy] = MappingProxyType(
    {s.mode: s for s in (Append(), Replace(), Upsert())}
)
"""The strategy of each write mode (read-only; the strategies hold no state)."""


def strategy_for(mode: WriteMode | str) -> WriteStrategy:
    """The strategy of ``mode`` (a ``WriteMode`` or its name); ``ConfigError`` names the known modes."""
    try:
        return STRATEGIES[WriteMode(mode)]
    except ValueError:
        known = ", ".join(m.value for m in WriteMode)
        raise ConfigError(f"write mode {mode!r} is not one of {known}") from None
