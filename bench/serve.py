"""Benchmark of the web server against datasette, on the same 1,000,000-row table.

Both servers run as their own processes on 127.0.0.1; load comes from a second process (``wrk``,
Debian package, bounded by time and a request count; ``curl`` for the CSV stream). Scenarios:

1. datastore_search with a filter returning 100 rows, 8 concurrent clients
   (datasette: ``/db/table.json?col=value&_size=100``);
2. a GROUP BY count through datastore_search_sql (datasette: ``/db.json?sql=``), 8 clients;
3. the full table as CSV (datasette: ``/db/table.csv?_stream=on&_size=max``), with the hub's server
   memory sampled during the download; the hub's first download streams from the snapshot, later
   ones come from its per-snapshot cache;
4. package_search with 10,000 datasets in the catalogue (hub only), 1 and 8 clients.

Settings of the run: the hub's per-IP rate limit is off (all load comes from 127.0.0.1), and datasette's
``sql_time_limit_ms`` is raised to 120 s so that its queries on 1,000,000 rows finish instead of failing.

Run: ``.venv/bin/python bench/serve.py [--rows 1000000] [--seconds 10] [--workers 1]``.
Prints a table and writes bench/results/serve.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pyarrow as pa

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
sys.path.insert(0, str(ROOT))

LUA = """
local paths = {%s}
local i = 0
local n = 0
local limit = %d
request = function()
  i = i + 1
  return wrk.format("GET", paths[(i %% #paths) + 1])
end
response = function(status, headers, body)
  n = n + 1
  if n >= limit then wrk.thread:stop() end
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('JSON{"requests": %%d, "duration_us": %%d, "errors": %%d, "non2xx": %%d, ' ..
    '"p50_us": %%d, "p90_us": %%d, "p99_us": %%d, "max_us": %%d, "bytes": %%d}\\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, summary.bytes))
end
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer within {timeout} s")


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=120) as r:
        return json.loads(r.read())


# --- data ---------------------------------------------------------------------------------------


def make_rows(n: int, wards: int) -> pa.Table:
    rng = np.random.default_rng(42)
    ward = rng.integers(0, wards, n)
    first = np.array(
        ["An", "Bình", "Chi", "Dũng", "Đạt", "Giang", "Hà", "Hùng", "Lan", "Minh", "Nga", "Phúc"]
    )
    last = np.array(["Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Huỳnh", "Phan", "Vũ", "Võ", "Đặng"])
    names = np.char.add(
        np.char.add(last[rng.integers(0, len(last), n)], " "), first[rng.integers(0, len(first), n)]
    )
    days = rng.integers(0, 365 * 30, n).astype("int32")
    return pa.table(
        {
            "registration_id": pa.array(np.arange(1, n + 1, dtype=np.int64)),
            "ward_code": pa.array(np.char.add("W", np.char.zfill(ward.astype(str), 5))),
            "district": pa.array(np.char.add("D", np.char.zfill((ward % 20).astype(str), 2))),
            "full_name": pa.array(names),
            "sex": pa.array(np.where(rng.random(n) < 0.51, "nam", "nữ")),
            "birth_date": pa.array(days, pa.int32()).cast(pa.date32()),
            "weight_grams": pa.array(rng.integers(1800, 4500, n), pa.int32()),
            "income": pa.array(np.round(rng.random(n) * 1e7, 2)),
        }
    )


def load_warehouse(settings: Any, table: pa.Table) -> None:
    from hub.warehouse.tables import Warehouse
    from hub.warehouse.writer import FileSink

    wh = Warehouse(settings)
    t = wh.ensure_table("bench.people", table.schema)
    sink = FileSink(t, wh.data_dir(t), "bench", target_rows=len(table) + 1)
    for batch in table.to_batches(settings.batch_rows):  # row groups as the ingest runner writes them
        sink.write(batch)
    wh.commit(t, add=sink.close())


def write_catalog(folder: Path) -> None:
    org = folder / "so-bench"
    org.mkdir(parents=True)
    (org / "organization.yaml").write_text("name: so-bench\ntitle: {vi: Sở Benchmark}\n", encoding="utf-8")
    (org / "people.yaml").write_text(
        "id: bench.people\ntitle: {vi: Người dân (benchmark)}\nsharing: open\n"
        "contract: civil_status/births.v1\ntags: [benchmark]\n",
        encoding="utf-8",
    )


def write_schemas(folder: Path) -> None:
    """The project's contracts, with births' direct and sensitive classes taken off: the hub refuses to
    open a dataset whose contract has personal data (issue 11), and this benchmark measures serving an
    open table of the births' shape (same columns, types and rows), as datasette serves it."""
    shutil.copytree(ROOT / "schemas", folder)
    path = folder / "civil_status" / "births.v1.schema.json"
    contract = json.loads(path.read_text(encoding="utf-8"))
    for field in contract["properties"].values():
        if field.get("x-personal") in ("direct", "sensitive"):
            del field["x-personal"]
    path.write_text(json.dumps(contract, ensure_ascii=False, indent=2), encoding="utf-8")


def load_sqlite(path: Path, table: pa.Table) -> None:
    con = sqlite3.connect(path)
    cols = table.column_names
    con.execute(f"CREATE TABLE people ({', '.join(cols)})")
    for batch in table.to_batches(100_000):
        pylists = [c.to_pylist() for c in batch.columns]
        rows = [
            tuple(str(v) if hasattr(v, "isoformat") else v for v in r) for r in zip(*pylists, strict=True)
        ]
        con.executemany(f"INSERT INTO people VALUES ({', '.join('?' * len(cols))})", rows)
    # the hub indexes the columns its filters use; datasette gets the same index on the filter column
    con.execute("CREATE INDEX people_ward_code ON people (ward_code)")
    con.commit()
    con.close()


def add_datasets(settings: Any, n: int) -> None:
    """``n`` datasets straight into the metadata database (tags, groups, a resource each)."""
    from sqlalchemy import insert, select

    from hub.catalog.ckan_models import DatasetGroup, DatasetTag, Group, Resource, Tag
    from hub.catalog.models import Dataset, Organization
    from hub.db import session_scope, utcnow

    words = [
        "đất đai",
        "hộ tịch",
        "giáo dục",
        "y tế",
        "giao thông",
        "dân số",
        "môi trường",
        "nông nghiệp",
        "du lịch",
        "tài chính",
    ]
    with session_scope(settings) as s:
        org_ids = []
        for i in range(20):
            o = Organization(name=f"org-{i:02d}", title=f"Sở số {i}", extras={})
            s.add(o)
            s.flush()
            org_ids.append(o.id)
        tags = []
        for w in words:
            t = s.scalar(select(Tag).where(Tag.name == w)) or Tag(name=w)
            s.add(t)
            s.flush()
            tags.append(t.id)
        groups = []
        for i in range(8):
            g = Group(name=f"linh-vuc-{i}", title=f"Lĩnh vực {i}", extras={})
            s.add(g)
            s.flush()
            groups.append(g.id)
        now = utcnow()
        ds_rows, tag_rows, group_rows, res_rows = [], [], [], []
        for i in range(n):
            did = str(uuid.uuid4())
            w1, w2 = words[i % 10], words[(i * 7) % 10]
            ds_rows.append(
                {
                    "id": did,
                    "key": f"b.d{i}",
                    "name": f"bo-du-lieu-{i:05d}",
                    "title": f"Bộ dữ liệu {w1} {w2} số {i}",
                    "notes": f"Mô tả {w2} của tỉnh, năm {2000 + i % 25}",
                    "owner_org_id": org_ids[i % 20],
                    "sharing": "open" if i % 10 else "shared",
                    "license_id": "cc-by-4.0",
                    "spec": {},
                    "state": "active",
                    "created": now,
                    "modified": now,
                }
            )
            tag_rows += [
                {"dataset_id": did, "tag_id": tags[i % 10]},
                {"dataset_id": did, "tag_id": tags[(i * 7 + 3) % 10]},
            ]
            group_rows.append({"dataset_id": did, "group_id": groups[i % 8]})
            res_rows.append(
                {
                    "id": str(uuid.uuid4()),
                    "dataset_id": did,
                    "kind": "link",
                    "position": 0,
                    "state": "active",
                    "name": "Tệp",
                    "url": f"https://example.org/{i}.csv",
                    "format": "CSV" if i % 3 else "JSON",
                    "extras": {},
                    "created": now,
                    "metadata_modified": now,
                }
            )
        for model, rows in (
            (Dataset, ds_rows),
            (DatasetTag, tag_rows),
            (DatasetGroup, group_rows),
            (Resource, res_rows),
        ):
            for k in range(0, len(rows), 2000):
                s.execute(insert(model), rows[k : k + 2000])


# --- load ---------------------------------------------------------------------------------------


def wrk(base: str, paths: list[str], *, seconds: int, connections: int, max_requests: int) -> dict[str, Any]:
    threads = min(2, connections)
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(LUA % (", ".join(json.dumps(p) for p in paths), max(1, max_requests // threads)))
        script = f.name
    try:
        out = subprocess.run(
            [
                "wrk",
                f"-t{threads}",
                f"-c{connections}",
                f"-d{seconds}s",
                "--timeout",
                "30s",
                "-s",
                script,
                base,
            ],
            capture_output=True,
            text=True,
            timeout=seconds + 60,
            check=True,
        ).stdout
    finally:
        os.unlink(script)
    line = next(x for x in out.splitlines() if x.startswith("JSON"))
    res = json.loads(line[4:])
    res["rps"] = res["requests"] / (res["duration_us"] / 1e6)
    return res


def tree_rss(pid: int) -> int:
    try:
        p = psutil.Process(pid)
        procs = [p, *p.children(recursive=True)]
        return sum(x.memory_info().rss for x in procs if x.is_running())
    except psutil.NoSuchProcess:
        return 0


def settle(pid: int, timeout: float = 60) -> None:
    """Wait until the hub's process tree stops growing: its query workers start beside the first
    requests, and their start-up is not the memory a download takes."""
    start = time.time()
    last = -1
    while time.time() < start + timeout:
        time.sleep(1.0)
        now = tree_rss(pid)
        workers = psutil.Process(pid).children(recursive=True)
        if abs(now - last) < 2_000_000 and (workers or time.time() > start + 15):
            return
        last = now


def download(url: str, server_pid: int | None) -> dict[str, Any]:
    peak = [0]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set() and server_pid:
            peak[0] = max(peak[0], tree_rss(server_pid))
            time.sleep(0.05)

    before = tree_rss(server_pid) if server_pid else 0
    th = threading.Thread(target=sample, daemon=True)
    th.start()
    out = subprocess.run(
        [
            "curl",
            "-s",
            "-o",
            "/dev/null",
            "-H",
            "Accept-Encoding: identity",
            "-w",
            "%{size_download} %{time_total} %{http_code}",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=900,
        check=True,
    ).stdout.split()
    stop.set()
    th.join()
    size, secs, code = int(out[0]), float(out[1]), out[2]
    return {
        "bytes": size,
        "seconds": secs,
        "mb_s": size / secs / 1e6,
        "status": code,
        "peak_rss_mb": peak[0] / 1e6,
        "rss_before_mb": before / 1e6,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--seconds", type=int, default=10, help="Duration bound of each load run.")
    ap.add_argument("--max-requests", type=int, default=20_000, help="Request bound of each load run.")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--datasets", type=int, default=10_000)
    ap.add_argument(
        "--only",
        choices=("search", "groupby", "csv", "package_search"),
        action="append",
        help="Run only these scenarios (repeatable); default: all.",
    )
    ap.add_argument(
        "--hold",
        type=int,
        default=0,
        help="Seconds to wait before the datastore_search load (time to attach a profiler).",
    )
    args = ap.parse_args()
    only = set(args.only or ("search", "groupby", "csv", "package_search"))
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed: apt-get install wrk")

    from hub.settings import Settings

    work = Path(tempfile.mkdtemp(prefix="hub-bench-serve-"))
    procs: list[subprocess.Popen[bytes]] = []
    results: dict[str, Any] = {"rows": args.rows, "workers": args.workers, "seconds": args.seconds}
    try:
        port, dport = free_port(), free_port()
        env = {
            **os.environ,
            "HUB_DATA_DIR": str(work / "data"),
            "HUB_CATALOG_DIR": str(work / "catalog"),
            "HUB_SCHEMAS_DIR": str(work / "schemas"),
            "HUB_SITE_URL": f"http://127.0.0.1:{port}",
            # all load comes from one address: the per-IP limit would answer 429s
            "HUB_RATE_LIMIT_ANONYMOUS_PER_MINUTE": "0",
        }
        settings = Settings(
            data_dir=work / "data",
            catalog_dir=work / "catalog",
            schemas_dir=work / "schemas",
            site_url=env["HUB_SITE_URL"],
        )
        settings.ensure_dirs()
        write_schemas(work / "schemas")
        t0 = time.time()
        table = make_rows(args.rows, wards=max(1, args.rows // 100))
        write_catalog(settings.catalog_dir)
        load_warehouse(settings, table)
        load_sqlite(work / "bench.db", table)
        results["setup_seconds"] = round(time.time() - t0, 1)
        print(
            f"data: {args.rows:,} rows in the warehouse and in SQLite ({results['setup_seconds']} s)",
            flush=True,
        )

        hub = subprocess.Popen(
            [
                str(BIN / "hub"),
                "serve",
                "--port",
                str(port),
                "--workers",
                str(args.workers),
                "--log-level",
                "warning",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
        )
        procs.append(hub)
        ds = subprocess.Popen(
            [
                str(BIN / "datasette"),
                "serve",
                str(work / "bench.db"),
                "--port",
                str(dport),
                "--setting",
                "suggest_facets",
                "off",
                "--setting",
                "sql_time_limit_ms",
                "120000",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        procs.append(ds)
        hub_base, ds_base = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{dport}"
        wait_http(f"{hub_base}/healthz")
        settle(hub.pid)
        wait_http(f"{ds_base}/-/versions.json")
        pkg = get_json(f"{hub_base}/api/3/action/package_show?id=bench-people")["result"]
        rid = pkg["resources"][0]["id"]

        # 3. the full table as CSV (first: the download path in a server whose DataStore cache is empty)
        csv_url = pkg["resources"][0]["url"]
        if "csv" in only:
            results["csv_hub_first"] = download(csv_url, hub.pid)
            results["csv_hub_cached"] = download(csv_url, hub.pid)
            results["csv_datasette"] = download(f"{ds_base}/bench/people.csv?_stream=on&_size=max", ds.pid)
            print(
                f"csv: hub {results['csv_hub_first']['mb_s']:.0f} MB/s (first), "
                f"{results['csv_hub_cached']['mb_s']:.0f} MB/s (cached); "
                f"datasette {results['csv_datasette']['mb_s']:.1f} MB/s",
                flush=True,
            )

        if "search" in only:
            # 1. filtered datastore_search, 100 rows
            n_wards = max(1, args.rows // 100)
            wards = [f"W{w:05d}" for w in range(0, n_wards, max(1, n_wards // 1000))][:1000]
            hub_paths = [
                "/api/3/action/datastore_search?"
                + urllib.parse.urlencode(
                    {"resource_id": rid, "filters": json.dumps({"ward_code": w}), "limit": 100}
                )
                for w in wards
            ]
            ds_paths = [f"/bench/people.json?ward_code={w}&_size=100" for w in wards]
            sample = get_json(hub_base + hub_paths[0])["result"]
            dsample = get_json(ds_base + ds_paths[0])
            results["filter_rows"] = {"hub": len(sample["records"]), "datasette": len(dsample["rows"])}
            for name, base, paths in (("hub", hub_base, hub_paths), ("datasette", ds_base, ds_paths)):
                wrk(base, paths[:5], seconds=3, connections=2, max_requests=300)  # warm up
                if name == "hub" and args.hold:
                    print(f"hub pid {hub.pid}: waiting {args.hold} s", flush=True)
                    time.sleep(args.hold)
                time.sleep(
                    5 if name == "hub" else 0
                )  # the hub copies the snapshot and indexes in the background
                results[f"search_{name}"] = wrk(
                    base, paths, seconds=args.seconds, connections=8, max_requests=args.max_requests
                )
                print(f"datastore_search {name}: {results[f'search_{name}']['rps']:.0f} req/s", flush=True)

        if "groupby" in only:
            # 2. GROUP BY through SQL
            sql_hub = f'SELECT district, count(*) AS n FROM "{rid}" GROUP BY district ORDER BY district'
            sql_ds = "SELECT district, count(*) AS n FROM people GROUP BY district ORDER BY district"
            group_paths = {
                "hub": ["/api/3/action/datastore_search_sql?" + urllib.parse.urlencode({"sql": sql_hub})],
                "datasette": ["/bench.json?" + urllib.parse.urlencode({"sql": sql_ds})],
            }
            hub_groups = get_json(hub_base + group_paths["hub"][0])["result"]["records"]
            results["groups"] = len(hub_groups)
            for name, base in (("hub", hub_base), ("datasette", ds_base)):
                results[f"groupby_{name}"] = wrk(
                    base,
                    group_paths[name],
                    seconds=args.seconds,
                    connections=8,
                    max_requests=args.max_requests,
                )
                print(f"group by {name}: {results[f'groupby_{name}']['rps']:.1f} req/s", flush=True)

        if "package_search" in only:
            # 4. package_search with 10,000 datasets
            add_datasets(settings, args.datasets)
            count = get_json(f"{hub_base}/api/3/action/package_search?rows=0")["result"]["count"]
            results["catalogue_datasets"] = args.datasets + 1  # and the benchmark's own table
            results["visible_datasets"] = count  # to the anonymous client: one in ten is shared, not open
            search_paths = [
                "/api/3/action/package_search?q=" + urllib.parse.quote("đất đai"),
                "/api/3/action/package_search?q=dan+so&facet.field="
                + urllib.parse.quote('["tags","organization"]'),
                "/api/3/action/package_search?fq="
                + urllib.parse.quote('tags:"giáo dục" organization:org-03'),
                "/api/3/action/package_search?rows=100&sort=id+asc&fq="
                + urllib.parse.quote("metadata_modified:[2020-01-01T00:00:00Z TO *]"),
                "/api/3/action/package_search?q=y+te&fq=res_format:CSV&sort=metadata_modified+desc",
            ]
            wrk(hub_base, search_paths, seconds=2, connections=1, max_requests=100)  # warm up (index build)
            results["package_search_1"] = wrk(
                hub_base,
                search_paths,
                seconds=args.seconds,
                connections=1,
                max_requests=args.max_requests,
            )
            results["package_search_8"] = wrk(
                hub_base,
                search_paths,
                seconds=args.seconds,
                connections=8,
                max_requests=args.max_requests,
            )
        results["hub_rss_end_mb"] = tree_rss(hub.pid) / 1e6  # with the DataStore cache and search index
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(work, ignore_errors=True)
    report(results)


def report(r: dict[str, Any]) -> None:
    rows: list[tuple[str, str, str, str, str]] = []
    if "search_hub" in r:
        sh, sd = r["search_hub"], r["search_datasette"]
        rows.append(
            (
                "datastore_search, filter -> 100 rows, 8 clients",
                f"{sh['rps']:.0f} req/s, p99 {sh['p99_us'] / 1000:.1f} ms",
                f"{sd['rps']:.0f} req/s, p99 {sd['p99_us'] / 1000:.1f} ms",
                f"{sh['rps'] / sd['rps']:.1f}x",
                ">= 2x, p99 <=",
            )
        )
    if "groupby_hub" in r:
        gh, gd = r["groupby_hub"], r["groupby_datasette"]
        rows.append(
            (
                "GROUP BY count via SQL, 8 clients",
                f"{gh['rps']:.0f} req/s",
                f"{gd['rps']:.1f} req/s",
                f"{gh['rps'] / gd['rps']:.1f}x",
                ">= 10x",
            )
        )
    if "csv_hub_first" in r:
        ch, cc, cd = r["csv_hub_first"], r["csv_hub_cached"], r["csv_datasette"]
        rows += [
            (
                "full table as CSV (first, streamed)",
                f"{ch['mb_s']:.0f} MB/s, RSS {ch['rss_before_mb']:.0f} -> {ch['peak_rss_mb']:.0f} MB",
                f"{cd['mb_s']:.1f} MB/s",
                f"{ch['mb_s'] / cd['mb_s']:.0f}x",
                ">= 20x, < 300 MB",
            ),
            (
                "full table as CSV (cached snapshot)",
                f"{cc['mb_s']:.0f} MB/s, RSS {cc['rss_before_mb']:.0f} -> {cc['peak_rss_mb']:.0f} MB",
                "",
                f"{cc['mb_s'] / cd['mb_s']:.0f}x",
                "",
            ),
        ]
    if "package_search_1" in r:
        p1, p8 = r["package_search_1"], r["package_search_8"]
        rows += [
            (
                f"package_search, {r['catalogue_datasets']:,} datasets "
                f"({r.get('visible_datasets', 0):,} open), 1 client",
                f"{p1['rps']:.0f} req/s, p50 {p1['p50_us'] / 1000:.1f} ms, p99 {p1['p99_us'] / 1000:.1f} ms",
                "",
                "",
                "p99 < 25 ms",
            ),
            (
                "package_search, 8 clients",
                f"{p8['rps']:.0f} req/s, p99 {p8['p99_us'] / 1000:.1f} ms",
                "",
                "",
                "",
            ),
        ]
    widths = [max(len(str(row[i])) for row in rows) for i in range(5)]
    header = ("scenario", "hub", "datasette", "ratio", "target")
    widths = [max(w, len(h)) for w, h in zip(widths, header, strict=True)]
    print()
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))
    errors = sum(r[k]["errors"] + r[k]["non2xx"] for k in r if isinstance(r[k], dict) and "non2xx" in r[k])
    print(
        f"\nrows: {r['rows']:,}; hub workers: {r['workers']}; failed requests: {errors}; "
        f"filter returned {r.get('filter_rows')}"
    )
    full = {"search_hub", "groupby_hub", "csv_hub_first", "package_search_1"} <= set(r)
    # a partial run (--only) does not overwrite the full results
    out = ROOT / "bench" / "results" / ("serve.json" if full else "serve-partial.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(r, indent=2), encoding="utf-8")
    print(f"hub RSS at the end (DataStore cache, search index loaded): {r['hub_rss_end_mb']:.0f} MB")
    print(f"written: {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
