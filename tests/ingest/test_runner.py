"""The runner: append, replace and upsert; incremental state; threshold; quarantine; time travel."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from hub.catalog.models import Run
from hub.db import session_scope
from hub.ingest.runner import run_ingest
from hub.warehouse.quarantine import read_quarantine
from hub.warehouse.query import run_sql
from hub.warehouse.tables import Warehouse
from tests.warehouse.support import KEY, Env, make_env, person


def rows(env: Env, sql: str = "SELECT id, name, age FROM test.people ORDER BY id") -> list[tuple]:
    return [tuple(r.values()) for r in run_sql(Warehouse(env.settings), sql).to_pylist()]


def runs(env: Env) -> list[Run]:
    with session_scope(env.settings) as s:
        return list(s.scalars(select(Run).order_by(Run.started_at)))


@pytest.fixture
def env(tmp_path: Path, settings: object) -> Env:
    return make_env(tmp_path)


def test_append_loads_rows_records_the_run_and_moves_the_state(env: Env) -> None:
    env.write_rows([person(i) for i in range(1, 6)])
    first = run_ingest(env.settings, KEY, triggered_by="test")
    assert first.status == "succeeded", first.error
    assert (first.rows_read, first.rows_loaded, first.rows_quarantined) == (5, 5, 0)
    assert first.state_after == {"cursor": "2026-01-01T00:00:05+00:00"}
    assert [r[0] for r in rows(env)] == [1, 2, 3, 4, 5]

    # only rows after the committed cursor are read again
    env.write_rows([person(i) for i in range(1, 9)])
    second = run_ingest(env.settings, KEY)
    assert (second.rows_read, second.rows_loaded) == (3, 3)
    assert second.state_before == first.state_after
    assert [r[0] for r in rows(env)] == list(range(1, 9))

    recorded = runs(env)
    assert [r.status for r in recorded] == ["succeeded", "succeeded"]
    assert recorded[0].snapshot_id == first.snapshot_id
    assert recorded[0].rows_loaded == 5
    assert recorded[0].bytes_read > 0
    assert recorded[0].seconds is not None
    assert recorded[0].pid
    assert recorded[0].hostname
    assert recorded[0].triggered_by == "test"
    snaps = Warehouse(env.settings).snapshots(KEY)
    assert [s.run_id for s in snaps] == [first.run_id, second.run_id]
    assert snaps[-1].summary["hub.state"] == '{"cursor": "2026-01-01T00:00:08+00:00"}'


def test_a_run_with_nothing_new_commits_no_snapshot(env: Env) -> None:
    env.write_rows([person(1), person(2)])
    first = run_ingest(env.settings, KEY)
    again = run_ingest(env.settings, KEY)
    assert again.ok
    assert again.rows_read == 0
    assert again.snapshot_id == first.snapshot_id
    assert len(Warehouse(env.settings).snapshots(KEY)) == 1


def test_replace_mode_holds_exactly_the_rows_read(tmp_path: Path, settings: object) -> None:
    env = make_env(tmp_path, write_mode="replace", cursor_field=None)
    env.write_rows([person(i) for i in range(1, 6)])
    assert run_ingest(env.settings, KEY).ok
    env.write_rows([person(2, name="Trần Thị Hai"), person(4), person(7)])
    result = run_ingest(env.settings, KEY)
    assert result.ok
    assert result.rows_loaded == 3
    assert rows(env) == [(2, "Trần Thị Hai", 30), (4, "Nguyễn Văn 4", 30), (7, "Nguyễn Văn 7", 30)]
    # keys 1, 3 and 5 were deleted at the source: the run says so, and so does its record
    assert result.changed == {"added": 1, "deleted": 3}
    assert runs(env)[-1].changes == {"added": 1, "deleted": 3}
    # an empty source empties the table in a new snapshot, when the run is allowed to (the shrink
    # guard refuses it otherwise: tests/ingest/test_runner_shrink_guard.py)
    env.write_rows([])
    emptied = run_ingest(env.settings, KEY, allow_shrink=True)
    assert emptied.ok
    assert emptied.changed == {"added": 0, "deleted": 3}
    assert rows(env) == []
    assert len(Warehouse(env.settings).snapshots(KEY)) == 3


def test_upsert_rewrites_changed_keys_and_inserts_new_ones(tmp_path: Path, settings: object) -> None:
    env = make_env(tmp_path, write_mode="upsert", cursor_field=None)
    env.write_rows([person(i) for i in range(1, 6)])
    assert run_ingest(env.settings, KEY).ok
    # key 2 changes, key 6 is new, key 3 is repeated (the later row wins), the rest are unchanged
    env.write_rows(
        [person(i) for i in range(1, 6)]
        + [person(2, age=41), person(6), person(3, age=50), person(3, age=51)]
    )
    result = run_ingest(env.settings, KEY)
    assert result.ok, result.error
    assert result.changed == {"inserted": 1, "updated": 2}
    assert result.rows_loaded == 3
    got = rows(env)
    assert [r[0] for r in got] == [1, 2, 3, 4, 5, 6]
    assert dict((r[0], r[2]) for r in got) == {1: 30, 2: 41, 3: 51, 4: 30, 5: 30, 6: 30}
    # the rewritten file is a proper Iceberg data file: pyiceberg reads it by field id
    assert Warehouse(env.settings).table(KEY).scan().to_arrow().sort_by("id").column("age").to_pylist() == [
        30,
        41,
        51,
        30,
        30,
        30,
    ]
    snap = Warehouse(env.settings).snapshots(KEY)[-1]
    assert snap.operation == "overwrite"
    assert snap.summary["hub.upsert"] == "inserted=1,updated=2"
    # the same source again changes nothing and commits nothing
    before = len(Warehouse(env.settings).snapshots(KEY))
    same = run_ingest(env.settings, KEY)
    assert same.ok
    assert same.rows_loaded == 0
    assert len(Warehouse(env.settings).snapshots(KEY)) == before


def test_threshold_commits_nothing_and_reports_the_reasons(env: Env) -> None:
    env.write_rows([person(1), person(2, name="x"), person(3, age=-4), person(4)])
    result = run_ingest(env.settings, KEY)
    assert result.status == "failed"
    assert result.error_code == "threshold_exceeded"
    assert "2 of 4 rows (50.0%) are invalid" in result.error
    assert "name minLength" in result.error
    assert "age minimum" in result.error
    assert "row 2" in result.error
    assert "row 3" in result.error
    wh = Warehouse(env.settings)
    assert wh.current_snapshot_id(KEY) is None
    assert wh.quarantine_files(KEY) == []
    assert not list(wh.data_dir(wh.table(KEY)).glob("*.parquet"))
    run = runs(env)[0]
    assert run.status == "failed"
    assert run.rows_quarantined == 2
    assert run.snapshot_id is None
    assert {r["path"] for r in run.reasons["reasons"]} == {"name", "age"}


def test_invalid_rows_under_the_threshold_go_to_quarantine_with_reasons(
    tmp_path: Path, settings: object
) -> None:
    env = make_env(tmp_path, invalid_threshold=0.5)
    env.write_rows([person(1), person(2, name="x"), person(3), person(4)])
    result = run_ingest(env.settings, KEY)
    assert result.ok
    assert (result.rows_loaded, result.rows_quarantined) == (3, 1)
    q = read_quarantine(Warehouse(env.settings), KEY).to_pylist()
    assert len(q) == 1
    assert q[0]["run_id"] == result.run_id
    assert q[0]["_hub_row"] == 2
    assert q[0]["errors"][0]["path"] == "name"
    assert q[0]["errors"][0]["keyword"] == "minLength"
    assert '"x"' in q[0]["record"]
    assert read_quarantine(Warehouse(env.settings), KEY, run_id="no-such-run").num_rows == 0


def test_time_travel_by_snapshot_and_by_timestamp(env: Env) -> None:
    env.write_rows([person(1), person(2)])
    first = run_ingest(env.settings, KEY)
    env.write_rows([person(1), person(2), person(3)])
    second = run_ingest(env.settings, KEY)
    wh = Warehouse(env.settings)
    snaps = wh.snapshots(KEY)
    assert [s.snapshot_id for s in snaps] == [first.snapshot_id, second.snapshot_id]
    count = "SELECT count(*) AS n FROM test.people"
    assert run_sql(wh, count).to_pylist() == [{"n": 3}]
    assert run_sql(wh, count, {KEY: str(first.snapshot_id)}).to_pylist() == [{"n": 2}]
    at_first = snaps[0].timestamp.isoformat()
    assert wh.resolve_as_of(KEY, at_first) == first.snapshot_id
    assert run_sql(wh, count, {KEY: at_first}).to_pylist() == [{"n": 2}]
    assert wh.resolve_as_of(KEY, "2100-01-01T00:00:00Z") == second.snapshot_id
    with pytest.raises(Exception, match="had no snapshot yet"):
        wh.resolve_as_of(KEY, "2000-01-01T00:00:00Z")
    with pytest.raises(Exception, match="no snapshot 123456789"):
        wh.resolve_as_of(KEY, "123456789")


def test_a_contract_that_gains_a_field_adds_the_column(env: Env) -> None:
    import json

    from tests.warehouse.support import CONTRACT

    env.write_rows([person(1), person(2)])
    first = run_ingest(env.settings, KEY)
    contract = json.loads(json.dumps(CONTRACT))
    contract["properties"]["email"] = {"type": ["string", "null"]}
    path = env.settings.schemas_dir / "test" / "people.v1.schema.json"
    path.write_text(json.dumps(contract), encoding="utf-8")
    env.write_rows([person(1), person(2), {**person(3), "email": "ba@example.vn"}])
    assert run_ingest(env.settings, KEY).ok
    assert rows(env, "SELECT id, email FROM test.people ORDER BY id") == [
        (1, None),
        (2, None),
        (3, "ba@example.vn"),
    ]
    # the earlier snapshot still reads as it was
    old = run_sql(Warehouse(env.settings), "SELECT * FROM test.people", {KEY: str(first.snapshot_id)})
    assert old.num_rows == 2
    assert "email" in Warehouse(env.settings).arrow_schema(KEY).names


def test_direct_identifiers_leave_no_values_in_metadata(tmp_path: Path, settings: object) -> None:
    import json

    import pyarrow.parquet as pq

    from tests.warehouse.support import CONTRACT

    env = make_env(tmp_path)
    contract = json.loads(json.dumps(CONTRACT))
    contract["properties"]["name"]["x-personal"] = "direct"
    (tmp_path / "schemas" / "test" / "people.v1.schema.json").write_text(json.dumps(contract))
    env.write_catalog(invalid_threshold=0.9)
    env.write_rows([person(1, name="Lê Thị Hà"), person(2, name="X"), person(3, name="Trần An")])
    result = run_ingest(env.settings, KEY)
    assert result.status == "succeeded", result.error
    assert (result.rows_loaded, result.rows_quarantined) == (2, 1)
    wh = Warehouse(env.settings)
    for table, hidden in ((wh.table(KEY), "name"), (wh.table(KEY + "__quarantine"), "record")):
        assert table.metadata.properties[f"write.metadata.metrics.column.{hidden}"] == "none"
        field_id = table.schema().find_field(hidden).field_id
        files = [task.file for task in table.scan().plan_files()]
        assert files
        for f in files:  # the manifest holds no bounds of the column, the Parquet footer no min/max
            assert field_id not in (f.lower_bounds or {})
            assert field_id not in (f.upper_bounds or {})
            group = pq.read_metadata(f.file_path.removeprefix("file://")).row_group(0)
            stats = {
                group.column(i).path_in_schema: group.column(i).is_stats_set for i in range(group.num_columns)
            }
            assert stats[hidden] is False
            assert any(stats.values())  # the other columns keep theirs
