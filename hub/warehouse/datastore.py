"""The DataStore over the warehouse: a dataset's current snapshot as a CKAN DataStore table.

``DataStore`` (one per runtime, ``hub.runtime.Hub.datastore``) gives the current snapshot of a
dataset's table (``table_info``, cached for a moment so that a burst of requests does not reload the
Iceberg metadata each time) and runs ``datastore_search`` on the in-process locked engine
(``hub.warehouse.engine.duck``): filters (equality, lists, CKAN 2.12 ranges and ``$or``), full text
``q`` (accent-insensitive), ``distinct``, ``fields``, ``sort``, ``limit``/``offset``, and the count,
cached per snapshot and query (snapshots never change). The search SQL is built here from checked
parameters; SQL written by callers goes through the SQL doors instead (``hub.sql.door``).
"""

from __future__ import annotations

import functools
import gc
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from hub.cache import LruCache, TtlCache
from hub.errors import InvalidInputError, NotFoundError
from hub.settings import Settings
from hub.warehouse.changes import quote
from hub.warehouse.engine.duck import Engine, duck_type
from hub.warehouse.engine.tables import TableSource
from hub.warehouse.lookup import Lookup, equal_rows
from hub.warehouse.tables import Warehouse
from hub.warehouse.values import json_rows

log = logging.getLogger("hub.warehouse.datastore")
STATE_TTL_SECONDS = 2.0
TABLE = "ds"
"""The engine name of the searched table (registered on each search's own cursor)."""
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

    def table_source(self, row_id: bool = True) -> TableSource:
        """The snapshot as the engine reads it (with CKAN's ``_id`` column by default)."""
        return TableSource(self.key, self.snapshot_id, self.files, self.schema, row_id)


def load_table_info(settings: Settings, key: str) -> TableInfo | None:
    """The current snapshot of dataset ``key`` (read now), or None without a table or snapshot."""
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
    """One search's page; ``rows`` hold values under the JSON rule (``hub.warehouse.values``)."""

    fields: list[dict[str, Any]]
    columns: list[str]
    rows: list[tuple[Any, ...]]
    types: list[pa.DataType]
    total: int | None
    sort: list[tuple[str, str]] = field(default_factory=list)
    last_id: int | None = None


class _Builder:
    def __init__(self, columns: dict[str, pa.DataType], max_nesting: int = 64) -> None:
        self.columns = columns
        self.params: list[Any] = []
        self.equality: set[str] = set()
        self.max_nesting = max_nesting

    def col(self, name: str, param: str) -> str:
        if name not in self.columns:
            raise InvalidInputError("invalid field", {param: [f'invalid value "{name}"']})
        return quote(name)

    def value(self, name: str, value: Any) -> str:
        if isinstance(value, (dict, list)):
            raise InvalidInputError("invalid filter", {"filters": [f'invalid value for "{name}"']})
        self.params.append(value)
        t = self.columns[name]
        if isinstance(value, str) and pa.types.is_string(t):
            return "?"  # a plain parameter keeps the comparison usable by an index
        return f"CAST(? AS {duck_type(t)})"

    def filters(self, filters: Any, depth: int = 0) -> str:
        if depth > self.max_nesting:
            raise InvalidInputError(
                "filters nested too deeply",
                {"filters": [f"nested more than {self.max_nesting} levels (setting HUB_QUERY_MAX_NESTING)"]},
            )
        if filters is None or filters == {}:
            return "true"
        if isinstance(filters, list):
            parts = [self.filters(f, depth + 1) for f in filters]
            return "(" + " OR ".join(parts) + ")" if parts else "false"
        if not isinstance(filters, dict):
            raise InvalidInputError("invalid filters", {"filters": ["Not a json object"]})
        parts = []
        for name, value in filters.items():
            if name == "$or":
                if not isinstance(value, list):
                    raise InvalidInputError("invalid filters", {"filters": ['"$or" must be a list']})
                parts.append(self.filters(value, depth + 1))
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
                        raise InvalidInputError("invalid filters", {"filters": [f'invalid operator "{op}"']})
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
                raise InvalidInputError("invalid sort", {"sort": [f'invalid value "{item}"']})
            self.col(name, "sort")
            out.append((name, f"{direction} {nulls}".strip()))
        return out


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


