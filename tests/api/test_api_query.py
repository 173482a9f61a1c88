"""``/api/v1/query`` as analysts and attackers meet it, against a live hub of the access matrix: every
format read by a real reader and equal to DuckDB's own answer, time travel by SQL clause and by
``as_of`` with the snapshots read in ``X-Hub-Snapshots``, every escape the DataStore refuses refused
here too, tables the caller may not read answered as tables that do not exist (and logged), the
per-client limits, and a result of 10,000,000 rows streamed with the server's memory flat."""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Iterator
from datetime import UTC
from typing import Any

import duckdb
import httpx
import pyarrow as pa
import pyarrow.ipc
import pyarrow.parquet as pq
import pytest
from sqlalchemy import select

from hub.auth import grants
from hub.auth.models import AuditEntry, Grant
from hub.auth.principal import SYSTEM
from hub.db import dispose_engines, session_scope
from hub.settings import Settings
from hub.testing.live import free_port, live_server
from hub.warehouse.tables import Warehouse
from tests.api.support import make_table
from tests.auth.auth_matrix_world import CONSUMER, MatrixWorld, build_matrix_world

pytestmark = [pytest.mark.integration]

BIRTHS, DEATHS, MARRIAGES = "civil_status.births", "civil_status.deaths", "civil_status.marriages"
SECRET_MARKERS = ("Nguyễn Văn", "REG-0", "Trần Thị B", "001099012345", "root:")
MEDIA = {
    "arrow": "application/vnd.apache.arrow.stream",
    "parquet": "application/vnd.apache.parquet",
    "csv": "text/csv",
    "tsv": "text/tab-separated-values",
    "jsonl": "application/x-ndjson",
}


class World:
    def __init__(self, matrix: MatrixWorld, base: str, first: int, second: int) -> None:
        self.matrix = matrix
        self.settings = matrix.settings
        self.base = base
        self.first = first  # births' first snapshot (12 rows)
        self.second = second  # and its second (17 rows), the current one

    def token(self, caller: str) -> str | None:
        return self.matrix.tokens[caller]


def extra_births(n: int) -> pa.Table:
    return pa.table(
        {
            "registration_number": pa.array([f"REG-9{i:04d}" for i in range(n)]),
            "ward_code": pa.array(["26740"] * n),
            "full_name": pa.array([f"Nguyễn Văn mới {i}" for i in range(n)]),
        }
    )


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("apiquery")
    port = free_port()
    settings = Settings(
        data_dir=tmp / "data",
        catalog_dir=tmp / "catalog",
        site_url=f"http://127.0.0.1:{port}",
        rate_limit_anonymous_per_minute=0,
        rate_limit_client_per_minute=0,
        query_workers=3,  # two queries of one client held open leave one for the others
        query_client_concurrency=2,
    )
    settings.ensure_dirs()
    matrix = build_matrix_world(settings)
    wh = Warehouse(settings)
    first = wh.current_snapshot_id(BIRTHS)
    time.sleep(0.05)  # the second snapshot is a later millisecond
    second = make_table(settings, BIRTHS, extra_births(5))
    assert first is not None
    with live_server(settings, port=port) as base:
        yield World(matrix, base, first, second)
    dispose_engines()


def post(w: World, sql: str, caller: str | None = "owner-client", **body: Any) -> httpx.Response:
    token = w.token(caller) if caller else None
    headers = {"Authorization": token} if token else {}
    headers.update(body.pop("headers", {}))
    return httpx.post(f"{w.base}/api/v1/query", json={"sql": sql, **body}, headers=headers, timeout=120)


def duck(w: World, sql: str, snapshot: int | None = None) -> pa.Table:
    """DuckDB's own answer over the births snapshot's Parquet files (``t``)."""
    files = Warehouse(w.settings).data_files(BIRTHS, snapshot)
    con = duckdb.connect()
    con.register("t", con.read_parquet(files).to_arrow_table())
    return con.sql(sql).to_arrow_table()


def snapshots(r: httpx.Response) -> list[str]:
    return [part.strip() for part in r.headers["X-Hub-Snapshots"].split(",")]


