"""The DataStore over the warehouse: a dataset's current snapshot as a CKAN DataStore table.

``table_info(settings, key)`` gives the current snapshot of a dataset's table (cached for a moment,
so that a burst of requests does not reload Iceberg metadata each time); ``search(...)`` runs one
``datastore_search`` in the process's sandbox (``hub.warehouse.sandbox``): filters (equality, lists,
CKAN 2.12 ranges and ``$or``), full text ``q`` (accent-insensitive), ``distinct``, ``fields``,
``sort``, ``limit``/``offset``, and the count, cached per snapshot and query (snapshots never change).
"""

from __future__ import annotations

import functools
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from hub.errors import NotFoundError, ValidationFailed
from hub.settings import Settings
from hub.warehouse.changes import quote
from hub.warehouse.sandbox import ViewSource, duck_type, get_sandbox

STATE_TTL_SECONDS = 2.0
_OPS = {"eq": "=", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


def ckan_type(t: pa.DataType) -> str:
    """CKAN's (PostgreSQL) type name of an Arrow type."""
    if pa.types.is_boolean(t):
        return "bool"
    if pa.types.is_integer(t):
        return {8: "int2", 16: "int2", 32: "int4", 64: "int8"}[t.bit_width]
    if pa.types.is_floating(t):
        return "float8" if t.bit_width == 64 else "float4"
    if pa.types.is_decimal(t):
        return "numeric"
    if pa.types.is_date(t):
        return "date"
    if pa.types.is_timestamp(t):
        return "timestamptz" if t.tz else "timestamp"
    if pa.types.is_time(t):
        return "time"
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return "bytea"
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return "_" + ckan_type(t.value_type)
    if pa.types.is_struct(t) or pa.types.is_map(t):
        return "json"
    return "text"


_ckan_type = functools.lru_cache(maxsize=1024)(ckan_type)  # per search: a field list of each request


@dataclass(frozen=True)
class TableInfo:
    """A dataset table's current snapshot: id, commit time, row count, files and schema."""

    key: str
    snapshot_id: int
    committed: datetime | None
    rows: int | None
    files: tuple[str, ...]
    schema: pa.Schema

    def source(self, name: str) -> ViewSource:
        return ViewSource(name=name, snapshot_id=self.snapshot_id, files=self.files, schema=self.schema)


_STATE: dict[tuple[str, str], tuple[float, TableInfo | None]] = {}
_STATE_LOCK = threading.Lock()
_LOADING: set[tuple[str, str]] = set()


def table_info(settings: Settings, key: str, *, max_age: float = STATE_TTL_SECONDS) -> TableInfo | None:
    """The current snapshot of dataset ``key``, or None when it has no table or no snapshot yet."""
    cache_key = (str(settings.warehouse_path), key)
    now = time.monotonic()
    hit = _STATE.get(cache_key)
    if hit is not None and now - hit[0] < max_age:
        return hit[1]
    with _STATE_LOCK:
        # one thread reloads an expired entry; the others keep the previous snapshot meanwhile
        # (a burst of concurrent reloads of the Iceberg metadata would stall every request at once)
        if hit is not None and cache_key in _LOADING:
            return hit[1]
        _LOADING.add(cache_key)
    try:
        info = _load_info(settings, key)
        with _STATE_LOCK:
            _STATE[cache_key] = (now, info)
    finally:
        with _STATE_LOCK:
            _LOADING.discard(cache_key)
    return info


def forget_table_info() -> None:
    with _STATE_LOCK:
        _STATE.clear()


def _load_info(settings: Settings, key: str) -> TableInfo | None:
    try:
        from hub.warehouse.tables import Warehouse
    except ImportError:  # pragma: no cover - before the warehouse exists
        return None
    wh = Warehouse(settings)
    try:
        if not wh.has_table(key):
            return None
        table = wh.table(key)
    except NotFoundError:
        return None
    snap = table.current_snapshot()
    if snap is None:
        return None
    summary = dict(snap.summary.additional_properties) if snap.summary else {}
    rows = int(summary["total-records"]) if "total-records" in summary else None
    committed = datetime.fromtimestamp(snap.timestamp_ms / 1000, tz=UTC).replace(tzinfo=None)
    files = tuple(wh.data_files(key, snap.snapshot_id))
    return TableInfo(key, snap.snapshot_id, committed, rows, files, wh.arrow_schema(key))


# --- datastore_search -----------------------------------------------------------------------------


@dataclass
class SearchQuery:
    filters: Any = None
    q: str | dict[str, str] | None = None
    distinct: bool = False
    fields: list[str] | None = None
    sort: list[str] | None = None
    limit: int = 100
    offset: int = 0
    include_total: bool = True


@dataclass
class SearchResult:
    fields: list[dict[str, Any]]
    columns: list[str]
    rows: list[tuple[Any, ...]]
    types: list[pa.DataType]
    total: int | None
    sort: list[tuple[str, str]] = field(default_factory=list)
    last_id: int | None = None


class _Builder:
    def __init__(self, columns: dict[str, pa.DataType]) -> None:
        self.columns = columns
        self.params: list[Any] = []
        self.equality: set[str] = set()

    def col(self, name: str, param: str) -> str:
        if name not in self.columns:
            raise ValidationFailed("invalid field", {param: [f'invalid value "{name}"']})
        return quote(name)

    def value(self, name: str, value: Any) -> str:
        if isinstance(value, (dict, list)):
            raise ValidationFailed("invalid filter", {"filters": [f'invalid value for "{name}"']})
        self.params.append(value)
        t = self.columns[name]
        if isinstance(value, str) and pa.types.is_string(t):
            return "?"  # a plain parameter keeps the comparison usable by an index
        return f"CAST(? AS {duck_type(t)})"

    def filters(self, filters: Any) -> str:
        if filters is None or filters == {}:
            return "true"
        if isinstance(filters, list):
            parts = [self.filters(f) for f in filters]
            return "(" + " OR ".join(parts) + ")" if parts else "false"
        if not isinstance(filters, dict):
            raise ValidationFailed("invalid filters", {"filters": ["Not a json object"]})
        parts = []
        for name, value in filters.items():
            if name == "$or":
                if not isinstance(value, list):
                    raise ValidationFailed("invalid filters", {"filters": ['"$or" must be a list']})
                parts.append(self.filters(value))
                continue
            col = self.col(name, "filters")
            if not isinstance(value, dict) and value is not None:
                self.equality.add(name)
            if isinstance(value, list):
                if not value:
                    parts.append("false")
                else:
                    parts.append(f"{col} IN ({', '.join(self.value(name, v) for v in value)})")
            elif isinstance(value, dict):
                for op, operand in value.items():
                    if op not in _OPS:
                        raise ValidationFailed("invalid filters", {"filters": [f'invalid operator "{op}"']})
                    parts.append(f"{col} {_OPS[op]} {self.value(name, operand)}")
            elif value is None:
                parts.append(f"{col} IS NULL")
            else:
                parts.append(f"{col} = {self.value(name, value)}")
        return "(" + " AND ".join(parts) + ")" if parts else "true"

    def full_text(self, q: str | dict[str, str] | None) -> str:
        if not q:
            return "true"
        if isinstance(q, dict):
            parts = []
            for name, term in q.items():
                col = self.col(name, "q")
                parts.extend(self._words(f"CAST({col} AS VARCHAR)", str(term)))
            return " AND ".join(parts) or "true"
        text_cols = [n for n in self.columns if n != "_id"]
        row = "concat_ws(' ', " + ", ".join(f"CAST({quote(n)} AS VARCHAR)" for n in text_cols) + ")"
        return " AND ".join(self._words(row, q)) or "true"

    def _words(self, expr: str, text: str) -> list[str]:
        folded = f"strip_accents(lower(replace(replace({expr}, 'đ', 'd'), 'Đ', 'd')))"
        out = []
        from hub.catalog.ckan import fold

        for word in fold(text).split():
            word = word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            self.params.append(f"%{word}%")
            out.append(f"{folded} LIKE ? ESCAPE '\\'")
        return out

    def order(self, sort: list[str] | None) -> list[tuple[str, str]]:
        out = []
        for item in sort or []:
            parts = item.strip().split()
            if not parts:
                continue
            name = parts[0].strip('"')
            direction = "desc" if len(parts) > 1 and parts[1].lower() == "desc" else "asc"
            nulls = " ".join(parts[2:4]).lower() if len(parts) > 2 else ""
            if nulls not in ("", "nulls first", "nulls last") or (
                len(parts) > 1 and parts[1].lower() not in ("asc", "desc")
            ):
                raise ValidationFailed("invalid sort", {"sort": [f'invalid value "{item}"']})
            self.col(name, "sort")
            out.append((name, f"{direction} {nulls}".strip()))
        return out


_COUNTS: OrderedDict[tuple[Any, ...], int] = OrderedDict()
_COUNTS_LOCK = threading.Lock()
_COUNTS_MAX = 4096


def search(settings: Settings, name: str, info: TableInfo, query: SearchQuery) -> SearchResult:
    """Run one datastore_search over resource ``name`` (the view) at ``info``'s snapshot.

    The default order is the table's (``_id``): no ORDER BY is sent, DuckDB keeps insertion order
    (``preserve_insertion_order``), which lets an index answer a selective filter without a sort."""
    box = get_sandbox(settings)
    view = box.ensure_view(info.source(name))
    columns: dict[str, pa.DataType] = {"_id": pa.int64()}
    columns.update({f.name: f.type for f in info.schema})
    b = _Builder(columns)
    wanted = query.fields or list(columns)
    select = [b.col(f, "fields") for f in wanted]
    fast = _lookup(box, name, info, query, wanted, columns)
    if fast is not None:
        return fast
    where = " AND ".join(p for p in (b.filters(query.filters), b.full_text(query.q)) if p != "true") or "true"
    order = b.order(query.sort)
    params = list(b.params)
    for column in b.equality:
        if column != "_id":
            box.want_index(name, column)
    distinct = "DISTINCT " if query.distinct else ""
    projection = "*" if wanted == list(columns) else ", ".join(select)
    sql = f"SELECT {distinct}{projection} FROM {view} WHERE {where}"
    if order:
        sql += " ORDER BY " + ", ".join(f"{quote(n)} {d}" for n, d in order)
    elif query.distinct:
        sql += " ORDER BY " + ", ".join(select)
    sql += f" LIMIT {int(query.limit)}" + (f" OFFSET {int(query.offset)}" if query.offset else "")
    names, rows = box.rows(sql, params)
    total = None
    if query.include_total:
        if where == "true" and not query.distinct and info.rows is not None:
            total = info.rows
        elif not query.offset and len(rows) < query.limit:
            total = len(rows)
        else:
            total = _count(box, view, info, distinct, select, where, params)
    return _result(columns, wanted, names, rows, total, order)


def _result(
    columns: dict[str, pa.DataType],
    wanted: list[str],
    names: list[str],
    rows: list[tuple[Any, ...]],
    total: int | None,
    order: list[tuple[str, str]],
) -> SearchResult:
    """A search's result: CKAN field types, and the largest ``_id`` returned (for keyset paging)."""
    last_id = None
    if "_id" in names and rows:
        pos = names.index("_id")
        last_id = max(int(r[pos]) for r in rows)
    return SearchResult(
        fields=[{"id": f, "type": "int" if f == "_id" else _ckan_type(columns[f])} for f in wanted],
        columns=names,
        rows=rows,
        types=[columns[f] for f in wanted],
        total=total,
        sort=order,
        last_id=last_id,
    )


def _lookup(
    box: Any,
    name: str,
    info: TableInfo,
    query: SearchQuery,
    wanted: list[str],
    columns: dict[str, pa.DataType],
) -> SearchResult | None:
    """The result from the sandbox's Arrow lookup (``hub.warehouse.lookup``) when the query is only
    text equalities and the lookup exists; None otherwise."""
    filters = query.filters
    if (
        not isinstance(filters, dict)
        or not filters
        or not all(isinstance(v, str) for v in filters.values())
        or query.q
        or query.distinct
        or query.sort
    ):
        return None
    hit = box.lookup(name, info.snapshot_id, filters)
    if hit is None:
        return None  # the DuckDB path asks for the index, after which the lookup is built
    table, positions = hit
    page = positions[query.offset : query.offset + query.limit]
    part = table.select(wanted).take(pa.array(page, pa.int64()))
    rows = list(zip(*(c.to_pylist() for c in part.columns), strict=True)) if len(page) else []
    return _result(columns, wanted, list(wanted), rows, len(positions) if query.include_total else None, [])


def _count(
    box: Any, view: str, info: TableInfo, distinct: str, select: list[str], where: str, params: list[Any]
) -> int:
    key = (
        view,
        info.snapshot_id,
        distinct,
        tuple(select) if distinct else (),
        where,
        tuple(map(repr, params)),
    )
    with _COUNTS_LOCK:
        if key in _COUNTS:
            _COUNTS.move_to_end(key)
            return _COUNTS[key]
    if distinct:
        sql = f"SELECT count(*) FROM (SELECT DISTINCT {', '.join(select)} FROM {view} WHERE {where})"
    else:
        sql = f"SELECT count(*) FROM {view} WHERE {where}"
    n = int(box.rows(sql, params)[1][0][0])
    with _COUNTS_LOCK:
        _COUNTS[key] = n
        while len(_COUNTS) > _COUNTS_MAX:
            _COUNTS.popitem(last=False)
    return n


def _plain(types: list[pa.DataType], rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Rows whose values all serialize as JSON: decimals become floats, binary becomes hex text."""
    fix = [
        i
        for i, t in enumerate(types)
        if pa.types.is_decimal(t) or pa.types.is_binary(t) or pa.types.is_large_binary(t)
    ]
    if not fix:
        return rows
    out = []
    for row in rows:
        values = list(row)
        for i in fix:
            v = values[i]
            if v is not None:
                values[i] = v.hex() if isinstance(v, (bytes, bytearray)) else float(v)
        out.append(tuple(values))
    return out


def records(res: SearchResult | pa.Table, fmt: str) -> Any:
    """Rows as CKAN's ``records_format``: objects, lists, or one csv/tsv string (no header)."""
    if isinstance(res, pa.Table):
        names, types = res.column_names, [f.type for f in res.schema]
        cols = [c.to_pylist() for c in res.columns]
        rows = list(zip(*cols, strict=True)) if cols else []
    else:
        names, types, rows = res.columns, res.types, res.rows
    rows = _plain(types, rows)
    if fmt == "lists":
        return [list(r) for r in rows]
    if fmt in ("csv", "tsv"):
        import csv
        import io

        buf = io.StringIO()
        writer = csv.writer(buf, delimiter="\t" if fmt == "tsv" else ",", lineterminator="\n")
        for row in rows:
            writer.writerow(["" if v is None else v for v in row])
        return buf.getvalue()
    return [dict(zip(names, r, strict=True)) for r in rows]
