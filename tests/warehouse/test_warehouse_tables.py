"""The warehouse: Iceberg tables in the SQL catalog of the metadata DB, Parquet zstd files with field
ids, snapshot listing, DuckDB views (also of empty tables)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from hub.errors import NotFoundError, QueryError
from hub.ingest.runner import run_ingest
from hub.warehouse.query import run_sql
from hub.warehouse.tables import Warehouse
from hub.warehouse.writer import FileSink
from tests.warehouse.support import KEY, make_env, person

SCHEMA = pa.schema([pa.field("id", pa.int64(), nullable=False), pa.field("name", pa.string())])


def test_tables_live_in_the_metadata_database_and_files_are_zstd_with_field_ids(
    tmp_path: Path, settings: object
) -> None:
    env = make_env(tmp_path)
    env.write_rows([person(1), person(2)])
    result = run_ingest(env.settings, KEY)
    wh = Warehouse(env.settings)
    engine = sa.create_engine(env.settings.database_url)
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT table_namespace, table_name FROM iceberg_tables")).all()
    engine.dispose()
    assert ("test", "people") in rows
    (path,) = wh.data_files(KEY)
    assert path.startswith(str(env.settings.warehouse_path))
    assert Path(path).exists()
    meta = pq.ParquetFile(path)
    assert meta.metadata.row_group(0).column(0).compression == "ZSTD"
    assert meta.schema_arrow.field("id").metadata[b"PARQUET:field_id"] == b"1"
    assert wh.keys() == [KEY]
    assert wh.current_snapshot_id(KEY) == result.snapshot_id
    assert wh.arrow_schema(KEY).names == ["id", "name", "age", "updated_at"]
    assert pa.types.is_timestamp(wh.arrow_schema(KEY).field("updated_at").type)
    assert wh.table(KEY).properties["write.parquet.compression-codec"] == "zstd"


def test_an_empty_table_has_its_columns_and_no_rows(settings: object) -> None:
    wh = Warehouse(settings)  # type: ignore[arg-type]
    wh.ensure_table("land.parcels", SCHEMA)
    assert run_sql(wh, "SELECT count(*) AS n FROM land.parcels").to_pylist() == [{"n": 0}]
    assert run_sql(wh, "SELECT * FROM land.parcels").column_names == ["id", "name"]


def test_queries_of_datasets_and_errors(settings: object) -> None:
    wh = Warehouse(settings)  # type: ignore[arg-type]
    table = wh.ensure_table("land.parcels", SCHEMA)
    sink = FileSink(table, wh.data_dir(table), "manual")
    sink.write(pa.record_batch({"id": [1, 2, 3], "name": ["a", "b", None]}))
    first = wh.commit(table, add=sink.close(), properties={"hub.run-id": "manual"})
    wh.ensure_table("edu.schools", SCHEMA)
    assert run_sql(wh, "SELECT count(*) AS n, count(name) AS c FROM land.parcels").to_pylist() == [
        {"n": 3, "c": 2}
    ]
    assert wh.snapshots("land.parcels")[0].snapshot_id == first
    assert wh.snapshots("land.parcels")[0].run_id == "manual"
    with pytest.raises(QueryError, match=r'relation "land\.nothing" does not exist'):
        run_sql(wh, "SELECT * FROM land.nothing")
    files = wh.data_files("land.parcels")
    with pytest.raises(QueryError, match="does not exist"):  # a path is not a table, even for operators
        run_sql(wh, f"SELECT * FROM '{files[0]}'")
    with pytest.raises(NotFoundError, match="no table yet"):
        wh.table("land.nothing")
    with pytest.raises(QueryError, match="neither a snapshot id nor an ISO 8601 time"):
        wh.resolve_as_of("land.parcels", "yesterday")
    assert run_sql(wh, "SELECT id FROM land.parcels ORDER BY id", max_rows=2).num_rows == 2


def test_file_sink_rolls_files_and_abort_removes_them(settings: object) -> None:
    wh = Warehouse(settings)  # type: ignore[arg-type]
    table = wh.ensure_table("land.parcels", SCHEMA)
    sink = FileSink(table, wh.data_dir(table), "roll", target_rows=4)
    for start in range(0, 10, 3):
        sink.write(pa.record_batch({"id": list(range(start, start + 3)), "name": ["x"] * 3}))
    files = sink.close()
    assert [f.record_count for f in files] == [6, 6]
    assert all(Path(f.file_path.removeprefix("file://")).exists() for f in files)
    sink.abort()
    assert not list(wh.data_dir(table).glob("roll-*.parquet"))