# --- formats ----------------------------------------------------------------------------------------

ORDERED = "SELECT registration_number, ward_code, full_name, length(full_name) AS n FROM {t} ORDER BY 1"


def _read(fmt: str, content: bytes) -> list[dict[str, Any]]:
    if fmt == "arrow":
        return pyarrow.ipc.open_stream(content).read_all().to_pylist()
    if fmt == "parquet":
        return pq.read_table(io.BytesIO(content)).to_pylist()
    if fmt == "jsonl":
        return [json.loads(line) for line in content.decode().splitlines()]
    rows = list(csv.DictReader(io.StringIO(content.decode()), delimiter="\t" if fmt == "tsv" else ","))
    return [{**r, "n": int(r["n"])} for r in rows]


@pytest.mark.parametrize("fmt", list(MEDIA))
def test_every_format_read_by_a_real_reader_equals_duckdbs_answer(world: World, fmt: str) -> None:
    expected = duck(world, ORDERED.format(t="t")).to_pylist()
    assert len(expected) == 17
    by_param = post(world, ORDERED.format(t=BIRTHS), format=fmt)
    by_accept = post(world, ORDERED.format(t=BIRTHS), headers={"Accept": MEDIA[fmt]})
    for r in (by_param, by_accept):
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith(MEDIA[fmt])
        assert snapshots(r) == [f"{BIRTHS}={world.second}"]
        assert r.headers["cache-control"] == "no-store"
        assert _read(fmt, r.content) == expected


def test_csv_is_the_default_and_excel_gets_a_bom(world: World) -> None:
    plain = post(world, "SELECT 1 AS a, 'Đạt' AS b")
    assert plain.headers["content-type"].startswith("text/csv")
    assert plain.content == b'"a","b"\n1,"\xc4\x90\xe1\xba\xa1t"\n'
    excel = post(world, "SELECT 1 AS a, 'Đạt' AS b", bom=True)
    assert excel.content == b"\xef\xbb\xbf" + plain.content
    quick = httpx.get(
        f"{world.base}/api/v1/query", params={"sql": "SELECT 1 AS a, 'Đạt' AS b", "bom": "1"}, timeout=60
    )
    assert quick.status_code == 200, quick.text
    assert quick.content == excel.content


def test_unknown_formats_are_clear_errors(world: World) -> None:
    r = post(world, "SELECT 1", format="xlsx")
    assert r.status_code == 400
    assert "use one of csv, arrow, parquet, jsonl, tsv" in r.json()["detail"]
    r = post(world, "SELECT 1", headers={"Accept": "application/json"})
    assert r.status_code == 406, r.text
    assert r.headers["content-type"] == "application/problem+json"


def test_values_follow_the_json_rule_in_json_lines_and_csv_takes_intervals(world: World) -> None:
    sql = (
        "SELECT 'infinity'::DATE AS d, DATE '5877642-06-25' AS far, INTERVAL 1 DAY AS i, "
        "'nan'::DOUBLE AS f, 'infinity'::TIMESTAMP AS ts, "
        "170141183460469231731687303715884105727::HUGEINT AS h"
    )
    r = post(world, sql, format="jsonl")
    assert r.status_code == 200, r.text
    assert json.loads(r.content) == {
        "d": "infinity",
        "far": "+5877642-06-25",
        "i": "P1D",
        "f": "NaN",
        "ts": "infinity",
        "h": "170141183460469231731687303715884105727",
    }
    r = post(world, "SELECT INTERVAL 1 DAY AS i, 2 AS n", format="csv")
    assert r.status_code == 200, r.text
    assert r.content == b'"i","n"\n"P1D",2\n'


def test_gzip_when_the_client_accepts_it(world: World) -> None:
    r = post(world, ORDERED.format(t=BIRTHS), headers={"Accept-Encoding": "gzip"})
    assert r.headers["content-encoding"] == "gzip"
    assert len(_read("csv", r.content)) == 17  # httpx decodes it


# --- time travel -----------------------------------------------------------------------------------


