"""Loading contracts: the births contract, its Arrow schema and annotations, and refused contracts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from hub.contracts import load_contract
from hub.errors import ContractError

REPO = Path(__file__).resolve().parents[2]
BASE = {"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object"}


def write(root: Path, ref: str, schema: Any) -> None:
    path = root / f"{ref}.schema.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(schema if isinstance(schema, str) else json.dumps(schema), encoding="utf-8")


def refused(tmp_path: Path, schema: Any, *, extra: dict[str, Any] | None = None) -> ContractError:
    write(tmp_path, "test/bad.v1", schema)
    for ref, other in (extra or {}).items():
        write(tmp_path, ref, other)
    with pytest.raises(ContractError) as info:
        load_contract("test/bad.v1", tmp_path)
    return info.value


def test_births_contract_loads_with_arrow_schema_and_annotations() -> None:
    c = load_contract("civil_status/births.v1", REPO / "schemas")
    assert c.primary_key == ("registration_number",)
    assert c.label == {"vi": "Đăng ký khai sinh", "en": "Birth registrations"}
    assert c.dataset_key == "civil_status.births"
    schema = c.arrow_schema
    assert schema.field("registration_date").type == pa.date32()
    assert schema.field("updated_at").type == pa.timestamp("us", tz="UTC")
    assert schema.field("birth_weight_grams").type == pa.int64()
    assert schema.field("ward_code").type == pa.string()
    assert not schema.field("registration_number").nullable
    assert schema.field("child_personal_id").nullable  # anyOf [$ref, null]
    assert schema.field("nationality").nullable  # not required
    pid = c.field("child_personal_id")
    assert (pid.personal, pid.check, pid.birth_date_field) == ("direct", "vn-personal-id", "child_birth_date")
    assert (pid.label_vi, pid.label_en) == ("Số định danh cá nhân của trẻ", "Child's personal id")
    assert c.field("ethnicity").personal == "sensitive"
    assert c.field("birth_weight_grams").unit == "g"
    ward = c.field("ward_code")
    assert (ward.check, ward.date_field, ward.json_type) == ("vn-ward-code", "registration_date", "string")
    assert all(not plan.fallback for plan in c.plans.values())  # the births contract is fully vectorized


@pytest.mark.parametrize(
    ("schema", "pointer", "words"),
    [
        (
            {**BASE, "properties": {"a": {"type": "string", "maxLenght": 3}}},
            "/properties/a/maxLenght",
            "unknown keyword",
        ),
        ({**BASE, "properties": {"a": {"$dynamicRef": "#x"}}}, "/properties/a/$dynamicRef", "not supported"),
        (
            {**BASE, "properties": {"a": {"$ref": "../common/none.v1.schema.json"}}},
            "/properties/a/$ref",
            "does not exist",
        ),
        ({**BASE, "properties": {"a": {"$ref": "#/$defs/nope"}}}, "/properties/a/$ref", "no '/$defs/nope'"),
        (
            {**BASE, "properties": {"a": {"$ref": "https://elsewhere.example/s.json"}}},
            "/properties/a/$ref",
            "outside",
        ),
        (
            {**BASE, "properties": {"a": {"type": "string", "format": "colour"}}},
            "/properties/a/format",
            "format",
        ),
        (
            {**BASE, "properties": {"a": {"type": "string", "pattern": "(unclosed"}}},
            "/properties/a/pattern",
            "compile",
        ),
        (
            {**BASE, "properties": {"a": {"type": "string", "x-check": "nope"}}},
            "/properties/a/x-check",
            "registered",
        ),
        (
            {**BASE, "properties": {"a": {"type": "string", "x-personal": "secret"}}},
            "/properties/a/x-personal",
            "one of",
        ),
        (
            {**BASE, "properties": {"a": {"type": ["string", "integer"]}}},
            "/properties/a",
            "several JSON types",
        ),
        ({**BASE, "properties": {"a": {"description": "untyped"}}}, "/properties/a", "no type"),
        (
            {**BASE, "properties": {"a": {"type": "string"}}, "x-primary-key": ["b"]},
            "/x-primary-key/0",
            "no property",
        ),
        ({**BASE, "properties": {"a": {"type": "string"}}, "required": ["b"]}, "/required/0", "not declared"),
        (
            {**BASE, "properties": {"a": {"type": "string", "minLength": -1}}},
            "/properties/a/minLength",
            "valid JSON Schema",
        ),
        ({**BASE, "type": "array", "properties": {"a": {"type": "string"}}}, "/type", "object"),
        ({**BASE, "$schema": "http://json-schema.org/draft-07/schema#"}, "/$schema", "2020-12"),
    ],
)
def test_invalid_contract_names_file_and_pointer(
    tmp_path: Path, schema: Any, pointer: str, words: str
) -> None:
    err = refused(tmp_path, schema)
    assert err.details["file"].endswith("test/bad.v1.schema.json")
    assert err.details["pointer"] == pointer
    assert words in err.message
    assert f"bad.v1.schema.json#{pointer}: " in str(err)


def test_error_inside_a_referenced_file_names_that_file(tmp_path: Path) -> None:
    common = {"$schema": BASE["$schema"], "$defs": {"code": {"type": "string", "patern": "^x$"}}}
    schema = {**BASE, "properties": {"a": {"$ref": "../common/c.v1.schema.json#/$defs/code"}}}
    err = refused(tmp_path, schema, extra={"common/c.v1": common})
    assert err.details["file"].endswith("common/c.v1.schema.json")
    assert err.details["pointer"] == "/$defs/code/patern"


def test_not_json_names_line_and_column(tmp_path: Path) -> None:
    err = refused(tmp_path, '{"type": "object",\n "properties": }')
    assert err.details["pointer"] == ""
    assert "line 2" in err.message


def test_id_must_match_the_file(tmp_path: Path) -> None:
    err = refused(
        tmp_path, {**BASE, "$id": "https://x.vn/schemas/test/other.v1.schema.json", "properties": {}}
    )
    assert err.details["pointer"] == "/$id"


def test_keywords_not_vectorized_are_accepted_as_fallback(tmp_path: Path) -> None:
    schema = {**BASE, "minProperties": 1, "properties": {"a": {"type": "string", "not": {"const": "x"}}}}
    write(tmp_path, "test/ok.v1", schema)
    c = load_contract("test/ok.v1", tmp_path)
    assert c.plans["a"].fallback
    assert "/properties/a/not" in c.plans["a"].fallback
    assert c.residual == ("minProperties",)
