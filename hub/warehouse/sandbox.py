"""The DuckDB sandbox behind the DataStore API: one shared database instance per process.

The instance is configured once and then locked:

- ``allowed_directories`` = the warehouse directory (set first, so views over snapshot files keep
  working), then ``enable_external_access = false`` and ``lock_configuration = true``; no extension
  is installed or loaded;
- every DataStore resource is a view ``ds."<resource id>"`` over the Parquet files of its dataset's
  current snapshot, with a synthetic ``_id`` (row number across the snapshot's files, from 1);
- each request runs on its own cursor; a timer interrupts *that cursor* when the time limit passes
  (interrupting the connection would not stop a query running on a cursor).

User SQL (``datastore_search_sql``) goes through ``check_select`` first: one read-only SELECT
(sqlglot), no PRAGMA/SET/COPY/ATTACH/INSTALL, no table functions or file paths, no function that reads
files or settings, and only tables the caller may read. A table the caller may not read and a table
that does not exist give the same error, so existence is not revealed. Note that a new
``duckdb.connect()`` would be a fresh, unsandboxed instance: user SQL only ever runs here.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import sqlglot
from sqlglot import exp

from hub.errors import AccessDenied, QueryError
from hub.settings import Settings
from hub.warehouse.changes import quote, sql_list
from hub.warehouse.lookup import Lookup, equal_rows

VIEW_SCHEMA = "ds"
CACHE_SCHEMA = "cache"
log = logging.getLogger("hub.warehouse.sandbox")

_DENY_FUNCS = {
    "current_setting",
    "getenv",
    "query",
    "query_table",
    "glob",
    "checkpoint",
    "force_checkpoint",
    "install",
    "load",
    "attach",
    "detach",
    "copy",
    "export_database",
    "import_database",
    "which_secret",
    "current_database",
    "current_schema",
    "current_schemas",
    "sql_auto_complete",
    "json_serialize_sql",
    "json_deserialize_sql",
    "json_execute_serialized_sql",
    "enable_profiling",
    "disable_profiling",
    "set_bit",
    "version",
    "platform",
    "pragma",
    "summary",
    "repeat_row",
    "system",
    "shell",
}
_DENY_PREFIXES = (
    "read_",
    "duckdb_",
    "pragma_",
    "parquet_",
    "iceberg_",
    "delta_",
    "sniff_",
    "sqlite_",
    "postgres_",
    "mysql_",
    "scan_",
    "enable_",
    "disable_",
    "test_",
    "pg_",
)
_FORBIDDEN_NODES: tuple[type[exp.Expression], ...] = tuple(
    getattr(exp, n)
    for n in (
        "Insert",
        "Update",
        "Delete",
        "Merge",
        "Create",
        "Drop",
        "Alter",
        "Copy",
        "Command",
        "Pragma",
        "Set",
        "Use",
        "Attach",
        "Detach",
        "Install",
        "Describe",
        "Transaction",
        "Commit",
        "Rollback",
        "LoadData",
        "Export",
        "Summarize",
        "Into",
        "Lock",
        "TruncateTable",
        "Cache",
        "Uncache",
        "Refresh",
    )
    if hasattr(exp, n)
)
_FILE_FUNCS: tuple[type[exp.Expression], ...] = tuple(
    getattr(exp, n) for n in ("ReadCSV", "ReadParquet", "ReadJSON") if hasattr(exp, n)
)


@dataclass(frozen=True)
class ViewSource:
    """What a DataStore view reads: a snapshot's Parquet files and its Arrow schema."""

    name: str
    snapshot_id: int | None
    files: tuple[str, ...]
    schema: pa.Schema


_ROWCOUNTS: dict[str, int] = {}


def _file_rows(path: str) -> int:
    n = _ROWCOUNTS.get(path)
    if n is None:
        n = int(pq.read_metadata(path).num_rows)
        _ROWCOUNTS[path] = n
    return n


def duck_type(t: pa.DataType) -> str:
    """A DuckDB type name for an Arrow type (for typed empty views)."""
    if pa.types.is_boolean(t):
        return "BOOLEAN"
    if pa.types.is_integer(t):
        return {8: "TINYINT", 16: "SMALLINT", 32: "INTEGER", 64: "BIGINT"}[t.bit_width]
    if pa.types.is_floating(t):
        return "DOUBLE" if t.bit_width == 64 else "REAL"
    if pa.types.is_decimal(t):
        return f"DECIMAL({t.precision},{t.scale})"
    if pa.types.is_date(t):
        return "DATE"
    if pa.types.is_timestamp(t):
        return "TIMESTAMPTZ" if t.tz else "TIMESTAMP"
    if pa.types.is_time(t):
        return "TIME"
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return "BLOB"
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return duck_type(t.value_type) + "[]"
    return "VARCHAR"


