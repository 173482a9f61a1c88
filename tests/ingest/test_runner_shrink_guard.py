"""The shrink guard: a replace run that would empty a loaded table, or remove more than
``ingest_max_drop_share`` of its rows, fails and commits nothing unless started with ``allow_shrink``;
and a source turned to garbage (a CSV cut to its header, random bytes or a renamed tag as XML) leaves
the loaded table as it was."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from sqlalchemy import select
from typer.testing import CliRunner

from hub.auth.models import AuditEntry
from hub.catalog.models import Run
from hub.cli import common
from hub.cli import ingest as ingest_cli
from hub.db import session_scope
from hub.errors import IngestError
from hub.ingest.runner import check_shrink, run_ingest
from hub.settings import get_settings
from hub.warehouse.query import run_sql
from hub.warehouse.tables import Warehouse
from tests.warehouse.support import KEY, Env, make_env, person


def ids(env: Env) -> list[int]:
    table = run_sql(Warehouse(env.settings), "SELECT id FROM test.people ORDER BY id")
    return [r["id"] for r in table.to_pylist()]


def last_run(env: Env) -> Run:
    with session_scope(env.settings) as s:
        run = s.scalars(select(Run).order_by(Run.started_at.desc())).first()
        assert run is not None
        return run


def snapshot_ids(env: Env) -> list[int]:
    return [s.snapshot_id for s in Warehouse(env.settings).snapshots(KEY)]


@pytest.fixture
def env(tmp_path: Path, settings: object) -> Env:
    """``test.people`` in replace mode, loaded with 10 rows."""
    e = make_env(tmp_path, write_mode="replace", cursor_field=None)
    e.write_rows([person(i) for i in range(1, 11)])
    assert run_ingest(e.settings, KEY).ok
    return e


def assert_refused(env: Env, result: Any, before: list[int], *, rows_left: str) -> None:
    """The run failed with the guard's message; the table, its snapshots and the quarantine are as before."""
    assert result.status == "failed"
    assert result.error_code == "ingest_error"
    for words in (
        f"dataset {KEY}",
        rows_left,
        "holds 10 rows now",
        "HUB_INGEST_MAX_DROP_SHARE",
        f"hub ingest {KEY} --allow-shrink",
        "Nothing was committed",
    ):
        assert words in result.error, (words, result.error)
    assert result.snapshot_id is None
    assert snapshot_ids(env) == before
    assert ids(env) == list(range(1, 11))
    assert Warehouse(env.settings).quarantine_files(KEY) == []
    run = last_run(env)
    assert run.status == "failed"
    assert run.error == result.error  # the run record says why
    assert run.state_after == run.state_before


def test_an_empty_source_does_not_empty_a_loaded_table(env: Env) -> None:
    before = snapshot_ids(env)
    env.write_rows([])
    result = run_ingest(env.settings, KEY)
    assert_refused(env, result, before, rows_left="would empty the table")
    assert "(0 rows read from the source)" in result.error


def test_a_drop_of_more_than_the_share_is_refused_and_half_is_allowed(env: Env) -> None:
    before = snapshot_ids(env)
    env.write_rows([person(i) for i in range(1, 5)])  # 4 of 10: a drop of 60%
    result = run_ingest(env.settings, KEY)
    assert_refused(env, result, before, rows_left="would leave 4 rows")
    assert "a drop of 60%" in result.error
    assert "at most 50%" in result.error

    env.write_rows([person(i) for i in range(1, 6)])  # 5 of 10: exactly 50%, allowed
    half = run_ingest(env.settings, KEY)
    assert half.ok, half.error
    assert ids(env) == [1, 2, 3, 4, 5]


def test_invalid_rows_count_as_lost_and_nothing_is_quarantined(env: Env) -> None:
    """The guard looks at what the table would hold: the valid rows, not the rows read."""
    env.write_catalog(write_mode="replace", cursor_field=None, invalid_threshold=0.9)
    before = snapshot_ids(env)
    env.write_rows([person(i, name="x" if i > 3 else None) for i in range(1, 11)])  # 7 invalid
    result = run_ingest(env.settings, KEY)
    assert_refused(env, result, before, rows_left="would leave 3 rows")
    assert "(10 rows read from the source)" in result.error


def test_allow_shrink_empties_the_table_and_is_audited(env: Env) -> None:
    env.write_rows([])
    result = run_ingest(env.settings, KEY, allow_shrink=True)
    assert result.ok, result.error
    assert ids(env) == []
    assert result.changed == {"added": 0, "deleted": 10}
    with session_scope(env.settings) as s:
        starts = s.scalars(
            select(AuditEntry).where(AuditEntry.action == "run.start").order_by(AuditEntry.seq)
        ).all()
        assert [(e.details or {}).get("allow_shrink") for e in starts] == [None, True]


def test_the_share_is_a_setting_and_zero_rows_always_need_the_option(env: Env) -> None:
    env.settings.ingest_max_drop_share = 0.9
    env.write_rows([person(1)])  # 1 of 10: a drop of 90%, allowed at 0.9
    assert run_ingest(env.settings, KEY).ok
    assert ids(env) == [1]
    env.settings.ingest_max_drop_share = 1.0
    env.write_rows([])
    emptied = run_ingest(env.settings, KEY)
    assert emptied.status == "failed"
    assert "would empty the table" in emptied.error
    assert ids(env) == [1]


