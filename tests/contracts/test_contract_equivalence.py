"""Property test: the hub's verdict on every row equals jsonschema's (Draft 2020-12 + format checker).

Records are generated column-wise, following the hub's rule for Arrow batches: a column absent from the
batch is a property absent from every record, a null in a present column is a JSON null. A column holds
one Arrow type; sometimes the wrong one for its field (an int column for a string field, ...).
"""

from __future__ import annotations

import copy
import json
import math
import re
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from hub.contracts import Validator, load_contract

REPO = Path(__file__).resolve().parents[2]
FORMAT_CHECKER = Draft202012Validator.FORMAT_CHECKER

PEOPLE = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://example.test/schemas/test/people.v1.schema.json",
    "type": "object",
    "required": ["code", "age"],
    "additionalProperties": False,
    "properties": {
        "code": {"type": "string", "pattern": "^[A-Z][a-z]+$", "minLength": 3, "maxLength": 6},
        "name": {"type": ["string", "null"], "pattern": "^\\S(.*\\S)?$", "maxLength": 8},
        "digits": {"type": "string", "pattern": "\\d{2}"},
        "kind": {"enum": ["a", "b", None]},
        "fixed": {"const": 5},
        "age": {"type": "integer", "minimum": 0, "maximum": 150, "multipleOf": 3},
        "score": {
            "type": ["number", "null"],
            "exclusiveMinimum": -1.5,
            "exclusiveMaximum": 100,
            "multipleOf": 0.5,
        },
        "ratio": {"type": "number", "minimum": 0},
        "whole": {"type": "integer"},
        "flag": {"type": "boolean"},
        "born": {"anyOf": [{"$ref": "../common/defs.v1.schema.json#/$defs/day"}, {"type": "null"}]},
        "seen": {"type": "string", "format": "date-time"},
        "mail": {"type": "string", "format": "email"},
        "site": {"type": "string", "format": "uri"},
        "level": {"oneOf": [{"type": "integer", "enum": [1, 2, 3]}, {"type": "null"}]},
    },
}
DEFS = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://example.test/schemas/common/defs.v1.schema.json",
    "$defs": {"day": {"type": "string", "format": "date"}},
}
FALLBACK = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://example.test/schemas/test/odd.v1.schema.json",
    "type": "object",
    "dependentRequired": {"a": ["b"]},
    "properties": {
        "a": {"type": "string", "not": {"const": "x"}},
        "b": {"type": "string", "oneOf": [{"pattern": "^a"}, {"pattern": "b$"}]},
        "c": {"type": "string", "pattern": "^\\w+(?=!)"},
        "d": {"type": ["string", "null"], "format": "ipv4"},
        "e": {"type": "integer", "if": {"minimum": 10}, "then": {"multipleOf": 2}},
    },
}


def _strip_checks(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _strip_checks(v) for k, v in node.items() if k != "x-check"}
    if isinstance(node, list):
        return [_strip_checks(v) for v in node]
    return node


@pytest.fixture(scope="module")
def contracts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("schemas")
    files = {
        "test/people.v1": PEOPLE,
        "common/defs.v1": DEFS,
        "test/odd.v1": FALLBACK,
        "civil_status/births.v1": _strip_checks(
            json.loads((REPO / "schemas/civil_status/births.v1.schema.json").read_text(encoding="utf-8"))
        ),
        "common/vn.v1": _strip_checks(
            json.loads((REPO / "schemas/common/vn.v1.schema.json").read_text(encoding="utf-8"))
        ),
    }
    for ref, schema in files.items():
        path = root / f"{ref}.schema.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(schema, ensure_ascii=False), encoding="utf-8")
    return {
        ref: load_contract(ref, root) for ref in ("test/people.v1", "test/odd.v1", "civil_status/births.v1")
    }


