"""Scheduled ingests: due datasets, one lease per dataset, retries with backoff, the concurrency limit."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import sqlalchemy as sa

from hub.catalog.models import Dataset, Organization
from hub.db import session_scope, utcnow
from hub.errors import CatalogError
from hub.ingest.models import DatasetSchedule
from hub.ingest.scheduler import Worker, claim, due_datasets, previous_tick, validate_schedule
from hub.settings import Settings


def add_datasets(settings: Settings, n: int, schedule: str = "* * * * *") -> list[str]:
    with session_scope(settings) as s:
        org = Organization(name="so-tu-phap", title="Sở Tư pháp", extras={})
        s.add(org)
        s.flush()
        keys = []
        for i in range(n):
            key = f"civil_status.ds{i}"
            s.add(
                Dataset(
                    key=key,
                    name=key.replace(".", "-"),
                    title=key,
                    owner_org_id=org.id,
                    spec={"id": key, "schedule": schedule},
                )
            )
            keys.append(key)
        s.add(Dataset(key="civil_status.manual", name="manual", title="m", owner_org_id=org.id, spec={}))
    return keys


def test_previous_tick_and_schedule_validation() -> None:
    now = datetime(2026, 3, 4, 2, 30)
    assert previous_tick("0 2 * * *", now) == datetime(2026, 3, 4, 2, 0)
    assert previous_tick("0 2 * * *", datetime(2026, 3, 4, 2, 0)) == datetime(2026, 3, 4, 2, 0)
    with pytest.raises(CatalogError, match="not a cron expression"):
        validate_schedule("every day")


def test_due_until_claimed_then_due_again_at_the_next_tick(settings: Settings) -> None:
    add_datasets(settings, 1, "0 2 * * *")
    now = datetime(2026, 3, 4, 2, 30)
    with session_scope(settings) as s:
        due = due_datasets(s, now)
        assert [d.key for d in due] == ["civil_status.ds0"]  # never ran; the manual one has no schedule
        assert claim(s, due[0], "a", 60, now)
        assert not claim(s, due[0], "b", 60, now)  # held
        assert due_datasets(s, now) == []
        row = s.get(DatasetSchedule, due[0].dataset_id)
        row.lease_holder = None
        s.commit()
        assert due_datasets(s, now + timedelta(hours=1)) == []  # ran since the 02:00 tick
        assert not claim(s, due[0], "b", 60, now)  # no longer due even though free
        later = [d.key for d in due_datasets(s, now + timedelta(days=1))]
    assert later == ["civil_status.ds0"]


def test_two_claimers_in_threads_one_wins(settings: Settings) -> None:
    add_datasets(settings, 1)
    with session_scope(settings) as s:
        due = due_datasets(s)[0]
    wins: list[str] = []
    barrier = threading.Barrier(4)

    def go(name: str) -> None:
        from hub.db import session_factory

        with session_factory(settings)() as s:
            barrier.wait()
            if claim(s, due, name, 60):
                wins.append(name)

    threads = [threading.Thread(target=go, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1


def test_worker_respects_concurrency_and_runs_each_once(settings: Settings) -> None:
    # a yearly schedule: never-run datasets are due now, and no new tick comes while the test runs (with
    # every minute, a minute that turned between two run_once calls made a dataset due again, rightly)
    keys = add_datasets(settings, 5, schedule="0 0 1 1 *")
    lock = threading.Lock()
    active, peak, ran = [0], [0], []

    def run(_settings: Settings, key: str, _holder: str) -> Any:
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
            ran.append(key)
        time.sleep(0.2)
        with lock:
            active[0] -= 1
        return SimpleNamespace(status="succeeded", error=None, run_id=None, error_code=None)

    worker = Worker(settings, concurrency=2, run=run, poll_seconds=0.05)
    first = worker.run_once()
    assert len(first) == 2
    rest = worker.run_once() + worker.run_once() + worker.run_once()
    assert sorted(ran) == keys
    assert peak[0] == 2
    assert [o.status for o in first + rest] == ["succeeded"] * 5
    assert worker.run_once() == []


def test_transient_failure_is_retried_with_backoff_then_succeeds(settings: Settings) -> None:
    add_datasets(settings, 1)
    calls: list[str] = []

    def run(_settings: Settings, key: str, _holder: str) -> Any:
        calls.append(key)
        if len(calls) < 3:
            return SimpleNamespace(
                status="failed",
                error="GET http://x: HTTP 503 after 5 attempts",
                run_id="r",
                error_code="source_unavailable",
            )
        return SimpleNamespace(status="succeeded", error=None, run_id="r3", error_code=None)

    worker = Worker(settings, run=run, backoff_seconds=10, max_backoff_seconds=40)
    out = worker.run_once()
    assert out[0].status == "failed"
    assert out[0].retry_at is not None
    wait = (out[0].retry_at - utcnow()).total_seconds()
    assert 4 <= wait <= 10.5
    assert worker.run_once() == []  # not before the retry time

    def move_retry_to_the_past() -> None:
        with session_scope(settings) as s:
            row = s.query(DatasetSchedule).one()
            row.retry_at = utcnow() - timedelta(seconds=1)

    move_retry_to_the_past()
    out = worker.run_once()
    assert out[0].retry_at is not None
    assert (out[0].retry_at - utcnow()).total_seconds() > 9  # second failure: longer backoff
    move_retry_to_the_past()
    assert worker.run_once()[0].status == "succeeded"
    with session_scope(settings) as s:
        row = s.query(DatasetSchedule).one()
        assert (row.failures, row.retry_at, row.last_status) == (0, None, "succeeded")


def test_terminal_failure_is_not_retried(settings: Settings) -> None:
    add_datasets(settings, 1)

    def run(_settings: Settings, key: str, _holder: str) -> Any:
        return SimpleNamespace(status="failed", error="HTTP 401", run_id="r", error_code="connector_error")

    out = Worker(settings, run=run).run_once()
    assert out[0].retry_at is None
    with session_scope(settings) as s:
        row = s.query(DatasetSchedule).one()
        assert (row.failures, row.last_error) == (1, "HTTP 401")


WORKER_SCRIPT = """
import sys, time, os
from hub.settings import Settings
from hub.ingest.scheduler import Worker
from types import SimpleNamespace
log = sys.argv[2]
def run(settings, key, holder):
    with open(log, "a") as f:
        f.write(f"start {key} {os.getpid()} {time.monotonic()}\\n")
    time.sleep(1.0)
    with open(log, "a") as f:
        f.write(f"end {key} {os.getpid()} {time.monotonic()}\\n")
    return SimpleNamespace(status="succeeded", error=None, run_id=None, error_code=None)
