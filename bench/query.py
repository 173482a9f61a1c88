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

The PostgreSQL protocol (``hub serve --pg-port``, the same server process), each against the machine's
real PostgreSQL serving the same rows to the same client (``--postgres``: a server with trust login; the
bench makes a database of its own, ``hub_bench_<random>``, loads the rows with COPY into a table of the
same name, ``civil_status.births``, so that both sides run the same SQL text, runs ``VACUUM ANALYZE``,
and drops the database at the end, failure or not):

5. ``pg_full_table``: psycopg 3 (its C implementation) reading ``SELECT *``: ``fetchall()`` in text
   and in binary, and a server-side cursor (``DECLARE``/``FETCH``, ``itersize`` 10,000) in text; the
   same call on both sides, best of 5 (target: the hub at least as many rows/s as PostgreSQL);
6. ``pg_group_by``: a GROUP BY over every row (births per ward: 10,000 groups; per year of birth),
   best of 5 after a warm run (target: the hub at least 5 times faster);
7. ``pg_filtered_concurrent``: 8 threads, each with its own psycopg connection, running one ward's
   births (about 100 rows, the ward a parameter) in a loop: requests/s and latency percentiles;
   PostgreSQL measured without an index on ``ward_code`` (a full scan per query, as DuckDB does) and
   with one (its best case).

Settings of the run: no rate limits (all load comes from one address and one client),
``HUB_QUERY_CLIENT_CONCURRENCY=16`` (the 8 clients are one OAuth client, and the requests wrk cuts at
the end of its warm-up run are still being closed when the measured run starts), and a query time
limit of 300 s for the 10-million-row stream. Everything else is the hub's default: 2 query workers.
The client of the PostgreSQL scenarios is this process; it shares the machine's CPUs with both servers.

Run: ``.venv/bin/python bench/query.py [--rows 1000000] [--seconds 10] [--only NAME ...]``.
Prints a table and writes bench/results/query.json.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
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
import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
RESULTS = ROOT / "bench" / "results" / "query.json"
sys.path.insert(0, str(ROOT))

KEY = "civil_status.births"
ORG = "so-tu-phap"
TEN_MILLION = 10_000_000
PG_CLIENTS = 8
PG_SCENARIOS = ("pg_full_table", "pg_group_by", "pg_filtered_concurrent")

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
    pg_port: int = 0
    postgres: Postgres | None = None
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

    def hub_pg(self) -> dict[str, Any]:
        """How psycopg reaches the hub's PostgreSQL endpoint: the OAuth client's id and its token."""
        return {"host": "127.0.0.1", "port": self.pg_port, "dbname": "hub", "user": "bench",
                "password": self.token}  # fmt: skip

    def real_pg(self) -> dict[str, Any]:
        assert self.postgres is not None, "the PostgreSQL scenarios need --postgres"
        return self.postgres.conninfo()