SPECIAL_STRINGS = [
    "", " ", "a", "Abc", "Abcdef", "Abcdefg", "abc", "Ab\n", "Abc\n", "Abc\n\n", " Ab", "Ab ", "A b",
    "Nguyễn Văn An", "Trần\u00a0Thị", "x\u3000", "١٢", "12", "a12b", "1\n", "@", "a@b", "http://x.vn/a?b",
    "urn:isbn:0451450523", "not a uri", "http://[::1", "2021-01-05", "2021-1-5", "2021-02-30", "2020-02-29",
    "2021-02-29", "0000-01-01", "2021-13-01", "2021-01-05\n", "2021-01-05T10:00:00Z", "2021-01-05t10:00:00z",
    "2021-01-05T10:00:00.123456789+07:00", "2021-01-05 10:00:00Z", "2021-01-05T24:00:00Z",
    "2021-01-05T10:00:60Z", "2021-01-05T10:00:00", "2021-02-30T10:00:00Z", "2021-01-05T10:00:00Z\n",
    "2021-01-05T10:00:00+07", "0000-01-05T10:00:00Z", "Nam", "Nữ", "nam", "Kinh", "KS-01-2024-000001",
    "KS-01-2024-00001", "00004", "0000a", "001224000123", "00122400012", "001224000123\n", "1.2.3.4",
    "256.1.1.1", "x", "ab", "ba", "abb", "word!", "wörd!", "a", "b",
]  # fmt: skip


NUMBERS = [0, 1, 3, 9, 10, 12, 150, 151, 300, 3200, 7000, 7001, -3, 5, 2]
FLOATS = [0.0, 0.5, 1.0, 3.0, -1.5, -1.0, 100.0, 99.5, 2.25, 1e300, 5.0, 3200.0, 12.0]


def _anything(kind: str) -> st.SearchStrategy[Any]:
    if kind == "string":
        return st.one_of(st.sampled_from(SPECIAL_STRINGS), st.text(max_size=12))
    if kind == "integer":
        return st.one_of(st.sampled_from(NUMBERS), st.integers(-(2**40), 2**40))
    if kind == "number":
        return st.one_of(st.sampled_from(FLOATS), st.floats(allow_nan=False, allow_infinity=False))
    return st.booleans()


def _value(kind: str, pool: list[Any], noise: int) -> st.SearchStrategy[Any]:
    """A value valid for the field (from ``pool``) except one time in ``noise``: anything of the kind."""
    own = [v for v in pool if v is None or pa.array([v]).type == ARROW[kind]]
    if not own:
        return _anything(kind)
    return st.integers(0, noise).flatmap(lambda k: _anything(kind) if k == 0 else st.sampled_from(own))


_POOLS: dict[tuple[str, str], list[Any]] = {}


def _valid_pool(contract: Any, name: str) -> list[Any]:
    if (contract.ref, name) in _POOLS:
        return _POOLS[contract.ref, name]
    ref = {"$ref": f"{contract.base_uri}#/properties/{name}"}
    check = Draft202012Validator(ref, registry=contract.registry, format_checker=FORMAT_CHECKER)
    candidates = [*SPECIAL_STRINGS, *NUMBERS, *FLOATS, True, False, None]
    _POOLS[contract.ref, name] = [v for v in candidates if check.is_valid(v)]
    return _POOLS[contract.ref, name]


ARROW = {"string": pa.string(), "integer": pa.int64(), "number": pa.float64(), "boolean": pa.bool_()}


@st.composite
def batches(draw: st.DrawFn, contract: Any) -> tuple[pa.RecordBatch, list[dict[str, Any]]]:
    n = draw(st.integers(1, 8))
    columns: dict[str, pa.Array] = {}
    records: list[dict[str, Any]] = [{} for _ in range(n)]
    names = [f.name for f in contract.fields]
    if draw(st.integers(0, 9)) == 0:
        names.append("zz_extra")
    clean = draw(st.booleans())  # mostly valid records with a few bad cells, or anything goes
    noise = 60 if clean else 3
    for field in contract.fields if names[-1] != "zz_extra" else [*contract.fields, None]:
        name = field.name if field is not None else "zz_extra"
        own = field.json_type if field is not None else "string"
        own = "string" if own in ("object", "array") else own
        required = field is not None and field.required
        modes = ["absent", *["own"] * (30 if required or clean else 6), *([] if clean else ["other"])]
        mode = draw(st.sampled_from(modes))
        if mode == "absent":
            continue
        kind = own if mode == "own" else draw(st.sampled_from(sorted(set(ARROW) - {own})))
        null_p = 0 if clean else draw(st.sampled_from([0, 0, 1, 4]))
        pool = _valid_pool(contract, name) if field is not None else []
        values = [
            None if null_p and draw(st.integers(0, null_p)) == 0 else draw(_value(kind, pool, noise))
            for _ in range(n)
        ]
        columns[name] = pa.array(values, ARROW[kind])
        for rec, v in zip(records, values, strict=True):
            rec[name] = v
    if not columns:
        return pa.RecordBatch.from_arrays([pa.nulls(n)], names=["zz_extra"]), [{"zz_extra": None}] * n
    return pa.RecordBatch.from_pydict(columns), records


