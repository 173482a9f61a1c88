"""The privacy guard in front of ``open``: which contracts may not be open, and which names of people the
warehouse holds (the scan of uploads to open datasets, ``hub.catalog.privacy_scan``, looks for them).

Rule of ``open_refusal(contract)``, the one door that every way of making a dataset open goes through
(the catalog sync, ``POST /api/v1/datasets``, CKAN's ``package_create``/``package_update``/``package_patch``):

============================================  ================================================
the contract has a field with ``x-personal``  the dataset may be ``open``
============================================  ================================================
``direct`` (a name, a personal id, ...)       no: publish it through a release (de-identified)
``sensitive`` (ethnicity, health, ...)        no: same
``quasi`` only, or no personal field          yes (its releases still pass the release gate)
============================================  ================================================

A *name column* (``is_name_field``): a ``direct`` field of JSON type string, without a format or the
``vn-personal-id`` check, whose name has the word ``name`` (``owner_name``, ``child_full_name``) or whose
label says it is a name (English ``name``; Vietnamese ``tên``, accents folded: ``Họ và tên``, ``Tên
người sử dụng đất``), unless its name has the word ``id``, ``code`` or ``number``.

A *known name* (``name_key``): a value of a name column, folded (``hub.catalog.ckan.fold``: lower case,
no accents, ``đ`` as ``d``) into its words (letters and digits) joined by one space, when it has 2 to
``MAX_NAME_WORDS`` words: a single word (``An``) names nobody in particular. ``KnownNames`` reads them
from the current snapshots of the warehouse's tables and keeps them per snapshot; the runtime owns one
(``hub.runtime.Hub.known_names``), never a module.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.catalog.ckan import fold
from hub.catalog.models import Dataset
from hub.contracts import Contract, FieldInfo, load_contract
from hub.errors import HubError
from hub.settings import Settings

log = logging.getLogger(__name__)

REFUSED_CLASSES = ("direct", "sensitive")
MAX_NAME_WORDS = 8
_WORD = re.compile(r"[^\W_]+")
_NOT_NAME = {"id", "code", "number", "no"}


# --- the rule --------------------------------------------------------------------------------------


def personal_fields(contract: Contract) -> dict[str, list[str]]:
    """The contract's fields of each refused personal class (``direct``, ``sensitive``), in order."""
    out: dict[str, list[str]] = {c: [] for c in REFUSED_CLASSES}
    for f in contract.fields:
        if f.personal in out:
            out[f.personal].append(f.name)
    return out


def open_refusal(contract: Contract, dataset: str | None = None) -> str | None:
    """Why a dataset of ``contract`` cannot be open (naming the fields), or None when it may be."""
    found = {k: v for k, v in personal_fields(contract).items() if v}
    if not found:
        return None
    what = " and ".join(f"{kind} personal data ({', '.join(names)})" for kind, names in found.items())
    name = dataset or contract.dataset_key
    return (
        f"{name} cannot be open: its contract {contract.ref} has {what}; "
        "publish it through a release (de-identified) instead"
    )


def open_refusal_for(ref: str, schemas_dir: Path, dataset: str | None = None) -> str | None:
    """``open_refusal`` of the contract ``ref`` (``ContractError`` when it cannot be loaded)."""
    return open_refusal(load_contract(ref, schemas_dir), dataset)


# --- names of people -------------------------------------------------------------------------------


def _words(text: str) -> list[str]:
    return _WORD.findall(fold(text))


def is_name_field(f: FieldInfo) -> bool:
    """Whether ``f`` holds names of people (see the module docstring for the rule)."""
    if f.personal != "direct" or f.json_type != "string" or f.format or f.check == "vn-personal-id":
        return False
    tokens = set(f.name.lower().split("_"))
    if tokens & _NOT_NAME:
        return False
    if "name" in tokens or "ten" in tokens or "hoten" in tokens:
        return True
    return "name" in _words(f.label_en or "") or "ten" in _words(f.label_vi or "")


def name_columns(contract: Contract) -> list[str]:
    return [f.name for f in contract.fields if is_name_field(f)]


