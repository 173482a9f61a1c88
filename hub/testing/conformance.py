"""The connector conformance suite: the checks every connector's tests run.

A connector's test module describes its connector once, as a ``ConformanceCase``, and either calls
``check_conformance(case)`` or subclasses ``ConnectorConformance`` (one pytest test per check)::

    from hub.testing.conformance import ConformanceCase, ConnectorConformance

    class TestFilesConformance(ConnectorConformance):
        @pytest.fixture
        def case(self, tmp_path) -> ConformanceCase:
            (tmp_path / "a.csv").write_text("id,updated\\n1,2024-01-01\\n")
            return ConformanceCase(
                FilesConnector,
                config={"path": "a.csv", "incremental": "cursor", "cursor_field": "updated"},
                context=ConnectorContext(base_dir=str(tmp_path)),
                unreachable_config={"path": "missing/*.csv"},
                add_rows=lambda: ...,   # make rows newer than the ones read (for the state round trip)
            )

What is checked (each a function ``check_<what>(case)`` that raises ``AssertionError``):

- declaration: ``name`` (snake_case), ``version``, ``config_model`` (a ``ConnectorConfig``), a description;
- config: unknown keys are refused with ``ConfigError``; a literal where a ``Secret`` is declared is
  refused; the config serialises and loads back to the same config (secrets stay references);
- streams: at least one, unique names, primary key and cursor field are column names (strings);
- check: ``check()`` returns a ``CheckResult`` (never raises): ok for the reachable source, not ok with a
  message for the unreachable one;
- read: record batches only, one schema across batches, ``_hub_row`` int64 and increasing within each
  ``_hub_source``, ``_hub_error`` (if present) a string column; at least ``min_rows`` rows;
- state round trip (streams with a cursor field): ``next_state`` after a full read gives a JSON state
  after which a read returns no row; after ``add_rows()`` only rows newer than that state;
- unreachable: ``read()`` of the unreachable source raises ``ConnectorError`` with ``retryable`` set
  (``SourceUnavailableError``).
"""

from __future__ import annotations

import json
import re
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from hub.errors import ConfigError, ConnectorError
from hub.ingest.connector import (
    ERROR_COLUMN,
    ROW_COLUMN,
    SOURCE_COLUMN,
    CheckResult,
    Connector,
    ConnectorConfig,
    ConnectorContext,
    SecretRef,
    StreamSpec,
    WriteMode,
)

NAME = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass
class ConformanceCase:
    """A connector, a config of a reachable source, and (ideally) one of an unreachable source."""

    connector_class: type[Connector[Any]]
    config: dict[str, Any]
    context: ConnectorContext = field(default_factory=ConnectorContext)
    unreachable_config: dict[str, Any] | None = None
    add_rows: Callable[[], None] | None = None
    stream: str | None = None
    min_rows: int = 1

    def build(self, config: dict[str, Any] | None = None) -> Connector[Any]:
        return self.connector_class.from_dict(dict(self.config if config is None else config), self.context)

    def stream_spec(self, connector: Connector[Any]) -> StreamSpec:
        return connector.stream(self.stream) if self.stream else connector.streams()[0]


def read_all(connector: Connector[Any], stream: str, state: dict[str, Any] | None) -> list[pa.RecordBatch]:
    """Every batch of one read; asserts that only record batches come out."""
    batches = []
    for batch in connector.read(stream, state):
        assert isinstance(batch, pa.RecordBatch), f"read() yielded {type(batch).__name__}, not a RecordBatch"
        batches.append(batch)
    return batches


def _secret_fields(model: type[ConnectorConfig]) -> list[str]:
    def mentions(tp: Any) -> bool:
        if tp is SecretRef:
            return True
        return any(mentions(arg) for arg in typing.get_args(tp))

    return [name for name, info in model.model_fields.items() if mentions(info.annotation)]


# --- the checks --------------------------------------------------------------------------------------