class Watchdog:
    """One thread that interrupts cursors whose time limit passed (cheaper than a timer per query).

    ``watch`` and ``release`` only touch a dict under a lock: they never wake the thread, which
    polls every ``TICK`` seconds while cursors are watched (and sleeps once none were for ``IDLE``
    seconds). A wake-up per query would make the query's thread wait for the GIL once more, up to
    the interpreter's switch interval (5 ms) when the event loop is busy: a third of the time of a
    filtered datastore_search under load. A query is interrupted at most ``TICK`` after its limit."""

    TICK = 0.05
    IDLE = 2.0

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._deadlines: dict[int, tuple[float, Any]] = {}
        self._seq = itertools.count(1)
        self._busy = threading.Event()
        threading.Thread(target=self._run, name="datastore-watchdog", daemon=True).start()

    def watch(self, cursor: Any, seconds: float) -> int:
        ticket = next(self._seq)
        with self._lock:
            self._deadlines[ticket] = (time.monotonic() + seconds, cursor)
        if not self._busy.is_set():
            self._busy.set()
        return ticket

    def release(self, ticket: int) -> None:
        with self._lock:
            self._deadlines.pop(ticket, None)

    def _run(self) -> None:
        idle_since: float | None = None
        while True:
            self._busy.wait()
            time.sleep(self.TICK)
            now = time.monotonic()
            with self._lock:
                due = [t for t, (deadline, _) in self._deadlines.items() if deadline <= now]
                cursors = [self._deadlines.pop(t)[1] for t in due]
                empty = not self._deadlines
            for cursor in cursors:
                try:
                    cursor.interrupt()
                except Exception:  # the cursor was closed meanwhile
                    log.debug("interrupt of a closed cursor")
            if not empty:
                idle_since = None
            elif idle_since is None:
                idle_since = now
            elif now - idle_since > self.IDLE:
                idle_since = None
                self._busy.clear()
                with self._lock:  # a watch() since the check above: keep polling
                    if self._deadlines:
                        self._busy.set()


def _cached_bytes(cur: Any, table: str) -> int:
    """About how many bytes an Arrow copy of a cached table takes (the size of a sample's rows)."""
    sample = cur.sql(f"SELECT * FROM {table} LIMIT 10000").to_arrow_table()
    if not sample.num_rows:
        return 0
    rows = int(cur.sql(f"SELECT count(*) FROM {table}").fetchall()[0][0])
    return int(sample.nbytes / sample.num_rows * rows)