settings = Settings(data_dir=sys.argv[3], database_url=sys.argv[1])
w = Worker(settings, concurrency=3, run=run)
ready = os.path.join(sys.argv[3], "ready")
os.makedirs(ready, exist_ok=True)
open(os.path.join(ready, str(os.getpid())), "w").close()
while len(os.listdir(ready)) < 2:  # start together
    time.sleep(0.01)
deadline = time.monotonic() + 6
while time.monotonic() < deadline:
    w.run_once()
    time.sleep(0.05)
"""


@pytest.mark.integration
def test_two_worker_processes_on_postgresql_never_run_a_dataset_twice(
    postgres_url: str, tmp_path: Path
) -> None:
    settings = Settings(data_dir=tmp_path / "data", database_url=postgres_url)
    keys = add_datasets(settings, 6, "0 0 1 1 *")  # due once (since 1 January), whatever the minute
    log = tmp_path / "runs.log"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER_SCRIPT, postgres_url, str(log), str(tmp_path / "data")], env=env
        )
        for _ in range(2)
    ]
    for p in procs:
        assert p.wait(timeout=60) == 0
    lines = [line.split() for line in log.read_text().splitlines()]
    starts = [(k, pid) for what, k, pid, _ in lines if what == "start"]
    assert sorted(k for k, _ in starts) == keys  # each dataset once in this minute, by one worker
    assert len({pid for _, pid in starts}) == 2  # both workers took part


def test_worker_runs_real_ingests_and_retries_an_unavailable_source(
    tmp_path: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    import yaml
    from typer.testing import CliRunner

    from connectors.rest.fakeapi import FakeApi
    from hub.catalog.models import Run
    from hub.cli.main import app
    from hub.settings import get_settings
    from tests.warehouse.support import KEY, make_env, person

    env = make_env(tmp_path)
    with FakeApi([person(i) for i in range(1, 31)]) as api:
        doc = {
            "id": KEY, "title": {"vi": "Người"}, "contract": "test/people.v1", "cursor_field": "updated_at",
            "schedule": "* * * * *",
            "source": {"connector": "rest", "config": {
                "base_url": api.url, "max_attempts": 2, "backoff_seconds": 0,
                "streams": [{"name": "people", "path": "/items", "cursor_field": "updated_at",
                             "updated_since_param": "updated_since"}],
                "pagination": {"type": "offset", "page_size": 10}}},
        }  # fmt: skip
        env.catalog_file.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
        from hub.catalog.loader import sync_catalog

        with session_scope(env.settings) as s:
            sync_catalog(s, env.settings)
        api.faults.extend([503] * 2)
        worker = Worker(env.settings, backoff_seconds=30)
        failed = worker.run_once()
        assert failed[0].status == "failed"
        assert failed[0].retry_at is not None
        assert "HTTP 503 after 2 attempts" in (failed[0].error or "")
        with session_scope(env.settings) as s:
            row = s.query(DatasetSchedule).one()
            row.retry_at = utcnow() - timedelta(seconds=1)
        monkeypatch.setenv("HUB_DATA_DIR", str(env.settings.data_dir))
        monkeypatch.setenv("HUB_CATALOG_DIR", str(env.settings.catalog_dir))
        monkeypatch.setenv("HUB_SCHEMAS_DIR", str(env.settings.schemas_dir))
        get_settings.cache_clear()
        try:
            out = CliRunner().invoke(app, ["worker", "--once"])
        finally:
            get_settings.cache_clear()
        assert out.exit_code == 0, out.output
        assert f"succeeded {KEY}" in out.output
    with session_scope(env.settings) as s:
        runs = [
            (r.status, r.rows_loaded, r.triggered_by or "") for r in s.query(Run).order_by(Run.started_at)
        ]
    assert [r[:2] for r in runs] == [("failed", 0), ("succeeded", 30)]
    assert all(r[2].startswith("worker ") for r in runs)


def test_serve_polls_until_stopped(settings: Settings) -> None:
    keys = add_datasets(settings, 3)
    ran: list[str] = []

    def run(_settings: Settings, key: str, _holder: str) -> Any:
        ran.append(key)
        return SimpleNamespace(status="succeeded", error=None, run_id=None, error_code=None)

    worker = Worker(settings, concurrency=2, run=run, poll_seconds=0.05)
    thread = threading.Thread(target=worker.serve)
    thread.start()
    deadline = time.monotonic() + 20
    while len(ran) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    worker.stop.set()
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert sorted(ran) == keys


def test_a_long_run_keeps_its_lease(settings: Settings) -> None:
    add_datasets(settings, 1)
    stolen: list[bool] = []

    def run(_settings: Settings, key: str, _holder: str) -> Any:
        time.sleep(1.5)  # three lease lengths: the worker must renew the lease meanwhile
        return SimpleNamespace(status="succeeded", error=None, run_id=None, error_code=None)

    worker = Worker(settings, run=run, lease_seconds=0.5)
    thread = threading.Thread(target=worker.run_once)
    thread.start()
    time.sleep(0.3)
    with session_scope(settings) as s:
        row = s.query(DatasetSchedule).one()
        dataset_id = row.dataset_id
    from hub.ingest.scheduler import DueDataset

    anyway = DueDataset(dataset_id, "civil_status.ds0", "* * * * *", datetime(2000, 1, 1), retry=True)
    for _ in range(5):
        time.sleep(0.2)
        with session_scope(settings) as s:
            s.execute(sa.update(DatasetSchedule).values(retry_at=utcnow() - timedelta(seconds=1)))
        with session_scope(settings) as s:
            stolen.append(claim(s, anyway, "intruder", 60))
    thread.join()
    assert stolen == [False] * 5
