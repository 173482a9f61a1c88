"""Connector benchmark: rows/s of each connector at province scale, validation included.

Prints a table and writes ``bench/results/connectors.json``. Sources are the demo province's systems
(``hub demo generate --scale province``, PostgreSQL and MariaDB copies of the land and education
databases), read with the catalog's own source configs:

- REST over loopback: births from the simulated civil-status service (``hub demo civil-status-service``,
  cursor pages of 1,000), and the same records from a plain JSON server (``connectors.rest.fakeapi``,
  pages of 5,000 served from memory, like static files) that shows the connector's own speed;
- XML: the civil-status export of deaths (``deaths/death``), and the births written as XML;
- Excel: the education workbooks (sheet ``enrolment``); CSV: the digital addresses;
- PostgreSQL: land parcels (``sql``, ADBC); MariaDB: enrolment (``sql``, connectorx).

For each source, in two passes: the time to read every batch (``read``), then to read and validate
every batch against the contract (``read+validate``), in rows per second. Needs PostgreSQL on
127.0.0.1:5432 (postgres, trust) and MariaDB on 127.0.0.1:3306 (root, no password).

    .venv/bin/python bench/connectors.py [--data DIR] [--no-generate]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hub.settings import Settings  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "connectors.json"
PG = os.environ.get("HUB_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432")
MARIADB = os.environ.get("HUB_BENCH_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306")
API_KEY = "bench-key"
ONLY: list[str] = []  # --only: label words


def wanted(label: str) -> bool:
    return not ONLY or any(w in label.lower() for w in ONLY)


def sh(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "hub.cli.main", *args], check=True, cwd=ROOT)


def ensure_db(admin: str, name: str) -> str:
    import sqlalchemy as sa

    engine = sa.create_engine(f"{admin}/test", isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name}"))
        conn.execute(sa.text(f"CREATE DATABASE {name}"))
    engine.dispose()
    return f"{admin}/{name}"


def spec_of(key: str) -> Any:
    from hub.catalog.loader import load_catalog

    _orgs, datasets = load_catalog(ROOT / "catalog")
    return next(d.spec for d in datasets if d.spec.id == key)


def measure(
    settings: Settings, label: str, connector: str, key: str, source: dict[str, Any]
) -> dict[str, Any]:
    """Read every batch of ``source``, validate each against ``key``'s contract; time both."""
    if not wanted(label):
        return {}
    from hub.catalog.spec import SourceSpec
    from hub.contracts import Validator, load_contract
    from hub.ingest.registry import build_connector

    spec = spec_of(key)
    validator = Validator(load_contract(spec.contract, settings.schemas_dir))
    built = build_connector(settings, SourceSpec(**source), dataset_spec=spec)
    stream = built.stream(source.get("stream")).name
    # Two passes: read alone, then read and validate. (Connectors that read ahead in a thread, like
    # rest and xml, overlap reading with validation, so "total minus time in validate" would not be
    # the reading time.)
    started = time.perf_counter()
    rows = sum(batch.num_rows for batch in built.read(stream, None))
    read_s = time.perf_counter() - started
    validated = invalid = 0
    started = time.perf_counter()
    for batch in built.read(stream, None):
        validated += batch.num_rows
        invalid += validator.validate(batch).n_invalid
    total = time.perf_counter() - started
    assert validated == rows, f"{label}: {rows} rows read, then {validated}"
    result = {
        "source": label, "connector": connector, "dataset": key, "rows": rows, "invalid": invalid,
        "read_seconds": round(read_s, 3), "total_seconds": round(total, 3),
        "read_rows_per_s": round(rows / read_s) if read_s else None,
        "rows_per_s": round(rows / total) if total else None,
    }  # fmt: skip
    print(f"  {label}: {rows:,} rows, {result['rows_per_s']:,} rows/s with validation", flush=True)
    return result


def births_records(demo: Path) -> list[dict[str, Any]]:
    with sqlite3.connect(demo / "civil_status.db") as conn:
        conn.row_factory = sqlite3.Row
        cols = [r[1] for r in conn.execute("PRAGMA table_info(births)")]
        return [dict(zip(cols, r, strict=True)) for r in conn.execute("SELECT * FROM births")]