def _check(contract: Any, batch: pa.RecordBatch, records: list[dict[str, Any]]) -> None:
    reference = Draft202012Validator(
        contract.schema, registry=contract.registry, format_checker=FORMAT_CHECKER
    )
    verdict = Validator(contract).validate(batch, text=False)
    invalid_rows = set(verdict.invalid.column("_hub_row").to_pylist())
    for i, rec in enumerate(records):
        expected = reference.is_valid(copy.deepcopy(rec))
        assert (i + 1 not in invalid_rows) == expected, (rec, verdict.invalid.to_pylist())
        VALID_SEEN[contract.ref] = VALID_SEEN.get(contract.ref, 0) + expected
    assert verdict.n_valid + verdict.n_invalid == batch.num_rows
    assert verdict.valid.schema == contract.arrow_schema


VALID_SEEN: dict[str, int] = {}
SETTINGS = settings(
    max_examples=100, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)


@SETTINGS
@given(data=st.data())
def test_people_contract_agrees_with_jsonschema(contracts: dict[str, Any], data: st.DataObject) -> None:
    contract = contracts["test/people.v1"]
    _check(contract, *data.draw(batches(contract)))


@SETTINGS
@given(data=st.data())
def test_births_contract_agrees_with_jsonschema(contracts: dict[str, Any], data: st.DataObject) -> None:
    contract = contracts["civil_status/births.v1"]
    _check(contract, *data.draw(batches(contract)))


@SETTINGS
@given(data=st.data())
def test_fallback_keywords_agree_with_jsonschema(contracts: dict[str, Any], data: st.DataObject) -> None:
    contract = contracts["test/odd.v1"]
    assert contract.plans["a"].fallback
    assert contract.plans["b"].fallback
    assert "dependentRequired" in contract.residual
    _check(contract, *data.draw(batches(contract)))


INT_TEXT = re.compile(r"[+-]?[0-9]+")
NUM_TEXT = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?")


def _read_text(kind: str, text: str | None) -> Any:
    """The documented text grammar, written plainly: what JSON value a CSV cell stands for."""
    if text is None or text == "":
        return None
    if kind == "integer" and INT_TEXT.fullmatch(text) and -(2**63) <= int(text) < 2**63:
        return int(text)
    if kind == "number" and NUM_TEXT.fullmatch(text) and math.isfinite(float(text)):
        return float(text)
    if kind == "boolean" and text.lower() in ("true", "false", "1", "0"):
        return text.lower() in ("true", "1")
    return text  # a string (for a non-string field: fails "type", as in the hub)


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "TRUE" if value else "0"
    return str(value)


@SETTINGS
@given(data=st.data())
def test_text_mode_agrees_with_jsonschema_on_the_read_values(
    contracts: dict[str, Any], data: st.DataObject
) -> None:
    contract = contracts["test/people.v1"]
    batch, _ = data.draw(batches(contract))
    texts = {
        name: [None if v is None else _as_text(v) for v in batch.column(name).to_pylist()]
        for name in batch.schema.names
    }
    text_batch = pa.RecordBatch.from_pydict({k: pa.array(v, pa.string()) for k, v in texts.items()})
    kinds = {f.name: f.json_type for f in contract.fields}
    read = [
        {k: _read_text(kinds.get(k, "string"), texts[k][i]) for k in texts}
        for i in range(text_batch.num_rows)
    ]
    reference = Draft202012Validator(
        contract.schema, registry=contract.registry, format_checker=FORMAT_CHECKER
    )
    verdict = Validator(contract).validate(text_batch, text=True)
    invalid_rows = set(verdict.invalid.column("_hub_row").to_pylist())
    for i, rec in enumerate(read):
        assert (i + 1 not in invalid_rows) == reference.is_valid(rec), (rec, verdict.invalid.to_pylist())
