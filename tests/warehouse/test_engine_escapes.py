"""The query engine reads only the tables the hub registers: however SQL names a file, a glob, a CTE or
a table the caller may not read, no row of it comes back.

Two lines are checked separately, so that each holds without the other:

- the engine alone (``Engine``, the raw SQL run as written, no parser in front): DuckDB has no file
  access, so a path, a glob, a table function over files or another table's name reads nothing;
- the policy (``policy.parse_select`` + ``policy.bind``, scope-aware CTEs): only granted tables are
  bound, whatever the query's shape; a property test generates table-like names in every position.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.errors import AccessDeniedError, QueryError
from hub.warehouse.engine import policy
from hub.warehouse.engine.duck import Engine
from hub.warehouse.engine.tables import TableCache, TableSource
from hub.warehouse.tables import Warehouse
from hub.warehouse.writer import FileSink

SCHEMA = pa.schema([("marker", pa.string()), ("n", pa.int64())])
GRANTED, SECRET = "test.granted", "test.secret"


def _commit(wh: Warehouse, key: str, marker: str, *, quarantine: bool = False) -> None:
    t = wh.ensure_table(key, SCHEMA, quarantine=quarantine)
    sink = FileSink(t, wh.data_dir(t), f"escape-{marker}")
    sink.write(pa.record_batch({"marker": [marker] * 3, "n": [1, 2, 3]}, schema=SCHEMA))
    wh.commit(t, add=sink.close())


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> tuple[Warehouse, TableSource]:
    from hub.settings import Settings

    root = tmp_path_factory.mktemp("escapes")
    s = Settings(data_dir=root / "data", catalog_dir=root / "catalog")
    s.ensure_dirs()
    wh = Warehouse(s)
    _commit(wh, GRANTED, "granted-ok")
    _commit(wh, SECRET, "SECRET-ROW")
    _commit(wh, SECRET, "QUARANTINED-ROW", quarantine=True)
    granted = TableSource(GRANTED, wh.current_snapshot_id(GRANTED), tuple(wh.data_files(GRANTED)), SCHEMA)
    return wh, granted


@pytest.fixture(scope="module")
def engine() -> Iterator[Engine]:
    e = Engine(TableCache(64 << 20), memory_limit="256MB", timeout=10)
    yield e
    e.close()


def _secret_paths(wh: Warehouse) -> list[str]:
    root = str(wh.settings.warehouse_path)
    files = wh.data_files(SECRET)
    metadata = sorted(str(p) for p in Path(root).rglob("*.metadata.json"))
    return [
        files[0],
        files[0].removeprefix(root + "/"),
        f"{root}/**/*.parquet",
        f"{root}/test/secret/data/*.parquet",
        "**/*.parquet",
        f"{root}/test/secret__quarantine/data/*.parquet",
        metadata[0],
        "/etc/passwd",
    ]


def _leaks(table: pa.Table) -> bool:
    text = str(table.to_pylist())
    return "SECRET" in text or "QUARANTINED" in text or "root:" in text


def test_the_engine_alone_reads_no_path(warehouse: tuple[Warehouse, TableSource], engine: Engine) -> None:
    """Raw SQL straight to DuckDB (no policy): every way of naming a file fails; nothing leaks."""
    wh, granted = warehouse
    tables = {"granted": granted}
    attempts = []
    for path in _secret_paths(wh):
        q = path.replace("'", "''")
        attempts += [
            f"SELECT * FROM '{q}'",
            f'SELECT * FROM "{path}"',
            f'WITH "{path}" AS (SELECT * FROM "{path}") SELECT * FROM "{path}"',
            f"SELECT * FROM read_parquet('{q}')",
            f"SELECT * FROM parquet_scan('{q}')",
            f"SELECT * FROM read_csv('{q}')",
            f"SELECT * FROM read_json('{q}')",
            f"SELECT content FROM read_text('{q}')",
            f"SELECT * FROM glob('{q}')",
            f"SELECT * FROM parquet_metadata('{q}')",
            f"SELECT * FROM query('SELECT * FROM read_parquet(''{q}'')')",
        ]
    attempts += [
        "SELECT * FROM secret",
        'SELECT * FROM "test.secret"',
        "SELECT * FROM secret__quarantine",
        "SELECT * FROM query_table('secret')",
        "ATTACH 'x.db' AS x",
        "COPY (SELECT 1) TO 'out.csv'",
        "INSTALL httpfs",
        "LOAD httpfs",
        "SET enable_external_access = true",
        "SET allowed_directories = ['/']",
        "SELECT * FROM duckdb_tables()",
    ]
    refused = 0
    for sql in attempts:
        try:
            table = engine.arrow(sql, tables=tables)
        except QueryError:
            refused += 1
            continue
        assert not _leaks(table), sql
    assert refused >= len(attempts) - 2, "nearly every attempt fails outright"
    # what was registered is readable, and only on its own cursor
    assert engine.arrow("SELECT DISTINCT marker FROM granted", tables=tables).to_pylist() == [
        {"marker": "granted-ok"}
    ]
    with pytest.raises(QueryError, match="does not exist"):
        engine.arrow("SELECT * FROM granted")


def _run_through_policy(engine: Engine, granted: TableSource, sql: str) -> pa.Table | None:
    """The door's path without a catalogue: only ``test.granted`` resolves. None when refused."""
    try:
        tree = policy.parse_select(sql)
        tables: dict[str, TableSource] = {}

        def resolve(schema: str | None, name: str, when: str | None) -> str:
            if schema is not None and f"{schema}.{name}".lower() == GRANTED:
                tables["t1"] = granted
                return "t1"
            raise policy.unknown(schema, name)

        text, _ = policy.bind(tree, resolve)
        return engine.arrow(text, tables=tables)
    except (QueryError, AccessDeniedError):
        return None


