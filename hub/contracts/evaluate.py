"""Evaluating a field's constraints over a coerced column: one failure mask per keyword.

Vectorized with ``pyarrow.compute`` and numpy. What cannot be vectorized exactly (a pattern RE2 cannot
express with Python's meaning, a format other than date/date-time/email, enum over objects) is decided
with Python once per *distinct* value. A fallback field is decided by ``jsonschema`` once per distinct
value. Messages are built only for failing rows.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from jsonschema import Draft202012Validator
from jsonschema._utils import equal as json_equal

from hub.contracts.coerce import Column, mask
from hub.contracts.compile import TYPE_ATOMS, Constraint, FieldPlan
from hub.contracts.fastpath import TRIMMED, fixed_pattern, match_trimmed
from hub.contracts.model import Contract, FieldInfo
from hub.contracts.regex import to_re2
from hub.contracts.resolve import escape

FORMAT_CHECKER = Draft202012Validator.FORMAT_CHECKER
_CMP = {
    "minimum": (pc.less, "is less than the minimum of"),
    "maximum": (pc.greater, "is greater than the maximum of"),
    "exclusiveMinimum": (pc.less_equal, "is less than or equal to the minimum of"),
    "exclusiveMaximum": (pc.greater_equal, "is greater than or equal to the maximum of"),
}


@dataclass
class Failure:
    """Rows failing one keyword of one field; ``message(row)`` is built only for failing rows.

    ``details(row)``, when set, gives several (path, keyword, message) for a row instead (``jsonschema``
    errors of a fallback field)."""

    rows: np.ndarray  # bool per row: True = fails
    path: str
    keyword: str
    message: Callable[[int], str]
    details: Callable[[int], list[tuple[str, str, str]]] | None = None


class FieldEvaluator:
    def __init__(self, info: FieldInfo, plan: FieldPlan, col: Column, contract: Contract) -> None:
        self.info = info
        self.plan = plan
        self.col = col
        self.contract = contract
        self.n = len(col.typed)
        self.ok = ~col.bad  # rows of the right JSON type
        self.nn = self.ok & ~col.null  # ... and not null

    def json_value(self, i: int) -> Any:
        """Row i's value as JSON (for messages and per-value Python decisions)."""
        col = self.col
        if col.bad[i] and col.source is not None:
            return col.source[i].as_py()
        if col.text is not None:
            return col.text[i].as_py()
        v = col.typed[i].as_py()
        if v is not None and self.info.json_type in ("object", "array"):
            return json.loads(v)
        return v

    def _values_array(self) -> pa.Array:
        return self.col.text if self.col.text is not None else self.col.typed

    def per_distinct(self, rows: np.ndarray, passes: Callable[[Any], bool]) -> Any:
        """Fail mask: ``passes`` decided once per distinct value, over ``rows``."""
        if not rows.any():
            return rows
        arr = self._values_array()
        uniques = pc.unique(arr.filter(pa.array(rows)))
        kind = self.info.json_type
        verdicts = []
        for v in uniques.to_pylist():
            value = json.loads(v) if v is not None and kind in ("object", "array") else v
            verdicts.append(passes(value))
        idx = np.asarray(pc.fill_null(pc.index_in(arr, value_set=uniques), 0).to_numpy(zero_copy_only=False))
        return rows & ~np.asarray(verdicts, dtype=bool)[idx]

    def failures(self) -> list[Failure]:
        out: list[Failure] = []
        name = self.info.name
        if self.col.bad.any():
            types = next((c.value for c in self.plan.constraints if c.keyword == "type"), self.info.json_type)
            out.append(
                Failure(
                    self.col.bad, name, "type", lambda i: f"{self.json_value(i)!r} is not of type {types!r}"
                )
            )
        if self.plan.fallback:
            out.extend(self.fallback())
            return out
        for c in self.plan.constraints:
            f = self.constraint(c)
            if f is not None and f.rows.any():
                out.append(f)
        return out

    def constraint(self, c: Constraint) -> Failure | None:
        kw, v, name = c.keyword, c.value, self.info.name
        kind = self.info.json_type
        col = self.col
        val = self.json_value
        if kw == "type":
            allowed = set().union(*(TYPE_ATOMS[t] for t in (v if isinstance(v, list) else [v])))
            rows = (
                col.null & self.ok
                if "null" not in allowed and not c.null_ok
                else np.zeros(self.n, dtype=bool)
            )
            if kind == "number" and "fraction" not in allowed:
                integral = mask(pc.equal(pc.floor(col.typed), col.typed))
                rows = rows | (self.nn & ~integral if "integer" in allowed else self.nn)
            elif kind != "number" and kind not in allowed:
                rows = rows | self.nn
            return Failure(rows, name, kw, lambda i: f"{val(i)!r} is not of type {v!r}")
        if kw in ("enum", "const"):
            options = v if kw == "enum" else [v]
            null_ok = c.null_ok or any(o is None for o in options)
            rows = col.null & self.ok if not null_ok else np.zeros(self.n, dtype=bool)
            rows = rows | self.enum_fails(options)
            msg = (
                (lambda i: f"{val(i)!r} is not one of {v!r}")
                if kw == "enum"
                else (lambda i: f"{v!r} was expected")
            )
            return Failure(rows, name, kw, msg)
        if kind == "string" and col.text_or_factory is not None:
            return self.string_constraint(c)
        if kind in ("integer", "number") and kw in _CMP:
            op, words = _CMP[kw]
            rows = self.nn & mask(op(col.typed, pa.scalar(v)))
            return Failure(rows, name, kw, lambda i: f"{val(i)!r} {words} {v!r}")
        if kind in ("integer", "number") and kw == "multipleOf":
            return Failure(self.multiple_fails(v), name, kw, lambda i: f"{val(i)!r} is not a multiple of {v}")
        return None

    def string_constraint(self, c: Constraint) -> Failure | None:
        kw, v, name, col, val = c.keyword, c.value, self.info.name, self.col, self.json_value
        if kw == "format" and v == self.info.format and col.format_bad is not None:
            # decided when the column was parsed (text) or from its years (typed): no text needed
            return Failure(self.nn & col.format_bad, name, kw, lambda i: f"{val(i)!r} is not a {v!r}")
        if kw not in ("pattern", "format", "minLength", "maxLength"):
            return None  # x-check runs in the validator; making a typed column's text costs much
        text = col.text
        assert text is not None
        if kw == "pattern":
            fixed = fixed_pattern(v)
            re2 = to_re2(v)
            if v == TRIMMED:
                rows = self.nn & ~match_trimmed(text)
            elif fixed is not None and (fixed.digits_only or re2 is None):
                rows = self.nn & ~fixed.match(text)
            elif re2 is not None:
                rows = self.nn & ~mask(pc.match_substring_regex(text, re2))
            else:
                rx = re.compile(v)
                rows = self.per_distinct(self.nn, lambda s: rx.search(s) is not None)
            return Failure(rows, name, kw, lambda i: f"{val(i)!r} does not match {v!r}")
        if kw == "format":
            if v == self.info.format and col.format_bad is not None:
                rows = self.nn & col.format_bad
            elif v == "email":
                rows = self.nn & ~mask(pc.match_substring(text, "@"))
            else:
                rows = self.per_distinct(self.nn, lambda s: FORMAT_CHECKER.conforms(s, v))
            return Failure(rows, name, kw, lambda i: f"{val(i)!r} is not a {v!r}")
        if kw in ("minLength", "maxLength"):
            # a value of b bytes has between b/4 and b characters: count characters only where unsure
            blen = np.asarray(pc.fill_null(pc.binary_length(text), 0).to_numpy(zero_copy_only=False))
            if kw == "maxLength":
                sure_ok, sure_bad = blen <= v, blen > 4 * v
            else:
                sure_ok, sure_bad = blen >= 4 * v, blen < v
            unsure = self.nn & ~sure_ok & ~sure_bad
            rows = self.nn & sure_bad
            if unsure.any():
                idx = np.flatnonzero(unsure)
                length = np.asarray(pc.utf8_length(text.take(pa.array(idx))).to_numpy(zero_copy_only=False))
                rows[idx] = length < v if kw == "minLength" else length > v
            word = "short" if kw == "minLength" else "long"
            return Failure(rows, name, kw, lambda i: f"{val(i)!r} is too {word}")
        return None

    def enum_fails(self, options: list[Any]) -> Any:
        kind = self.info.json_type
        if kind == "string" and self.col.text is not None:
            cands = [o for o in options if isinstance(o, str)]
            return self.nn & ~mask(pc.is_in(self.col.text, value_set=pa.array(cands, pa.string())))
        if kind in ("integer", "number"):
            nums = [o for o in options if isinstance(o, int | float) and not isinstance(o, bool)]
            if kind == "integer":
                ints = [int(o) for o in nums if float(o).is_integer()]
                return self.nn & ~mask(pc.is_in(self.col.typed, value_set=pa.array(ints, pa.int64())))
            return self.nn & ~mask(
                pc.is_in(self.col.typed, value_set=pa.array([float(o) for o in nums], pa.float64()))
            )
        if kind == "boolean":
            bools = [o for o in options if isinstance(o, bool)]
            return self.nn & ~mask(pc.is_in(self.col.typed, value_set=pa.array(bools, pa.bool_())))
        return self.per_distinct(self.nn, lambda x: any(json_equal(o, x) for o in options))

    def multiple_fails(self, d: float) -> Any:
        typed = self.col.typed
        rows = self.nn
        if isinstance(d, float):
            x = np.asarray(pc.fill_null(typed.cast(pa.float64()), 0).to_numpy(zero_copy_only=False))
            with np.errstate(all="ignore"):
                q = x / d
            finite = np.isfinite(q)
            bad = rows & finite & (np.trunc(q) != q)
            from fractions import Fraction

            for i in np.flatnonzero(rows & ~finite):
                bad[i] = (Fraction(typed[i].as_py()) / Fraction(d)).denominator != 1
            return bad
        if pa.types.is_integer(typed.type):
            x = np.asarray(pc.fill_null(typed, 0).to_numpy(zero_copy_only=False))
            return rows & (np.mod(x, d) != 0)
        x = np.asarray(pc.fill_null(typed, 0).to_numpy(zero_copy_only=False))
        with np.errstate(all="ignore"):
            return rows & (np.mod(x, d) != 0)

    def fallback(self) -> list[Failure]:
        """The whole field by ``jsonschema``, once per distinct value of the well-typed rows."""
        ref = f"{self.contract.base_uri}#/properties/{escape(self.info.name)}"
        validator = Draft202012Validator(
            {"$ref": ref}, registry=self.contract.registry, format_checker=FORMAT_CHECKER
        )
        found: dict[Any, list[Any]] = {}

        def passes(value: Any) -> bool:
            errs = list(validator.iter_errors(value))
            key = json.dumps(value, sort_keys=True)
            found[key] = errs
            return not errs

        rows = self.per_distinct(self.ok & ~self.col.null, passes)
        if self.col.null.any():
            null_errs = list(validator.iter_errors(None))
            found[json.dumps(None)] = null_errs
            if null_errs:
                rows = rows | (self.col.null & self.ok)
        out: list[Failure] = []
        if not rows.any():
            return out

        name = self.info.name

        def details(i: int) -> list[tuple[str, str, str]]:
            errors = found[json.dumps(self.json_value(i), sort_keys=True)]
            return [
                (name + "".join("/" + str(p) for p in e.path), str(e.validator), e.message) for e in errors
            ]

        out.append(Failure(rows, name, "jsonschema", lambda i: "", details))
        return out