def check_declaration(case: ConformanceCase) -> None:
    cls = case.connector_class
    name = getattr(cls, "name", None)
    assert isinstance(name, str), f"{cls.__qualname__} must declare name"
    assert NAME.match(name), f"{cls.__qualname__}.name must be snake_case, got {name!r}"
    assert isinstance(cls.version, str), f"{name}: version must be a string"
    assert re.match(r"^\d+\.\d+", cls.version), f"{name}: version must look like 1.0.0, got {cls.version!r}"
    model = getattr(cls, "config_model", None)
    assert isinstance(model, type), f"{name}: declare config_model"
    assert issubclass(model, ConnectorConfig), f"{name}: config_model must subclass ConnectorConfig"
    assert cls.description or cls.__doc__, f"{cls.name}: give a description (shown by `hub connectors list`)"


def _refused(config: dict[str, Any], case: ConformanceCase, what: str) -> None:
    try:
        case.connector_class.from_dict(config, case.context)
    except ConfigError:
        return
    raise AssertionError(f"{case.connector_class.name}: {what} was accepted; it must raise ConfigError")


def check_config(case: ConformanceCase) -> None:
    cls = case.connector_class
    _refused({**case.config, "surely_not_an_option": 1}, case, "a config with an unknown key")
    for name in _secret_fields(cls.config_model):
        _refused({**case.config, name: "a-literal-password"}, case, f"a literal secret in {name}")
    connector = case.build()
    dumped = json.loads(connector.config.model_dump_json(exclude_unset=True))
    again = cls.from_dict(dumped, case.context)
    assert again.config == connector.config, f"{cls.name}: the config does not survive a JSON round trip"


def check_streams(case: ConformanceCase) -> None:
    connector = case.build()
    streams = connector.streams()
    assert streams, f"{connector.name}: streams() is empty"
    names = [s.name for s in streams]
    assert len(set(names)) == len(names), f"{connector.name}: stream names repeat: {names}"
    for s in streams:
        assert isinstance(s, StreamSpec), f"{connector.name}: streams() must return StreamSpec objects"
        assert isinstance(s.name, str), f"{connector.name}: a stream name must be a string"
        assert s.name, f"{connector.name}: a stream has an empty name"
        assert isinstance(s.write_mode, WriteMode)
        assert all(isinstance(k, str) and k for k in s.primary_key), f"{s.name}: primary_key must be names"
        assert s.cursor_field is None or isinstance(s.cursor_field, str)


def check_check(case: ConformanceCase) -> None:
    result = case.build().check()
    assert isinstance(result, CheckResult), "check() must return a CheckResult"
    assert result.ok, f"check() of the reachable source failed: {result.message}"
    if case.unreachable_config is not None:
        try:
            bad = case.build(case.unreachable_config).check()
        except Exception as exc:  # the point of the check
            raise AssertionError(f"check() raised {type(exc).__name__} instead of reporting: {exc}") from exc
        assert isinstance(bad, CheckResult), "check() must return a CheckResult"
        assert not bad.ok, "check() of an unreachable source said ok"
        assert bad.message, "check() of an unreachable source must say what is wrong"


def check_read(case: ConformanceCase) -> list[pa.RecordBatch]:
    connector = case.build()
    spec = case.stream_spec(connector)
    batches = read_all(connector, spec.name, None)
    rows = sum(b.num_rows for b in batches)
    assert rows >= case.min_rows, f"read() returned {rows} rows, expected at least {case.min_rows}"
    schema = batches[0].schema
    for b in batches[1:]:
        assert b.schema.equals(schema), f"batch schemas differ:\n{schema}\n---\n{b.schema}"
    if ROW_COLUMN in schema.names:
        assert schema.field(ROW_COLUMN).type == pa.int64(), f"{ROW_COLUMN} must be int64"
        table = pa.Table.from_batches(batches)
        sources = table.column(SOURCE_COLUMN).to_pylist() if SOURCE_COLUMN in schema.names else [None] * rows
        last: dict[Any, int] = {}
        for src, row in zip(sources, table.column(ROW_COLUMN).to_pylist(), strict=True):
            assert row is not None, f"{ROW_COLUMN} must not be null"
            assert row >= 1, f"{ROW_COLUMN} must be a 1-based number, got {row}"
            assert row > last.get(src, 0), f"{ROW_COLUMN} does not increase in {src}: {row} after {last[src]}"
            last[src] = row
    if SOURCE_COLUMN in schema.names:
        assert pa.types.is_string(schema.field(SOURCE_COLUMN).type), f"{SOURCE_COLUMN} must be a string"
    if ERROR_COLUMN in schema.names:
        assert pa.types.is_string(schema.field(ERROR_COLUMN).type), f"{ERROR_COLUMN} must be a string"
    return batches


