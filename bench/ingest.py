"""Ingest benchmark: PostgreSQL and Parquet sources into validated Iceberg snapshots, upsert, memory.

Prints a table and writes ``bench/results/ingest.json``. Needs PostgreSQL on 127.0.0.1:5432 (user
postgres, trust) and the ``bench`` extra (dlt, psutil): ``.venv/bin/pip install -e '.[bench]'``.

Data: the births contract (``civil_status/births.v1``); rows from the demo province's generator,
repeated with unique registration numbers up to the wanted count.

1. PostgreSQL table of 1,000,000 rows -> validated snapshot (``sql`` connector), next to dlt's
   ``sql_database`` source (connectorx backend) into DuckDB without validation.
2. A Parquet file of 1,000,000 rows -> validated snapshot (``files`` connector).
3. Upsert of the same 1,000,000 rows with 1% changed (``write_mode: upsert``, full read).
4. Peak RSS of a run over 10,000,000 rows (a subprocess; batches stream through).

Cases 1-3 run in this process after an unmeasured 20,000-row warm-up ingest (one-time imports);
each case starts on a fresh hub whose catalog database is already migrated (as a running hub's is);
its Iceberg table and dataset record are created by the measured run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hub.settings import Settings  # noqa: E402

PG_ADMIN = os.environ.get("HUB_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
RESULTS = ROOT / "bench" / "results" / "ingest.json"
KEY = "civil_status.births"


# --- data --------------------------------------------------------------------------------------
def base_births() -> pa.Table:
    """Valid births of the demo generator, typed as the contract says (about 60,000 rows)."""
    from hub.contracts import Validator, load_contract
    from hub.demo import people

    pop = people.population(400_000, 7)
    cols, _ = people.births(pop, 7, 0.0)
    raw = pa.table({k: pa.array(v.tolist()) for k, v in cols.items()})
    contract = load_contract("civil_status/births.v1", ROOT / "schemas")
    verdict = Validator(contract).validate(raw.combine_chunks().to_batches()[0])
    return pa.Table.from_batches([verdict.valid])


def births(base: pa.Table, n: int, offset: int = 0) -> pa.Table:
    """``n`` rows: ``base`` repeated, each with a unique registration number."""
    reps = -(-n // base.num_rows)
    table = pa.concat_tables([base] * reps).slice(0, n)
    numbers = pa.array(
        [f"KS-{(i // 1_000_000) % 100:02d}-2020-{i % 1_000_000:06d}" for i in range(offset, offset + n)]
    )
    return table.set_column(0, base.schema.field(0), numbers)


def write_parquet(base: pa.Table, path: Path, n: int, chunk: int = 1_000_000) -> None:
    schema = base.schema
    with pq.ParquetWriter(path, schema, compression="zstd") as writer:
        for start in range(0, n, chunk):
            writer.write_table(births(base, min(chunk, n - start), start), row_group_size=131_072)


# --- hub ---------------------------------------------------------------------------------------
def hub_env(root: Path, source: dict[str, Any], *, migrate: bool = True, **spec: Any) -> Settings:
    catalog = root / "catalog" / "so-tu-phap"
    catalog.mkdir(parents=True, exist_ok=True)
    (catalog / "organization.yaml").write_text("name: so-tu-phap\ntitle: {vi: Sở Tư pháp}\n")
    doc = {
        "id": KEY,
        "title": {"vi": "Đăng ký khai sinh"},
        "contract": "civil_status/births.v1",
        "source": source,
        **spec,
    }
    (catalog / "births.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True))
    settings = Settings(data_dir=root / "data", catalog_dir=root / "catalog", schemas_dir=ROOT / "schemas")
    settings.ensure_dirs()
    if migrate:  # the hub exists before the ingest: its catalog database is created and migrated
        from hub.db import get_engine

        get_engine(settings)
    return settings


def hub_run(settings: Settings) -> dict[str, Any]:
    from hub.ingest.runner import run_ingest

    started = time.perf_counter()
    result = run_ingest(settings, KEY, triggered_by="bench")
    seconds = time.perf_counter() - started
    if not result.ok:
        raise SystemExit(f"run failed: {result.error}")
    return {
        "rows": result.rows_read,
        "rows_loaded": result.rows_loaded,
        "seconds": round(seconds, 3),
        "rows_per_s": round(result.rows_read / seconds),
        "timings": {k: round(v, 3) for k, v in result.timings.items()},
        "changed": result.changed,
    }


# --- PostgreSQL and dlt ------------------------------------------------------------------------
def pg_database() -> str:
    import psycopg

    name = f"hub_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return PG_ADMIN.rsplit("/", 1)[0] + "/" + name


def pg_drop(url: str) -> None:
    import psycopg

    name = url.rsplit("/", 1)[1]
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def pg_load(url: str, table: pa.Table) -> None:
    import adbc_driver_postgresql.dbapi as adbc

    with adbc.connect(url) as conn, conn.cursor() as cur:
        cur.adbc_ingest("births", table, mode="create")
        conn.commit()


def dlt_run(url: str, root: Path) -> dict[str, Any]:
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    import dlt
    from dlt.sources.sql_database import sql_table

    source = sql_table(
        credentials=url.replace("postgresql://", "postgresql+psycopg://"),
        table="births",
        backend="connectorx",
        backend_kwargs={"conn": url},
    )
    pipeline = dlt.pipeline(
        pipeline_name="bench_births",
        destination=dlt.destinations.duckdb(str(root / "dlt.duckdb")),
        dataset_name="bench",
        pipelines_dir=str(root / "dlt"),
    )
    started = time.perf_counter()
    pipeline.run(source)
    seconds = time.perf_counter() - started
    import duckdb

    with duckdb.connect(str(root / "dlt.duckdb"), read_only=True) as con:
        rows = con.execute("SELECT count(*) FROM bench.births").fetchall()[0][0]
    return {"rows": rows, "seconds": round(seconds, 3), "rows_per_s": round(rows / seconds)}


# --- memory ------------------------------------------------------------------------------------
CHILD = """
import sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[2])
from hub.settings import Settings
from hub.ingest.runner import run_ingest
root = Path(sys.argv[1])
s = Settings(data_dir=root / "data", catalog_dir=root / "catalog", schemas_dir=Path(sys.argv[2]) / "schemas")
t = time.perf_counter()
r = run_ingest(s, "civil_status.births")
assert r.ok, r.error
# VmHWM, not ru_maxrss: Linux keeps ru_maxrss across exec, so it held the peak of the forked copy
# of this (big) benchmark process rather than the run's own
hwm = next(line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(r.rows_loaded, time.perf_counter() - t, hwm)
"""


def memory_run(root: Path) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(root), str(ROOT)], capture_output=True, text=True, check=True
    )
    rows, seconds, peak_kb = proc.stdout.split()[-3:]
    return {
        "rows": int(rows),
        "seconds": round(float(seconds), 3),
        "rows_per_s": round(int(rows) / float(seconds)),
        "peak_rss_mb": round(int(peak_kb) / 1024, 1),
    }


# --- main --------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--memory-rows", type=int, default=10_000_000)
    parser.add_argument(
        "--skip", nargs="*", default=[], choices=["postgres", "dlt", "parquet", "upsert", "memory"]
    )
    args = parser.parse_args()
    results: dict[str, Any] = {
        "rows": args.rows,
        "contract": "civil_status/births.v1",
        "cpus": os.cpu_count(),
    }
    base = base_births()
    with tempfile.TemporaryDirectory(prefix="hub-bench-") as tmp:
        root = Path(tmp)
        # a small unmeasured run first: the process's one-time imports (migrations, connectors,
        # publishing) were otherwise charged to whichever case came first
        warm = root / "warm.parquet"
        write_parquet(base, warm, 20_000)
        hub_run(hub_env(root / "warm", {"connector": "files", "config": {"path": str(warm)}}))
        if "postgres" not in args.skip or "dlt" not in args.skip:
            url = pg_database()
            try:
                pg_load(url, births(base, args.rows))
                if "postgres" not in args.skip:
                    settings = hub_env(
                        root / "pg", {"connector": "sql", "config": {"url": url, "table": "births"}}
                    )
                    results["postgres_to_snapshot"] = hub_run(settings)
                if "dlt" not in args.skip:
                    results["dlt_sql_database_connectorx_to_duckdb"] = dlt_run(url, root)
            finally:
                pg_drop(url)
        parquet = root / "births.parquet"
        write_parquet(base, parquet, args.rows)
        if "parquet" not in args.skip:
            settings = hub_env(root / "pq", {"connector": "files", "config": {"path": str(parquet)}})
            results["parquet_to_snapshot"] = hub_run(settings)
        if "upsert" not in args.skip:
            source = root / "upsert.parquet"
            write_parquet(base, source, args.rows)
            settings = hub_env(
                root / "up", {"connector": "files", "config": {"path": str(source)}}, write_mode="upsert"
            )
            results["upsert_initial_load"] = hub_run(settings)
            table = pq.read_table(source)
            changed = pa.array(np.arange(table.num_rows) % 100 == 0)  # 1% of the rows
            weights = pc.if_else(changed, pa.scalar(999, pa.int64()), table.column("birth_weight_grams"))
            table = table.set_column(
                table.schema.get_field_index("birth_weight_grams"),
                table.schema.field("birth_weight_grams"),
                weights,
            )
            pq.write_table(table, source, compression="zstd")
            del table
            results["upsert_1pct_changed"] = hub_run(settings)
        if "memory" not in args.skip:
            # one 10M-row file, and the same rows as ten files of 1M (read one after the other)
            parts = root / "parts"
            parts.mkdir()
            for i in range(10):
                n = args.memory_rows // 10
                with pq.ParquetWriter(parts / f"part-{i}.parquet", base.schema, compression="zstd") as w:
                    w.write_table(births(base, n, i * n), row_group_size=131_072)
            glob_source = {"connector": "files", "config": {"path": str(parts / "*.parquet")}}
            hub_env(root / "mem10", glob_source, migrate=False)
            results["memory_10m_ten_files"] = memory_run(root / "mem10")
            big = root / "big.parquet"
            write_parquet(base, big, args.memory_rows)
            hub_env(root / "mem", {"connector": "files", "config": {"path": str(big)}}, migrate=False)
            results["memory_10m"] = memory_run(root / "mem")
    if args.skip and RESULTS.exists():  # a partial run updates the cases it measured
        results = {**json.loads(RESULTS.read_text()), **results}
    report(results)


def report(results: dict[str, Any]) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    lines = [f"{'case':<40} {'rows':>11} {'seconds':>9} {'rows/s':>11}  notes"]
    for name, value in results.items():
        if not isinstance(value, dict):
            continue
        notes = ", ".join(f"{k} {v}" for k, v in value.get("timings", {}).items())
        if "peak_rss_mb" in value:
            notes = f"peak RSS {value['peak_rss_mb']} MB"
        if value.get("changed"):
            notes += f"; changed {value['changed']}"
        lines.append(
            f"{name:<40} {value['rows']:>11,} {value['seconds']:>9.2f} {value['rows_per_s']:>11,}  {notes}"
        )
    print("\n".join(lines))
    print(f"\nwritten to {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