def test_time_travel_by_sql_clause_and_by_as_of_reports_the_snapshot_read(world: World) -> None:
    count = "SELECT count(*) AS n FROM civil_status.births"
    now = post(world, count, format="jsonl")
    assert json.loads(now.content) == {"n": 17}
    assert snapshots(now) == [f"{BIRTHS}={world.second}"]
    clause = post(world, f"{count} AT (VERSION => {world.first})", format="jsonl")
    assert clause.status_code == 200, clause.text
    assert json.loads(clause.content) == {"n": 12}
    assert snapshots(clause) == [f"{BIRTHS}={world.first}"]
    by_id = post(world, count, format="jsonl", as_of={BIRTHS: world.first})
    assert json.loads(by_id.content) == {"n": 12}
    assert snapshots(by_id) == [f"{BIRTHS}={world.first}"]
    at = Warehouse(world.settings).snapshots(BIRTHS)[0].timestamp.astimezone(UTC)
    when = at.isoformat().replace("+00:00", "Z")
    by_time = post(world, count, format="jsonl", as_of={BIRTHS: when})
    assert json.loads(by_time.content) == {"n": 12}
    assert snapshots(by_time) == [f"{BIRTHS}={world.first}"]
    ts_clause = post(world, f"{count} AT (TIMESTAMP => '{when}')", format="jsonl")
    assert json.loads(ts_clause.content) == {"n": 12}
    # two tables, one as it was: each reported, in the order the query names them
    both = post(
        world,
        f"SELECT (SELECT count(*) FROM {BIRTHS} AT (VERSION => {world.first})) AS then_, "
        f"(SELECT count(*) FROM {MARRIAGES}) AS open_, (SELECT count(*) FROM {BIRTHS}) AS now_",
        format="jsonl",
    )
    assert json.loads(both.content) == {"then_": 12, "open_": 12, "now_": 17}
    marriages = Warehouse(world.settings).current_snapshot_id(MARRIAGES)
    assert snapshots(both) == [
        f"{BIRTHS}={world.first}",
        f"{MARRIAGES}={marriages}",
        f"{BIRTHS}={world.second}",
    ]
    # as_of naming a table the query does not read, and a snapshot that does not exist
    r = post(world, count, as_of={MARRIAGES: 1})
    assert r.status_code == 400
    assert "does not read" in r.json()["detail"]
    r = post(world, f"{count} AT (VERSION => 123456789)")
    assert r.status_code == 400
    assert "no snapshot" in r.json()["detail"]


# --- escapes ----------------------------------------------------------------------------------------


def _escapes() -> list[Any]:
    return [
        pytest.param("SELECT * FROM read_parquet('{file}')", id="files-read_parquet"),
        pytest.param("SELECT * FROM '{file}'", id="files-path-as-table"),
        pytest.param('SELECT * FROM "{file}"', id="files-quoted-path"),
        pytest.param("SELECT * FROM read_csv('/etc/passwd')", id="files-read_csv"),
        pytest.param("SELECT * FROM glob('{root}/**')", id="files-glob"),
        pytest.param("COPY (SELECT * FROM civil_status.births) TO '{root}/out.csv'", id="copy"),
        pytest.param("ATTACH '{root}/x.db' AS x", id="attach"),
        pytest.param("INSTALL httpfs", id="install"),
        pytest.param("LOAD httpfs", id="load"),
        pytest.param("SET enable_external_access = true", id="set"),
        pytest.param("PRAGMA database_list", id="pragma"),
        pytest.param("SELECT which_secret('s3://bucket/x.parquet', 's3')", id="secrets-which_secret"),
        pytest.param("SELECT * FROM duckdb_secrets()", id="secrets-duckdb_secrets"),
        pytest.param("CREATE SECRET s (TYPE s3, KEY_ID 'k', SECRET 'v')", id="secrets-create"),
        pytest.param("SELECT current_setting('enable_external_access')", id="settings-current_setting"),
        pytest.param("SELECT * FROM duckdb_settings()", id="settings-duckdb_settings"),
        pytest.param("SELECT getenv('HOME')", id="environment-getenv"),
        pytest.param("CREATE MACRO leak(x) AS x + 1", id="macros-create"),
        pytest.param("CREATE TEMP MACRO leak() AS TABLE SELECT 1", id="macros-table"),
        pytest.param("SELECT 1; SELECT * FROM civil_status.births", id="several-statements"),
        pytest.param("SELECT 1; COPY (SELECT 1) TO '{root}/out.csv'", id="several-with-a-write"),
    ]


