"""Running an open-data release's SQL over the warehouse (used by ``hub.publish``).

The connection is ``hub.warehouse.query.connect`` plus the generalizing functions the
de-identification gate whitelists and plain DuckDB lacks (no extension is needed):

- ``hub_centroid(wkt VARCHAR) -> VARCHAR``: the centroid of a WKT polygon (area-weighted; the
  vertex mean for degenerate rings) as ``POINT(x y)`` rounded to 6 decimals.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

import duckdb
import pyarrow as pa
from duckdb.func import FunctionNullHandling

from hub.errors import PublishError
from hub.warehouse.query import connect
from hub.warehouse.tables import Warehouse

_NUMBER_PAIR = re.compile(r"(-?\d+(?:\.\d+)?(?:[eE]-?\d+)?)\s+(-?\d+(?:\.\d+)?(?:[eE]-?\d+)?)")


def centroid_wkt(wkt: str | None) -> str | None:
    """The centroid of the first ring of a WKT (multi)polygon, as WKT ``POINT(x y)``."""
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


def register_functions(con: duckdb.DuckDBPyConnection) -> None:
    con.create_function(
        "hub_centroid", centroid_wkt, ["VARCHAR"], "VARCHAR", null_handling=FunctionNullHandling.SPECIAL
    )


def run_release_sql(
    warehouse: Warehouse, keys: Iterable[str], sql: str
) -> tuple[pa.Table, dict[str, int | None]]:
    """Run ``sql`` over the current snapshots of ``keys``; return the rows and the snapshot ids read."""
    keys = list(keys)
    snapshots = {k: warehouse.current_snapshot_id(k) if warehouse.has_table(k) else None for k in keys}
    missing = [k for k, v in snapshots.items() if v is None]
    if missing:
        raise PublishError(f"no data yet for {', '.join(missing)} (run `hub ingest {missing[0]}` first)")
    con = connect(warehouse, keys, {k: v for k, v in snapshots.items() if v is not None})
    try:
        register_functions(con)
        root = str(warehouse.settings.warehouse_path.resolve()).rstrip("/") + "/"
        con.execute(f"SET allowed_directories = ['{root.replace(chr(39), chr(39) * 2)}']")
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
        return _arrow(con, sql), snapshots
    finally:
        con.close()


def run_sql_on_tables(tables: Mapping[str, pa.Table], sql: str) -> pa.Table:
    """Run ``sql`` over in-memory tables named by dataset key (tests and previews)."""
    con = duckdb.connect(":memory:")
    try:
        register_functions(con)
        for key, table in tables.items():
            ns, name = key.split(".", 1)
            con.execute(f'CREATE SCHEMA IF NOT EXISTS "{ns}"')
            con.register(f"__{ns}_{name}", table)
            con.execute(f'CREATE VIEW "{ns}"."{name}" AS SELECT * FROM "__{ns}_{name}"')
        return _arrow(con, sql)
    finally:
        con.close()


def _arrow(con: duckdb.DuckDBPyConnection, sql: str) -> pa.Table:
    try:
        result = con.sql(sql)
        if result is None:
            raise PublishError("a release is a SELECT statement")
        return result.to_arrow_table()
    except duckdb.Error as exc:
        raise PublishError(f"release SQL failed: {exc}".splitlines()[0]) from exc
