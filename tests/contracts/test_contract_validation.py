"""Validating batches: the example CSV, text mode, typed columns, reserved columns, quarantine, x-checks."""

from __future__ import annotations

import csv
import json
import re
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from hub.contracts import (
    QUARANTINE_SCHEMA,
    CheckContext,
    CheckResult,
    Validator,
    load_contract,
    register_check,
)
from hub.contracts.regex import to_re2

REPO = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 1, 15, 3, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def births() -> Any:
    return load_contract("civil_status/births.v1", REPO / "schemas")


def example_batch() -> pa.RecordBatch:
    with (REPO / "tests/data/births_example.csv").open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    return pa.RecordBatch.from_pylist(rows)


def errors_by_row(verdict: Any) -> dict[int, list[tuple[str, str]]]:
    return {
        r["_hub_row"]: [(e["path"], e["keyword"]) for e in r["errors"]] for r in verdict.invalid.to_pylist()
    }


def test_example_csv_valid_rows_and_quarantine(births: Any) -> None:
    batch = example_batch()
    verdict = Validator(births, now=NOW).validate(batch, row_offset=1)  # line 1 is the header
    assert verdict.n_valid + verdict.n_invalid == batch.num_rows == 34
    assert errors_by_row(verdict) == {
        5: [("registration_number", "pattern")],
        10: [("registration_date", "format")],
        14: [("child_sex", "enum")],
        19: [("birth_weight_grams", "type")],
        23: [("ward_code", "x-check:vn-ward-code")],
        28: [("child_personal_id", "x-check:vn-personal-id")],
        32: [("child_full_name", "type")],  # empty text is null in a CSV
        35: [("updated_at", "format")],
    }
    assert verdict.invalid.schema == QUARANTINE_SCHEMA
    assert verdict.valid.schema == births.arrow_schema
    first = verdict.valid.to_pylist()[0]
    assert first["child_full_name"] == "Nguyễn Văn An"
    assert first["child_personal_id"] is None
    assert first["birth_weight_grams"] is None
    assert first["registration_date"] == date(2025, 7, 1)
    assert first["updated_at"] == datetime(2025, 7, 1, 2, 0, tzinfo=UTC)
    bad = next(r for r in verdict.invalid.to_pylist() if r["_hub_row"] == 19)
    assert json.loads(bad["record"])["birth_weight_grams"] == "nặng"
    assert bad["errors"][0]["message"] == "'nặng' is not of type ['integer', 'null']"


def test_reserved_columns_pass_through_to_quarantine(births: Any) -> None:
    batch = example_batch()
    n = batch.num_rows
    errs = [None] * n
    errs[0] = "expected 16 columns, found 15"
    batch = batch.append_column("_hub_row", pa.array(range(100, 100 + n), pa.int64()))
    batch = batch.append_column("_hub_source", pa.array(["births.csv"] * n))
    batch = batch.append_column("_hub_error", pa.array(errs, pa.string()))
    verdict = Validator(births, now=NOW).validate(batch)
    rows = {r["_hub_row"]: r for r in verdict.invalid.to_pylist()}
    assert rows[100]["errors"] == [
        {"path": "", "keyword": "source", "message": "expected 16 columns, found 15"}
    ]
    assert rows[103]["_hub_source"] == "births.csv"
    assert "_hub_row" not in json.loads(rows[103]["record"])
    assert verdict.n_invalid == 9
    assert verdict.valid.schema == births.arrow_schema


def test_absent_required_column_and_unexpected_column(births: Any) -> None:
    batch = example_batch().slice(0, 3)
    batch = batch.drop_columns(["ethnicity"]).append_column("note", pa.array([None, None, None], pa.string()))
    verdict = Validator(births, now=NOW).validate(batch)
    assert verdict.n_valid == 0
    errs = verdict.invalid.to_pylist()[0]["errors"]
    assert {
        "path": "ethnicity",
        "keyword": "required",
        "message": "'ethnicity' is a required property",
    } in errs
    assert ("note", "additionalProperties") in [(e["path"], e["keyword"]) for e in errs]


def test_absent_optional_column_is_null_in_valid_rows(births: Any) -> None:
    batch = example_batch().slice(0, 2).drop_columns(["birth_place", "nationality"])
    verdict = Validator(births, now=NOW).validate(batch)
    assert verdict.n_valid == 2
    assert verdict.valid.column("nationality").null_count == 2