@pytest.mark.parametrize("template", _escapes())
def test_every_escape_the_datastore_refuses_is_refused_here(world: World, template: str) -> None:
    """Sent with the owner's token (it may read every table), so that an escape that worked would
    show rows; every one is refused with a problem naming why, and no file appears."""
    root = world.settings.data_dir
    file = Warehouse(world.settings).data_files(BIRTHS)[0]
    sql = template.format(file=file, root=root)
    for fmt in ("csv", "arrow"):
        r = post(world, sql, format=fmt)
        assert r.status_code in (400, 403), (sql, r.status_code, r.text[:300])
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["detail"]
        for marker in SECRET_MARKERS:
            assert marker not in r.text, (sql, r.text[:300])
    assert not (root / "out.csv").exists()
    assert not (root / "x.db").exists()


# --- refusals ----------------------------------------------------------------------------------------


def _same_as_missing(w: World, caller: str | None, key: str) -> None:
    missing = post(w, "SELECT * FROM civil_status.nothing_here", caller)
    refused = post(w, f"SELECT * FROM {key}", caller)
    assert refused.status_code == missing.status_code == 400, refused.text
    assert refused.headers["content-type"] == missing.headers["content-type"]
    assert refused.json() == json.loads(missing.text.replace("civil_status.nothing_here", key))
    assert refused.json()["detail"] == f'relation "{key}" does not exist or is not readable'
    for marker in SECRET_MARKERS:
        assert marker not in refused.text


def _denied(w: World, **match: Any) -> list[AuditEntry]:
    with session_scope(w.settings) as s:
        query = select(AuditEntry).where(AuditEntry.action == "query.api", AuditEntry.outcome == "denied")
        for name, value in match.items():
            query = query.where(getattr(AuditEntry, name) == value)
        return list(s.scalars(query))


@pytest.mark.parametrize("caller", ["other-client", "other-member", "no-org-user", "anonymous"])
def test_a_table_the_caller_may_not_read_answers_as_one_that_does_not_exist(
    world: World, caller: str
) -> None:
    before = len(_denied(world))
    for key in (BIRTHS, DEATHS):
        _same_as_missing(world, caller if caller != "anonymous" else None, key)
    after = _denied(world)
    assert len(after) == before + 2  # each refusal is logged, with its reason
    assert all(e.reason for e in after[before:])
    # open data stays readable by the same caller
    ok = post(world, f"SELECT count(*) AS n FROM {MARRIAGES}", caller if caller != "anonymous" else None)
    assert ok.status_code == 200, ok.text
    assert ok.content == b'"n"\n12\n'


def test_a_token_without_the_scope_reads_open_data_only(world: World) -> None:
    _same_as_missing(world, "owner-client-catalog-only", BIRTHS)
    entry = _denied(world, client_id="owner-client-catalog-only")[-1]
    assert "warehouse:query" in (entry.reason or "")
    ok = post(world, f"SELECT count(*) AS n FROM {MARRIAGES}", "owner-client-catalog-only")
    assert ok.content == b'"n"\n12\n'


def test_a_revoked_grant_closes_the_table_and_the_refusal_is_logged(world: World) -> None:
    count = f"SELECT count(*) AS n FROM {BIRTHS}"
    assert post(world, count, "consumer-client").content == b'"n"\n17\n'
    with session_scope(world.settings) as s:
        g = s.scalar(select(Grant).where(Grant.dataset_id == world.matrix.dataset_ids["shared"]))
        assert g is not None
        grants.revoke(s, SYSTEM, g.id, reason="test")
    try:
        _same_as_missing(world, "consumer-client", BIRTHS)
        assert _denied(world, client_id="consumer-client")
    finally:
        with session_scope(world.settings) as s:
            grants.create(
                s,
                SYSTEM,
                dataset=BIRTHS,
                consumer_org=CONSUMER,
                purpose="Tuyển sinh đầu cấp",
                legal_basis="Nghị định 194/2025/NĐ-CP Điều 16",
            )