@dataclass
class _Select:
    """The parts of one DataStore SELECT, built from checked parameters (``_Builder``)."""

    columns: dict[str, pa.DataType]
    wanted: list[str]
    select: list[str]
    where: str
    order: list[tuple[str, str]]
    params: list[Any]
    distinct: bool
    equality: set[str]

    @classmethod
    def of(cls, info: TableInfo, query: SearchQuery, max_nesting: int) -> _Select:
        columns: dict[str, pa.DataType] = {"_id": pa.int64()}
        columns.update({f.name: f.type for f in info.schema})
        b = _Builder(columns, max_nesting)
        wanted = query.fields or list(columns)
        select = [b.col(f, "fields") for f in wanted]
        parts = (b.filters(query.filters), b.full_text(query.q))
        where = " AND ".join(p for p in parts if p != "true") or "true"
        order = b.order(query.sort)
        return cls(columns, wanted, select, where, order, list(b.params), query.distinct, b.equality)

    def sql(self, limit: int | None, offset: int, *, star: bool = True) -> str:
        """The statement over ``TABLE``; ``star``: ``SELECT *`` when every column is wanted."""
        projection = "*" if star and self.wanted == list(self.columns) else ", ".join(self.select)
        sql = f"SELECT {'DISTINCT ' if self.distinct else ''}{projection} FROM {TABLE} WHERE {self.where}"
        if self.order:
            sql += " ORDER BY " + ", ".join(f"{quote(n)} {d}" for n, d in self.order)
        elif self.distinct:
            sql += " ORDER BY " + ", ".join(self.select)
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        if offset:
            sql += f" OFFSET {int(offset)}"
        return sql


