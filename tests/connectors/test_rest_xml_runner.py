"""Faults through the real runner: a REST source answering 500, 429, slowly or with truncated JSON, and an
XML file with one malformed record. What an agency sees: the run's status and error, the snapshot, the
quarantine."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import yaml

from connectors.rest.fakeapi import FakeApi
from hub.ingest.prefetch import THREAD_NAME
from hub.ingest.runner import run_ingest
from hub.warehouse.query import run_sql
from hub.warehouse.tables import Warehouse
from tests.warehouse.support import KEY, Env, make_env, person


@pytest.fixture
def env(tmp_path: Path, settings: object) -> Env:
    return make_env(tmp_path)


def catalog(env: Env, connector: str, config: dict[str, Any]) -> None:
    doc = {
        "id": KEY,
        "title": {"vi": "Người", "en": "People"},
        "contract": "test/people.v1",
        "source": {"connector": connector, "config": config},
        "cursor_field": "updated_at",
    }
    env.catalog_file.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")


def rest(url: str, **extra: Any) -> dict[str, Any]:
    return {
        "base_url": url,
        "streams": [
            {
                "name": "people",
                "path": "/items",
                "cursor_field": "updated_at",
                "updated_since_param": "updated_since",
            }
        ],
        "pagination": {"type": "offset", "page_size": 20},
        "backoff_seconds": 0.01,
        "max_attempts": 3,
        **extra,
    }


def ids(env: Env) -> list[int]:
    return [
        r["id"]
        for r in run_sql(Warehouse(env.settings), "SELECT id FROM test.people ORDER BY id").to_pylist()
    ]


def test_rest_500_then_429_then_ok_loads_everything(env: Env) -> None:
    with FakeApi([person(i) for i in range(1, 51)]) as api:
        catalog(env, "rest", rest(api.url))
        api.faults.extend([500, 429])
        result = run_ingest(env.settings, KEY)
    assert result.ok, result.error
    assert result.rows_loaded == 50
    assert ids(env) == list(range(1, 51))


@pytest.mark.parametrize("fault", ["500", "truncated", "slow"])
def test_rest_persistent_fault_fails_clearly_and_commits_nothing(env: Env, fault: str) -> None:
    with FakeApi([person(i) for i in range(1, 51)]) as api:
        catalog(env, "rest", rest(api.url))
        assert run_ingest(env.settings, KEY).ok
        before = Warehouse(env.settings).current_snapshot_id(KEY)
        api.records.extend(person(i, minute=5) for i in range(51, 101))
        catalog(env, "rest", rest(api.url, timeout_seconds=0.3))
        api.healthy_first = 1  # the first page of the new rows arrives, the next one fails
        if fault == "500":
            api.faults.extend([500] * 10)
        elif fault == "truncated":
            api.truncate = 10
        else:
            api.delay = 1.0
        result = run_ingest(env.settings, KEY)
    assert result.status == "failed"
    assert result.error_code == "source_unavailable"
    assert f"{api.url}/items" in result.error
    assert "after 3 attempts" in result.error
    assert {"500": "HTTP 500", "truncated": "not valid JSON", "slow": "timed out"}[fault] in result.error
    assert Warehouse(env.settings).current_snapshot_id(KEY) == before
    assert ids(env) == list(range(1, 51))


def test_xml_with_one_malformed_record_loads_the_rest(env: Env) -> None:
    records = [
        f'  <person id="{i}">\n    <name>Nguyễn Văn {i}</name>\n'
        f"    <updated_at>2026-01-01T00:00:{i:02d}Z</updated_at>\n  </person>\n"
        for i in range(1, 31)
    ]
    records[11] = (
        '  <person id="12">\n    <name>Lê <i>Văn 12</name>\n'
        "    <updated_at>2026-01-01T00:00:12Z</updated_at>\n  </person>\n"
    )
    path = env.root / "people.xml"
    path.write_text('<?xml version="1.0" encoding="UTF-8"?>\n<people>\n' + "".join(records) + "</people>\n")
    catalog(
        env,
        "xml",
        {
            "path": str(path),
            "record": "person",
            "fields": {"id": "@id", "name": "name", "updated_at": "updated_at"},
        },
    )
    result = run_ingest(env.settings, KEY)
    assert result.ok, result.error
    assert (result.rows_loaded, result.rows_quarantined) == (29, 1)
    assert ids(env) == [i for i in range(1, 31) if i != 12]
    quarantined = pq.read_table(Warehouse(env.settings).quarantine_files(KEY)).to_pylist()
    assert len(quarantined) == 1
    row = quarantined[0]
    assert row["_hub_row"] == 3 + 11 * 4  # the line of <person id="12">
    assert row["_hub_source"] == "people.xml"
    assert "line 48: malformed XML" in str(row["errors"])


@pytest.mark.parametrize("connector", ["rest", "xml"])
def test_a_rest_or_xml_stream_is_read_ahead_by_one_thread(env: Env, connector: str) -> None:
    """``rest`` and ``xml`` read ahead in their own ``read``; the runner adds no second reading thread."""
    readers: list[int] = []

    def progress(_rows: int) -> None:  # called in the runner's thread after each batch
        readers.append(sum(1 for t in threading.enumerate() if "prefetch" in t.name))

    rows = [person(i) for i in range(1, 61)]
    if connector == "rest":
        with FakeApi(rows) as api:
            catalog(env, "rest", rest(api.url, pagination={"type": "offset", "page_size": 10}))
            result = run_ingest(env.settings, KEY, progress=progress)
    else:
        path = env.root / "people.xml"
        body = "".join(
            f'<person id="{r["id"]}"><name>{r["name"]}</name>'
            f"<updated_at>{r['updated_at']}</updated_at></person>\n"
            for r in rows
        )
        path.write_text(f"<people>\n{body}</people>\n", encoding="utf-8")
        fields = {"id": "@id", "name": "name", "updated_at": "updated_at"}
        catalog(env, "xml", {"path": str(path), "record": "person", "fields": fields, "block_bytes": 800})
        result = run_ingest(env.settings, KEY, progress=progress)
    assert result.ok, result.error
    assert result.rows_loaded == 60
    assert len(readers) >= 5  # several batches, read while the next ones were being read
    assert max(readers) == 1
    assert [t for t in threading.enumerate() if t.name == THREAD_NAME] == []  # gone with the run
