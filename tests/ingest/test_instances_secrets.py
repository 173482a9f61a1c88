"""Connector instances registered at run time: config checked, secrets encrypted, never shown or logged."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from connectors.rest.fakeapi import FakeApi
from hub.catalog.models import Organization
from hub.catalog.spec import SourceSpec
from hub.db import get_engine, session_scope
from hub.errors import ConfigError, ConflictError, InvalidInputError
from hub.ingest import instances
from hub.ingest.registry import build_connector
from hub.settings import Settings, get_settings

SECRET = "k3y-very-secret-42"


@pytest.fixture
def hub_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    monkeypatch.setenv("HUB_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("HUB_SECRET_KEY", "test-secret-key-of-the-hub")
    monkeypatch.setenv("HUB_CATALOG_DIR", str(tmp_path / "catalog"))
    get_settings.cache_clear()
    s = get_settings()
    with session_scope(s) as session:
        session.add(Organization(name="so-tu-phap", title="Sở Tư pháp", extras={}))
    yield s
    get_settings.cache_clear()


def rest_config(url: str) -> dict[str, object]:
    return {
        "base_url": url,
        "streams": [{"name": "items", "path": "/items"}],
        "auth": {"type": "api_key", "key": {"$secret": "api_key"}},
        "max_attempts": 1,
    }


def test_add_stores_the_secret_encrypted_and_the_connector_reads_with_it(hub_settings: Settings) -> None:
    with FakeApi([{"id": 1}, {"id": 2}], api_key=SECRET) as api:
        with session_scope(hub_settings) as s:
            inst = instances.add(
                s,
                hub_settings,
                name="hotich",
                connector="rest",
                config=rest_config(api.url),
                secrets={"api_key": SECRET},
                organization="so-tu-phap",
            )
            shown = json.dumps(instances.describe(s, inst))
        assert SECRET not in shown
        assert '"secrets": ["api_key"]' in shown
        with get_engine(hub_settings).connect() as conn:
            dump = "\n".join(str(r) for r in conn.execute(sa.text("SELECT * FROM connector_secrets")))
            dump += "\n".join(str(r) for r in conn.execute(sa.text("SELECT * FROM connector_instances")))
        assert SECRET not in dump
        assert "hotich/api_key" in dump
        with session_scope(hub_settings) as s:
            assert instances.lookup(s, "hotich") == (
                "rest",
                {**rest_config(api.url), "auth": {"type": "api_key", "key": {"$secret": "hotich/api_key"}}},
            )
            connector = build_connector(hub_settings, SourceSpec(connector="hotich"), session=s)
            table = pa.Table.from_batches(list(connector.read("items", None)))
            assert table.column("id").to_pylist() == [1, 2]
            assert instances.check(s, hub_settings, "hotich").result.ok


def test_secrets_are_refused_without_hub_secret_key(hub_settings: Settings) -> None:
    plain = hub_settings.model_copy(update={"secret_key": ""})
    with session_scope(hub_settings) as s, pytest.raises(ConfigError, match="HUB_SECRET_KEY is not set"):
        instances.add(
            s,
            plain,
            name="x1",
            connector="rest",
            config=rest_config("http://127.0.0.1:9"),
            secrets={"api_key": SECRET},
        )


def test_a_changed_key_cannot_decrypt_and_check_says_so(hub_settings: Settings) -> None:
    with session_scope(hub_settings) as s:
        instances.add(
            s,
            hub_settings,
            name="x2",
            connector="rest",
            config=rest_config("http://127.0.0.1:9"),
            secrets={"api_key": SECRET},
        )
    get_settings.cache_clear()
    other = hub_settings.model_copy(update={"secret_key": "another-key"})
    from hub.ingest import secrets

    with session_scope(hub_settings) as s, pytest.raises(ConfigError, match="not the key it was stored with"):
        secrets.reveal(s, other, "x2/api_key")


@pytest.mark.parametrize(
    ("config", "secrets_", "field"),
    [
        ({"base_url": "http://x", "streams": []}, {}, "config"),  # a stream is required
        ({"base_url": "http://x", "streams": [{"name": "a", "path": "/a"}], "bogus": 1}, {}, "config"),
        (
            {
                "base_url": "http://x",
                "streams": [{"name": "a", "path": "/a"}],
                "auth": {"type": "bearer", "token": "literal"},
            },
            {},
            "config",
        ),
        (
            {
                "base_url": "http://x",
                "streams": [{"name": "a", "path": "/a"}],
                "auth": {"type": "bearer", "token": {"$secret": "other/tok"}},
            },
            {},
            "config",
        ),
        ({"base_url": "http://x", "streams": [{"name": "a", "path": "/a"}]}, {"unused": "v"}, "secrets"),
    ],
)
def test_invalid_registrations_say_what_is_wrong(
    hub_settings: Settings, config: dict[str, object], secrets_: dict[str, str], field: str
) -> None:
    with session_scope(hub_settings) as s, pytest.raises(InvalidInputError) as info:
        instances.add(s, hub_settings, name="bad", connector="rest", config=config, secrets=secrets_)
    assert field in info.value.errors
    assert SECRET not in str(info.value.to_dict())


def test_names_are_unique_and_not_connector_names(hub_settings: Settings) -> None:
    config = {"base_url": "http://x", "streams": [{"name": "a", "path": "/a"}]}
    with session_scope(hub_settings) as s:
        instances.add(s, hub_settings, name="twice", connector="rest", config=config)
        with pytest.raises(ConflictError):
            instances.add(s, hub_settings, name="twice", connector="rest", config=config)
        with pytest.raises(InvalidInputError, match="name taken"):
            instances.add(s, hub_settings, name="rest", connector="rest", config=config)
        with pytest.raises(InvalidInputError):
            instances.add(s, hub_settings, name="y", connector="nope", config=config)


def test_cli_add_check_list_remove_never_shows_or_logs_the_secret(
    hub_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    from hub.cli.main import app

    caplog.set_level(logging.DEBUG)
    runner = CliRunner()
    with FakeApi([{"id": 1}], api_key=SECRET) as api:
        add = runner.invoke(
            app,
            [
                "connectors",
                "add",
                "hotich",
                "--connector",
                "rest",
                "--config",
                json.dumps(rest_config(api.url)),
                "--secret",
                f"api_key={SECRET}",
                "--org",
                "so-tu-phap",
            ],
        )
        assert add.exit_code == 0, add.output
        ok = runner.invoke(app, ["connectors", "check", "hotich"])
        assert ok.exit_code == 0, ok.output
        assert "ok hotich (rest)" in ok.output
        listed = runner.invoke(app, ["connectors", "instances", "--json"])
        assert json.loads(listed.output)[0]["secrets"] == ["api_key"]
        api.api_key = "rotated"
        bad = runner.invoke(app, ["connectors", "check", "hotich"])
        assert bad.exit_code == 1
        said = " ".join(bad.output.split())  # rich wraps long lines
        assert "HTTP 401 authentication failed" in said
        gone = runner.invoke(app, ["connectors", "remove", "hotich"])
        assert gone.exit_code == 0
    for out in (add.output, ok.output, listed.output, bad.output, caplog.text):
        assert SECRET not in out
    missing = runner.invoke(app, ["connectors", "check", "hotich"])
    assert missing.exit_code != 0


def test_datasets_add_validates_and_stores(hub_settings: Settings, tmp_path: Path) -> None:
    from hub.cli.main import app

    runner = CliRunner()
    good = tmp_path / "births.yaml"
    good.write_text(
        "id: civil_status.births_api\ntitle: {vi: Khai sinh}\norganization: so-tu-phap\n"
        "contract: civil_status/births.v1\nschedule: '*/15 * * * *'\n"
        "source: {connector: rest, stream: items,\n"
        "         config: {base_url: 'http://x', streams: [{name: items, path: /i}]}}\n",
        encoding="utf-8",
    )
    result = runner.invoke(app, ["datasets", "add", str(good)])
    assert result.exit_code == 0, result.output
    assert "civil_status.births_api" in result.output
    with session_scope(hub_settings) as s:
        from hub.catalog.loader import get_dataset

        ds = get_dataset(s, "civil_status.births_api")
        assert ds.spec["schedule"] == "*/15 * * * *"
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        good.read_text().replace("*/15 * * * *", "often").replace("connector: rest", "connector: nope")
    )
    from hub.catalog.loader import _read_yaml

    with session_scope(hub_settings) as s, pytest.raises(InvalidInputError) as info:
        instances.add_dataset(s, hub_settings, _read_yaml(bad))
    assert set(info.value.errors) == {"schedule", "source/connector"}
