"""Benchmark of the analysts' doors on a 1,000,000-row births table, each against its peer in the same run.

The hub runs as its own process (``hub serve``, query workers included) on 127.0.0.1; the table is
``civil_status.births`` (internal to Sở Tư pháp), read with an access token of one of its clients
(scope ``warehouse:query``). Scenarios, one function each (``SCENARIOS``), each adding rows to the
results table:

1. ``full_table_arrow``: ``SELECT *`` over HTTP as an Arrow IPC stream, read by pyarrow, against
   DuckDB returning the same query to Arrow in this process from the same Parquet files
   (target: at least half DuckDB's rows/s);
2. ``full_table_csv``: the same result as CSV over HTTP, read by curl (target: at least 100 MB/s);
3. ``filtered_concurrent``: 8 concurrent clients (``wrk``) on a filtered query (about 100 rows of one
   ward), as Arrow: requests/s and latency percentiles;
4. ``memory_10m``: the server's memory (its process tree: the server and its query workers, psutil)
   while one client streams 10,000,000 rows as Arrow (target: flat, under 300 MB above idle).

Settings of the run: no rate limits (all load comes from one address and one client),
``HUB_QUERY_CLIENT_CONCURRENCY=16`` (the 8 clients are one OAuth client, and the requests wrk cuts at
the end of its warm-up run are still being closed when the measured run starts), and a query time
limit of 300 s for the 10-million-row stream. The PostgreSQL protocol's scenarios join this script
as their own functions.

Run: ``.venv/bin/python bench/query.py [--rows 1000000] [--seconds 10] [--only NAME ...]``.
Prints a table and writes bench/results/query.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pyarrow as pa

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
RESULTS = ROOT / "bench" / "results" / "query.json"
sys.path.insert(0, str(ROOT))

KEY = "civil_status.births"
ORG = "so-tu-phap"
TEN_MILLION = 10_000_000

LUA = """
local paths = {%s}
local i = 0
local n = 0
local limit = %d
request = function()
  i = i + 1
  return wrk.format("GET", paths[(i %% #paths) + 1], {["Authorization"] = "Bearer %s"})
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


@dataclass
class Bench:
    """What every scenario gets: the server, its token, the table's files, the options."""

    base: str
    token: str
    server_pid: int
    files: list[str]
    rows: int
    seconds: int
    max_requests: int
    results: dict[str, Any] = field(default_factory=dict)
    table: list[dict[str, Any]] = field(default_factory=list)

    def row(
        self, scenario: str, measure: str, hub: str, peer: str = "", target: str = "", met: Any = ""
    ) -> None:
        """One line of the printed table."""
        self.table.append(
            {"scenario": scenario, "measure": measure, "hub": hub, "peer": peer, "target": target, "met": met}
        )

    def url(self, sql: str, fmt: str) -> str:
        return f"{self.base}/api/v1/query?" + urllib.parse.urlencode({"sql": sql, "format": fmt})


# --- data -----------------------------------------------------------------------------------------


def births(n: int, wards: int) -> pa.Table:
    """``n`` birth registrations shaped like the births contract (civil_status/births.v1)."""
    rng = np.random.default_rng(14)
    surnames = np.array(["Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Huỳnh", "Phan", "Vũ", "Võ", "Đặng"])
    middles = np.array(["Văn", "Thị", "Minh", "Ngọc", "Hoàng", "Thanh", "Gia", "Bảo"])
    givens = np.array(
        ["An", "Bình", "Chi", "Dũng", "Đạt", "Giang", "Hà", "Hùng", "Lan", "Minh", "Nga", "Phúc"]
    )

    def names() -> np.ndarray:
        parts = (
            surnames[rng.integers(0, 10, n)],
            middles[rng.integers(0, 8, n)],
            givens[rng.integers(0, 12, n)],
        )
        return np.char.add(np.char.add(np.char.add(parts[0], " "), np.char.add(parts[1], " ")), parts[2])

    born = rng.integers(16_800, 20_300, n).astype("int32")  # 2016 .. 2025, days since 1970
    ward = rng.integers(0, wards, n)
    return pa.table(
        {
            "registration_number": pa.array(
                np.char.add("KS-92-2025-", np.char.zfill(np.arange(1, n + 1).astype(str), 6))
            ),
            "registration_date": pa.array(born + rng.integers(1, 60, n).astype("int32")).cast(pa.date32()),
            "ward_code": pa.array(np.char.zfill((31000 + ward).astype(str), 5)),
            "child_full_name": pa.array(names()),
            "child_sex": pa.array(np.where(rng.random(n) < 0.51, "Nam", "Nữ")),
            "child_birth_date": pa.array(born).cast(pa.date32()),
            "ethnicity": pa.array(np.where(rng.random(n) < 0.9, "Kinh", "Khmer")),
            "nationality": pa.array(np.full(n, "Việt Nam")),
            "birth_weight_grams": pa.array(rng.integers(1800, 4500, n), pa.int32()),
            "mother_full_name": pa.array(names()),
        }
    )


def setup(work: Path, rows: int, port: int) -> tuple[Any, str, list[str]]:
    """The catalogue, the table and a client's token; returns the settings, the token and the files."""
    import yaml

    from hub.auth import tokens, users
    from hub.catalog.ckan import sync_ckan
    from hub.catalog.loader import sync_catalog
    from hub.db import session_scope
    from hub.settings import Settings
    from hub.warehouse.tables import Warehouse
    from hub.warehouse.writer import FileSink

    settings = Settings(
        data_dir=work / "data", catalog_dir=work / "catalog", site_url=f"http://127.0.0.1:{port}"
    )
    settings.ensure_dirs()
    org = settings.catalog_dir / ORG
    org.mkdir(parents=True)
    (org / "organization.yaml").write_text(
        yaml.safe_dump({"name": ORG, "title": {"vi": "Sở Tư pháp", "en": "Department of Justice"}}),
        encoding="utf-8",
    )
    spec = {"id": KEY, "title": {"vi": "Đăng ký khai sinh", "en": "Births"}, "sharing": "internal",
            "contract": "civil_status/births.v1"}  # fmt: skip
    (org / "births.yaml").write_text(yaml.safe_dump(spec, allow_unicode=True), encoding="utf-8")
    with session_scope(settings) as s:
        sync_catalog(s, settings)
        sync_ckan(s, settings)
        client, _ = users.add_client(s, ORG, "bench", scope="warehouse:query", client_id="bench")
        token, _ = tokens.issue_access_token(
            settings, subject="bench", client_id="bench", scope="warehouse:query", org_id=client.org_id,
            ttl=24 * 3600, session=s,
        )  # fmt: skip
    table = births(rows, wards=max(1, rows // 100))
    wh = Warehouse(settings)
    t = wh.ensure_table(KEY, table.schema)
    sink = FileSink(t, wh.data_dir(t), "bench", target_rows=rows + 1)
    for batch in table.to_batches(settings.batch_rows):  # row groups as the ingest runner writes them
        sink.write(batch)
    wh.commit(t, add=sink.close())
    return settings, token, wh.data_files(KEY)


# --- measuring ------------------------------------------------------------------------------------


def tree_rss(pid: int) -> int:
    try:
        p = psutil.Process(pid)
        return sum(x.memory_info().rss for x in [p, *p.children(recursive=True)] if x.is_running())
    except psutil.NoSuchProcess:
        return 0


def curl(url: str, token: str, server_pid: int | None = None) -> dict[str, Any]:
    """Download ``url`` with curl (no compression), sampling the server's memory meanwhile."""
    peak = [0]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set() and server_pid:
            peak[0] = max(peak[0], tree_rss(server_pid))
            time.sleep(0.05)

    idle = tree_rss(server_pid) if server_pid else 0
    watcher = threading.Thread(target=sample, daemon=True)
    watcher.start()
    out = subprocess.run(
        ["curl", "-s", "-o", "/dev/null", "-H", "Accept-Encoding: identity",
         "-H", f"Authorization: Bearer {token}", "-w", "%{size_download} %{time_total} %{http_code}", url],
        capture_output=True, text=True, timeout=1800, check=True,
    ).stdout.split()  # fmt: skip
    stop.set()
    watcher.join()
    size, secs, code = int(out[0]), float(out[1]), out[2]
    if code != "200":
        raise RuntimeError(f"{url}: HTTP {code}")
    return {"bytes": size, "seconds": secs, "mb_s": size / secs / 1e6, "idle_rss_mb": idle / 1e6,
            "peak_rss_mb": peak[0] / 1e6, "above_idle_mb": (peak[0] - idle) / 1e6}  # fmt: skip


def wrk(b: Bench, paths: list[str], *, connections: int) -> dict[str, Any]:
    threads = min(2, connections)
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(LUA % (", ".join(json.dumps(p) for p in paths), max(1, b.max_requests // threads), b.token))
        script = f.name
    try:
        out = subprocess.run(
            ["wrk", f"-t{threads}", f"-c{connections}", f"-d{b.seconds}s", "--timeout", "30s", "-s", script,
             b.base],
            capture_output=True, text=True, timeout=b.seconds + 60, check=True,
        ).stdout  # fmt: skip
    finally:
        os.unlink(script)
    res: dict[str, Any] = json.loads(next(x for x in out.splitlines() if x.startswith("JSON"))[4:])
    res["rps"] = res["requests"] / (res["duration_us"] / 1e6)
    return res


def best_of(n: int, fn: Callable[[], float]) -> float:
    return min(fn() for _ in range(n))


# --- scenarios ------------------------------------------------------------------------------------


def full_table_arrow(b: Bench) -> None:
    """SELECT * as Arrow over HTTP (read by pyarrow) against DuckDB returning the same query to Arrow in
    this process: from the same Parquet files (the storage the hub reads), and from a DuckDB table in
    memory (DuckDB's own best case: no file to decode)."""
    import duckdb

    sql = f"SELECT * FROM {KEY}"

    def over_http() -> float:
        started = time.perf_counter()
        request = urllib.request.Request(b.url(sql, "arrow"), headers={"Authorization": f"Bearer {b.token}"})
        with urllib.request.urlopen(request, timeout=600) as response:
            rows = sum(batch.num_rows for batch in pa.ipc.open_stream(response))
        assert rows == b.rows, rows
        return time.perf_counter() - started

    con = duckdb.connect()
    con.execute("SET threads = 2")
    files = ", ".join(f"'{f}'" for f in b.files)
    con.execute(f"CREATE TABLE births AS SELECT * FROM read_parquet([{files}])")

    def in_process(source: str) -> Callable[[], float]:
        def run() -> float:
            started = time.perf_counter()
            table = con.sql(f"SELECT * FROM {source}").to_arrow_table()
            assert table.num_rows == b.rows
            return time.perf_counter() - started

        return run

    over_http()  # the worker's first read of the snapshot (its cache), and imports
    hub_s = best_of(3, over_http)
    files_s = best_of(3, in_process(f"read_parquet([{files}])"))
    memory_s = best_of(3, in_process("births"))
    hub_rate, files_rate, memory_rate = b.rows / hub_s, b.rows / files_s, b.rows / memory_s
    b.results["full_table_arrow"] = {
        "hub_seconds": hub_s,
        "hub_rows_s": hub_rate,
        "duckdb_files_rows_s": files_rate,
        "duckdb_memory_rows_s": memory_rate,
        "ratio_files": hub_rate / files_rate,
        "ratio_memory": hub_rate / memory_rate,
    }
    for peer, rate in (("DuckDB, Parquet files", files_rate), ("DuckDB, table in memory", memory_rate)):
        ratio = hub_rate / rate
        b.row("full table, Arrow", "rows/s", f"{hub_rate:,.0f}", f"{rate:,.0f} ({peer})", ">= 0.5x DuckDB",
              f"{ratio:.2f}x {'yes' if ratio >= 0.5 else 'NO'}")  # fmt: skip


def full_table_csv(b: Bench) -> None:
    """SELECT * as CSV over HTTP, read by curl."""
    url = b.url(f"SELECT * FROM {KEY}", "csv")
    curl(url, b.token)  # warm
    runs = [curl(url, b.token) for _ in range(3)]
    best = max(runs, key=lambda r: r["mb_s"])
    b.results["full_table_csv"] = best
    size = f"{best['bytes'] / 1e6:.0f} MB in {best['seconds']:.2f} s"
    b.row("full table, CSV", "MB/s", f"{best['mb_s']:.0f} ({size})", "", ">= 100 MB/s",
          "yes" if best["mb_s"] >= 100 else "NO")  # fmt: skip


def filtered_concurrent(b: Bench) -> None:
    """8 clients, one ward's births each (about 100 rows), as Arrow."""
    wards = max(1, b.rows // 100)
    codes = [f"{31000 + w:05d}" for w in range(0, wards, max(1, wards // 500))][:500]
    paths = [
        "/api/v1/query?" + urllib.parse.urlencode(
            {"sql": f"SELECT * FROM {KEY} WHERE ward_code = '{c}'", "format": "arrow"}
        )
        for c in codes
    ]  # fmt: skip
    request = urllib.request.Request(b.base + paths[0], headers={"Authorization": f"Bearer {b.token}"})
    with urllib.request.urlopen(request) as response:
        sample = pa.ipc.open_stream(response).read_all().num_rows
    wrk(b, paths[:5], connections=2)  # warm up
    time.sleep(1)
    res = wrk(b, paths, connections=8)
    res["rows_per_request"] = sample
    b.results["filtered_concurrent"] = res
    b.row("filtered, 8 clients", "requests/s", f"{res['rps']:,.0f}", "", "", "")
    b.row("filtered, 8 clients", "p50 / p99 ms", f"{res['p50_us'] / 1e3:.1f} / {res['p99_us'] / 1e3:.1f}",
          "", "", f"{res['non2xx']} non-2xx, {res['errors']} errors")  # fmt: skip


def memory_10m(b: Bench) -> None:
    """The server's process tree while one client streams 10,000,000 rows as Arrow."""
    times = max(1, -(-TEN_MILLION // b.rows))
    k = " UNION ALL ".join(f"SELECT {i} AS k" for i in range(times))
    sql = f"SELECT b.*, r.k FROM {KEY} b, ({k}) r LIMIT {TEN_MILLION}"
    curl(b.url("SELECT 1", "arrow"), b.token)
    time.sleep(1)
    res = curl(b.url(sql, "arrow"), b.token, b.server_pid)
    res["rows"] = TEN_MILLION
    b.results["memory_10m"] = res
    b.row("10,000,000 rows, Arrow", "server RSS above idle",
          f"{res['above_idle_mb']:.0f} MB (idle {res['idle_rss_mb']:.0f}, peak {res['peak_rss_mb']:.0f})",
          f"{res['bytes'] / 1e6:,.0f} MB in {res['seconds']:.1f} s", "< 300 MB",
          "yes" if res["above_idle_mb"] < 300 else "NO")  # fmt: skip


SCENARIOS: dict[str, Callable[[Bench], None]] = {
    "full_table_arrow": full_table_arrow,
    "full_table_csv": full_table_csv,
    "filtered_concurrent": filtered_concurrent,
    "memory_10m": memory_10m,
}
"""The scenarios in the order they run; the PostgreSQL protocol's join here."""


def print_table(rows: list[dict[str, Any]]) -> None:
    cols = ["scenario", "measure", "hub", "peer", "target", "met"]
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in cols}
    print("  ".join(c.ljust(widths[c]) for c in cols))
    print("  ".join("-" * widths[c] for c in cols))
    for r in rows:
        print("  ".join(str(r[c]).ljust(widths[c]) for c in cols))


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--seconds", type=int, default=10, help="Duration bound of the wrk run.")
    ap.add_argument("--max-requests", type=int, default=20_000, help="Request bound of the wrk run.")
    ap.add_argument("--only", choices=list(SCENARIOS), action="append", help="Run only these (repeatable).")
    args = ap.parse_args()
    if shutil.which("wrk") is None or shutil.which("curl") is None:
        sys.exit("wrk and curl are needed: apt-get install wrk curl")
    work = Path(tempfile.mkdtemp(prefix="hub-bench-query-"))
    server: subprocess.Popen[bytes] | None = None
    try:
        port = free_port()
        started = time.time()
        settings, token, files = setup(work, args.rows, port)
        print(f"data: {args.rows:,} births in the warehouse ({time.time() - started:.1f} s)", flush=True)
        env = {
            **os.environ,
            "HUB_DATA_DIR": str(settings.data_dir),
            "HUB_CATALOG_DIR": str(settings.catalog_dir),
            "HUB_SITE_URL": settings.site_url,
            "HUB_RATE_LIMIT_ANONYMOUS_PER_MINUTE": "0",
            "HUB_RATE_LIMIT_CLIENT_PER_MINUTE": "0",
            "HUB_QUERY_CLIENT_CONCURRENCY": "16",
            "HUB_QUERY_TIMEOUT_SECONDS": "300",
        }
        server = subprocess.Popen(
            [str(BIN / "hub"), "serve", "--port", str(port), "--log-level", "warning"],
            env=env,
            stdout=subprocess.DEVNULL,
        )
        wait_http(f"{settings.site_url}/healthz")
        bench = Bench(settings.site_url, token, server.pid, files, args.rows, args.seconds, args.max_requests)
        bench.results.update(rows=args.rows, cpus=os.cpu_count())
        for name, scenario in SCENARIOS.items():
            if args.only and name not in args.only:
                continue
            scenario(bench)
            print(f"{name}: done", flush=True)
        print()
        print_table(bench.table)
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        previous = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
        RESULTS.write_text(json.dumps({**previous, **bench.results, "table": bench.table}, indent=2) + "\n")
        print(f"\nwritten to {RESULTS.relative_to(ROOT)}")
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