def _cursor_max(batches: list[pa.RecordBatch], cursor: str) -> Any:
    values = [pc.max(b.column(cursor)).as_py() for b in batches if b.num_rows]
    values = [v for v in values if v is not None]
    return max(values) if values else None


def check_state_round_trip(case: ConformanceCase) -> None:
    connector = case.build()
    spec = case.stream_spec(connector)
    if not spec.cursor_field:
        return
    first = read_all(connector, spec.name, None)
    assert first, "the incremental stream returned nothing to start from"
    assert spec.cursor_field in first[0].schema.names, f"cursor field {spec.cursor_field} is not a column"
    top = _cursor_max(first, spec.cursor_field)
    state = connector.next_state(spec.name, None, top)
    assert state is not None, "next_state() after a read with rows returned no state"
    state = json.loads(json.dumps(state))  # what the runner stores is JSON
    fresh = case.build()
    again = read_all(fresh, spec.name, state)
    n_again = sum(b.num_rows for b in again)
    assert n_again == 0, f"a read after the committed state returned {n_again} rows again"
    if case.add_rows is None:
        return
    case.add_rows()
    newer = read_all(case.build(), spec.name, state)
    assert sum(b.num_rows for b in newer), "rows added after the state were not read"
    table = pa.Table.from_batches(newer)
    old_top = pa.scalar(top).cast(table.schema.field(spec.cursor_field).type)
    assert pc.all(pc.greater(table.column(spec.cursor_field), old_top)).as_py(), (
        "a read after the state returned rows that are not newer than it"
    )


def check_unreachable(case: ConformanceCase) -> None:
    if case.unreachable_config is None:
        return
    connector = case.build(case.unreachable_config)
    spec = case.stream_spec(connector)
    try:
        read_all(connector, spec.name, None)
    except ConnectorError as exc:
        if not exc.retryable:
            raise AssertionError(f"an unreachable source must raise a retryable error, got {exc!r}") from exc
        return
    except Exception as exc:
        raise AssertionError(
            f"reading an unreachable source raised {type(exc).__name__}, not a ConnectorError: {exc}"
        ) from exc
    raise AssertionError("reading an unreachable source raised nothing")


CHECKS: tuple[Callable[[ConformanceCase], Any], ...] = (
    check_declaration,
    check_config,
    check_streams,
    check_check,
    check_read,
    check_state_round_trip,
    check_unreachable,
)


def check_conformance(case: ConformanceCase) -> None:
    """Run every check; the first failure raises ``AssertionError`` naming it."""
    for check in CHECKS:
        try:
            check(case)
        except AssertionError as exc:
            raise AssertionError(f"{case.connector_class.__name__} fails {check.__name__}: {exc}") from exc


class ConnectorConformance:
    """pytest base class: subclass it (name it ``Test...``) and give a ``case`` fixture."""

    __test__: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.__test__ = True

    @pytest.fixture
    def case(self) -> ConformanceCase:
        raise NotImplementedError("define a `case` fixture that returns a ConformanceCase")

    def test_declaration(self, case: ConformanceCase) -> None:
        check_declaration(case)

    def test_config_refuses_unknown_keys_and_literal_secrets(self, case: ConformanceCase) -> None:
        check_config(case)

    def test_streams(self, case: ConformanceCase) -> None:
        check_streams(case)

    def test_check_reports_and_never_raises(self, case: ConformanceCase) -> None:
        check_check(case)

    def test_read_yields_consistent_batches(self, case: ConformanceCase) -> None:
        check_read(case)

    def test_state_round_trip(self, case: ConformanceCase) -> None:
        check_state_round_trip(case)

    def test_unreachable_source_is_retryable(self, case: ConformanceCase) -> None:
        check_unreachable(case)
