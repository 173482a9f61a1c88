"""Test support for the warehouse and runner tests: a small contract, a catalog entry and an
in-test connector that reads rows from a JSON file (slowly, failing or unreachable on demand)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import yaml

from hub.errors import ConnectorError, SourceUnavailableError
from hub.ingest.connector import CheckResult, Connector, ConnectorConfig, StreamSpec
from hub.settings import Settings

KEY = "test.people"

CONTRACT = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "People / Người",
    "type": "object",
    "x-primary-key": ["id"],
    "required": ["id", "name", "updated_at"],
    "additionalProperties": False,
    "properties": {
        "id": {"type": "integer", "x-label": {"vi": "Mã", "en": "Id"}},
        "name": {"type": "string", "minLength": 2, "x-label": {"vi": "Tên", "en": "Name"}},
        "age": {"type": ["integer", "null"], "minimum": 0, "x-label": {"vi": "Tuổi", "en": "Age"}},
        "updated_at": {
            "type": "string",
            "format": "date-time",
            "x-label": {"vi": "Cập nhật", "en": "Updated"},
        },
    },
}


class RowsConfig(ConnectorConfig):
    path: str
    batch_rows: int = 2
    delay: float = 0.0
    fail_after_batches: int | None = None
    unreachable: bool = False
    started_marker: str | None = None


class RowsConnector(Connector[RowsConfig]):
    """Rows of a JSON file, in batches; incremental on ``updated_at``."""

    name = "test_rows"
    version = "1.0.0"
    config_model = RowsConfig

    def streams(self) -> list[StreamSpec]:
        return [StreamSpec(name="people", primary_key=("id",), cursor_field="updated_at")]

    def check(self) -> CheckResult:
        return CheckResult(ok=not self.config.unreachable, message="")

    def read(self, stream: str, state: dict[str, Any] | None) -> Iterator[pa.RecordBatch]:
        if self.config.unreachable:
            raise SourceUnavailableError("cannot connect to 10.0.0.9:5432: connection refused")
        rows = json.loads(Path(self.config.path).read_text(encoding="utf-8"))
        if state and state.get("cursor"):
            after = _time(state["cursor"])
            rows = [r for r in rows if _time(r["updated_at"]) > after]
        rows.sort(key=lambda r: _time(r["updated_at"]))
        n = self.config.batch_rows
        for i in range(0, len(rows), n):
            if self.config.fail_after_batches is not None and i // n >= self.config.fail_after_batches:
                raise ConnectorError("connection reset by peer", retryable=True)
            yield pa.RecordBatch.from_pylist(rows[i : i + n])
            if self.config.started_marker:
                Path(self.config.started_marker).write_text(str(i + n))
            if self.config.delay:
                time.sleep(self.config.delay)


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def register() -> None:
    from hub.ingest.registry import register_connector_class

    register_connector_class(RowsConnector)


def person(i: int, *, name: str | None = None, age: int | None = 30, minute: int = 0) -> dict[str, Any]:
    return {
        "id": i,
        "name": name if name is not None else f"Nguyễn Văn {i}",
        "age": age,
        "updated_at": f"2026-01-01T00:{minute:02d}:{i % 60:02d}Z",
    }


@dataclass
class Env:
    """A hub in a temporary folder with one dataset, ``test.people``, read from ``rows_file``."""

    root: Path
    settings: Settings

    @property
    def rows_file(self) -> Path:
        return self.root / "rows.json"

    @property
    def catalog_file(self) -> Path:
        return self.settings.catalog_dir / "so-test" / "people.yaml"

    def write_rows(self, rows: list[dict[str, Any]]) -> None:
        self.rows_file.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")

    def write_catalog(self, **spec: Any) -> None:
        config = {"path": str(self.rows_file), **spec.pop("config", {})}
        doc = {
            "id": KEY,
            "title": {"vi": "Người", "en": "People"},
            "contract": "test/people.v1",
            "source": {"connector": "test_rows", "config": config},
            "cursor_field": "updated_at",
            **spec,
        }
        self.catalog_file.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")


def make_env(root: Path, database_url: str = "", **spec: Any) -> Env:
    register()
    schemas = root / "schemas" / "test"
    schemas.mkdir(parents=True, exist_ok=True)
    (schemas / "people.v1.schema.json").write_text(json.dumps(CONTRACT, ensure_ascii=False), encoding="utf-8")
    org = root / "catalog" / "so-test"
    org.mkdir(parents=True, exist_ok=True)
    (org / "organization.yaml").write_text("name: so-test\ntitle: {vi: Sở Thử nghiệm, en: Test department}\n")
    env = Env(root=root, settings=settings_for(root, database_url))
    env.write_rows([])
    env.write_catalog(**spec)
    return env


def settings_for(root: Path, database_url: str = "") -> Settings:
    settings = Settings(
        data_dir=root / "data",
        catalog_dir=root / "catalog",
        schemas_dir=root / "schemas",
        database_url=database_url,
    )
    settings.ensure_dirs()
    return settings


def run_in_subprocess(root: str, database_url: str = "") -> None:
    """Entry of the SIGKILL test's child process: one run of ``test.people``."""
    from hub.ingest.runner import run_ingest

    register()
    run_ingest(settings_for(Path(root), database_url), KEY)