class Sandbox:
    """The process's locked DuckDB instance over one warehouse directory."""

    def __init__(self, settings: Settings, *, memory_limit: str | None = None, threads: int = 2) -> None:
        self.settings = settings
        root = str(settings.warehouse_path.resolve()).rstrip("/") + "/"
        tmp = settings.data_dir / "tmp" / "duckdb"
        tmp.mkdir(parents=True, exist_ok=True)
        con = duckdb.connect(
            ":memory:",
            config={
                "memory_limit": memory_limit or settings.datastore_memory_limit,
                "threads": threads,
                "autoinstall_known_extensions": False,
                "autoload_known_extensions": False,
                "temp_directory": str(tmp),
            },
        )
        con.execute("SET TimeZone = 'UTC'")
        con.execute(f"SET allowed_directories = ['{root.replace(chr(39), chr(39) * 2)}']")
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
        con.execute(f"CREATE SCHEMA {VIEW_SCHEMA}")
        con.execute(f"CREATE SCHEMA {CACHE_SCHEMA}")
        self._con = con
        self._lock = threading.Lock()
        self._views: dict[str, int | None] = {}
        self._cached: dict[str, tuple[int | None, str]] = {}
        self._indexed: set[tuple[str, str]] = set()
        # view name -> (snapshot, Arrow copy of the cached table, equality lookups by column)
        self._arrow: dict[str, tuple[int | None, pa.Table, dict[str, Lookup]]] = {}
        self._pending: set[tuple[str, ...]] = set()
        self._background = ThreadPoolExecutor(max_workers=1, thread_name_prefix="datastore-cache")
        self._watchdog = Watchdog()
        # at most this many ``rows()`` queries run at once; the others wait for a slot. Eight small
        # indexed searches at once did 654 a second on 2 cores, four at once (and four waiting) 1,003:
        # DuckDB's scheduler and the GIL hand-offs cost more than the waiting
        self._slots = threading.BoundedSemaphore(max(2, 2 * threads))

    # --- views ----------------------------------------------------------------------------------
    def ensure_view(self, source: ViewSource) -> str:
        """The qualified name of the view of ``source``, (re)created when its snapshot changed.

        The view first reads the snapshot's Parquet files; a snapshot of at most
        ``settings.datastore_cache_max_rows`` rows is then copied into DuckDB's own storage in the
        background and the view switched to that copy."""
        target = f"{VIEW_SCHEMA}.{quote(source.name)}"
        if source.name in self._views and self._views[source.name] == source.snapshot_id:
            return target
        with self._lock:
            if source.name in self._views and self._views[source.name] == source.snapshot_id:
                return target
            self._con.execute(f"CREATE OR REPLACE VIEW {target} AS {self._view_body(source)}")
            self._views[source.name] = source.snapshot_id
        limit = self.settings.datastore_cache_max_rows
        if limit > 0 and source.files and sum(_file_rows(f) for f in source.files) <= limit:
            self._submit(("cache", source.name, str(source.snapshot_id)), self._cache, source)
        return target

    def _submit(self, key: tuple[str, ...], fn: Callable[..., None], *args: Any) -> None:
        with self._lock:
            if key in self._pending:
                return
            self._pending.add(key)

        def run() -> None:
            try:
                fn(*args)
            except Exception:  # a failed cache leaves the Parquet view in place
                log.exception("datastore cache task %s failed", key)
            finally:
                with self._lock:
                    self._pending.discard(key)

        self._background.submit(run)

    def _cache(self, source: ViewSource) -> None:
        table = f"{CACHE_SCHEMA}.{quote(f'{source.name}@{source.snapshot_id}')}"
        cur = self._con.cursor()
        try:
            cur.execute(f"CREATE OR REPLACE TABLE {table} AS {self._view_body(source)}")
            with self._lock:
                if self._views.get(source.name) != source.snapshot_id:
                    cur.execute(f"DROP TABLE {table}")
                    return
                cur.execute(
                    f"CREATE OR REPLACE VIEW {VIEW_SCHEMA}.{quote(source.name)} AS SELECT * FROM {table}"
                )
                old = self._cached.get(source.name)
                self._cached[source.name] = (source.snapshot_id, table)
                self._indexed = {k for k in self._indexed if k[0] != source.name}
                self._arrow.pop(source.name, None)
            if old is not None and old[1] != table:
                cur.execute(f"DROP TABLE IF EXISTS {old[1]}")
        finally:
            cur.close()

    def want_index(self, name: str, column: str) -> None:
        """Build (in the background) an index on ``column`` of the cached copy of view ``name``."""
        cached = self._cached.get(name)
        if cached is None or (name, column) in self._indexed or self._views.get(name) != cached[0]:
            return
        self._submit(("index", name, column, str(cached[0])), self._index, name, column, cached[1])

    def _index(self, name: str, column: str, table: str) -> None:
        cur = self._con.cursor()
        try:
            index = quote(f"idx:{table}:{column}")
            cur.execute(f"CREATE INDEX IF NOT EXISTS {index} ON {table} ({quote(column)})")
            with self._lock:
                self._indexed.add((name, column))
            self._add_lookup(cur, name, column, table)
        finally:
            cur.close()

    def _add_lookup(self, cur: Any, name: str, column: str, table: str) -> None:
        """An Arrow copy of the cached table (once per snapshot) and an equality lookup on ``column``
        when it suits one (see ``hub.warehouse.lookup``)."""
        cached = self._cached.get(name)
        if cached is None or cached[1] != table:
            return
        budget = self.settings.datastore_lookup_max_mb << 20
        copy = self._arrow.get(name)
        if copy is None or copy[0] != cached[0]:
            others = sum(c[1].nbytes for n, c in self._arrow.items() if n != name)
            if others + _cached_bytes(cur, table) > budget:
                return  # over the memory budget: DuckDB answers
            arrow = cur.sql(f"SELECT * FROM {table}").to_arrow_table().combine_chunks()
            copy = (cached[0], arrow, {})
        if column not in copy[2] and Lookup.suits(copy[1], column):
            copy = (copy[0], copy[1], {**copy[2], column: Lookup(copy[1], column)})
        with self._lock:
            if self._cached.get(name) == cached:
                self._arrow[name] = copy

    def lookup(
        self, name: str, snapshot_id: int | None, filters: dict[str, str]
    ) -> tuple[pa.Table, Any] | None:
        """The Arrow copy of view ``name`` at ``snapshot_id`` and the positions of its rows equal to
        ``filters``, or None when there is no lookup for them (DuckDB answers then)."""
        copy = self._arrow.get(name)
        if copy is None or copy[0] != snapshot_id or self._views.get(name) != snapshot_id:
            return None
        rows = equal_rows(copy[1], copy[2], filters)
        return None if rows is None else (copy[1], rows)

    def cached(self, name: str) -> bool:
        """Whether view ``name`` currently reads DuckDB's own copy of its snapshot."""
        c = self._cached.get(name)
        return c is not None and self._views.get(name) == c[0]

    def _view_body(self, source: ViewSource) -> str:
        if not source.files:
            cols = ", ".join(f"CAST(NULL AS {duck_type(f.type)}) AS {quote(f.name)}" for f in source.schema)
            return f"SELECT CAST(NULL AS BIGINT) AS _id{', ' + cols if cols else ''} WHERE false"
        parts = []
        offset = 0
        names = ", ".join(quote(f.name) for f in source.schema)
        for path in source.files:
            parts.append(
                f"SELECT file_row_number + {offset + 1} AS _id, {names} "
                f"FROM read_parquet({sql_list([path])}, file_row_number = true)"
            )
            offset += _file_rows(path)
        return " UNION ALL ".join(parts)

    # --- running ------------------------------------------------------------------------------
    def cursor(self) -> duckdb.DuckDBPyConnection:
        return self._con.cursor()

    @contextlib.contextmanager
    def _watched(self, limit: float, remaining: float | None = None) -> Iterator[Any]:
        """A fresh cursor, interrupted after ``remaining`` (default ``limit``) seconds; DuckDB's errors
        as the API's ``QueryError``."""
        cur = self._con.cursor()
        ticket = self._watchdog.watch(cur, limit if remaining is None else remaining)
        try:
            yield cur
        except duckdb.InterruptException as exc:
            raise QueryError("Search took too long", timeout_seconds=limit) from exc
        except duckdb.Error as exc:
            raise QueryError(f"Invalid query: {_clean(str(exc))}") from exc
        finally:
            self._watchdog.release(ticket)
            cur.close()

    def execute(
        self, sql: str, params: Sequence[Any] | None = None, *, timeout: float | None = None
    ) -> pa.Table:
        """Run ``sql`` on a fresh cursor, interrupted after ``timeout`` seconds."""
        limit = timeout if timeout is not None else self.settings.query_timeout_seconds
        with self._watched(limit) as cur:
            table: pa.Table = cur.sql(sql, params=list(params or [])).to_arrow_table()
            return table

    def rows(
        self, sql: str, params: Sequence[Any] | None = None, *, timeout: float | None = None
    ) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Column names and rows (Python values) of ``sql`` on a fresh cursor, with the time limit
        (which also bounds the wait for one of the query slots)."""
        limit = timeout if timeout is not None else self.settings.query_timeout_seconds
        started = time.monotonic()
        if not self._slots.acquire(timeout=limit):
            raise QueryError("Search took too long", timeout_seconds=limit)
        try:
            with self._watched(limit, max(0.0, limit - (time.monotonic() - started))) as cur:
                cur.execute(sql, list(params or []))
                names = [d[0] for d in cur.description or []]
                return names, cur.fetchall()
        finally:
            self._slots.release()

    def reader(self, sql: str, params: Sequence[Any] | None = None, batch_rows: int = 65_536) -> Any:
        """A streaming Arrow ``RecordBatchReader`` over ``sql`` on its own cursor (for downloads).

        The caller closes the returned reader's cursor through ``reader.close()`` when done."""
        cur = self._con.cursor()
        try:
            return _CursorReader(cur, cur.sql(sql, params=list(params or [])).to_arrow_reader(batch_rows))
        except duckdb.Error as exc:
            cur.close()
            raise QueryError(f"Invalid query: {_clean(str(exc))}") from exc

    def run_select(
        self,
        sql: str,
        resolve: Callable[[str, str | None], str | None],
        *,
        max_rows: int,
        timeout: float | None = None,
    ) -> tuple[pa.Table, bool]:
        """Check and run one user SELECT; returns (at most ``max_rows`` rows, truncated?)."""
        checked = check_select(sql, resolve)
        table = self.execute(f"SELECT * FROM ({checked}) AS _q LIMIT {int(max_rows) + 1}", timeout=timeout)
        if table.num_rows > max_rows:
            return table.slice(0, max_rows), True
        return table, False


