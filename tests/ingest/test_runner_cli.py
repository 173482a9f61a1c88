"""The commands: hub ingest, query, history, quarantine, datasets list/show."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from hub.cli import common
from hub.cli import datasets as datasets_cli
from hub.cli import ingest as ingest_cli
from hub.cli import query as query_cli
from hub.settings import PROJECT_ROOT, get_settings
from tests.warehouse.support import KEY, Env, make_env, person


@pytest.fixture
def env(tmp_path: Path, settings: object, monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    e = make_env(tmp_path, invalid_threshold=0.5)
    monkeypatch.setenv("HUB_DATA_DIR", str(e.settings.data_dir))
    monkeypatch.setenv("HUB_CATALOG_DIR", str(e.settings.catalog_dir))
    monkeypatch.setenv("HUB_SCHEMAS_DIR", str(e.settings.schemas_dir))
    monkeypatch.setattr(common.console, "width", 250)
    monkeypatch.setattr(common.err_console, "width", 250)
    get_settings.cache_clear()
    yield e
    get_settings.cache_clear()


def hub(*args: str) -> tuple[int, str]:
    app = typer.Typer()
    ingest_cli.register(app)
    query_cli.register(app)
    datasets_cli.register(app)
    result = CliRunner().invoke(app, list(args))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def test_ingest_query_history_quarantine(env: Env) -> None:
    env.write_rows([person(1), person(2, name="x"), person(3), person(4)])
    code, out = hub("ingest", KEY)
    assert code == 0, out
    assert "4 read, 3 loaded, 1 quarantined" in out

    code, out = hub("query", "SELECT id, name FROM test.people ORDER BY id", "--format", "json")
    assert code == 0
    assert json.loads(out) == [
        {"id": 1, "name": "Nguyễn Văn 1"},
        {"id": 3, "name": "Nguyễn Văn 3"},
        {"id": 4, "name": "Nguyễn Văn 4"},
    ]
    code, out = hub("query", "SELECT count(*) AS n FROM test.people", "--format", "csv")
    assert out.splitlines() == ['"n"', "3"]

    env.write_rows([person(i) for i in range(1, 7)])
    assert hub("ingest", "--all")[0] == 0
    code, out = hub("history", KEY)
    assert code == 0
    assert out.count("succeeded") == 2
    assert "append" in out
    from hub.warehouse.tables import Warehouse

    first = Warehouse(env.settings).snapshots(KEY)[0].snapshot_id
    assert str(first) in out
    code, out = hub(
        "query", "SELECT count(*) AS n FROM test.people", "-f", "json", "--as-of", f"{KEY}={first}"
    )
    assert json.loads(out) == [{"n": 3}]

    code, out = hub("quarantine", KEY)
    assert code == 0
    assert "name minLength" in out
    assert "row(s)" in out

    code, out = hub("datasets", "list")
    assert code == 0
    assert KEY in out
    assert "so-test" in out
    assert "5" in out


def test_threshold_failure_exits_non_zero_with_reasons(env: Env) -> None:
    env.write_rows([person(1), person(2, name="x"), person(3, name="y")])
    code, out = hub("ingest", KEY)
    assert code == 1
    assert "threshold_exceeded" in out
    assert "name minLength: 2 row(s)" in out
    assert "nothing was committed" in out


def test_bad_catalog_file_is_reported_with_file_and_pointer(env: Env) -> None:
    env.catalog_file.write_text(env.catalog_file.read_text() + "sharing: everyone\n")
    proc = subprocess.run(
        [sys.executable, "-m", "hub.cli.main", "ingest", KEY],
        cwd=PROJECT_ROOT,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert f"{env.catalog_file}#/sharing" in proc.stderr.replace("\n", "")
