"""The one DuckDB factory of the hub, and the locked engine every query from outside runs on.

``connect(file_access=...)`` makes every DuckDB instance of the hub: bounded memory, UTC, no extension
installed or loaded. Two kinds exist:

- ``file_access=True``: the data path's own instance (upsert change sets over staged files,
  ``hub.warehouse.changes``); it runs only SQL the hub writes;
- ``file_access=False``: the query engine. External access is turned off before the instance runs
  any query (no allowed directory, no path of any kind), and the configuration is locked. ``Engine``
  wraps it: each query runs on a fresh cursor on which the hub registers, as Arrow objects, exactly
  the tables the caller may read (``hub.warehouse.engine.tables``). Registered objects are visible to
  their cursor only; the instance's catalogue holds no table at all. So a name that is not registered
  on the cursor is an unknown table however it is written, and a path is refused by DuckDB itself.

The engine also has the generalizing functions the release gate whitelists (``hub_centroid``).
"""

from __future__ import annotations

import contextlib
import re
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
from duckdb.func import FunctionNullHandling

from hub.errors import QueryError
from hub.warehouse.engine.tables import TableCache, TableSource
from hub.warehouse.engine.watchdog import Watchdog

_NUMBER_PAIR = re.compile(r"(-?\d+(?:\.\d+)?(?:[eE]-?\d+)?)\s+(-?\d+(?:\.\d+)?(?:[eE]-?\d+)?)")
_PATH = re.compile(r"(/[^\s'\"]+)+")


def centroid_wkt(wkt: str | None) -> str | None:
    """The centroid of the first ring of a WKT (multi)polygon, as WKT ``POINT(x y)`` (area-weighted;
    the vertex mean for degenerate rings), rounded to 6 decimals."""
    if not wkt:
        return None
    ring = wkt.split(")", 1)[0]
    points = [(float(x), float(y)) for x, y in _NUMBER_PAIR.findall(ring)]
    if not points:
        return None
    area = cx = cy = 0.0
    for (x0, y0), (x1, y1) in zip(points, points[1:] + points[:1], strict=True):
        cross = x0 * y1 - x1 * y0
        area += cross
        cx += (x0 + x1) * cross
        cy += (y0 + y1) * cross
    if abs(area) < 1e-15:
        cx = sum(p[0] for p in points) / len(points)
        cy = sum(p[1] for p in points) / len(points)
    else:
        cx /= 3 * area
        cy /= 3 * area
    return f"POINT({cx:.6f} {cy:.6f})"


def duck_type(t: pa.DataType) -> str:
    """A DuckDB type name for an Arrow type (casts of parameters, typed empty tables)."""
    if pa.types.is_dictionary(t):
        return duck_type(t.value_type)
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


def connect(
    *,
    file_access: bool,
    memory_limit: str = "512MB",
    threads: int = 2,
    temp_dir: Path | None = None,
) -> duckdb.DuckDBPyConnection:
    """A new in-memory DuckDB instance (see the module docstring for the two kinds)."""
    tmp = temp_dir or Path(tempfile.gettempdir()) / "hub-duckdb"
    tmp.mkdir(parents=True, exist_ok=True)
    config: dict[str, Any] = {
        "memory_limit": memory_limit,
        "threads": threads,
        "autoinstall_known_extensions": False,
        "autoload_known_extensions": False,
        "temp_directory": str(tmp),
    }
    con = duckdb.connect(":memory:", config=config)
    con.execute("SET TimeZone = 'UTC'")
    if not file_access:
        con.execute("SET enable_external_access = false")
        con.create_function(
            "hub_centroid",
            centroid_wkt,
            ["VARCHAR"],
            "VARCHAR",
            null_handling=FunctionNullHandling.SPECIAL,
        )
        con.execute("SET lock_configuration = true")
    return con


def clean_message(message: str, names: Mapping[str, str] | None = None) -> str:
    """A DuckDB message fit for the caller: first line, no file system path, the engine's internal
    table names shown as the caller wrote them, no "did you mean" hints."""
    text = message.splitlines()[0] if message else message
    text = text.split(" Did you mean", 1)[0]
    for internal, shown in (names or {}).items():
        text = re.sub(rf"(?<![\w.]){re.escape(internal)}(?!\w)", shown, text)
    return _PATH.sub("<path>", text)


def query_error(exc: duckdb.Error, limit: float, names: Mapping[str, str] | None = None) -> QueryError:
    """The caller's error for a DuckDB error; ``details["kind"]`` is timeout, memory, file or invalid."""
    if isinstance(exc, duckdb.InterruptException):
        return QueryError("Search took too long", timeout_seconds=limit, kind="timeout")
    if isinstance(exc, duckdb.OutOfMemoryException):
        return QueryError(
            "The query needs more memory than it may use; aggregate or filter first.", kind="memory"
        )
    if isinstance(exc, duckdb.PermissionException):
        return QueryError("Invalid query: files cannot be read from SQL; name a table instead.", kind="file")
    return QueryError(f"Invalid query: {clean_message(str(exc), names)}", kind="invalid")