def test_typed_columns_are_taken_as_they_are(births: Any) -> None:
    rows = example_batch().slice(0, 2).to_pylist()
    batch = pa.RecordBatch.from_pylist(rows)
    cols = {name: batch.column(name) for name in batch.schema.names}
    cols["registration_date"] = pc.cast(cols["registration_date"], pa.date32())
    cols["child_birth_date"] = pc.cast(cols["child_birth_date"], pa.date32())
    cols["updated_at"] = pc.cast(cols["updated_at"], pa.timestamp("us", tz="Asia/Ho_Chi_Minh"))
    cols["birth_weight_grams"] = pa.array([None, 2597.0], pa.float64())
    for name in ("child_personal_id", "birth_place", "father_full_name", "father_personal_id"):
        cols[name] = pc.if_else(pc.equal(cols[name], ""), pa.scalar(None, pa.string()), cols[name])
    typed = pa.RecordBatch.from_pydict(cols)
    verdict = Validator(births, now=NOW).validate(typed)
    assert verdict.n_invalid == 0, verdict.invalid.to_pylist()
    assert verdict.valid.column("birth_weight_grams").to_pylist() == [None, 2597]
    # a typed (non-text) string column for an integer field is a type error, as in JSON
    cols["birth_weight_grams"] = pa.array(["1", "2597"])
    verdict = Validator(births, now=NOW).validate(pa.RecordBatch.from_pydict(cols), text=False)
    assert verdict.n_invalid == 2


def test_typed_dates_outside_rfc3339_years_fail_format(births: Any) -> None:
    """A typed date or timestamp is valid RFC 3339 only for years 1 to 9999, as jsonschema says of
    its ISO text; the error names the field and keyword."""
    rows = example_batch().slice(0, 2).to_pylist()
    batch = pa.RecordBatch.from_pylist(rows)
    cols = {name: batch.column(name) for name in batch.schema.names}
    for name in ("child_personal_id", "birth_place", "father_full_name", "father_personal_id"):
        cols[name] = pc.if_else(pc.equal(cols[name], ""), pa.scalar(None, pa.string()), cols[name])
    cols["birth_weight_grams"] = pa.array([None, 2597], pa.int64())
    cols["registration_date"] = pc.cast(cols["registration_date"], pa.date32())
    cols["updated_at"] = pc.cast(cols["updated_at"], pa.timestamp("us", tz="UTC"))
    # 3,000,000 days after 1970 is in the year 10183
    far = pa.array([3_000_000, 3_000_000], pa.int32()).cast(pa.date32())
    original = pc.cast(cols["child_birth_date"], pa.date32())
    cols["child_birth_date"] = pc.if_else(pa.array([True, False]), far, original)
    verdict = Validator(births, now=NOW).validate(pa.RecordBatch.from_pydict(cols), text=False)
    assert verdict.n_invalid == 1
    errors = verdict.invalid.column("errors").to_pylist()[0]
    assert '"child_birth_date":"10183-' in verdict.invalid.column("record")[0].as_py()
    assert any(e["path"] == "child_birth_date" and e["keyword"] == "format" for e in errors), errors


def test_text_mode_parsing_rules(tmp_path: Path) -> None:
    path = tmp_path / "t" / "x.v1.schema.json"
    path.parent.mkdir()
    path.write_text(
        json.dumps(
            {
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "type": "object",
                "properties": {
                    "i": {"type": ["integer", "null"]},
                    "f": {"type": ["number", "null"]},
                    "b": {"type": ["boolean", "null"]},
                    "s": {"type": ["string", "null"]},
                },
            }
        )
    )
    c = load_contract("t/x.v1", tmp_path)
    batch = pa.RecordBatch.from_pydict(
        {
            "i": ["12", "-3", "", "1.5", "abc"],
            "f": ["1.5", "2", "", "1e3", "x"],
            "b": ["true", "0", "", "FALSE", "yes"],
            "s": ["a", " ", "", "b", "c"],
        }
    )
    verdict = Validator(c).validate(batch)
    assert verdict.valid.to_pylist() == [
        {"i": 12, "f": 1.5, "b": True, "s": "a"},
        {"i": -3, "f": 2.0, "b": False, "s": " "},
        {"i": None, "f": None, "b": None, "s": None},
    ]
    assert errors_by_row(verdict) == {4: [("i", "type")], 5: [("i", "type"), ("f", "type"), ("b", "type")]}


def test_vn_personal_id_check(births: Any) -> None:
    rows = [dict(example_batch().slice(1, 1).to_pylist()[0]) for _ in range(5)]
    ids = ["001224621429", "096324000001", "097224000001", "001424000001", "001199000001"]
    for row, pid in zip(rows, ids, strict=True):
        row["child_personal_id"] = pid
    verdict = Validator(births, now=NOW).validate(pa.RecordBatch.from_pylist(rows))
    messages = {r["_hub_row"]: r["errors"][0]["message"] for r in verdict.invalid.to_pylist()}
    assert set(messages) == {3, 4, 5}
    assert "097" in messages[3]
    assert "province" in messages[3]
    assert "digit 4" in messages[4]
    assert "born in 1999" in messages[5]
    assert "2024" in messages[5]