def test_reads_are_audited_with_the_rows_and_the_snapshot(world: World) -> None:
    r = post(world, f"SELECT * FROM {BIRTHS} WHERE ward_code = '26740'", "consumer-client", format="arrow")
    assert pyarrow.ipc.open_stream(r.content).read_all().num_rows == 5
    deadline = time.monotonic() + 10
    while True:  # written when the stream ends, in the server's producer thread
        with session_scope(world.settings) as s:
            entry = s.scalars(
                select(AuditEntry)
                .where(AuditEntry.action == "query.api", AuditEntry.client_id == "consumer-client")
                .order_by(AuditEntry.seq.desc())
            ).first()
            if entry is not None and entry.outcome == "allowed" and entry.rows == 5:
                break
        assert time.monotonic() < deadline, "no audit entry with the rows"
        time.sleep(0.1)
    assert entry.snapshot_id == world.second
    assert entry.grant_id  # read under the consumer's grant


# --- limits ------------------------------------------------------------------------------------------

HUGE = "SELECT a.* FROM " + ", ".join(f"{MARRIAGES} t{i}" if i else f"{MARRIAGES} a" for i in range(7))


def test_one_client_runs_at_most_its_share_of_queries_at_once(world: World) -> None:
    """Two results held open by a client (HUB_QUERY_CLIENT_CONCURRENCY = 2): its third query is told
    to retry (429), another client's query runs; once one ends, the client's next one runs."""
    token = world.token("owner-client")
    assert token is not None
    with httpx.Client(timeout=60, headers={"Authorization": token}) as client:
        held = [
            client.stream("POST", f"{world.base}/api/v1/query", json={"sql": HUGE, "format": "arrow"})
            for _ in range(2)
        ]
        try:
            for h in held:
                r = h.__enter__()
                assert r.status_code == 200
            third = post(world, "SELECT 1 AS one")
            assert third.status_code == 429, third.text
            assert int(third.headers["Retry-After"]) >= 1
            assert third.json()["code"] == "too_many_queries"
            assert "HUB_QUERY_CLIENT_CONCURRENCY" in third.json()["detail"]
            other = post(world, "SELECT 1 AS one", "consumer-client")
            assert other.status_code == 200, other.text
        finally:
            for h in held:
                h.__exit__(None, None, None)
    deadline = time.monotonic() + 10
    while (r := post(world, "SELECT 1 AS one")).status_code == 429:
        assert time.monotonic() < deadline, "the client's queries were not released"
        time.sleep(0.1)
    assert r.content == b'"one"\n1\n'


def test_a_daily_quota_of_rows(tmp_path_factory: pytest.TempPathFactory) -> None:
    tmp = tmp_path_factory.mktemp("quota")
    port = free_port()
    settings = Settings(
        data_dir=tmp / "data",
        catalog_dir=tmp / "catalog",
        site_url=f"http://127.0.0.1:{port}",
        query_client_daily_rows=20,
        query_workers_prestart=False,
    )
    settings.ensure_dirs()
    matrix = build_matrix_world(settings)
    headers = {"Authorization": matrix.tokens["owner-client"] or ""}
    sql = {"sql": f"SELECT * FROM {BIRTHS}"}
    with live_server(settings, port=port) as base:
        url = f"{base}/api/v1/query"
        assert len(httpx.post(url, json=sql, headers=headers, timeout=60).text.splitlines()) == 13
        assert httpx.post(url, json=sql, headers=headers, timeout=60).status_code == 200  # 12 < 20
        refused = httpx.post(url, json=sql, headers=headers, timeout=60)
        assert refused.status_code == 429, refused.text
        assert refused.json()["code"] == "quota_exceeded"
        assert "24 rows today" in refused.json()["detail"]
        assert 0 < int(refused.headers["Retry-After"]) <= 86_400
        # another client has its own quota
        other = {"Authorization": matrix.tokens["consumer-client"] or ""}
        assert httpx.post(url, json=sql, headers=other, timeout=60).status_code == 200
    dispose_engines()


