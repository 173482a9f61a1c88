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
import threading
from collections.abc import Callable, Sequence
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

VIEW_SCHEMA = "ds"

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


class Sandbox:
    """The process's locked DuckDB instance over one warehouse directory."""

    def __init__(self, settings: Settings, *, memory_limit: str = "256MB", threads: int = 2) -> None:
        self.settings = settings
        root = str(settings.warehouse_path.resolve()).rstrip("/") + "/"
        tmp = settings.data_dir / "tmp" / "duckdb"
        tmp.mkdir(parents=True, exist_ok=True)
        con = duckdb.connect(
            ":memory:",
            config={
                "memory_limit": memory_limit,
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
        self._con = con
        self._lock = threading.Lock()
        self._views: dict[str, int | None] = {}

    # --- views ----------------------------------------------------------------------------------
    def ensure_view(self, source: ViewSource) -> str:
        """The qualified name of the view of ``source``, (re)created when its snapshot changed."""
        target = f"{VIEW_SCHEMA}.{quote(source.name)}"
        if source.name in self._views and self._views[source.name] == source.snapshot_id:
            return target
        with self._lock:
            if source.name in self._views and self._views[source.name] == source.snapshot_id:
                return target
            self._con.execute(f"CREATE OR REPLACE VIEW {target} AS {self._view_body(source)}")
            self._views[source.name] = source.snapshot_id
        return target

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

    def execute(
        self, sql: str, params: Sequence[Any] | None = None, *, timeout: float | None = None
    ) -> pa.Table:
        """Run ``sql`` on a fresh cursor, interrupted after ``timeout`` seconds."""
        cur = self._con.cursor()
        limit = timeout if timeout is not None else self.settings.query_timeout_seconds
        timer = threading.Timer(limit, cur.interrupt)
        timer.start()
        try:
            return cur.sql(sql, params=list(params or [])).to_arrow_table()
        except duckdb.InterruptException as exc:
            raise QueryError("Search took too long", timeout_seconds=limit) from exc
        except duckdb.Error as exc:
            raise QueryError(f"Invalid query: {_clean(str(exc))}") from exc
        finally:
            timer.cancel()
            cur.close()

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
            raise AccessDenied(f"Not authorized to call function {_func_name(node)}")
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
