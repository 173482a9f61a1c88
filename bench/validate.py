"""Benchmark: the hub's vectorized contract validation against jsonschema and jsonschema-rs.

1,000,000 birth registrations (civil_status/births.v1) as text columns, as a CSV source gives them, 1% of
the rows made invalid in one field each. The hub validates record batches of 131,072 rows (its x-checks
included); ``jsonschema`` (per row, with the format checker) is measured on a 20,000-row sample;
``jsonschema-rs`` (bench extra) on every row. The hub and jsonschema-rs run ``--repeat`` times (3) and
the best run is reported. Prints a table, writes bench/results/validate.json.

    .venv/bin/python bench/validate.py [--rows 1000000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from jsonschema import Draft202012Validator

import hub.contracts.validator as validator_module
from hub.contracts import Validator, load_contract
from hub.contracts.vn import current_wards, pre2025_units

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "results" / "validate.json"
BATCH = 131_072
FAMILY = ["Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Huỳnh", "Phan", "Vũ", "Võ", "Đặng", "Bùi", "Đỗ"]
MIDDLE = ["Văn", "Thị", "Hữu", "Minh", "Ngọc", "Thanh", "Đức", "Thu", "Quang", "Bảo"]
GIVEN = [
    "An",
    "Bình",
    "Châu",
    "Dũng",
    "Hà",
    "Hạnh",
    "Khoa",
    "Lan",
    "Long",
    "Mai",
    "Nam",
    "Ngân",
    "Phúc",
    "Quân",
]
ETHNIC = ["Kinh", "Tày", "Thái", "Mường", "Khmer", "Hoa", "Nùng", "H'Mông"]


def _pick(rng: np.random.Generator, items: list[str], n: int) -> np.ndarray:
    return np.array(items, dtype=object)[rng.integers(0, len(items), n)]


def _names(rng: np.random.Generator, n: int) -> np.ndarray:
    return _pick(rng, FAMILY, n) + " " + _pick(rng, MIDDLE, n) + " " + _pick(rng, GIVEN, n)


def _dates(days: np.ndarray) -> np.ndarray:
    return np.datetime_as_string(days.astype("datetime64[D]"), unit="D").astype(object)


def generate(n: int, seed: int = 7) -> tuple[pa.Table, np.ndarray]:
    rng = np.random.default_rng(seed)
    today = np.datetime64("2026-01-01", "D").astype(np.int64)
    reform = np.datetime64("2025-07-01", "D").astype(np.int64)
    reg_day = rng.integers(today - 900, today, n)
    birth_day = reg_day - rng.integers(0, 60, n)
    new = reg_day >= reform
    cur = np.array(sorted(current_wards()), dtype=object)
    provinces, old_wards = pre2025_units()
    old = np.array(sorted(old_wards), dtype=object)
    ward = np.where(new, cur[rng.integers(0, len(cur), n)], old[rng.integers(0, len(old), n)])
    prov = np.array(sorted(provinces), dtype=object)
    byear = (birth_day.astype("datetime64[D]").astype("datetime64[Y]").astype(np.int64) + 1970) % 100
    sex_male = rng.random(n) < 0.51
    digit4 = np.where(sex_male, "2", "3").astype(object)
    pid = prov[rng.integers(0, len(prov), n)] + digit4 + np.char.zfill(byear.astype(str), 2).astype(object)
    pid = pid + np.char.zfill(rng.integers(0, 999_999, n).astype(str), 6).astype(object)
    parent = (
        prov[rng.integers(0, len(prov), n)]
        + "0"
        + np.char.zfill(rng.integers(70, 99, n).astype(str), 2).astype(object)
    )
    parent = parent + np.char.zfill(rng.integers(0, 999_999, n).astype(str), 6).astype(object)
    seq = np.char.zfill(np.arange(n).astype(str), 6).astype(object)
    regno = "KS-" + np.char.zfill((np.arange(n) % 100).astype(str), 2).astype(object) + "-"
    regno = regno + (reg_day.astype("datetime64[D]").astype("datetime64[Y]").astype(np.int64) + 1970).astype(
        str
    ).astype(object)
    regno = regno + "-" + seq
    cols: dict[str, Any] = {
        "registration_number": regno,
        "registration_date": _dates(reg_day),
        "ward_code": ward,
        "child_personal_id": pid,
        "child_full_name": _names(rng, n),
        "child_sex": np.where(sex_male, "Nam", "Nữ").astype(object),
        "child_birth_date": _dates(birth_day),
        "birth_place": _pick(rng, ["Bệnh viện Đa khoa tỉnh", "Trạm y tế xã", "Tại nhà"], n),
        "ethnicity": _pick(rng, ETHNIC, n),
        "nationality": np.full(n, "Việt Nam", dtype=object),
        "birth_weight_grams": rng.integers(1800, 4500, n).astype(str).astype(object),
        "father_full_name": _names(rng, n),
        "father_personal_id": parent,
        "mother_full_name": _names(rng, n),
        "mother_personal_id": parent,
        "updated_at": _dates(reg_day) + "T08:30:00+07:00",
    }
    bad = rng.choice(n, n // 100, replace=False)
    faults = [
        ("registration_number", "KS-1"), ("registration_date", "2025-02-30"), ("child_sex", "nam"),
        ("birth_weight_grams", "99999"), ("child_full_name", " Nguyễn An"), ("child_birth_date", "2025-1-5"),
        ("updated_at", "2025-01-05 08:30:00"), ("ethnicity", "K"), ("child_personal_id", "12345"),
        ("birth_weight_grams", "abc"),
    ]  # fmt: skip
    for k, i in enumerate(bad):
        name, value = faults[k % len(faults)]
        cols[name][i] = value
    table = pa.table({k: pa.array(list(v), pa.string()) for k, v in cols.items()})
    return table, np.sort(bad)


def as_json(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for r in records:
        w = r["birth_weight_grams"]
        r["birth_weight_grams"] = int(w) if w is not None and w.lstrip("-").isdigit() else w
    return records


def bundled(contract: Any) -> dict[str, Any]:
    """The contract with its common definitions inlined (jsonschema-rs has no schemas/ registry)."""
    text = json.dumps(contract.schema).replace("../common/vn.v1.schema.json#/$defs/", "#/$defs/")
    schema = json.loads(text)
    common = json.loads((ROOT / "schemas/common/vn.v1.schema.json").read_text(encoding="utf-8"))
    schema["$defs"] = common["$defs"]
    return schema


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--sample", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3, help="runs of the hub and jsonschema-rs (best kept)")
    args = parser.parse_args()
    contract = load_contract("civil_status/births.v1", ROOT / "schemas")
    t0 = time.perf_counter()
    table, bad = generate(args.rows)
    print(f"generated {args.rows:,} rows ({len(bad):,} made invalid) in {time.perf_counter() - t0:.1f}s")
    validator = Validator(contract)
    batches = table.to_batches(max_chunksize=BATCH)
    validator.validate(batches[0].slice(0, 50_000), text=True)  # warm-up (lazy tables, regex cache)
    results: dict[str, Any] = {}
    for name, workers in (("hub", validator_module._WORKERS), ("hub, 1 thread", 1)):
        runs = []
        for _ in range(args.repeat):  # the best of the runs: this shared machine's speed varies by 10-30%
            t0, c0 = time.perf_counter(), time.process_time()
            n_invalid = 0
            offset = 0
            for b in batches:
                v = validator.validate(b, text=True, row_offset=offset, threads=workers)
                n_invalid += v.n_invalid
                offset += b.num_rows
            runs.append((time.perf_counter() - t0, time.process_time() - c0))
        hub_s, hub_cpu = min(runs)
        results[name] = {
            "rows": args.rows, "seconds": hub_s, "rows_per_s": args.rows / hub_s, "invalid": n_invalid,
            "threads": workers, "cpu_seconds": hub_cpu, "runs_seconds": [r[0] for r in runs],
        }  # fmt: skip

    sample = as_json(table.slice(0, args.sample).to_pylist())
    ref = Draft202012Validator(
        contract.schema, registry=contract.registry, format_checker=Draft202012Validator.FORMAT_CHECKER
    )
    t0, c0 = time.perf_counter(), time.process_time()
    js_invalid = sum(not ref.is_valid(r) for r in sample)
    js_s, js_cpu = time.perf_counter() - t0, time.process_time() - c0
    results["jsonschema"] = {
        "rows": len(sample),
        "seconds": js_s,
        "rows_per_s": len(sample) / js_s,
        "invalid": js_invalid,
        "cpu_seconds": js_cpu,
    }
    hub_sample = validator.validate(table.slice(0, args.sample).to_batches()[0], text=True).n_invalid
    results["hub_on_sample"] = {"rows": len(sample), "invalid": hub_sample}
    try:
        import jsonschema_rs

        rs = jsonschema_rs.validator_for(bundled(contract), validate_formats=True)
        records = as_json(table.to_pylist())
        runs = []
        for _ in range(args.repeat):
            t0, c0 = time.perf_counter(), time.process_time()
            rs_invalid = sum(not rs.is_valid(r) for r in records)
            runs.append((time.perf_counter() - t0, time.process_time() - c0))
        rs_s, rs_cpu = min(runs)
        results["jsonschema-rs"] = {
            "rows": len(records),
            "seconds": rs_s,
            "rows_per_s": len(records) / rs_s,
            "invalid": rs_invalid,
            "cpu_seconds": rs_cpu,
        }
    except ImportError:
        results["jsonschema-rs"] = {"skipped": "pip install -e '.[bench]'"}
    print(f"\n{'validator':<16}{'rows':>12}{'seconds':>10}{'rows/s':>14}{'invalid':>10}{'rows/CPU-s':>14}")
    for name in ("hub", "hub, 1 thread", "jsonschema", "jsonschema-rs"):
        r = results[name]
        if "skipped" in r:
            print(f"{name:<16}  skipped: {r['skipped']}")
            continue
        per_cpu = r["rows"] / r["cpu_seconds"] if r.get("cpu_seconds") else 0
        print(
            f"{name:<16}{r['rows']:>12,}{r['seconds']:>10.3f}{r['rows_per_s']:>14,.0f}{r['invalid']:>10,}"
            f"{per_cpu:>14,.0f}"
        )
    print(f"(hub on the jsonschema sample: {hub_sample:,} invalid; jsonschema: {js_invalid:,})")
    print(f"hub and jsonschema-rs: the best of {args.repeat} runs; jsonschema: one run on the sample")
    results["machine"] = {
        "cpus": os.cpu_count(), "python": platform.python_version(), "batch_rows": BATCH,
        "load_average_1m": os.getloadavg()[0],
    }  # fmt: skip
    print(f"load average (1 min) at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    results["target_rows_per_s"] = 2_000_000
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(results, indent=2), encoding="utf-8")
    print(f"wrote {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
