"""Text-equality searches answered from the Arrow lookup give exactly DuckDB's rows, totals and order."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from hub.runtime import Hub
from hub.settings import Settings
from hub.warehouse.datastore import DataStore, SearchQuery, records
from hub.warehouse.tables import Warehouse
from hub.warehouse.writer import FileSink

KEY = "test.lookups"
WARDS = ["26734", "26735", "Phường Đông Hải", None]


def make_table(settings: Settings, n: int = 3000) -> None:
    table = pa.table(
        {
            "ward_code": pa.array([WARDS[i % 4] for i in range(n)], pa.string()),
            "sex": pa.array(["Nam" if i % 3 else "Nữ" for i in range(n)], pa.string()),
            "name": pa.array([f"Người {i % 50}" for i in range(n)], pa.string()),
            "age": pa.array([i % 90 for i in range(n)], pa.int64()),
            "born": pa.array([i % 20_000 for i in range(n)], pa.int32()).cast(pa.date32()),
            "updated_at": pa.array(
                [1_750_000_000_000_000 + i for i in range(n)], pa.timestamp("us", tz="UTC")
            ),
        }
    )
    wh = Warehouse(settings)
    t = wh.ensure_table(KEY, table.schema)
    for i, part in enumerate((table.slice(0, 1000), table.slice(1000))):  # two files: _id runs across them
        sink = FileSink(t, wh.data_dir(t), f"test{i}")
        for batch in part.to_batches(max_chunksize=400):
            sink.write(batch)
        wh.commit(t, add=sink.close())
        t.refresh()


def wait_for_lookup(store: DataStore, column: str) -> None:
    info = store.table_info(KEY, max_age=0)
    assert info is not None
    end = time.monotonic() + 30
    while time.monotonic() < end:
        store.search(info, SearchQuery(filters={column: "26734"}))
        cached = store.engine.cache.peek(info.table_source())
        if cached is not None and cached.extras.get(column) is not None:
            return
        time.sleep(0.05)
    pytest.fail(f"no lookup on {column} after 30 s")


def both(store: DataStore, monkeypatch: pytest.MonkeyPatch, **query: Any) -> tuple[Any, Any]:
    info = store.table_info(KEY)
    assert info is not None
    q = SearchQuery(**query)
    fast = store.search(info, q)
    with monkeypatch.context() as m:
        m.setattr(store, "_lookup", lambda *a, **k: None)
        slow = store.search(info, q)
    return fast, slow


def test_lookup_answers_as_duckdb_does(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(data_dir=tmp_path / "data", catalog_dir=tmp_path / "catalog")
    settings.ensure_dirs()
    make_table(settings)
    with Hub(settings) as hub:
        store = hub.datastore
        wait_for_lookup(store, "ward_code")
        wait_for_lookup(store, "sex")
        info = store.table_info(KEY)
        assert info is not None
        cached = store.engine.cache.peek(info.table_source())
        assert cached is not None
        assert pa.types.is_string(cached.table.schema.field("ward_code").type)  # the server's copy: plain
        calls: list[Any] = []
        real = store._lookup
        monkeypatch.setattr(store, "_lookup", lambda *a: calls.append(a) or real(*a))
        cases: list[dict[str, Any]] = [
            {"filters": {"ward_code": "26734"}},
            {"filters": {"ward_code": "Phường Đông Hải"}, "limit": 7, "offset": 3},
            {"filters": {"ward_code": "26735"}, "offset": 740},
            {"filters": {"ward_code": "26735", "sex": "Nữ"}, "limit": 1000},
            {"filters": {"sex": "Nam", "name": "Người 7"}},
            {"filters": {"ward_code": "nowhere"}},
            {"filters": {"ward_code": "26734"}, "fields": ["name", "_id"], "include_total": False},
            {"filters": {"ward_code": "26734"}, "limit": 0},
        ]
        for query in cases:
            calls.clear()
            fast, slow = both(store, monkeypatch, **query)
            assert calls, query  # the lookup answered ...
            assert records(fast, "objects") == records(slow, "objects"), query  # ... as DuckDB does
            assert (fast.total, fast.fields, fast.last_id, fast.columns) == (
                slow.total,
                slow.fields,
                slow.last_id,
                slow.columns,
            ), query
        for query in (  # not text equalities: DuckDB answers (the lookup declines)
            {"filters": {"ward_code": ["26734", "26735"]}},
            {"filters": {"ward_code": "26734"}, "sort": ["age desc"]},
            {"filters": {"ward_code": "26734"}, "q": "Người"},
            {"filters": {"ward_code": "26734"}, "distinct": True, "fields": ["sex"]},
        ):
            assert real(info.table_source(), SearchQuery(**query), ["_id"], {}) is None, query
            fast, slow = both(store, monkeypatch, **query)
            assert records(fast, "objects") == records(slow, "objects"), query
        fast, slow = both(store, monkeypatch, filters={"ward_code": "26734", "age": "30"})
        assert records(fast, "objects") == records(slow, "objects")  # a number compared as text: DuckDB


def test_no_arrow_copy_beyond_the_memory_budget(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", catalog_dir=tmp_path / "catalog", query_cache_mb=0)
    settings.ensure_dirs()
    make_table(settings)
    with Hub(settings) as hub:
        store = hub.datastore
        info = store.table_info(KEY, max_age=0)
        assert info is not None
        for _ in range(3):
            result = store.search(info, SearchQuery(filters={"ward_code": "26734"}, limit=5000))
            time.sleep(0.05)
        assert store.engine.cache.peek(info.table_source()) is None  # no copy: the files are read
        assert result.total == len(result.rows) == 750
        assert {r[result.columns.index("ward_code")] for r in result.rows} == {"26734"}
        ids = [r[result.columns.index("_id")] for r in result.rows]
        assert ids == sorted(ids)
        assert ids[0] == 1
        assert ids[-1] > 1000  # _id runs across both files


def test_a_lookup_on_dictionary_encoded_text_finds_the_same_rows() -> None:
    from hub.warehouse.lookup import Lookup, equal_rows

    plain = pa.table({"w": pa.array([WARDS[i % 4] for i in range(2000)]), "s": pa.array(["a", "b"] * 1000)})
    encoded = plain.set_column(0, "w", plain.column("w").dictionary_encode())
    for table in (plain, encoded):
        assert Lookup.suits(table, "w")
        lookups = {"w": Lookup(table, "w")}
        rows = equal_rows(table, lookups, {"w": "26735", "s": "b"})
        assert rows is not None
        assert rows.tolist() == [i for i in range(2000) if i % 4 == 1 and i % 2 == 1]
