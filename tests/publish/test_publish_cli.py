"""``hub releases``: list, check, build."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from hub.cli.main import app
from hub.settings import Settings, get_settings


@pytest.fixture
def cli_env(publish_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    monkeypatch.setenv("HUB_DATA_DIR", str(publish_settings.data_dir))
    monkeypatch.setenv("HUB_CATALOG_DIR", str(publish_settings.catalog_dir))
    monkeypatch.setenv("COLUMNS", "200")
    get_settings.cache_clear()
    yield publish_settings
    get_settings.cache_clear()


def test_cli_checks_builds_and_lists_releases(cli_env: Settings) -> None:
    runner = CliRunner()
    checked = runner.invoke(app, ["releases", "check", "civil_status.births", "births-by-ward-month"])
    assert checked.exit_code == 0, checked.output
    assert "civil_status.births.registration_date" in checked.output
    assert "passes the gate" in checked.output
    built = runner.invoke(app, ["releases", "build", "civil_status.births"])
    assert built.exit_code == 0, built.output
    assert "civil_status.births/births-by-ward-month: version 1" in built.output
    listed = runner.invoke(app, ["releases", "list"])
    assert listed.exit_code == 0, listed.output
    assert "births-by-ward-month" in listed.output
    assert "parcels-without-owner" in listed.output
