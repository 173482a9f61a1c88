"""Write strategies: one per mode, found by enum or by the name a catalog file writes; what each reads,
whether the shrink guard checks it; an upsert without a key fails before the table is made."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub.errors import ConfigError
from hub.ingest.connector import WriteMode
from hub.ingest.modes import STRATEGIES, strategy_for
from hub.ingest.runner import run_ingest
from hub.warehouse.tables import Warehouse
from tests.warehouse.support import KEY, make_env, person

STATE = {"cursor": "2026-01-01T00:00:05Z"}


def test_every_write_mode_has_one_strategy_found_by_enum_or_name() -> None:
    assert set(STRATEGIES) == set(WriteMode)
    for mode in WriteMode:
        assert strategy_for(mode) is strategy_for(mode.value) is STRATEGIES[mode]
        assert strategy_for(mode).mode is mode
    with pytest.raises(ConfigError, match="'merge' is not one of append, replace, upsert"):
        strategy_for("merge")
    with pytest.raises(TypeError):
        STRATEGIES[WriteMode.APPEND] = STRATEGIES[WriteMode.REPLACE]  # type: ignore[index]


@pytest.mark.parametrize(
    ("mode", "state_read", "removes_rows", "rows_after", "needs_key"),
    [
        (WriteMode.APPEND, STATE, False, 10 + 4, False),
        (WriteMode.REPLACE, None, True, 4, False),  # reads everything; keeps the valid rows read
        (WriteMode.UPSERT, STATE, False, 10, True),  # at least the current rows (new keys come on top)
    ],
)
def test_what_each_strategy_reads_and_what_the_shrink_guard_checks(
    mode: WriteMode, state_read: dict[str, str] | None, removes_rows: bool, rows_after: int, needs_key: bool
) -> None:
    strategy = strategy_for(mode)
    assert strategy.state_to_read(STATE) == state_read
    assert strategy.removes_rows is removes_rows
    assert strategy.rows_after(current_rows=10, valid_rows=4) == rows_after
    assert strategy.needs_primary_key is needs_key


def test_an_upsert_without_a_primary_key_fails_before_the_table_is_made(
    tmp_path: Path, settings: object
) -> None:
    env = make_env(tmp_path, write_mode="upsert", primary_key=[])
    contract = tmp_path / "schemas" / "test" / "people.v1.schema.json"
    contract.write_text(contract.read_text(encoding="utf-8").replace('"x-primary-key": ["id"], ', ""))
    env.write_rows([person(1)])
    result = run_ingest(env.settings, KEY)
    assert result.status == "failed"
    assert result.error_code == "config_error"
    assert result.error == f"dataset {KEY} uses write_mode upsert but has no primary key"
    assert not Warehouse(env.settings).has_table(KEY)