@pytest.mark.parametrize(
    "sql",
    [
        # the escape: a CTE named like the path, used in another scope
        'WITH "{p}" AS (SELECT * FROM "{p}") SELECT * FROM "{p}" LIMIT 3',
        # a CTE in a subquery does not hide the outer reference
        'SELECT * FROM (WITH "{p}" AS (SELECT 1 AS n) SELECT * FROM "{p}") q, "{p}"',
        # a CTE defined after its use in an earlier CTE
        'WITH a AS (SELECT * FROM "{p}"), "{p}" AS (SELECT 1) SELECT * FROM a',
        "WITH secret AS (SELECT 1 AS n) SELECT * FROM test.secret",
        'WITH "test.secret" AS (SELECT 1 AS n) SELECT * FROM test.secret',
        "SELECT * FROM test.granted UNION ALL SELECT * FROM test.secret",
        "SELECT * FROM test.granted WHERE EXISTS (SELECT 1 FROM test.secret__quarantine)",
        "SELECT (SELECT max(marker) FROM test.secret) AS m FROM test.granted",
        "SELECT * FROM test.granted g JOIN test.secret s USING (n)",
        "SELECT * FROM test.granted, LATERAL (SELECT * FROM test.secret) s",
        "SELECT * FROM main.test.secret",
        "SELECT * FROM test.secret AT (VERSION => 1)",
    ],
)
def test_the_policy_binds_only_granted_tables(
    warehouse: tuple[Warehouse, TableSource], engine: Engine, sql: str
) -> None:
    wh, granted = warehouse
    result = _run_through_policy(engine, granted, sql.replace("{p}", wh.data_files(SECRET)[0]))
    assert result is None or not _leaks(result), sql


def test_a_cte_shadowing_a_granted_name_is_the_cte(
    warehouse: tuple[Warehouse, TableSource], engine: Engine
) -> None:
    _, granted = warehouse
    out = _run_through_policy(
        engine,
        granted,
        'WITH "test.granted" AS (SELECT 1 AS n) SELECT n FROM "test.granted" UNION ALL '
        "SELECT count(*) FROM test.granted",
    )
    assert out is not None
    assert sorted(out.column("n").to_pylist()) == [1, 3]


def test_columns_qualified_with_schema_and_table_name_the_bound_table(
    warehouse: tuple[Warehouse, TableSource], engine: Engine
) -> None:
    """SQLAlchemy and pandas.read_sql_table write ``schema.table.column``; the bound table answers it."""
    _, granted = warehouse
    out = _run_through_policy(
        engine, granted, "SELECT test.granted.n FROM test.granted ORDER BY test.granted.n"
    )
    assert out is not None
    assert out.column("n").to_pylist() == [1, 2, 3]


# --- the property: table-like names in every position ------------------------------------------

_SHAPES = [
    "SELECT * FROM {a}",
    "WITH {c} AS (SELECT * FROM {a}) SELECT * FROM {b}",
    "WITH {c} AS (SELECT * FROM {a}) SELECT * FROM {c}",
    "SELECT * FROM (WITH {c} AS (SELECT * FROM {a}) SELECT * FROM {c}) q, {b}",
    "SELECT * FROM {a} JOIN {b} USING (n)",
    "SELECT * FROM {a} WHERE n IN (SELECT n FROM {b})",
    "SELECT (SELECT max(marker) FROM {a}) AS marker, 1 AS n FROM {b}",
    "SELECT * FROM {a} UNION ALL SELECT * FROM {b}",
    "WITH RECURSIVE {c} AS (SELECT * FROM {a} UNION ALL SELECT * FROM {c} WHERE false) SELECT * FROM {b}",
    "WITH {c} AS (SELECT * FROM {a}), {d} AS (SELECT * FROM {c}) "
    "SELECT * FROM {d} UNION ALL SELECT * FROM {b}",
    "SELECT * FROM {a}, LATERAL (SELECT * FROM {b}) s",
]


@pytest.fixture(scope="module")
def names(warehouse: tuple[Warehouse, TableSource]) -> list[str]:
    wh, _ = warehouse
    paths = _secret_paths(wh)
    out = ["test.granted", '"test"."granted"', "TEST.GRANTED", "test.secret", '"test"."secret"']
    out += ["test.secret__quarantine", "secret", "t1", '"t1"', "granted", '"test.granted"']
    out += [f'"{p}"' for p in paths] + [f"'{p}'" for p in paths]
    out += [f"read_parquet('{p}')" for p in paths[:3]] + ["glob('**')", "range(3)"]
    return out


@settings(
    max_examples=300,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_property_only_granted_tables_are_read(
    data: st.DataObject,
    warehouse: tuple[Warehouse, TableSource],
    engine: Engine,
    names: list[str],
) -> None:
    _, granted = warehouse
    shape = data.draw(st.sampled_from(_SHAPES))
    pick = st.sampled_from(names)
    cte_names = st.sampled_from([*names[:11], *(n for n in names if n.startswith('"'))])
    sql = shape.format(a=data.draw(pick), b=data.draw(pick), c=data.draw(cte_names), d=data.draw(cte_names))
    result = _run_through_policy(engine, granted, sql)
    assert result is None or not _leaks(result), sql
    # and the engine alone, given the raw text with only the granted table registered, leaks nothing
    try:
        raw = engine.arrow(sql, tables={"granted": granted})
    except QueryError:
        return
    assert not _leaks(raw), sql
