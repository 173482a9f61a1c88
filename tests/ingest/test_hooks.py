"""Events of a run: subscribers hear of each new snapshot (and only then), a failing one never fails the
run, the worker runs periodic jobs and hands its hooks to its runs, and publishing subscribes where the
runtime is assembled (``hub ingest`` reports the releases it rebuilt) while hub.ingest never imports it."""

from __future__ import annotations

import ast
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from hub.catalog.loader import sync_catalog
from hub.cli import common
from hub.cli import ingest as ingest_cli
from hub.db import session_scope
from hub.ingest.connector import WriteMode
from hub.ingest.hooks import Committed, Followup, RunHooks
from hub.ingest.runner import run_ingest
from hub.ingest.scheduler import Worker
from hub.settings import PROJECT_ROOT, Settings, get_settings
from hub.warehouse.tables import Warehouse
from tests.warehouse.support import KEY, Env, make_env, person


@pytest.fixture
def env(tmp_path: Path, settings: object) -> Env:
    return make_env(tmp_path)


def test_hub_ingest_imports_nothing_of_publish() -> None:
    imported: list[tuple[str, str]] = []
    for path in sorted((PROJECT_ROOT / "hub" / "ingest").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):  # function bodies too
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            imported += [(path.name, n) for n in names if n.startswith("hub.publish")]
    assert imported == []
    code = (
        "import sys, hub.ingest.runner, hub.ingest.scheduler, hub.ingest.hooks; "
        "print(sorted(m for m in sys.modules if m.startswith('hub.publish')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"  # not even through another package


def test_every_subscriber_hears_of_each_new_snapshot_and_only_then(env: Env) -> None:
    hooks = RunHooks()
    heard: list[Committed] = []

    @hooks.on_after_commit
    def first(event: Committed) -> list[Followup]:
        heard.append(event)
        return [(event.dataset, "first", f"saw snapshot {event.snapshot_id}")]

    hooks.on_after_commit(lambda event: [(event.dataset, "second", "done")])
    env.write_rows([person(1), person(2)])
    loaded = run_ingest(env.settings, KEY, hooks=hooks)
    assert loaded.ok
    snapshot = Warehouse(env.settings).current_snapshot_id(KEY)
    assert loaded.releases == [(KEY, "first", f"saw snapshot {snapshot}"), (KEY, "second", "done")]
    [event] = heard
    assert (event.dataset, event.run_id, event.mode) == (KEY, loaded.run_id, WriteMode.APPEND)
    assert (event.snapshot_id, event.previous_snapshot_id) == (snapshot, None)
    assert event.settings is env.settings

    nothing_new = run_ingest(env.settings, KEY, hooks=hooks)  # the same rows: no new snapshot
    assert nothing_new.ok
    assert nothing_new.snapshot_id == snapshot
    assert nothing_new.releases == []
    env.write_catalog(config={"unreachable": True})
    failed = run_ingest(env.settings, KEY, hooks=hooks)
    assert failed.status == "failed"
    assert failed.releases == []
    env.write_catalog()
    env.write_rows([person(1), person(2), person(3)])
    more = run_ingest(env.settings, KEY, hooks=hooks)
    assert more.ok
    assert [(e.previous_snapshot_id, e.snapshot_id) for e in heard[1:]] == [(snapshot, more.snapshot_id)]
    assert len(heard) == 2
    env.write_rows([person(i) for i in range(1, 5)])
    assert run_ingest(env.settings, KEY).releases == []  # without hooks nobody is told
    assert len(heard) == 2


def test_a_failing_subscriber_does_not_fail_the_run_and_the_others_still_hear(env: Env) -> None:
    hooks = RunHooks()

    @hooks.on_after_commit
    def broken(event: Committed) -> list[Followup]:
        raise RuntimeError("the release database is gone")

    hooks.on_after_commit(lambda event: [(event.dataset, "after", "done")])
    env.write_rows([person(1)])
    result = run_ingest(env.settings, KEY, hooks=hooks)
    assert result.ok
    assert result.releases == [(KEY, "*", "failed: the release database is gone"), (KEY, "after", "done")]
    assert Warehouse(env.settings).current_snapshot_id(KEY) == result.snapshot_id


def test_periodic_jobs_run_at_the_first_poll_then_every_n_seconds(settings: Settings) -> None:
    hooks = RunHooks()
    calls: list[str] = []

    def often(s: Settings) -> list[Followup]:
        calls.append("often")
        return [("d", "often", "ran")]

    def broken(s: Settings) -> list[Followup]:
        calls.append("broken")
        raise RuntimeError("no database")

    hooks.every(10, often)
    hooks.every(100, broken)
    assert hooks.run_due(settings, 1000.0) == [("d", "often", "ran")]  # a failing job is only logged
    assert hooks.run_due(settings, 1005.0) == []
    assert hooks.run_due(settings, 1010.0) == [("d", "often", "ran")]
    assert calls == ["often", "broken", "often"]
    with pytest.raises(ValueError, match="positive"):
        hooks.every(0, often)


def test_the_worker_hands_its_hooks_to_its_runs_and_runs_the_periodic_jobs(env: Env) -> None:
    import yaml

    doc = yaml.safe_load(env.catalog_file.read_text(encoding="utf-8"))
    env.catalog_file.write_text(yaml.safe_dump({**doc, "schedule": "* * * * *"}), encoding="utf-8")
    with session_scope(env.settings) as s:
        sync_catalog(s, env.settings)
    env.write_rows([person(1), person(2)])
    hooks = RunHooks()
    heard: list[str] = []
    ticks: list[float] = []
    hooks.on_after_commit(lambda event: heard.append(event.run_id) or [])
    hooks.every(3600, lambda s: ticks.append(time.monotonic()) or [])
    worker = Worker(env.settings, hooks=hooks, poll_seconds=0.05)
    [outcome] = worker.run_once()
    assert outcome.status == "succeeded"
    assert heard == [outcome.run_id]
    assert ticks == []  # periodic jobs belong to serve
    thread = threading.Thread(target=worker.serve)
    thread.start()
    deadline = time.monotonic() + 10
    while not ticks and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # several polls: the hourly job does not run again
    worker.stop.set()
    thread.join(timeout=10)
    assert len(ticks) == 1


@pytest.fixture
def cli(env: Env, monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    monkeypatch.setenv("HUB_DATA_DIR", str(env.settings.data_dir))
    monkeypatch.setenv("HUB_CATALOG_DIR", str(env.settings.catalog_dir))
    monkeypatch.setenv("HUB_SCHEMAS_DIR", str(env.settings.schemas_dir))
    monkeypatch.setattr(common.console, "width", 250)
    get_settings.cache_clear()
    yield env
    get_settings.cache_clear()


def test_hub_ingest_reports_the_releases_that_publishing_rebuilt(cli: Env) -> None:
    release: dict[str, Any] = {
        "id": "people-count",
        "title": {"vi": "Số người", "en": "Number of people"},
        "sql": "SELECT count(*) AS people FROM test.people",
        "frequency": "monthly",
        "rows_are_persons": False,
    }
    cli.write_catalog(releases=[release])
    cli.write_rows([person(i) for i in range(1, 4)])
    app = typer.Typer()
    ingest_cli.register(app)
    app.command("noop")(lambda: None)  # a group of commands, as the hub's
    result = CliRunner().invoke(app, ["ingest", KEY])
    assert result.exit_code == 0, result.output
    assert "3 loaded" in result.output
    assert "release people-count: version 1, built at" in result.output
