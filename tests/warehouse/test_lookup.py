"""Text-equality searches answered from the Arrow lookup give exactly DuckDB's rows, totals and order."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

import hub.warehouse.datastore as datastore
from hub.settings import Settings
from hub.warehouse import Warehouse
from hub.warehouse.datastore import SearchQuery, records, search, table_info
from hub.warehouse.sandbox import get_sandbox
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


def wait_for_lookup(settings: Settings, name: str, column: str) -> None:
    info = table_info(settings, KEY, max_age=0)
    assert info is not None
    box = get_sandbox(settings)
    end = time.monotonic() + 30
    while time.monotonic() < end:
        search(settings, name, info, SearchQuery(filters={column: "26734"}))
        if box.lookup(name, info.snapshot_id, {column: "26734"}) is not None:
            return
        time.sleep(0.05)
    pytest.fail(f"no lookup on {column} after 30 s")


def both(settings: Settings, name: str, monkeypatch: pytest.MonkeyPatch, **query: Any) -> tuple[Any, Any]:
    info = table_info(settings, KEY)
    assert info is not None
    q = SearchQuery(**query)
    fast = search(settings, name, info, q)
    with monkeypatch.context() as m:
        m.setattr(datastore, "_lookup", lambda *a, **k: None)
        slow = search(settings, name, info, q)
    return fast, slow


def test_lookup_answers_as_duckdb_does(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(data_dir=tmp_path / "data", catalog_dir=tmp_path / "catalog")
    settings.ensure_dirs()
    make_table(settings)
    name = "lookup-test"
    wait_for_lookup(settings, name, "ward_code")
    wait_for_lookup(settings, name, "sex")
    info = table_info(settings, KEY)
    assert info is not None
    calls: list[Any] = []
    real = get_sandbox(settings).lookup
    monkeypatch.setattr(get_sandbox(settings), "lookup", lambda *a: calls.append(a) or real(*a))
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
        fast, slow = both(settings, name, monkeypatch, **query)
        assert records(fast, "objects") == records(slow, "objects"), query
        assert (fast.total, fast.fields, fast.last_id, fast.columns) == (
            slow.total,
            slow.fields,
            slow.last_id,
            slow.columns,
        ), query
    assert len(calls) == len(cases)  # each case went the lookup's way (and gave DuckDB's answer)
    calls.clear()
    for query in (  # not text equalities: DuckDB answers, the lookup is not asked
        {"filters": {"ward_code": ["26734", "26735"]}},
        {"filters": {"ward_code": "26734"}, "sort": ["age desc"]},
        {"filters": {"ward_code": "26734"}, "q": "Người"},
        {"filters": {"ward_code": "26734"}, "distinct": True, "fields": ["sex"]},
    ):
        fast, slow = both(settings, name, monkeypatch, **query)
        assert records(fast, "objects") == records(slow, "objects"), query
    assert calls == []
    fast, slow = both(settings, name, monkeypatch, filters={"ward_code": "26734", "age": "30"})
    assert records(fast, "objects") == records(slow, "objects")  # a number compared as text: DuckDB


def test_no_arrow_copy_beyond_the_memory_budget(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path / "data", catalog_dir=tmp_path / "catalog", datastore_lookup_max_mb=0
    )
    settings.ensure_dirs()
    make_table(settings)
    info = table_info(settings, KEY, max_age=0)
    assert info is not None
    box = get_sandbox(settings)
    end = time.monotonic() + 30
    while time.monotonic() < end and not ((("budget", "ward_code") in box._indexed) and not box._pending):
        search(settings, "budget", info, SearchQuery(filters={"ward_code": "26734"}))
        time.sleep(0.05)
    assert ("budget", "ward_code") in box._indexed  # the DuckDB index was built ...
    assert box.lookup("budget", info.snapshot_id, {"ward_code": "26734"}) is None  # ... but no copy
    result = search(settings, "budget", info, SearchQuery(filters={"ward_code": "26734"}, limit=5000))
    assert result.total == len(result.rows) == 750
    assert {r[result.columns.index("ward_code")] for r in result.rows} == {"26734"}
