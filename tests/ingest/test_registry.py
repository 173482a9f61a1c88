"""The connector registry: entry points, duplicate names, build_connector, ``hub connectors list/check``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from connectors.files.connector import FilesConnector
from hub.catalog.spec import DatasetSpec, SourceSpec
from hub.cli.connectors import register
from hub.errors import ConfigError, NotFoundError
from hub.ingest import registry
from hub.ingest.connector import CheckResult, Connector, ConnectorConfig, StreamSpec
from hub.settings import Settings


@pytest.fixture(autouse=True)
def fresh_registry() -> Iterator[None]:
    # Other test modules register connectors in this process; these tests start from none.
    saved = dict(registry._in_process)
    registry._in_process.clear()
    registry.refresh()
    yield
    registry.refresh()
    registry._in_process.clear()
    registry._in_process.update(saved)


class EchoConfig(ConnectorConfig):
    text: str = "xin chào"


class EchoConnector(Connector[EchoConfig]):
    """Echo: one row with the configured text."""

    name = "demo_echo"
    version = "0.2.0"
    config_model = EchoConfig

    def streams(self) -> list[StreamSpec]:
        return [StreamSpec("rows")]

    def check(self) -> CheckResult:
        return CheckResult(True, "always there")

    def read(self, stream: str, state: dict[str, Any] | None) -> Iterator[Any]:
        import pyarrow as pa

        yield pa.RecordBatch.from_pydict({"text": [self.config.text]})


def test_builtin_connectors_come_through_entry_points() -> None:
    infos = {i.name: i for i in registry.available_connectors()}
    assert {"files", "sql"} <= set(infos)
    assert infos["files"].package == "lien-thong-hub"
    assert infos["files"].version == FilesConnector.version
    assert infos["files"].cls is FilesConnector
    assert registry.get_connector_class("sql").__name__ == "SqlConnector"


def test_duplicate_entry_point_names_are_an_error_naming_both_packages(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    twins = [
        EntryPoint("files", "connectors.files.connector:FilesConnector", registry.ENTRY_POINT_GROUP),
        EntryPoint("files", "so_tnmt_plugins.files:FilesConnector", registry.ENTRY_POINT_GROUP),
    ]
    monkeypatch.setattr(registry, "entry_points", lambda group: twins)
    with pytest.raises(ConfigError) as info:
        registry.available_connectors()
    assert "'files' is registered twice" in info.value.message
    assert "connectors (connectors.files.connector:FilesConnector)" in info.value.message
    assert "so_tnmt_plugins (so_tnmt_plugins.files:FilesConnector)" in info.value.message


def test_a_broken_plugin_does_not_hide_the_others(monkeypatch: pytest.MonkeyPatch) -> None:
    eps = [
        EntryPoint("files", "connectors.files.connector:FilesConnector", registry.ENTRY_POINT_GROUP),
        EntryPoint("land_vbdlis", "no_such_module.x:Y", registry.ENTRY_POINT_GROUP),
    ]
    monkeypatch.setattr(registry, "entry_points", lambda group: eps)
    assert [i.name for i in registry.available_connectors()] == ["files"]
    assert "No module named 'no_such_module'" in registry.broken_connectors()["land_vbdlis"]
    with pytest.raises(ConfigError, match="cannot be loaded"):
        registry.get_connector_class("land_vbdlis")


def test_in_process_registration_and_its_name_clash() -> None:
    registry.register_connector_class(EchoConnector)
    assert registry.get_connector_class("demo_echo") is EchoConnector
    assert "demo_echo" in [i.name for i in registry.available_connectors()]

    class Twin(EchoConnector):
        name = "files"

    with pytest.raises(ConfigError, match="already registered by lien-thong-hub"):
        registry.register_connector_class(Twin)
    with pytest.raises(NotFoundError, match=r"installed connectors: .*files"):
        registry.get_connector_class("land_vbdlis")


def test_build_connector_resolves_paths_under_the_data_dir(settings: Settings) -> None:
    (settings.data_dir / "in").mkdir()
    (settings.data_dir / "in" / "a.csv").write_text("ma\n1\n", encoding="utf-8")
    spec = DatasetSpec.model_validate(
        {
            "id": "civil_status.births",
            "title": {"vi": "Khai sinh"},
            "contract": "civil_status/births.v1",
            "primary_key": ["ma"],
        }
    )
    c = registry.build_connector(
        settings, SourceSpec(connector="files", config={"path": "in/*.csv"}), dataset_spec=spec
    )
    assert c.context.base_dir == str(settings.data_dir)
    assert c.context.batch_rows == settings.batch_rows
    assert c.streams()[0].primary_key == ("ma",)
    assert c.check().ok


def test_build_connector_hands_the_contract_schema_to_the_connector_it_builds(settings: Settings) -> None:
    import dataclasses

    import pyarrow as pa

    (settings.data_dir / "in").mkdir()
    (settings.data_dir / "in" / "a.csv").write_text("ma,so\n1,\n", encoding="utf-8")
    schema = pa.schema([("ma", pa.string()), ("so", pa.int64())])
    source = SourceSpec(connector="files", config={"path": "in/*.csv"})
    c = registry.build_connector(settings, source, arrow_schema=schema)
    assert c.context.arrow_schema is schema
    assert registry.build_connector(settings, source).context.arrow_schema is None
    with pytest.raises(dataclasses.FrozenInstanceError):  # fixed when the connector is built
        c.context.arrow_schema = None  # type: ignore[misc]


def test_build_connector_falls_back_to_registered_instances(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []

    def lookup(session: Any, name: str) -> tuple[str, dict[str, Any]] | None:
        calls.append(name)
        return (
            ("files", {"path": "exports/*.csv", "delimiter": ";"}) if name == "so_tu_phap_exports" else None
        )

    monkeypatch.setattr(registry.instances, "lookup", lookup)
    source = SourceSpec(connector="so_tu_phap_exports", config={"encoding": "windows-1258"})
    c = registry.build_connector(settings, source, session=object())  # type: ignore[arg-type]
    assert isinstance(c, FilesConnector)
    assert (c.config.path, c.config.delimiter, c.config.encoding) == ("exports/*.csv", ";", "windows-1258")
    with pytest.raises(NotFoundError, match="no connector or connector instance named 'nothing'"):
        registry.build_connector(settings, SourceSpec(connector="nothing"), session=object())  # type: ignore[arg-type]
    assert calls == ["so_tu_phap_exports", "nothing"]


def _cli() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        """test root"""

    register(app)
    return app


def test_cli_list_shows_name_version_and_package() -> None:
    registry.register_connector_class(EchoConnector, package="so-tu-phap-plugins")
    result = CliRunner().invoke(_cli(), ["connectors", "list", "--json"])
    assert result.exit_code == 0, result.output
    rows = {r["name"]: r for r in json.loads(result.output)}
    assert rows["files"]["version"] == "1.0.0"
    assert rows["files"]["package"] == "lien-thong-hub"
    assert rows["demo_echo"] == {
        "name": "demo_echo",
        "version": "0.2.0",
        "package": "so-tu-phap-plugins",
        "description": "Echo: one row with the configured text.",
    }
    table = CliRunner().invoke(_cli(), ["connectors", "list"], env={"COLUMNS": "200"})
    assert table.exit_code == 0
    line = next(x for x in table.output.splitlines() if "demo_echo" in x)
    assert "0.2.0" in line
    assert "so-tu-phap-plugins" in line


def test_cli_check_says_what_is_wrong(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("ma,ten\n1,An\n", encoding="utf-8")
    ok = CliRunner().invoke(
        _cli(), ["connectors", "check", "files", "-c", json.dumps({"path": str(tmp_path / "a.csv")})]
    )
    assert ok.exit_code == 0, ok.output
    assert "ok files 1.0.0" in ok.output
    assert "columns: ma, ten" in ok.output
    missing = CliRunner().invoke(
        _cli(), ["connectors", "check", "files", "-c", json.dumps({"path": str(tmp_path / "none/*.csv")})]
    )
    assert missing.exit_code == 1
    assert "not ok" in missing.output
    assert "no file matches" in missing.output
