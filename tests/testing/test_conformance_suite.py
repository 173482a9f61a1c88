"""The conformance suite itself: a well-behaved connector passes, each kind of misbehaviour is caught."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pytest

from hub.errors import ConnectorError, SourceUnavailableError
from hub.ingest.connector import CheckResult, Connector, ConnectorConfig, Secret, StreamSpec
from hub.testing.conformance import ConformanceCase, ConnectorConformance, check_conformance

TABLE: list[dict[str, Any]] = []


class ToyConfig(ConnectorConfig):
    up: bool = True
    token: Secret | None = None
    flaw: str = ""


class ToyConnector(Connector[ToyConfig]):
    """An in-memory source; ``flaw`` makes it break one rule of the contract."""

    name = "toy"
    version = "1.0.0"
    config_model = ToyConfig

    def streams(self) -> list[StreamSpec]:
        if self.config.flaw == "duplicate_streams":
            return [StreamSpec("rows", cursor_field="n"), StreamSpec("rows")]
        return [StreamSpec("rows", primary_key=("n",), cursor_field="n")]

    def check(self) -> CheckResult:
        if not self.config.up:
            if self.config.flaw == "check_raises":
                raise SourceUnavailableError("down")
            return CheckResult(False, "toy source is down")
        return CheckResult(True, "up")

    def read(self, stream: str, state: dict[str, Any] | None) -> Iterator[pa.RecordBatch]:
        if not self.config.up:
            raise ConnectorError("down", retryable=self.config.flaw != "not_retryable")
        after = (state or {}).get("cursor", 0)
        if self.config.flaw == "ignores_state":
            after = 0
        rows = [r for r in TABLE if r["n"] > after]
        for i in range(0, len(rows), 2):
            chunk = rows[i : i + 2]
            batch = pa.RecordBatch.from_pylist(chunk)
            if self.config.flaw == "schema_drift" and i:
                batch = batch.cast(pa.schema([("n", pa.int32()), ("v", pa.string())]))
            if self.config.flaw == "row_numbers_go_back":
                rows_col = pa.array([5 - j for j in range(len(chunk))], pa.int64())
                batch = batch.append_column("_hub_row", rows_col)
            yield batch


@pytest.fixture(autouse=True)
def table() -> None:
    TABLE[:] = [{"n": i, "v": f"dòng {i}"} for i in range(1, 6)]


def toy_case(flaw: str = "") -> ConformanceCase:
    return ConformanceCase(
        ToyConnector,
        config={"flaw": flaw} if flaw else {},
        unreachable_config={"up": False, "flaw": flaw},
        add_rows=lambda: TABLE.append({"n": 6, "v": "mới"}),
    )


class TestToyConformance(ConnectorConformance):
    @pytest.fixture
    def case(self) -> ConformanceCase:
        return toy_case()


@pytest.mark.parametrize(
    ("flaw", "failing_check"),
    [
        ("duplicate_streams", "check_streams"),
        ("check_raises", "check_check"),
        ("schema_drift", "check_read"),
        ("row_numbers_go_back", "check_read"),
        ("ignores_state", "check_state_round_trip"),
        ("not_retryable", "check_unreachable"),
    ],
)
def test_each_flaw_is_caught_by_its_check(flaw: str, failing_check: str) -> None:
    with pytest.raises(AssertionError) as info:
        check_conformance(toy_case(flaw))
    assert f"ToyConnector fails {failing_check}" in str(info.value)


def test_a_config_model_that_accepts_anything_fails() -> None:
    class LaxConfig(ToyConfig):
        model_config = {"extra": "allow"}  # noqa: RUF012

    class Lax(ToyConnector):
        """Accepts any key."""

        config_model = LaxConfig

    with pytest.raises(AssertionError, match="fails check_config"):
        check_conformance(ConformanceCase(Lax, config={}))