def write_births_xml(records: list[dict[str, Any]], path: Path) -> dict[str, str]:
    fields = [k for k in records[0] if k != "registration_number"]
    with path.open("w", encoding="utf-8") as f:
        f.write('<?xml version="1.0" encoding="UTF-8"?>\n<births>\n')
        for r in records:
            inner = "".join(f"<{k}>{escape(str(r[k]))}</{k}>" for k in fields if r[k] is not None)
            number = escape(str(r["registration_number"]))
            f.write(f'  <birth registration_number="{number}">{inner}</birth>\n')
        f.write("</births>\n")
    return {"registration_number": "@registration_number", **{k: k for k in fields}}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=Path("/tmp/hub-bench-connectors"))
    parser.add_argument("--no-generate", action="store_true", help="Reuse the data of an earlier run.")
    parser.add_argument("--scale", default="province", help="province (the figures) or small (a smoke test).")
    parser.add_argument(
        "--only", default="", help="Comma-separated words; measure only sources whose label contains one."
    )
    args = parser.parse_args()
    data: Path = args.data.resolve()
    demo = data / "demo"
    settings = Settings(data_dir=data)
    settings.ensure_dirs()
    land_url = f"{PG}/hubbench_land"
    edu_url = f"{MARIADB}/hubbench_edu"
    if not args.no_generate:
        land_url = ensure_db(PG, "hubbench_land")
        edu_url = ensure_db(MARIADB, "hubbench_edu")
        started = time.perf_counter()
        sh("demo", "generate", "--scale", args.scale, "--out", str(demo), "--land-url", land_url,
           "--education-url", edu_url)  # fmt: skip
        print(f"generated the province in {time.perf_counter() - started:.0f} s", flush=True)

    from connectors.rest.fakeapi import FakeApi
    from hub.demo.run import civil_status_service
    from hub.testing.live import free_port

    results: list[dict[str, Any]] = []
    ONLY[:] = [w.strip().lower() for w in args.only.split(",") if w.strip()]
    births = spec_of("civil_status.births").source
    assert births is not None
    rest_config = json.loads(json.dumps(births.config))
    os.environ["HUB_DEMO_CIVIL_STATUS_API_KEY"] = API_KEY
    with (
        civil_status_service(demo / "civil_status.db", API_KEY, free_port())
        if wanted("REST, civil-status service")
        else contextlib.nullcontext("") as url
    ):
        rest_config["base_url"] = url
        results.append(measure(settings, "REST, civil-status service (loopback, 1,000/page)", "rest",
                               "civil_status.births", {"connector": "rest", "stream": "births",
                                                       "config": rest_config}))  # fmt: skip
    records = births_records(demo)
    with FakeApi(records, api_key=API_KEY, cache_pages=True) as api:
        import httpx  # warm the server's page cache: measure the connector, not the server's JSON encoder

        with httpx.Client(headers={"X-API-Key": API_KEY}) as warm:
            for offset in range(0, len(records) + 5000, 5000):
                warm.get(f"{api.url}/items", params={"limit": 5000, "offset": offset})
        plain = {**rest_config, "base_url": api.url, "pagination": {"type": "offset", "page_size": 5000}}
        plain["streams"] = [{**rest_config["streams"][0], "path": "/items"}]
        results.append(measure(settings, "REST, plain JSON server (loopback, 5,000/page)", "rest",
                               "civil_status.births", {"connector": "rest", "stream": "births",
                                                       "config": plain}))  # fmt: skip
    deaths = spec_of("civil_status.deaths").source
    assert deaths is not None
    results.append(measure(settings, "XML, civil-status export (deaths)", "xml", "civil_status.deaths",
                           deaths.model_dump()))  # fmt: skip
    xml_path = data / "births.xml"
    fields = write_births_xml(records, xml_path)
    results.append(measure(settings, "XML, births export", "xml", "civil_status.births",
                           {"connector": "xml", "config": {"path": str(xml_path), "record": "birth",
                                                           "fields": fields}}))  # fmt: skip
    enrolment = spec_of("education.enrolment").source
    addresses = spec_of("addresses.digital_addresses").source
    parcels = spec_of("land.parcels").source
    assert enrolment is not None
    assert addresses is not None
    assert parcels is not None
    results.append(measure(settings, "Excel workbooks (enrolment)", "files", "education.enrolment",
                           enrolment.model_dump()))  # fmt: skip
    results.append(measure(settings, "CSV (digital addresses)", "files", "addresses.digital_addresses",
                           addresses.model_dump()))  # fmt: skip
    pg = {**parcels.config, "url": land_url.replace("+psycopg", "")}
    results.append(measure(settings, "PostgreSQL (land parcels)", "sql", "land.parcels",
                           {"connector": "sql", "config": pg}))  # fmt: skip
    maria = {"url": edu_url, "table": "enrolment", "stream": "enrolment"}
    results.append(measure(settings, "MariaDB (enrolment)", "sql", "education.enrolment",
                           {"connector": "sql", "config": maria}))  # fmt: skip

    from rich.console import Console
    from rich.table import Table

    table = Table(title="Connectors at province scale (rows/s; validation against the contract included)")
    for col in ("source", "connector", "rows", "read rows/s", "read+validate rows/s", "invalid"):
        table.add_column(col, justify="left" if col in ("source", "connector") else "right")
    results = [r for r in results if r]
    for r in results:
        table.add_row(r["source"], r["connector"], f"{r['rows']:,}", f"{r['read_rows_per_s']:,}",
                      f"{r['rows_per_s']:,}", f"{r['invalid']:,}")  # fmt: skip
    Console(width=140).print(table)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    about = {"results": results, "machine": os.uname().nodename, "cpus": os.cpu_count()}
    RESULTS.write_text(json.dumps(about, indent=2, ensure_ascii=False))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
