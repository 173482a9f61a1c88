"""``Validator(contract).validate(batch) -> BatchVerdict``: valid rows in the contract's Arrow schema,
invalid rows in quarantine with every reason (row, field path, keyword, message).

A column absent from the batch is a property absent from every row; a null in a present column is a
JSON null. See docs/contracts.md for text mode (CSV, XML) and the reserved columns (``hub.reserved``).

A validator checks a large batch in parallel threads of its own pool, started at its first parallel
validation and stopped by ``close()`` (or at the end of a ``with Validator(...)`` block); the ingest
runner closes its validator when the run ends. Nothing is started at import.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
from jsonschema import Draft202012Validator

from hub.contracts.checks import CheckContext, get_check
from hub.contracts.coerce import Column, as_string, coerce, is_string, mask
from hub.contracts.evaluate import FORMAT_CHECKER, Failure, FieldEvaluator
from hub.contracts.model import Contract, FieldInfo
from hub.reserved import ERROR_COLUMN, RESERVED_COLUMNS, ROW_COLUMN, SOURCE_COLUMN

ERROR_TYPE = pa.struct([("path", pa.string()), ("keyword", pa.string()), ("message", pa.string())])
QUARANTINE_SCHEMA = pa.schema(
    [
        pa.field(ROW_COLUMN, pa.int64()),
        pa.field(SOURCE_COLUMN, pa.string()),
        pa.field("record", pa.string()),
        pa.field("errors", pa.list_(ERROR_TYPE)),
    ]
)
TEXT_METADATA_KEY = b"hub.text"
PARALLEL_ROWS = 20_000  # a batch of at least twice this many rows is checked in slices, in parallel
_WORKERS = min(4, os.cpu_count() or 1)
THREAD_PREFIX = "hub-validate"


@dataclass
class BatchVerdict:
    valid: pa.RecordBatch
    invalid: pa.Table

    @property
    def n_valid(self) -> int:
        return int(self.valid.num_rows)

    @property
    def n_invalid(self) -> int:
        return int(self.invalid.num_rows)


def _parallelism() -> int:
    """Threads for one batch: one per core (at most four). Checked a column at a time, two threads
    beat one even on a busy machine: with two other processes spinning on the 2 cores, 1.2 million
    rows/s against 0.92 (slicing the rows instead had made two threads 10-25% slower there)."""
    return _WORKERS


def is_text_batch(batch: pa.RecordBatch) -> bool:
    """Text mode if the schema metadata ``hub.text`` is ``1``/``true``; without that key, if every data
    column is text."""
    meta = batch.schema.metadata or {}
    if TEXT_METADATA_KEY in meta:
        return meta[TEXT_METADATA_KEY].lower() in (b"1", b"true", b"yes")
    types = [
        f.type.value_type if pa.types.is_dictionary(f.type) else f.type
        for f in batch.schema
        if f.name not in RESERVED_COLUMNS
    ]
    return bool(types) and all(is_string(t) or t == pa.null() for t in types)


def _const(message: str) -> Callable[[int], str]:
    return lambda _i: message


def _indexed(messages: Sequence[Any]) -> Callable[[int], str]:
    return lambda i: str(messages[i])


def _records_json(data: pa.RecordBatch) -> pa.Array | None:
    """Each row as a JSON object (as ``orjson`` writes it), vectorized when every column is text
    without control characters; None otherwise."""
    parts = []
    for name, col in zip(data.schema.names, data.columns, strict=True):
        if not is_string(col.type):
            return None
        col = as_string(col)
        if data.num_rows and pc.any(pc.match_substring_regex(col, r"[\x00-\x1f]")).as_py():
            return None
        escaped = pc.replace_substring(pc.replace_substring(col, "\\", "\\\\"), '"', '\\"')
        value = pc.fill_null(pc.binary_join_element_wise('"', escaped, '"', ""), "null")
        parts.append(pc.binary_join_element_wise(orjson.dumps(name).decode() + ":", value, ""))
    if not parts:
        return pa.array(["{}"] * data.num_rows, pa.string())
    body = pc.binary_join_element_wise(*parts, ",")
    return pc.binary_join_element_wise("{", body, "}", "")


def _temporal_as_text(data: pa.RecordBatch) -> pa.RecordBatch:
    """Dates and timestamps as ISO text (quarantined rows only): Python's date cannot hold every
    Arrow date (a year beyond 9999 is a format error to report, not a reason to crash)."""
    if not any(pa.types.is_temporal(f.type) for f in data.schema):
        return data
    cols = []
    for col in data.columns:
        if pa.types.is_date(col.type):
            col = pc.strftime(col, format="%Y-%m-%d")
        elif pa.types.is_timestamp(col.type):
            fmt = "%Y-%m-%dT%H:%M:%S" + ("%z" if col.type.tz else "")
            col = pc.strftime(col, format=fmt)
        elif pa.types.is_temporal(col.type):
            col = col.cast(pa.string())
        cols.append(col)
    return pa.RecordBatch.from_arrays(cols, names=data.schema.names)


def _cost(info: FieldInfo, contract: Contract) -> int:
    """A rough rank of how long a field takes to check (only its order among fields matters)."""
    if info.format == "date-time":
        return 5
    if info.format == "date":
        return 4
    if info.json_type in ("integer", "number"):
        return 3
    if any(c.keyword == "pattern" for c in contract.plans[info.name].constraints):
        return 2
    return 1


def _json_default(v: Any) -> Any:
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    return str(v)


class Validator:
    """Compiled checks of one contract; ``validate`` a batch at a time (thread-safe). The threads of a
    parallel validation belong to the validator: ``close()`` stops them (see the module docstring)."""

    def __init__(self, contract: Contract, *, now: datetime | None = None) -> None:
        self.contract = contract
        self.now = now
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        self.fields = {f.name: f for f in contract.fields}
        self._order = {f.name: i for i, f in enumerate(contract.fields)}
        # costliest first, so that parallel threads finish together: date-times, dates, numbers from
        # text, patterns, the rest
        self._by_cost = sorted(self.fields, key=lambda name: -_cost(self.fields[name], contract))
        self._root_validator: Draft202012Validator | None = None
        if contract.residual:
            self._root_validator = Draft202012Validator(
                contract.schema, registry=contract.registry, format_checker=FORMAT_CHECKER
            )

    def _executor(self) -> ThreadPoolExecutor:
        """The validator's pool of ``_WORKERS`` threads, started on first use."""
        pool = self._pool
        if pool is None:
            with self._pool_lock:
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(max_workers=_WORKERS, thread_name_prefix=THREAD_PREFIX)
                pool = self._pool
        return pool

    def close(self) -> None:
        """Stop the validator's threads, after the work they hold. A later parallel validation starts a
        new pool, so a closed validator still validates; close it when done with it."""
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)

    def __enter__(self) -> Validator:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def validate(
        self,
        batch: pa.RecordBatch,
        *,
        text: bool | None = None,
        row_offset: int = 0,
        threads: int | None = None,
    ) -> BatchVerdict:
        """Check ``batch``; ``text`` forces text mode (default: see ``is_text_batch``).

        A large batch is checked a column at a time in parallel threads (Arrow and numpy kernels release
        the GIL): first every field, then every x-check, then the valid rows and the quarantine.
        ``threads`` caps their number (default: see ``_parallelism``; 1 when the caller already keeps
        the cores busy, as the ingest pipeline does with its reader and writer threads).
        """
        if isinstance(batch, pa.Table):
            batch = (
                batch.combine_chunks().to_batches()[0] if batch.num_rows else pa.RecordBatch.from_pylist([])
            )
        text_mode = is_text_batch(batch) if text is None else text
        workers = _parallelism() if threads is None else max(1, min(threads, _WORKERS))
        if batch.num_rows < 2 * PARALLEL_ROWS:
            workers = 1
        return self._validate(batch, text_mode, row_offset, workers)

    def _validate(
        self, batch: pa.RecordBatch, text_mode: bool, row_offset: int, workers: int = 1
    ) -> BatchVerdict:
        n = batch.num_rows
        names = batch.schema.names

        def run(fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
            """``fn`` over ``items`` (in parallel when there are workers), results in order."""
            if workers < 2 or len(items) < 2:
                return [fn(x) for x in items]
            return list(self._executor().map(fn, items))

        def one(info_name: str) -> tuple[str, Column, list[Failure]]:
            info = self.fields[info_name]
            col = coerce(batch.column(names.index(info_name)), info, text_mode)
            ev = FieldEvaluator(info, self.contract.plans[info_name], col, self.contract)
            return info_name, col, ev.failures()

        present = [name for name in self._by_cost if name in names]
        results = sorted(run(one, present), key=lambda r: self._order[r[0]])
        columns = {name: col for name, col, _ in results}
        failures: list[Failure] = []
        field_fail: dict[str, np.ndarray] = {}
        for name, _, fs in results:
            failures.extend(fs)
            acc = np.zeros(n, dtype=bool)
            for f in fs:
                acc |= f.rows
            field_fail[name] = acc
        failures.extend(self._checks(columns, field_fail, n, run))
        for info in self.contract.fields:
            if info.required and info.name not in names:
                msg = f"{info.name!r} is a required property"
                failures.append(Failure(np.ones(n, dtype=bool), info.name, "required", _const(msg)))
        if not self.contract.additional_allowed:
            for extra in (c for c in names if c not in self.fields and c not in RESERVED_COLUMNS):
                msg = f"Additional properties are not allowed ({extra!r} was unexpected)"
                failures.append(Failure(np.ones(n, dtype=bool), extra, "additionalProperties", _const(msg)))
        source_err = np.zeros(n, dtype=bool)
        if ERROR_COLUMN in names:
            source_err = mask(pc.is_valid(batch.column(names.index(ERROR_COLUMN))))
        if self._root_validator is not None:
            failures.extend(self._residual(batch, columns, ~source_err))
        invalid = source_err.copy()
        for f in failures:
            invalid |= f.rows
        valid, quarantine = run(
            lambda build: build(),
            [
                lambda: self._valid(columns, invalid, n),
                lambda: self._quarantine(batch, failures, invalid, source_err, row_offset),
            ],
        )
        return BatchVerdict(valid, quarantine)

    def _checks(
        self,
        columns: dict[str, Column],
        field_fail: dict[str, np.ndarray],
        n: int,
        run: Callable[[Callable[[Any], Any], Sequence[Any]], list[Any]],
    ) -> list[Failure]:
        typed = {name: col.typed for name, col in columns.items()}
        todo = [
            (name, c.value)
            for name in columns
            for c in self.contract.plans[name].constraints
            if c.keyword == "x-check"
        ]

        def one(item: tuple[str, str]) -> Failure | None:
            name, check = item
            col = columns[name]
            fn = get_check(check)
            assert fn is not None
            ctx = CheckContext(self.fields[name], typed, self.fields)
            if self.now is not None:
                ctx.now = self.now
            res = fn(col.typed, ctx)
            rows = res.fails if isinstance(res.fails, np.ndarray) else mask(res.fails)
            rows = rows & ~col.null & ~field_fail[name]
            if not rows.any():
                return None
            msg = res.message
            if isinstance(msg, str):
                return Failure(rows, name, f"x-check:{check}", _const(msg))
            msgs = msg.to_pylist() if isinstance(msg, pa.Array) else msg  # indexed by row
            return Failure(rows, name, f"x-check:{check}", _indexed(msgs))

        return [f for f in run(one, todo) if f is not None]

    def _residual(self, batch: pa.RecordBatch, columns: dict[str, Column], rows: np.ndarray) -> list[Failure]:
        """Root keywords left to ``jsonschema``, row by row."""
        assert self._root_validator is not None
        keep = set(self.contract.residual)
        data_names = [c for c in batch.schema.names if c not in RESERVED_COLUMNS]
        records = batch.select(data_names).to_pylist()
        for name, col in columns.items():
            if col.text is not None:
                for rec, v in zip(records, col.text.to_pylist(), strict=False):
                    rec[name] = v
        found: list[tuple[int, Any]] = []
        for i in np.flatnonzero(rows):
            for e in self._root_validator.iter_errors(records[i]):
                if e.schema_path and e.schema_path[0] in keep:
                    found.append((int(i), e))
        out = []
        for row, e in found:
            one = np.zeros(batch.num_rows, dtype=bool)
            one[row] = True
            path = "/".join(str(p) for p in e.path)
            out.append(Failure(one, path, str(e.validator), _const(e.message)))
        return out

    def _valid(self, columns: dict[str, Column], invalid: np.ndarray, n: int) -> pa.RecordBatch:
        arrays = [
            columns[f.name].typed if f.name in columns else pa.nulls(n, f.arrow_type)
            for f in self.contract.fields
        ]
        if invalid.any():  # column by column: RecordBatch.filter took twice as long (pyarrow 26)
            keep = pa.array(~invalid)
            arrays = [a.filter(keep) for a in arrays]
        return pa.RecordBatch.from_arrays(arrays, schema=self.contract.arrow_schema)

    def _quarantine(
        self,
        batch: pa.RecordBatch,
        failures: list[Failure],
        invalid: np.ndarray,
        source_err: np.ndarray,
        offset: int,
    ) -> pa.Table:
        idx = np.flatnonzero(invalid)
        if not len(idx):
            return QUARANTINE_SCHEMA.empty_table()
        names = batch.schema.names
        take = pa.array(idx)
        if ROW_COLUMN in names:
            row_no = batch.column(names.index(ROW_COLUMN)).take(take).cast(pa.int64())
        else:
            row_no = pa.array(idx + offset + 1, pa.int64())
        sources = (
            batch.column(names.index(SOURCE_COLUMN)).take(take).cast(pa.string())
            if SOURCE_COLUMN in names
            else pa.nulls(len(idx), pa.string())
        )
        selected = _temporal_as_text(batch.select([c for c in names if c not in RESERVED_COLUMNS]).take(take))
        records = _records_json(selected)
        if records is None:
            records = pa.array(
                [orjson.dumps(r, default=_json_default).decode() for r in selected.to_pylist()], pa.string()
            )
        # errors as flat columns (row, path, keyword, message), then grouped into one list per row
        e_row: list[int] = []
        e_path: list[str] = []
        e_kw: list[str] = []
        e_msg: list[str] = []
        if source_err.any():
            col = batch.column(names.index(ERROR_COLUMN))
            for i in np.flatnonzero(source_err):
                e_row.append(int(i))
                e_path.append("")
                e_kw.append("source")
                e_msg.append(str(col[int(i)].as_py()))
        for f in failures:
            rows = np.flatnonzero(f.rows & ~source_err)
            if f.details is not None:
                for i in rows:
                    for path, kw, text in f.details(int(i)):
                        e_row.append(int(i))
                        e_path.append(path)
                        e_kw.append(kw)
                        e_msg.append(text)
            else:
                e_row.extend(rows.tolist())
                e_path.extend([f.path] * len(rows))
                e_kw.extend([f.keyword] * len(rows))
                e_msg.extend(f.message(int(i)) for i in rows)
        order = np.argsort(np.asarray(e_row, dtype=np.int64), kind="stable")
        sorted_rows = np.asarray(e_row, dtype=np.int64)[order]
        offsets = np.searchsorted(sorted_rows, np.append(idx, batch.num_rows), side="left")
        structs = pa.StructArray.from_arrays(
            [pa.array(e_path, pa.string()).take(order), pa.array(e_kw, pa.string()).take(order),
             pa.array(e_msg, pa.string()).take(order)],
            fields=list(ERROR_TYPE),
        )  # fmt: skip
        errors = pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), structs)
        return pa.Table.from_arrays(
            [row_no, sources, records, errors],
            schema=QUARANTINE_SCHEMA,
        )