def name_key(text: str) -> str | None:
    """The folded words of a name joined by one space, or None when it has fewer than 2 words or more
    than ``MAX_NAME_WORDS``: ``Nguyễn  Văn Đạt`` -> ``nguyen van dat``."""
    words = _words(text)
    return " ".join(words) if 2 <= len(words) <= MAX_NAME_WORDS else None


@dataclass(frozen=True)
class NameSet:
    """Known names as Arrow arrays, ready for vectorized lookups."""

    names: pa.Array  # name keys, unique
    first_words: pa.Array  # the first word of every name, unique
    lengths: tuple[int, ...]  # the word counts that occur, ascending

    @classmethod
    def of(cls, keys: Iterable[str]) -> NameSet:
        unique = sorted(set(keys))
        counts = {k.count(" ") + 1 for k in unique}
        firsts = sorted({k.split(" ", 1)[0] for k in unique})
        return cls(pa.array(unique, pa.string()), pa.array(firsts, pa.string()), tuple(sorted(counts)))

    def __len__(self) -> int:
        return len(self.names)


EMPTY = NameSet.of(())


def read_names(files: Iterable[str], columns: list[str]) -> set[str]:
    """The name keys of ``columns`` in the Parquet ``files`` (columns a file lacks are skipped)."""
    out: set[str] = set()
    for path in files:
        pf = pq.ParquetFile(path)
        present = [c for c in columns if c in pf.schema_arrow.names]
        if not present:
            continue
        for batch in pf.iter_batches(batch_size=65_536, columns=present):
            for col in batch.columns:
                values = pc.unique(col.cast(pa.string()) if col.type != pa.string() else col)
                for value in values.drop_null().to_pylist():
                    key = name_key(value)
                    if key is not None:
                        out.add(key)
    return out


class KnownNames:
    """The names of people held in the name columns of the warehouse's current snapshots.

    One instance per runtime (``hub.runtime.Hub.known_names``): the names of a table are read once per
    snapshot and kept; the tables' snapshots are looked up again after ``ttl`` seconds (or at once after
    ``invalidate()``). Thread-safe; one reload at a time."""

    def __init__(self, settings: Settings, ttl: float = 10.0) -> None:
        self.settings = settings
        self.ttl = ttl
        self._lock = threading.Lock()
        self._tables: dict[str, tuple[int, frozenset[str]]] = {}
        self._current: NameSet = EMPTY
        self._checked = -float("inf")

    def invalidate(self) -> None:
        self._checked = -float("inf")

    def get(self, session: Session) -> NameSet:
        """The known names now (reading the tables whose snapshot changed since the last call)."""
        if time.monotonic() - self._checked < self.ttl:
            return self._current
        with self._lock:
            if time.monotonic() - self._checked >= self.ttl:
                self._current = self._load(session)
                self._checked = time.monotonic()
            return self._current

    def _load(self, session: Session) -> NameSet:
        from hub.warehouse.tables import Warehouse

        rows = session.execute(
            select(Dataset.key, Dataset.contract).where(
                Dataset.contract.is_not(None), Dataset.state != "deleted"
            )
        ).all()
        wh = Warehouse(self.settings)
        seen: dict[str, tuple[int, frozenset[str]]] = {}
        contracts: dict[str, list[str]] = {}
        for key, ref in rows:
            if ref is None:
                continue
            try:
                if ref not in contracts:
                    contracts[ref] = name_columns(load_contract(ref, self.settings.schemas_dir))
                columns = contracts[ref]
                if not columns or not wh.has_table(key):
                    continue
                snapshot = wh.current_snapshot_id(key)
                if snapshot is None:
                    continue
                cached = self._tables.get(key)
                if cached is None or cached[0] != snapshot:
                    cached = (snapshot, frozenset(read_names(wh.data_files(key, snapshot), columns)))
                seen[key] = cached
            except (HubError, OSError, pa.ArrowException) as exc:
                log.warning("known names: %s skipped: %s", key, exc)
                if key in self._tables:
                    seen[key] = self._tables[key]
        changed = seen.keys() != self._tables.keys() or any(
            self._tables[k][0] != v[0] for k, v in seen.items()
        )
        self._tables = seen
        if not changed and self._current is not EMPTY:
            return self._current
        return NameSet.of(name for _snap, names in seen.values() for name in names)