class DataStore:
    """The DataStore of one runtime: snapshot lookups, searches, counts and equality lookups."""

    def __init__(self, settings: Settings, engine: Engine) -> None:
        self.settings = settings
        self.engine = engine
        self._infos: TtlCache[str, TableInfo | None] = TtlCache(STATE_TTL_SECONDS)
        self._counts: LruCache[tuple[Any, ...], int] = LruCache(4096)
        self._lock = threading.Lock()
        self._pending: set[tuple[Any, ...]] = set()
        self._background = ThreadPoolExecutor(max_workers=1, thread_name_prefix="datastore-lookup")
        self._frozen = False

    # --- snapshots ------------------------------------------------------------------------------
    def table_info(self, key: str, *, max_age: float = STATE_TTL_SECONDS) -> TableInfo | None:
        """The current snapshot of dataset ``key``, or None when it has no table or no snapshot yet."""
        return self._infos.get(key, lambda k: load_table_info(self.settings, k), max_age=max_age)

    def cached_table_info(self, key: str) -> TableInfo | None:
        """The snapshot of ``key`` if it was looked up less than ``STATE_TTL_SECONDS`` ago (never reads)."""
        return self._infos.peek(key)

    def forget(self, key: str | None = None) -> None:
        """Drop the cached snapshot of ``key`` (or of every dataset): a run committed a new one."""
        self._infos.invalidate(key)

    # --- search ---------------------------------------------------------------------------------
    def search(self, info: TableInfo, query: SearchQuery) -> SearchResult:
        """Run one datastore_search at ``info``'s snapshot.

        The default order is the table's (``_id``): no ORDER BY is sent, DuckDB keeps the order of
        the registered table (``preserve_insertion_order``)."""
        source = info.table_source()
        plan = _Select.of(info, query, self.settings.query_max_nesting)
        fast = self._lookup(source, query, plan.wanted, plan.columns)
        if fast is not None:
            return fast
        for column in plan.equality:
            if column != "_id":
                self._want_lookup(source, column)
        table = self.engine.arrow(plan.sql(query.limit, query.offset), plan.params, {TABLE: source})
        names, rows = table.column_names, json_rows(table)
        total = None
        if query.include_total:
            if plan.where == "true" and not query.distinct and info.rows is not None:
                total = info.rows
            elif not query.offset and len(rows) < query.limit:
                total = len(rows)
            else:
                total = self._count(source, plan)
        self._freeze_once()
        return _result(plan.columns, plan.wanted, names, rows, total, plan.order)

    def search_in_memory(self, info: TableInfo, query: SearchQuery) -> SearchResult | None:
        """``search``'s answer when the snapshot's cached copy and an equality lookup give it (no
        DuckDB, no file read); None otherwise. Invalid parameters raise as in ``search``."""
        plan = _Select.of(info, query, self.settings.query_max_nesting)
        return self._lookup(info.table_source(), query, plan.wanted, plan.columns)

    def select_sql(self, info: TableInfo, query: SearchQuery, *, limit: int | None) -> tuple[str, list[Any]]:
        """The SELECT of ``query`` at ``info``'s snapshot, and its parameters, for a query worker on
        which ``info.table_source()`` is registered as ``TABLE`` (CKAN's dump with parameters).

        ``query``'s filters, q, distinct, fields, sort and offset are built as ``search`` builds them
        (the same ``InvalidInputError`` for a column that does not exist); ``limit`` caps the rows, and
        None means every row (``query.limit``, the page size of a search, is not used). Without a sort
        the rows come in the table's order (``_id``), as in ``search``."""
        plan = _Select.of(info, query, self.settings.query_max_nesting)
        return plan.sql(limit, query.offset, star=False), plan.params

    def _freeze_once(self) -> None:
        """After the first search (the DataStore's modules and caches are loaded by then), the objects
        alive are kept out of the cyclic collector's full passes, which would otherwise rescan them
        and stall the requests in flight (``gc.freeze`` moves them to the permanent generation)."""
        if not self._frozen:
            self._frozen = True
            gc.freeze()

    def _count(self, source: TableSource, plan: _Select) -> int:
        key = (
            source.cache_key,
            plan.distinct,
            tuple(plan.select) if plan.distinct else (),
            plan.where,
            tuple(map(repr, plan.params)),
        )
        hit = self._counts.get(key)
        if hit is not None:
            return hit
        if plan.distinct:
            inner = f"SELECT DISTINCT {', '.join(plan.select)} FROM {TABLE} WHERE {plan.where}"
            sql = f"SELECT count(*) FROM ({inner})"
        else:
            sql = f"SELECT count(*) FROM {TABLE} WHERE {plan.where}"
        n = int(self.engine.rows(sql, plan.params, {TABLE: source})[1][0][0])
        self._counts.put(key, n)
        return n

    # --- equality lookups (hub.warehouse.lookup) --------------------------------------------------
    def _want_lookup(self, source: TableSource, column: str) -> None:
        """Build (in the background) the equality lookup of ``column`` on the cached snapshot."""
        cached = self.engine.cache.peek(source)
        if cached is None or column in cached.extras:
            return
        key = (source.cache_key, column)
        with self._lock:
            if key in self._pending:
                return
            self._pending.add(key)

        def build() -> None:
            try:
                if Lookup.suits(cached.table, column):
                    cached.extras[column] = Lookup(cached.table, column)
                else:
                    cached.extras[column] = None
            except Exception:  # the search goes on through DuckDB
                log.exception("equality lookup on %s of %s failed", column, source.key)
                cached.extras[column] = None
            finally:
                with self._lock:
                    self._pending.discard(key)

        self._background.submit(build)

    def _lookup(
        self, source: TableSource, query: SearchQuery, wanted: list[str], columns: dict[str, pa.DataType]
    ) -> SearchResult | None:
        """The result from an equality lookup when the query is only text equalities and the lookup
        exists; None otherwise (DuckDB answers, and asks for the lookup)."""
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
        cached = self.engine.cache.peek(source)
        if cached is None:
            return None
        lookups = {c: lk for c, lk in cached.extras.items() if isinstance(lk, Lookup)}
        positions = equal_rows(cached.table, lookups, filters)
        if positions is None:
            return None
        page = positions[query.offset : query.offset + query.limit]
        part = cached.table.select(wanted).take(pa.array(page, pa.int64()))
        rows = json_rows(part) if len(page) else []
        total = len(positions) if query.include_total else None
        return _result(columns, wanted, list(wanted), rows, total, [])

    def close(self) -> None:
        self._background.shutdown(wait=False, cancel_futures=True)


def records(res: SearchResult | pa.Table, fmt: str) -> Any:
    """Rows as CKAN's ``records_format``: objects, lists, or one csv/tsv string (no header); values
    under the hub's one JSON rule (``hub.warehouse.values``; a ``SearchResult``'s rows already are)."""
    if isinstance(res, pa.Table):
        names, rows = res.column_names, json_rows(res)
    else:
        names, rows = res.columns, res.rows
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
