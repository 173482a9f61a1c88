"""Failures of a run: unreachable source, a connector raising mid-stream, SIGKILL, bad catalog files.

In every case the previous snapshot stays intact and readable, the run is marked failed, the state
does not move, and the rerun loads every row exactly once.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from hub.catalog.models import Dataset, Run
from hub.db import session_scope
from hub.errors import CatalogError, ConflictError
from hub.ingest.prefetch import THREAD_NAME
from hub.ingest.runner import recover_interrupted_runs, run_ingest
from hub.settings import PROJECT_ROOT
from hub.warehouse.query import run_sql
from hub.warehouse.tables import Warehouse
from tests.warehouse.support import KEY, Env, make_env, person


def ids(env: Env, as_of: dict[str, str] | None = None) -> list[int]:
    table = run_sql(Warehouse(env.settings), "SELECT id FROM test.people ORDER BY id", as_of)
    return [r["id"] for r in table.to_pylist()]


def run_rows(env: Env) -> list[Run]:
    with session_scope(env.settings) as s:
        return list(s.scalars(select(Run).order_by(Run.started_at)))


def loaded_once(env: Env, first: int, last: int) -> None:
    got = ids(env)
    assert got == list(range(first, last + 1)), got  # every row present, none twice


@pytest.fixture
def env(tmp_path: Path, settings: object) -> Env:
    e = make_env(tmp_path)
    e.write_rows([person(i) for i in range(1, 4)])
    assert run_ingest(e.settings, KEY).ok
    return e


def test_unreachable_source_fails_the_run_and_keeps_the_snapshot(env: Env) -> None:
    before = Warehouse(env.settings).current_snapshot_id(KEY)
    env.write_rows([person(i) for i in range(1, 7)])
    env.write_catalog(config={"unreachable": True})
    result = run_ingest(env.settings, KEY)
    assert result.status == "failed"
    assert result.error_code == "source_unavailable"
    assert "connection refused" in result.error
    assert Warehouse(env.settings).current_snapshot_id(KEY) == before
    assert ids(env) == [1, 2, 3]
    run = run_rows(env)[-1]
    assert run.status == "failed"
    assert run.state_after == run.state_before
    env.write_catalog()
    rerun = run_ingest(env.settings, KEY)
    assert rerun.ok
    assert rerun.rows_loaded == 3
    loaded_once(env, 1, 6)


def test_connector_raising_mid_stream_commits_nothing(env: Env) -> None:
    wh = Warehouse(env.settings)
    before = wh.current_snapshot_id(KEY)
    env.write_rows([person(i) for i in range(1, 11)])
    env.write_catalog(config={"fail_after_batches": 2})  # 2 batches of 2 rows, then an error
    result = run_ingest(env.settings, KEY)
    assert result.status == "failed"
    assert "connection reset by peer" in result.error
    assert result.rows_read == 4
    # the reading and writing threads of the run are gone
    assert not [t for t in threading.enumerate() if t.name == THREAD_NAME or t.name.startswith("sink-")]
    assert wh.current_snapshot_id(KEY) == before
    assert ids(env) == [1, 2, 3]
    # the files written before the error are gone: only the committed one remains
    assert sorted(p.name for p in wh.data_dir(wh.table(KEY)).glob("*.parquet")) == sorted(
        Path(p).name for p in wh.data_files(KEY)
    )
    env.write_catalog()
    rerun = run_ingest(env.settings, KEY)
    assert rerun.ok
    assert rerun.state_before == run_rows(env)[0].state_after
    loaded_once(env, 1, 10)


def test_sigkill_during_a_run(env: Env) -> None:
    wh = Warehouse(env.settings)
    before = wh.current_snapshot_id(KEY)
    marker = env.root / "started"
    rows = [person(i) for i in range(1, 21)]
    rows[4]["name"] = "x"  # one invalid row: its quarantine file is written before the kill
    env.write_rows(rows)
    env.write_catalog(config={"delay": 0.4, "started_marker": str(marker)}, invalid_threshold=0.5)
    code = "import sys; from tests.warehouse.support import run_in_subprocess; run_in_subprocess(sys.argv[1])"
    child = subprocess.Popen(
        [sys.executable, "-c", code, str(env.root)], cwd=PROJECT_ROOT, env=dict(os.environ)
    )
    try:
        deadline = time.monotonic() + 60
        data_dir = wh.data_dir(wh.table(KEY))
        committed = {Path(p).name for p in wh.data_files(KEY)}
        # wait until the run is mid-stream: rows read and a data file of its own being written
        while not (
            marker.exists()
            and int(marker.read_text() or 0) >= 4
            and {p.name for p in data_dir.glob("*.parquet")} - committed
        ):
            assert child.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline, "the run did not start"
            time.sleep(0.05)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL

    # the killed run is still "running"; the previous snapshot is intact and readable
    killed = run_rows(env)[-1]
    assert killed.status == "running"
    assert killed.pid == child.pid
    assert killed.hostname == socket.gethostname()
    assert wh.current_snapshot_id(KEY) == before
    assert ids(env) == [1, 2, 3]
    assert list(data_dir.glob(f"{killed.id}*.parquet"))  # partly written, never committed

    # the next start marks it failed, removes its files, and leaves the state where it was
    recovered = recover_interrupted_runs(env.settings)
    assert [(r.run_id, r.status, r.error_code) for r in recovered] == [(killed.id, "failed", "killed")]
    killed = run_rows(env)[-1]
    assert killed.status == "failed"
    assert "killed" in killed.error
    assert killed.finished_at is not None
    assert killed.state_after == killed.state_before == run_rows(env)[0].state_after
    assert not list(data_dir.glob(f"{killed.id}*.parquet"))
    assert Warehouse(env.settings).quarantine_files(KEY) == []

    env.write_catalog(invalid_threshold=0.5)
    rerun = run_ingest(env.settings, KEY)
    assert rerun.ok
    assert (rerun.rows_read, rerun.rows_loaded, rerun.rows_quarantined) == (17, 16, 1)
    assert ids(env) == [1, 2, 3, 4, *range(6, 21)]  # each once; row 5 is in quarantine


def test_recovery_marks_a_run_succeeded_when_its_snapshot_exists(env: Env) -> None:
    done = run_rows(env)[0]
    dead = subprocess.run([sys.executable, "-c", "pass"], check=True)
    assert dead.returncode == 0
    with session_scope(env.settings) as s:
        run = s.get(Run, done.id)
        run.status, run.pid, run.finished_at = "running", 999_999_999, None
    (result,) = recover_interrupted_runs(env.settings)
    assert result.status == "succeeded"
    assert result.snapshot_id == done.snapshot_id


def test_a_run_of_a_live_process_blocks_a_second_run(env: Env) -> None:
    with session_scope(env.settings) as s:
        ds = s.scalar(select(Dataset).where(Dataset.key == KEY))
        s.add(
            Run(
                dataset_id=ds.id,
                status="running",
                mode="append",
                pid=1,
                hostname=socket.gethostname(),
                rows_read=0,
                rows_loaded=0,
                rows_quarantined=0,
                bytes_read=0,
            )
        )
    with pytest.raises(ConflictError, match="already being ingested"):
        run_ingest(env.settings, KEY)
    assert recover_interrupted_runs(env.settings) == []  # pid 1 is alive: left alone


def test_invalid_catalog_file_names_the_file_and_pointer(env: Env) -> None:
    env.catalog_file.write_text(env.catalog_file.read_text() + "write_mode: sometimes\n")
    with pytest.raises(CatalogError) as info:
        run_ingest(env.settings, KEY)
    assert f"{env.catalog_file}#/write_mode" in info.value.message
    env.catalog_file.write_text(
        env.catalog_file.read_text().replace("write_mode: sometimes\n", "colour: red\n")
    )
    with pytest.raises(CatalogError, match=r"people\.yaml#/colour"):
        run_ingest(env.settings, KEY)
    assert ids(env) == [1, 2, 3]
    assert len(run_rows(env)) == 1