def test_a_small_upsert_run_is_not_refused(tmp_path: Path, settings: object) -> None:
    """Upsert removes no row: a run that brings 1 key into a table of 10 is an incremental run."""
    env = make_env(tmp_path, write_mode="upsert")
    env.write_rows([person(i) for i in range(1, 11)])
    assert run_ingest(env.settings, KEY).ok
    env.write_rows([person(i) for i in range(1, 11)] + [person(11, minute=5)])
    small = run_ingest(env.settings, KEY)
    assert small.ok, small.error
    assert small.rows_read == 1
    assert ids(env) == list(range(1, 12))


@pytest.mark.parametrize(
    ("mode", "current", "after", "share", "refused"),
    [
        ("replace", 10, 0, 0.5, True),
        ("replace", 10, 4, 0.5, True),
        ("replace", 10, 5, 0.5, False),
        ("replace", 10, 9, 0.0, True),
        ("replace", 10, 10, 0.0, False),
        ("replace", 10, 1, 1.0, False),
        ("replace", 10, 0, 1.0, True),
        ("replace", 0, 0, 0.5, False),  # an empty table has nothing to lose
        ("upsert", 10, 0, 0.5, False),
        ("append", 10, 0, 0.5, False),
    ],
)
def test_check_shrink_rule(mode: str, current: int, after: int, share: float, refused: bool) -> None:
    args: dict[str, Any] = {
        "dataset": "d.x",
        "mode": mode,
        "current_rows": current,
        "rows_read": after,
        "rows_after": after,
        "max_drop_share": share,
    }
    if refused:
        with pytest.raises(IngestError, match="--allow-shrink"):
            check_shrink(**args)
        check_shrink(**args, allow_shrink=True)
    else:
        check_shrink(**args)


# --- through the command and a real connector -------------------------------------------------------


@pytest.fixture
def cli_env(env: Env, monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    monkeypatch.setenv("HUB_DATA_DIR", str(env.settings.data_dir))
    monkeypatch.setenv("HUB_CATALOG_DIR", str(env.settings.catalog_dir))
    monkeypatch.setenv("HUB_SCHEMAS_DIR", str(env.settings.schemas_dir))
    monkeypatch.setattr(common.console, "width", 250)
    monkeypatch.setattr(common.err_console, "width", 250)
    get_settings.cache_clear()
    yield env
    get_settings.cache_clear()


def hub(*args: str) -> tuple[int, str]:
    app = typer.Typer()
    ingest_cli.register(app)
    result = CliRunner().invoke(app, list(args))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def use_csv(env: Env, text: str) -> None:
    """Point ``test.people`` at a CSV file read by the files connector, in replace mode."""
    (env.settings.data_dir / "people.csv").write_text(text, encoding="utf-8")
    doc = yaml.safe_load(env.catalog_file.read_text(encoding="utf-8"))
    doc["source"] = {"connector": "files", "config": {"path": "people.csv"}}
    env.catalog_file.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")


def test_a_csv_cut_to_its_header_fails_the_command_and_allow_shrink_passes(cli_env: Env) -> None:
    header = "id,name,age,updated_at\n"
    use_csv(cli_env, header + "".join(f"{i},Lê Văn {i},30,2026-01-01T00:00:00Z\n" for i in range(1, 11)))
    code, out = hub("ingest", KEY)
    assert code == 0, out
    assert ids(cli_env) == list(range(1, 11))

    use_csv(cli_env, header)  # the export was cut to its header
    code, out = hub("ingest", KEY)
    assert code == 1
    text = " ".join(out.split())
    assert "would empty the table, which holds 10 rows now (0 rows read from the source)" in text
    assert f"hub ingest {KEY} --allow-shrink" in text
    assert ids(cli_env) == list(range(1, 11))

    code, out = hub("ingest", KEY, "--allow-shrink")
    assert code == 0, out
    assert ids(cli_env) == []


def use_xml(env: Env, data: bytes) -> None:
    """Point ``test.people`` at an XML export read by the xml connector, in replace mode."""
    (env.settings.data_dir / "people.xml").write_bytes(data)
    doc = yaml.safe_load(env.catalog_file.read_text(encoding="utf-8"))
    fields = {"id": "@id", "name": "name", "age": "@age", "updated_at": "@updated_at"}
    doc["source"] = {
        "connector": "xml",
        "config": {"path": "people.xml", "record": "person", "fields": fields},
    }
    env.catalog_file.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")


PEOPLE_XML = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<people>\n'
    + "".join(
        f'<person id="{i}" age="30" updated_at="2026-01-01T00:00:00Z"><name>Đỗ Văn {i}</name></person>\n'
        for i in range(1, 11)
    )
    + "</people>\n"
).encode()


@pytest.mark.parametrize(
    ("garbage", "words"),
    [
        (random.Random(6).randbytes(4000), "people.xml"),
        (PEOPLE_XML.replace(b"person", b"nguoi"), "people.xml: no <person> element found"),
    ],
    ids=["random-bytes", "renamed-tag"],
)
def test_an_xml_source_turned_to_garbage_fails_the_run_naming_the_file(
    env: Env, garbage: bytes, words: str
) -> None:
    use_xml(env, PEOPLE_XML)
    loaded = run_ingest(env.settings, KEY)
    assert loaded.ok, loaded.error
    before = snapshot_ids(env)
    use_xml(env, garbage)
    result = run_ingest(env.settings, KEY, allow_shrink=True)  # not a shrink: the source is unreadable
    assert result.status == "failed"
    assert result.error_code == "source_data_error"
    assert words in result.error
    assert snapshot_ids(env) == before
    assert ids(env) == list(range(1, 11))