class _CursorReader:
    def __init__(self, cursor: duckdb.DuckDBPyConnection, reader: pa.RecordBatchReader) -> None:
        self._cursor = cursor
        self.reader = reader
        self.schema = reader.schema

    def __iter__(self) -> Any:
        return iter(self.reader)

    def close(self) -> None:
        try:
            self._cursor.interrupt()
        finally:
            self._cursor.close()


def _clean(message: str) -> str:
    """A DuckDB message without file system paths."""
    import re

    return re.sub(r"(/[^\s'\"]+)+", "<path>", message.splitlines()[0] if message else message)


def _func_name(node: exp.Func) -> str:
    if isinstance(node, exp.Anonymous):
        return str(node.name).lower()
    return str(node.sql_name()).lower()


def check_select(sql: str, resolve: Callable[[str, str | None], str | None]) -> str:
    """Validate a user query and return it with table names replaced by their sandbox views.

    ``resolve(name, schema)`` maps a table reference to a qualified view name, or None when the caller
    may not read it (or it does not exist: both give the same error)."""
    try:
        statements = [s for s in sqlglot.parse(sql, read="duckdb") if s is not None]
    except sqlglot.errors.ParseError as exc:
        raise QueryError(f"Invalid query: {str(exc).splitlines()[0]}") from exc
    if len(statements) != 1:
        raise QueryError("Query is not a single statement.")
    tree = statements[0]
    if not isinstance(tree, exp.Query):
        raise QueryError("Only a SELECT statement is allowed.")
    for node in tree.walk():
        if isinstance(node, _FORBIDDEN_NODES):
            raise QueryError("Only a SELECT statement is allowed.")
        if isinstance(node, _FILE_FUNCS):
            raise AccessDenied(f"Not authorized to call function {_func_name(node)}")  # type: ignore[arg-type]
        if isinstance(node, exp.Func):
            name = _func_name(node)
            if name in _DENY_FUNCS or name.startswith(_DENY_PREFIXES):
                raise AccessDenied(f"Not authorized to call function {name}")
    ctes = {cte.alias_or_name for cte in tree.find_all(exp.CTE)}
    for table in list(tree.find_all(exp.Table)):
        if not isinstance(table.this, exp.Identifier):
            raise AccessDenied("Not authorized to read this relation: only DataStore tables may be queried")
        name = table.name
        schema = table.db or None
        if table.catalog:
            raise QueryError(f'relation "{table.sql(dialect="duckdb")}" does not exist or is not readable')
        if schema is None and name in ctes:
            continue
        view = resolve(name, schema)
        if view is None:
            shown = f"{schema}.{name}" if schema else name
            raise QueryError(f'relation "{shown}" does not exist or is not readable')
        alias = table.alias
        view_schema, view_name = view.split(".", 1)
        replacement = exp.Table(
            this=exp.to_identifier(view_name.strip('"'), quoted=True),
            db=exp.to_identifier(view_schema, quoted=True),
            alias=exp.TableAlias(this=exp.to_identifier(alias or name, quoted=True)),
        )
        table.replace(replacement)
    return tree.sql(dialect="duckdb")


_SANDBOXES: dict[str, Sandbox] = {}
_SANDBOX_LOCK = threading.Lock()


def close_sandboxes() -> None:
    """Close every sandbox of the process (at exit, and in tests)."""
    with _SANDBOX_LOCK:
        for box in _SANDBOXES.values():
            box._background.shutdown(wait=True, cancel_futures=True)
            box._con.close()
        _SANDBOXES.clear()


atexit.register(close_sandboxes)


def get_sandbox(settings: Settings) -> Sandbox:
    """The process-wide sandbox of ``settings.warehouse_path``."""
    key = str(settings.warehouse_path)
    box = _SANDBOXES.get(key)
    if box is None:
        with _SANDBOX_LOCK:
            box = _SANDBOXES.get(key)
            if box is None:
                settings.ensure_dirs()
                box = Sandbox(settings)
                _SANDBOXES[key] = box
    return box