def test_vn_ward_code_depends_on_the_record_date(births: Any) -> None:
    from hub.contracts.vn import current_wards, pre2025_units

    only_old = sorted(set(pre2025_units()[1]) - set(current_wards()))[0]
    only_new = sorted(set(current_wards()) - set(pre2025_units()[1]))
    base = example_batch().slice(1, 1).to_pylist()[0]
    rows = []
    for when, code in (("2025-06-30", only_old), ("2025-07-01", only_old), ("2025-06-30", "00004")):
        rows.append({**base, "registration_date": when, "ward_code": code, "child_birth_date": when})
    if only_new:
        rows.append(
            {
                **base,
                "registration_date": "2025-07-01",
                "ward_code": only_new[0],
                "child_birth_date": "2025-07-01",
            }
        )
    for r in rows:
        r["child_personal_id"] = ""
    verdict = Validator(births, now=NOW).validate(pa.RecordBatch.from_pylist(rows))
    assert set(errors_by_row(verdict)) == {2}
    assert "current list" in verdict.invalid.to_pylist()[0]["errors"][0]["message"]


def test_not_future_uses_today_in_viet_nam(births: Any) -> None:
    base = example_batch().slice(1, 1).to_pylist()[0]
    rows = [{**base, "registration_date": d, "child_personal_id": ""} for d in ("2026-01-15", "2026-01-16")]
    verdict = Validator(births, now=NOW).validate(pa.RecordBatch.from_pylist(rows))
    assert errors_by_row(verdict) == {2: [("registration_date", "x-check:not-future")]}


def test_register_check_runs_a_custom_vectorized_check(tmp_path: Path) -> None:
    def even(values: pa.Array, ctx: CheckContext) -> CheckResult:
        return CheckResult(pc.not_equal(pc.bit_wise_and(values, 1), 0), f"{ctx.field.name} must be even")

    register_check("test-even", even, replace=True)
    path = tmp_path / "t" / "e.v1.schema.json"
    path.parent.mkdir()
    schema = {"type": "object", "properties": {"n": {"type": ["integer", "null"], "x-check": "test-even"}}}
    path.write_text(json.dumps(schema))
    verdict = Validator(load_contract("t/e.v1", tmp_path)).validate(
        pa.RecordBatch.from_pydict({"n": [2, 3, None]})
    )
    assert errors_by_row(verdict) == {2: [("n", "x-check:test-even")]}
    assert verdict.invalid.to_pylist()[0]["errors"][0]["message"] == "n must be even"


@pytest.mark.parametrize(
    "pattern",
    [
        "^[0-9]{12}$",
        "^\\S(.*\\S)?$",
        "\\d{2}",
        "^KS-[0-9]{2}$",
        "a|b$",
        "^(ab)+$",
        "^[^\\s]+$",
        "x{,3}y",
        "^\\w+$",
    ],
)
def test_re2_translation_agrees_with_python(pattern: str) -> None:
    samples = ["", "a", "ab", "abab", "ab\n", "123456789012", "123456789012\n", "١٢", "x y", "Nguyễn", "xxy",
               "KS-01", "KS-01\n", " a", "a ", "a\u00a0b", "b", "b\n", "a_1", "ab\nab"]  # fmt: skip
    re2 = to_re2(pattern)
    assert re2 is not None
    got = pc.match_substring_regex(pa.array(samples), re2).to_pylist()
    assert got == [re.search(pattern, s) is not None for s in samples]


@pytest.mark.parametrize("pattern", ["(?=a)b", "(a)\\1", "\\bword", "(?i)abc", "a$b", "a*+"])
def test_re2_translation_refuses_what_differs(pattern: str) -> None:
    assert to_re2(pattern) is None


def test_object_field_is_json_text_checked_by_jsonschema(tmp_path: Path) -> None:
    path = tmp_path / "t" / "g.v1.schema.json"
    path.parent.mkdir()
    point = {
        "type": "object",
        "required": ["type", "coordinates"],
        "properties": {"type": {"const": "Point"}, "coordinates": {"type": "array", "minItems": 2}},
    }
    path.write_text(
        json.dumps({"type": "object", "properties": {"geom": {"anyOf": [point, {"type": "null"}]}}})
    )
    c = load_contract("t/g.v1", tmp_path)
    assert c.arrow_schema.field("geom").type == pa.string()
    batch = pa.RecordBatch.from_pydict(
        {
            "geom": [
                '{"type": "Point", "coordinates": [105.8, 21.0]}',
                '{"type": "Line"}',
                "",
                "[1, 2]",
                "{bad",
            ]
        }
    )
    verdict = Validator(c).validate(batch)
    assert verdict.valid.column("geom").to_pylist() == ['{"type":"Point","coordinates":[105.8,21.0]}', None]
    assert errors_by_row(verdict) == {2: [("geom", "anyOf")], 4: [("geom", "type")], 5: [("geom", "type")]}