class Engine:
    """The locked DuckDB instance of one process, and the cache of the snapshots it reads."""

    MAX_IDLE_CURSORS = 32

    def __init__(
        self,
        cache: TableCache,
        *,
        memory_limit: str,
        threads: int = 2,
        temp_dir: Path | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.cache = cache
        self.timeout = timeout
        self._con = connect(file_access=False, memory_limit=memory_limit, threads=threads, temp_dir=temp_dir)
        self._watchdog = Watchdog()
        # at most this many queries run at once; the others wait for a slot. Eight small indexed
        # searches at once did 654 a second on 2 cores, four at once (and four waiting) 1,003: DuckDB's
        # scheduler and the GIL hand-offs cost more than the waiting
        self._slots = threading.BoundedSemaphore(max(2, 2 * threads))
        self._closed = False
        self._idle_lock = threading.Lock()
        self._idle: OrderedDict[tuple[Any, ...], list[tuple[duckdb.DuckDBPyConnection, dict[str, Any]]]] = (
            OrderedDict()
        )
        self._idle_count = 0

    @contextlib.contextmanager
    def cursor(
        self, tables: Mapping[str, TableSource], *, timeout: float | None = None
    ) -> Iterator[duckdb.DuckDBPyConnection]:
        """A cursor with exactly ``tables`` registered (engine name -> source), interrupted after
        ``timeout`` seconds; DuckDB's errors as ``QueryError``.

        Registering costs about as much as a small query, so a cursor whose tables are all cached
        copies is kept after use and handed out again, to a query over *exactly* the same tables (same
        names, same snapshots, same objects); anything else gets a fresh cursor."""
        limit = self.timeout if timeout is None else timeout
        started = time.monotonic()
        if not self._slots.acquire(timeout=limit):
            raise QueryError("Search took too long", timeout_seconds=limit)
        try:
            objects = {name: self.cache.scannable(source) for name, source in tables.items()}
            key = tuple(sorted((name, id(obj)) for name, obj in objects.items()))
            reusable = all(isinstance(obj, pa.Table) for obj in objects.values())
            cur = self._take_idle(key) if reusable else None
            if cur is None:
                cur = self._con.cursor()
                for name, obj in objects.items():
                    cur.register(name, obj)
            ok = False
            ticket = self._watchdog.watch(cur, max(0.0, limit - (time.monotonic() - started)))
            try:
                yield cur
                ok = True
            except duckdb.Error as exc:
                raise query_error(exc, limit, {n: s.key for n, s in tables.items()}) from exc
            finally:
                self._watchdog.release(ticket)
                if ok and reusable:
                    self._keep_idle(key, cur, objects)
                else:
                    cur.close()
        finally:
            self._slots.release()

    def _take_idle(self, key: tuple[Any, ...]) -> duckdb.DuckDBPyConnection | None:
        with self._idle_lock:
            entries = self._idle.get(key)
            if not entries:
                return None
            cur, _objects = entries.pop()
            if not entries:
                del self._idle[key]
            self._idle_count -= 1
            return cur

    def _keep_idle(
        self, key: tuple[Any, ...], cur: duckdb.DuckDBPyConnection, objects: dict[str, Any]
    ) -> None:
        """Keep ``cur`` for the next query over the same tables (``objects`` keep the registered
        copies alive, so an object id in ``key`` is never reused while the cursor waits)."""
        drop: list[duckdb.DuckDBPyConnection] = []
        with self._idle_lock:
            if self._closed:
                drop.append(cur)
            else:
                self._idle.setdefault(key, []).append((cur, objects))
                self._idle.move_to_end(key)
                self._idle_count += 1
                while self._idle_count > self.MAX_IDLE_CURSORS:
                    _, entries = self._idle.popitem(last=False)
                    self._idle_count -= len(entries)
                    drop.extend(c for c, _ in entries)
        for c in drop:
            c.close()

    def rows(
        self,
        sql: str,
        params: Sequence[Any] | None = None,
        tables: Mapping[str, TableSource] | None = None,
        *,
        timeout: float | None = None,
    ) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Column names and rows (Python values) of ``sql``."""
        with self.cursor(tables or {}, timeout=timeout) as cur:
            cur.execute(sql, list(params or []))
            names = [d[0] for d in cur.description or []]
            return names, cur.fetchall()

    def arrow(
        self,
        sql: str,
        params: Sequence[Any] | None = None,
        tables: Mapping[str, TableSource] | None = None,
        *,
        timeout: float | None = None,
    ) -> pa.Table:
        """The result of ``sql`` as an Arrow table."""
        with self.cursor(tables or {}, timeout=timeout) as cur:
            table: pa.Table = cur.sql(sql, params=list(params or [])).to_arrow_table()
            return table

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            with self._idle_lock:
                idle = [c for entries in self._idle.values() for c, _ in entries]
                self._idle.clear()
            for c in idle:
                c.close()
            self._watchdog.close()
            self._con.close()
