"""``x-check``: named, vectorized checks beyond JSON Schema, and their registry.

A check is a function over the field's coerced Arrow array (the contract's Arrow type) and a context
that gives the other coerced columns of the batch::

    def my_check(values: pa.Array, ctx: CheckContext) -> CheckResult:
        fails = pc.less(values, 0)                    # a boolean array: True = the row fails
        return CheckResult(fails, "must not be negative")

    register_check("not-negative", my_check)

Rows whose value is null are never reported. The message is one string for every failing row, or an
array (one message per row). Register checks before loading a contract that names them. The built-in
checks (``vn-personal-id``, ``vn-ward-code``, ``not-future``) live in ``hub.contracts.vn``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from datetime import date, datetime, timedelta, timezone
from typing import Any

import numpy as np
import pyarrow as pa

from hub.contracts.model import FieldInfo
from hub.errors import ConfigError

VN_TZ = timezone(timedelta(hours=7), "Asia/Ho_Chi_Minh")  # Viet Nam has no daylight saving time


@dataclass
class CheckContext:
    """What a check sees besides the values: its field, the other columns, today, its options."""

    field: FieldInfo
    columns: dict[str, pa.Array]  # coerced columns of the batch, by field name (absent fields missing)
    fields: dict[str, FieldInfo]
    now: datetime = dataclass_field(default_factory=lambda: datetime.now(VN_TZ))
    options: dict[str, Any] = dataclass_field(default_factory=dict)

    @property
    def today(self) -> date:
        """Today in Viet Nam (UTC+7)."""
        return self.now.astimezone(VN_TZ).date()

    def column(self, name: str | None) -> pa.Array | None:
        return self.columns.get(name) if name else None


class SparseMessages(Sequence[str | None]):
    """``n`` messages, None except at the rows given (a check's failures are few: no list of ``n``)."""

    def __init__(self, n: int, messages: dict[int, str] | None = None) -> None:
        self.n = n
        self.messages: dict[int, str] = messages if messages is not None else {}

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return [self.messages.get(k) for k in range(*i.indices(self.n))]
        if not -self.n <= i < self.n:
            raise IndexError(i)
        return self.messages.get(i % self.n)

    def __setitem__(self, i: Any, message: str) -> None:
        self.messages[int(i)] = message


@dataclass
class CheckResult:
    fails: pa.Array | np.ndarray  # boolean per row, True = fails (null = passes)
    message: str | pa.Array | Sequence[str | None]


CheckFn = Callable[[pa.Array, CheckContext], CheckResult]
_CHECKS: dict[str, CheckFn] = {}


def register_check(name: str, fn: CheckFn, *, replace: bool = False) -> None:
    """Register ``fn`` under ``name`` for ``"x-check": name`` in contracts."""
    if name in _CHECKS and not replace and _CHECKS[name] is not fn:
        raise ConfigError(f"x-check {name!r} is already registered")
    _CHECKS[name] = fn


def get_check(name: str) -> CheckFn | None:
    _load_builtins()
    return _CHECKS.get(name)


def available_checks() -> list[str]:
    _load_builtins()
    return sorted(_CHECKS)


def _load_builtins() -> None:
    import hub.contracts.vn  # noqa: F401  (registers the built-in checks)