# --- a large result ----------------------------------------------------------------------------------

TEN_MILLION = 10_000_000


def _rss() -> int:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


class _Body(io.RawIOBase):
    """A streamed response body as a file, for Arrow's stream reader."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._left = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._left:
            self._left = next(self._chunks, b"")
            if not self._left:
                return 0
        n = min(len(buffer), len(self._left))
        buffer[:n] = self._left[:n]
        self._left = self._left[n:]
        return n


@pytest.mark.slow
def test_ten_million_rows_stream_with_the_servers_memory_flat(world: World) -> None:
    """The live server runs in this process: its memory is this process's (and the client's, which
    reads the Arrow stream batch by batch). After the first batches fill the buffers, it stays flat."""
    t = MARRIAGES
    sql = (
        f"SELECT a.registration_number, b.ward_code, c.full_name, d.registration_number AS r4 "
        f"FROM {t} a, {t} b, {t} c, {t} d, {t} e, {t} f, {t} g LIMIT {TEN_MILLION}"
    )
    assert post(world, "SELECT 1", None).status_code == 200  # modules loaded, workers warm
    before = _rss()
    samples: list[tuple[int, int]] = []  # (rows so far, memory above before)
    rows = 0
    with httpx.stream(
        "POST", f"{world.base}/api/v1/query", json={"sql": sql, "format": "arrow"}, timeout=300
    ) as r:
        assert r.status_code == 200
        reader = pyarrow.ipc.open_stream(io.BufferedReader(_Body(r.iter_raw(1 << 16)), 1 << 16))
        for batch in reader:
            rows += batch.num_rows
            samples.append((rows, _rss() - before))
    assert rows == TEN_MILLION
    assert len(samples) > 100
    peak = max(m for _, m in samples)
    first = max(m for n, m in samples if n <= TEN_MILLION // 2)
    second = max(m for n, m in samples if n > TEN_MILLION // 2)
    assert peak < 100 << 20, f"the server (and this client) grew {peak >> 20} MB for {rows:,} rows"
    # flat: the second five million rows take no more than the first (the allocator's noise aside)
    assert second - first < 24 << 20, f"memory grew with the rows: {first >> 20} -> {second >> 20} MB"


def test_an_error_after_the_first_rows_cuts_the_body_and_is_audited_as_an_error(world: World) -> None:
    """The first batch is already sent when the query fails: the body ends without its last chunk
    (the client sees an incomplete read, never a file that looks whole), and the read is audited with
    the error."""
    t = BIRTHS
    sql = (
        # the failing rows are the last 20,000 of a quarter to 1.4 million: DuckDB's threads (which work
        # on the rows in parallel) reach them well after the first batch of 65,536 left
        "SELECT rn, CASE WHEN rn > total - 20000 THEN CAST('x' || rn AS INTEGER) ELSE rn END AS v FROM "
        "(SELECT row_number() OVER () AS rn, count(*) OVER () AS total "
        f"FROM {t} a, {t} b, {t} c, {t} d, {t} e) q"
    )
    token = world.token("consumer-client")
    assert token is not None
    with httpx.stream(
        "POST",
        f"{world.base}/api/v1/query",
        json={"sql": sql, "format": "csv"},
        headers={"Authorization": token, "Accept-Encoding": "identity"},
        timeout=60,
    ) as r:
        assert r.status_code == 200
        with pytest.raises(httpx.RemoteProtocolError):
            for _ in r.iter_raw():
                pass
    deadline = time.monotonic() + 10
    while True:
        with session_scope(world.settings) as s:
            entry = s.scalars(
                select(AuditEntry)
                .where(AuditEntry.action == "query.api", AuditEntry.client_id == "consumer-client")
                .order_by(AuditEntry.seq.desc())
            ).first()
            if entry is not None and entry.outcome == "error":
                break
        assert time.monotonic() < deadline, "no audit entry of the error"
        time.sleep(0.1)
    assert "Could not convert" in (entry.reason or "") or "Conversion" in (entry.reason or "")
    assert (entry.rows or 0) >= 65_536  # what was read before it failed