@dataclass
class Postgres:
    """A database of the bench's own on the machine's PostgreSQL (``admin``: a conninfo of that server
    with the right to create databases): made by ``create``, dropped by ``drop``."""

    admin: str
    name: str = field(default_factory=lambda: f"hub_bench_{secrets.token_hex(4)}")
    created: bool = False

    def conninfo(self) -> dict[str, Any]:
        return {**psycopg.conninfo.conninfo_to_dict(self.admin), "dbname": self.name}

    def create(self, files: list[str]) -> None:
        """The database, and ``civil_status.births`` loaded with COPY from the hub's Parquet files."""
        with psycopg.connect(self.admin, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {self.name}")
        self.created = True
        table = pq.read_table(files)
        with psycopg.connect(**self.conninfo(), autocommit=True) as conn:
            conn.execute("CREATE SCHEMA civil_status")
            conn.execute(
                "CREATE TABLE civil_status.births (registration_number text, registration_date date, "
                "ward_code text, child_full_name text, child_sex text, child_birth_date date, "
                "ethnicity text, nationality text, birth_weight_grams integer, mother_full_name text)"
            )
            names = ", ".join(table.column_names)
            with conn.cursor() as cur, cur.copy(f"COPY {KEY} ({names}) FROM STDIN (FORMAT csv)") as copy:
                for batch in table.to_batches(100_000):
                    sink = pa.BufferOutputStream()
                    pacsv.write_csv(batch, sink, pacsv.WriteOptions(include_header=False))
                    copy.write(sink.getvalue().to_pybytes())
            conn.execute(f"VACUUM ANALYZE {KEY}")
            count = conn.execute(f"SELECT count(*) FROM {KEY}").fetchone()
            assert count == (table.num_rows,), count

    def drop(self) -> None:
        if self.created:
            with psycopg.connect(self.admin, autocommit=True) as conn:
                conn.execute(f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)")
            self.created = False


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


def pg_read(conninfo: dict[str, Any], sql: str, *, binary: bool, cursor: bool) -> tuple[float, int]:
    """Seconds and rows of reading ``sql`` with psycopg on a new connection (not timed): ``fetchall()``
    on a client cursor, or a server-side cursor iterated 10,000 rows a ``FETCH``."""
    with psycopg.connect(**conninfo, autocommit=not cursor) as conn:
        started = time.perf_counter()
        if cursor:
            with conn.cursor("bench", binary=binary) as cur:
                cur.itersize = 10_000
                cur.execute(sql)
                rows = sum(1 for _ in cur)
        else:
            with conn.cursor(binary=binary) as cur:
                cur.execute(sql)
                rows = len(cur.fetchall())
        return time.perf_counter() - started, rows


def pg_clients(
    conninfo: dict[str, Any], sql: str, params: list[str], *, seconds: float, limit: int
) -> dict[str, Any]:
    """``PG_CLIENTS`` threads, one psycopg connection each, running ``sql`` with the next of ``params``
    until ``seconds`` passed or ``limit`` requests were made: requests/s and latency percentiles."""
    latencies: list[list[float]] = [[] for _ in range(PG_CLIENTS)]
    errors = [0]
    conns = [psycopg.connect(**conninfo, autocommit=True) for _ in range(PG_CLIENTS)]
    start = threading.Barrier(PG_CLIENTS + 1)
    per_client = max(1, limit // PG_CLIENTS)

    def client(i: int) -> None:
        mine, conn = latencies[i], conns[i]
        start.wait()
        deadline = time.perf_counter() + seconds
        n = i
        while len(mine) < per_client and time.perf_counter() < deadline:
            began = time.perf_counter()
            try:
                conn.execute(sql, (params[n % len(params)],)).fetchall()
            except psycopg.Error:
                errors[0] += 1
                continue
            mine.append(time.perf_counter() - began)
            n += PG_CLIENTS

    threads = [threading.Thread(target=client, args=(i,)) for i in range(PG_CLIENTS)]
    for t in threads:
        t.start()
    start.wait()
    began = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - began
    for conn in conns:
        conn.close()
    every = np.array([x for xs in latencies for x in xs]) * 1e3
    return {"requests": len(every), "seconds": elapsed, "rps": len(every) / elapsed, "errors": errors[0],
            "p50_ms": float(np.percentile(every, 50)), "p90_ms": float(np.percentile(every, 90)),
            "p99_ms": float(np.percentile(every, 99)), "max_ms": float(every.max())}  # fmt: skip


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
    on_files, in_memory = in_process(f"read_parquet([{files}])"), in_process("births")
    times: dict[str, list[float]] = {"hub": [], "files": [], "memory": []}
    for _ in range(5):  # interleaved, so that a slow moment of the machine falls on every side alike
        times["hub"].append(over_http())
        times["files"].append(on_files())
        times["memory"].append(in_memory())
    hub_s, files_s, memory_s = min(times["hub"]), min(times["files"]), min(times["memory"])
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


def pg_full_table(b: Bench) -> None:
    """SELECT * with psycopg over the hub's PostgreSQL endpoint and from the real PostgreSQL: the same
    client calls on both sides, best of 5 after a warm run each."""
    sql = f"SELECT * FROM {KEY}"
    out: dict[str, Any] = {}
    for label, binary, cursor in (
        ("fetchall(), text", False, False),
        ("fetchall(), binary", True, False),
        ("server-side cursor, text", False, True),
    ):
        rates = {}
        for side, conninfo in (("hub", b.hub_pg()), ("postgres", b.real_pg())):
            pg_read(conninfo, sql, binary=binary, cursor=cursor)  # warm: caches, imports, first plan

            def run(
                conninfo: dict[str, Any] = conninfo, binary: bool = binary, cursor: bool = cursor
            ) -> float:
                seconds, rows = pg_read(conninfo, sql, binary=binary, cursor=cursor)
                assert rows == b.rows, rows
                return seconds

            rates[side] = b.rows / best_of(5, run)
        ratio = rates["hub"] / rates["postgres"]
        out[label] = {"hub_rows_s": rates["hub"], "postgres_rows_s": rates["postgres"], "ratio": ratio}
        b.row(f"PG full table, {label}", "rows/s", f"{rates['hub']:,.0f}",
              f"{rates['postgres']:,.0f} (PostgreSQL)", ">= 1x PostgreSQL",
              f"{ratio:.2f}x {'yes' if ratio >= 1 else 'NO'}")  # fmt: skip
    b.results["pg_full_table"] = out


def pg_group_by(b: Bench) -> None:
    """A GROUP BY over every row over the hub's endpoint and on the real PostgreSQL (psycopg, text),
    best of 5 after a warm run; the answers compared."""
    queries = {
        "per ward": f"SELECT ward_code, count(*) AS births FROM {KEY} GROUP BY ward_code",
        "per year": f"SELECT extract(year FROM child_birth_date)::integer AS year, count(*) AS births "
        f"FROM {KEY} GROUP BY 1 ORDER BY 1",
    }  # fmt: skip
    out: dict[str, Any] = {}
    with (
        psycopg.connect(**b.hub_pg(), autocommit=True) as hub,
        psycopg.connect(**b.real_pg(), autocommit=True) as real,
    ):
        for label, sql in queries.items():
            answers, seconds = {}, {}
            for side, conn in (("hub", hub), ("postgres", real)):
                answers[side] = sorted(conn.execute(sql).fetchall())

                def run(conn: psycopg.Connection[Any] = conn, sql: str = sql) -> float:
                    started = time.perf_counter()
                    conn.execute(sql).fetchall()
                    return time.perf_counter() - started

                seconds[side] = best_of(5, run)
            assert answers["hub"] == answers["postgres"], label
            speedup = seconds["postgres"] / seconds["hub"]
            out[label] = {"hub_ms": seconds["hub"] * 1e3, "postgres_ms": seconds["postgres"] * 1e3,
                          "groups": len(answers["hub"]), "speedup": speedup}  # fmt: skip
            b.row(f"PG GROUP BY, {label} ({len(answers['hub']):,} groups)", "ms, best of 5",
                  f"{seconds['hub'] * 1e3:.1f}", f"{seconds['postgres'] * 1e3:.1f} (PostgreSQL)",
                  ">= 5x faster", f"{speedup:.1f}x {'yes' if speedup >= 5 else 'NO'}")  # fmt: skip
    b.results["pg_group_by"] = out


def pg_filtered_concurrent(b: Bench) -> None:
    """8 psycopg clients, one ward's births each (about 100 rows, the ward a parameter): the hub, then
    the real PostgreSQL without an index on ward_code, then with one."""
    wards = max(1, b.rows // 100)
    codes = [f"{31000 + w:05d}" for w in range(0, wards, max(1, wards // 500))][:500]
    sql = f"SELECT * FROM {KEY} WHERE ward_code = %s"
    out: dict[str, Any] = {}
    index = f"CREATE INDEX births_ward ON {KEY} (ward_code)"
    runs = [("hub", b.hub_pg(), None), ("postgres, no index", b.real_pg(), None),
            ("postgres, index on ward_code", b.real_pg(), index)]  # fmt: skip
    for side, conninfo, before in runs:
        if before:
            with psycopg.connect(**conninfo, autocommit=True) as conn:
                conn.execute(before)
                conn.execute(f"ANALYZE {KEY}")
        pg_clients(conninfo, sql, codes[:5], seconds=1, limit=200)  # warm up
        out[side] = pg_clients(conninfo, sql, codes, seconds=b.seconds, limit=b.max_requests)
    hub = out["hub"]
    out["rows_per_request"] = b.rows // wards
    b.results["pg_filtered_concurrent"] = out
    peers = [f"{out[s]['rps']:,.0f} ({s})" for s, _, _ in runs[1:]]
    b.row("PG filtered, 8 clients", "requests/s", f"{hub['rps']:,.0f}", "; ".join(peers), "", "")
    peers = [f"{out[s]['p50_ms']:.1f} / {out[s]['p99_ms']:.1f} ({s})" for s, _, _ in runs[1:]]
    b.row("PG filtered, 8 clients", "p50 / p99 ms", f"{hub['p50_ms']:.1f} / {hub['p99_ms']:.1f}",
          "; ".join(peers), "", f"{hub['errors']} errors")  # fmt: skip


SCENARIOS: dict[str, Callable[[Bench], None]] = {
    "full_table_arrow": full_table_arrow,
    "full_table_csv": full_table_csv,
    "filtered_concurrent": filtered_concurrent,
    "memory_10m": memory_10m,
    "pg_full_table": pg_full_table,
    "pg_group_by": pg_group_by,
    "pg_filtered_concurrent": pg_filtered_concurrent,
}
"""The scenarios in the order they run."""


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
    ap.add_argument(
        "--postgres",
        default="host=127.0.0.1 port=5432 user=postgres dbname=postgres",
        help="The real PostgreSQL the PG scenarios compare with: a conninfo that may create databases.",
    )
    args = ap.parse_args()
    if shutil.which("wrk") is None or shutil.which("curl") is None:
        sys.exit("wrk and curl are needed: apt-get install wrk curl")
    work = Path(tempfile.mkdtemp(prefix="hub-bench-query-"))
    server: subprocess.Popen[bytes] | None = None
    wanted = args.only or list(SCENARIOS)
    postgres = Postgres(args.postgres) if any(n in PG_SCENARIOS for n in wanted) else None
    try:
        port, pg_port = free_port(), free_port()
        started = time.time()
        settings, token, files = setup(work, args.rows, port)
        print(f"data: {args.rows:,} births in the warehouse ({time.time() - started:.1f} s)", flush=True)
        if postgres is not None:
            started = time.time()
            postgres.create(files)
            took = time.time() - started
            print(f"data: the same rows in PostgreSQL, database {postgres.name} ({took:.1f} s)", flush=True)
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
        command = ["serve", "--port", str(port), "--pg-port", str(pg_port), "--log-level", "warning"]
        server = subprocess.Popen([str(BIN / "hub"), *command], env=env, stdout=subprocess.DEVNULL)
        wait_http(f"{settings.site_url}/healthz")
        bench = Bench(settings.site_url, token, server.pid, files, args.rows, args.seconds, args.max_requests,
                      pg_port, postgres)  # fmt: skip
        bench.results.update(rows=args.rows, cpus=os.cpu_count())
        for name, scenario in SCENARIOS.items():
            if name not in wanted:
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
        if postgres is not None:
            postgres.drop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