def test_sliced_and_parallel_batches_give_the_same_verdict(
    births: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hub.contracts.validator as validator_module

    batch = example_batch()
    whole = Validator(births, now=NOW).validate(batch)
    part = Validator(births, now=NOW).validate(batch.slice(5), row_offset=5)  # arrays with an offset
    assert part.invalid.column("_hub_row").to_pylist() == [
        r for r in whole.invalid.column("_hub_row").to_pylist() if r > 5
    ]
    assert part.valid.to_pylist() == whole.valid.to_pylist()[-part.n_valid :]
    monkeypatch.setattr(validator_module, "PARALLEL_ROWS", 4)
    monkeypatch.setattr(validator_module, "_parallelism", lambda: 3)
    parallel = Validator(births, now=NOW).validate(batch)
    assert parallel.valid.to_pylist() == whole.valid.to_pylist()
    assert parallel.invalid.to_pylist() == whole.invalid.to_pylist()
    calls: list[int] = []  # threads=1 (as the ingest pipeline asks on small machines): no slices
    real = Validator._validate
    monkeypatch.setattr(
        Validator, "_validate", lambda self, b, *a: calls.append(b.num_rows) or real(self, b, *a)
    )
    single = Validator(births, now=NOW).validate(batch, threads=1)
    assert calls == [batch.num_rows]
    assert single.invalid.to_pylist() == whole.invalid.to_pylist()


def test_a_validator_owns_its_threads_and_close_stops_them(
    births: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    import hub.contracts.validator as validator_module

    monkeypatch.setattr(validator_module, "PARALLEL_ROWS", 4)  # the example batch is checked in threads
    monkeypatch.setattr(validator_module, "_WORKERS", 2)
    monkeypatch.setattr(validator_module, "_parallelism", lambda: 2)

    def threads() -> set[threading.Thread]:
        return {t for t in threading.enumerate() if t.name.startswith(validator_module.THREAD_PREFIX)}

    before = threads()  # other tests' validators, never closed
    batch = example_batch()
    expected = Validator(births, now=NOW).validate(batch, threads=1).invalid.to_pylist()
    first, second = Validator(births, now=NOW), Validator(births, now=NOW)
    assert threads() == before  # no thread before a parallel validation
    assert first.validate(batch).invalid.to_pylist() == expected
    assert second.validate(batch).invalid.to_pylist() == expected
    started = threads() - before
    assert started
    first.close()  # its threads stop; the other validator's do not
    left = threads() - before
    assert left
    assert left < started
    assert second.validate(batch).invalid.to_pylist() == expected
    second.close()
    assert threads() - before == set()
    with first:  # a closed validator validates again, in a new pool that the block closes
        assert first.validate(batch).invalid.to_pylist() == expected
        assert threads() - before
    assert threads() - before == set()


def test_text_numbers_arrow_would_read_but_json_grammar_refuses(tmp_path: Path) -> None:
    path = tmp_path / "t" / "n.v1.schema.json"
    path.parent.mkdir()
    props = {"i": {"type": ["integer", "null"]}, "f": {"type": ["number", "null"]}}
    path.write_text(json.dumps({"type": "object", "properties": props}))
    batch = pa.RecordBatch.from_pydict(
        {"i": ["0x1F", "+7", "99999999999999999999", "5"], "f": ["nan", "infinity", "1e400", "+.5"]}
    )
    verdict = Validator(load_contract("t/n.v1", tmp_path)).validate(batch)
    assert errors_by_row(verdict) == {
        1: [("i", "type"), ("f", "type")],
        2: [("f", "type")],
        3: [("i", "type"), ("f", "type")],
    }
    assert verdict.valid.to_pylist() == [{"i": 5, "f": 0.5}]
    # "+7" is read although Arrow's cast refuses it
    batch = pa.RecordBatch.from_pydict({"i": ["+7"], "f": ["1"]})
    assert Validator(load_contract("t/n.v1", tmp_path)).validate(batch).valid.to_pylist() == [
        {"i": 7, "f": 1.0}
    ]
