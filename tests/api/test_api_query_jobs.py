"""Query jobs (``/api/v1/queries``) against live hubs of the access matrix: progress while a job runs,
its result in every format equal to DuckDB's answer, cancel frees the worker, results expire and their
files go, jobs belong to their caller, a restart shows the jobs (those that were running as
interrupted), and ``hub query --async`` follows a job to its file."""

from __future__ import annotations

import csv
import io
import json
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pyarrow.ipc
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from hub.db import dispose_engines, session_scope, utcnow
from hub.settings import Settings
from hub.sql.models import QueryJob
from hub.testing.live import free_port, live_server
from hub.warehouse.tables import Warehouse
from tests.auth.auth_matrix_world import MatrixWorld, build_matrix_world

pytestmark = [pytest.mark.integration]

BIRTHS, MARRIAGES = "civil_status.births", "civil_status.marriages"
ORDERED = f"SELECT registration_number, ward_code, full_name FROM {BIRTHS} ORDER BY 1"


def cross(n: int) -> str:
    """``12**n`` rows: the open table joined with itself ``n`` times."""
    return "SELECT a.* FROM " + ", ".join(f"{MARRIAGES} t{i}" if i else f"{MARRIAGES} a" for i in range(n))


class Live:
    def __init__(self, matrix: MatrixWorld, base: str) -> None:
        self.matrix = matrix
        self.settings = matrix.settings
        self.base = base

    def headers(self, caller: str | None) -> dict[str, str]:
        token = self.matrix.tokens[caller] if caller else None
        return {"Authorization": token} if token else {}

    def submit(self, sql: str, caller: str | None = "owner-client", **body: Any) -> httpx.Response:
        return httpx.post(
            f"{self.base}/api/v1/queries", json={"sql": sql, **body}, headers=self.headers(caller), timeout=60
        )

    def get(self, path: str, caller: str | None = "owner-client", **params: Any) -> httpx.Response:
        return httpx.get(
            f"{self.base}/api/v1/queries{path}", params=params, headers=self.headers(caller), timeout=120
        )

    def call(self, method: str, path: str, caller: str | None = "owner-client") -> httpx.Response:
        return httpx.request(
            method, f"{self.base}/api/v1/queries{path}", headers=self.headers(caller), timeout=60
        )

    def wait(
        self, job_id: str, until: tuple[str, ...] = ("succeeded", "failed", "cancelled")
    ) -> dict[str, Any]:
        deadline = time.monotonic() + 120
        while True:
            job: dict[str, Any] = self.get(f"/{job_id}").json()
            if job["status"] in until:
                return job
            assert time.monotonic() < deadline, job
            time.sleep(0.05)


def _settings(tmp: Path, port: int, **more: Any) -> Settings:
    s = Settings(
        data_dir=tmp / "data",
        catalog_dir=tmp / "catalog",
        site_url=f"http://127.0.0.1:{port}",
        rate_limit_anonymous_per_minute=0,
        rate_limit_client_per_minute=0,
        **more,
    )
    s.ensure_dirs()
    return s


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """One query worker and no queue: a running job holds the worker, an interactive query is told
    to retry; two jobs at most per client."""
    port = free_port()
    settings = _settings(
        tmp_path_factory.mktemp("jobs"), port, query_workers=1, query_queue=0, query_jobs_per_client=2
    )
    matrix = build_matrix_world(settings)
    with live_server(settings, port=port) as base:
        yield Live(matrix, base)
    dispose_engines()


def _duck(settings: Settings) -> list[dict[str, Any]]:
    con = duckdb.connect()
    con.register("t", con.read_parquet(Warehouse(settings).data_files(BIRTHS)).to_arrow_table())
    rows: list[dict[str, Any]] = con.sql(ORDERED.replace(BIRTHS, "t")).to_arrow_table().to_pylist()
    return rows


def _read(fmt: str, content: bytes) -> list[dict[str, Any]]:
    if fmt == "arrow":
        return pyarrow.ipc.open_stream(content).read_all().to_pylist()
    if fmt == "parquet":
        return pq.read_table(io.BytesIO(content)).to_pylist()
    if fmt == "jsonl":
        return [json.loads(line) for line in content.decode().splitlines()]
    text = content.decode().removeprefix("\ufeff")
    return list(csv.DictReader(io.StringIO(text), delimiter="\t" if fmt == "tsv" else ","))


def test_a_job_reports_progress_then_its_result(live: Live) -> None:
    r = live.submit(cross(6))
    assert r.status_code == 202, r.text
    job = r.json()
    assert r.headers["location"] == job["url"]
    assert job["status"] in ("queued", "running")
    marriages = Warehouse(live.settings).current_snapshot_id(MARRIAGES)
    assert job["snapshots"] == [{"table": MARRIAGES, "snapshot": marriages}]  # read six times, once bound
    seen: list[tuple[int, float]] = []
    while job["status"] in ("queued", "running"):
        if job["status"] == "running":
            seen.append((job["progress"]["rows"], job["progress"]["seconds"]))
        time.sleep(0.05)
        job = live.get(f"/{job['id']}").json()
    assert job["status"] == "succeeded", job
    assert any(0 < rows < 12**6 for rows, _ in seen), seen  # rows so far while it ran
    assert [s for _, s in seen] == sorted(s for _, s in seen)  # elapsed seconds only grow
    assert job["progress"]["rows"] == job["result"]["rows"] == 12**6
    assert job["progress"]["seconds"] > 0
    assert job["error"] is None
    parquet = live.get(f"/{job['id']}/result", format="parquet")
    assert parquet.headers["content-type"] == "application/vnd.apache.parquet"
    assert int(parquet.headers["content-length"]) == job["result"]["bytes"]
    assert pq.ParquetFile(io.BytesIO(parquet.content)).metadata.num_rows == 12**6
    listed = live.get("").json()["queries"]
    assert listed[0]["id"] == job["id"]  # newest first, kept after it ended


@pytest.mark.parametrize("fmt", ["arrow", "parquet", "csv", "tsv", "jsonl"])
def test_the_result_in_every_format_equals_duckdbs_answer(live: Live, fmt: str) -> None:
    job = live.wait(live.submit(ORDERED).json()["id"])
    assert job["status"] == "succeeded", job
    expected = _duck(live.settings)
    assert len(expected) == 12
    r = live.get(f"/{job['id']}/result", format=fmt)
    assert r.status_code == 200, r.text
    snapshot = Warehouse(live.settings).current_snapshot_id(BIRTHS)
    assert r.headers["X-Hub-Snapshots"] == f"{BIRTHS}={snapshot}"
    assert _read(fmt, r.content) == expected
    assert job["result"]["formats"][fmt].endswith(f"/result?format={fmt}")
    if fmt == "csv":
        excel = live.get(f"/{job['id']}/result", format="csv", bom="1")
        assert excel.content == b"\xef\xbb\xbf" + r.content
    by_accept = httpx.get(
        job["result"]["formats"]["csv"].replace("format=csv", ""),
        headers={**live.headers("owner-client"), "Accept": "application/vnd.apache.arrow.stream"},
    )
    assert pyarrow.ipc.open_stream(by_accept.content).read_all().to_pylist() == expected


def test_what_the_door_refuses_makes_no_job(live: Live) -> None:
    before = len(live.get("", "other-client").json()["queries"])
    refused = live.submit(f"SELECT * FROM {BIRTHS}", "other-client")
    missing = live.submit("SELECT * FROM civil_status.nothing_here", "other-client")
    assert refused.status_code == missing.status_code == 400
    assert refused.json() == json.loads(missing.text.replace("civil_status.nothing_here", BIRTHS))
    assert live.submit("COPY (SELECT 1) TO 'x.csv'", "other-client").status_code == 400
    assert live.submit("SELECT 1", None).status_code == 401  # a job belongs to a caller with a token
    assert len(live.get("", "other-client").json()["queries"]) == before


def test_jobs_belong_to_their_caller(live: Live) -> None:
    job = live.wait(live.submit(ORDERED).json()["id"])
    for caller in ("other-client", "consumer-client", "owner-member"):
        for method, path in (
            ("GET", f"/{job['id']}"),
            ("GET", f"/{job['id']}/result"),
            ("POST", f"/{job['id']}/cancel"),
            ("DELETE", f"/{job['id']}"),
        ):
            r = live.call(method, path, caller)
            assert r.status_code == 404, (caller, method, path, r.text)
            assert "Nguyễn" not in r.text
        assert job["id"] not in [j["id"] for j in live.get("", caller).json()["queries"]]
    assert live.call("GET", f"/{job['id']}", None).status_code == 401
    assert live.get(f"/{job['id']}/result").status_code == 200  # still there for its owner


def test_cancel_frees_the_worker(live: Live) -> None:
    job = live.submit(cross(8)).json()  # 430 million rows: it runs until cancelled
    deadline = time.monotonic() + 60
    while not (job["status"] == "running" and job["progress"]["rows"] > 0):
        assert time.monotonic() < deadline, job
        time.sleep(0.05)
        job = live.get(f"/{job['id']}").json()
    # the job holds the one worker: an interactive query is told to come back
    busy = httpx.post(f"{live.base}/api/v1/query", json={"sql": "SELECT 1 AS one"}, timeout=60)
    assert busy.status_code == 503, busy.text
    assert int(busy.headers["Retry-After"]) > 0
    # a second job waits its turn; a third is over the client's share (HUB_QUERY_JOBS_PER_CLIENT = 2)
    queued = live.submit("SELECT 2 AS two").json()
    over = live.submit("SELECT 3 AS three")
    assert over.status_code == 429, over.text
    assert "HUB_QUERY_JOBS_PER_CLIENT" in over.json()["detail"]
    cancelled = live.call("DELETE", f"/{job['id']}").json()
    assert cancelled["status"] == "cancelled", cancelled
    assert 0 < cancelled["progress"]["rows"] < 12**8
    assert cancelled["result"] is None
    assert live.get(f"/{job['id']}/result").status_code == 409
    # the worker is free: the queued job and an interactive query run
    assert live.wait(queued["id"])["status"] == "succeeded"
    ok = httpx.post(f"{live.base}/api/v1/query", json={"sql": "SELECT 1 AS one"}, timeout=60)
    assert ok.status_code == 200, ok.text
    leftovers = list((live.settings.data_dir / "query-results").glob(f"*{job['id']}*"))
    assert leftovers == []  # the partial result is gone
    # cancelling a finished job leaves it as it was
    assert live.call("POST", f"/{queued['id']}/cancel").json()["status"] == "succeeded"


def test_a_job_that_fails_says_why(live: Live) -> None:
    job = live.wait(live.submit("SELECT CAST('x' AS INTEGER) AS n").json()["id"])
    assert job["status"] == "failed"
    assert "Could not convert" in job["error"] or "Conversion" in job["error"], job["error"]
    r = live.get(f"/{job['id']}/result")
    assert r.status_code == 409
    assert "failed" in r.json()["detail"]


def test_results_expire_and_their_files_are_deleted(tmp_path: Path) -> None:
    port = free_port()
    settings = _settings(tmp_path, port, query_result_ttl_hours=2 / 3600, query_workers_prestart=False)
    matrix = build_matrix_world(settings)
    with live_server(settings, port=port) as base:
        live = Live(matrix, base)
        job = live.wait(live.submit(ORDERED).json()["id"])
        assert job["status"] == "succeeded"
        files = list((settings.data_dir / "query-results").glob("*.parquet"))
        assert [f.name for f in files] == [f"{job['id']}.parquet"]
        deadline = time.monotonic() + 15
        while files[0].exists():  # deleted by the hub's upkeep, without being asked
            assert time.monotonic() < deadline, "the expired result file is still there"
            time.sleep(0.1)
        gone = live.get(f"/{job['id']}/result")
        assert gone.status_code == 410, gone.text
        assert "HUB_QUERY_RESULT_TTL_HOURS" in gone.json()["detail"]
        after = live.get(f"/{job['id']}").json()
        assert after["status"] == "succeeded"
        assert after["result"] is None
        assert [j["id"] for j in live.get("").json()["queries"]] == [job["id"]]  # still listed
    dispose_engines()


def test_a_restart_shows_the_jobs_and_those_that_were_running_as_interrupted(tmp_path: Path) -> None:
    port = free_port()
    settings = _settings(tmp_path, port, query_workers_prestart=False)
    matrix = build_matrix_world(settings)
    with live_server(settings, port=port) as base:
        live = Live(matrix, base)
        done = live.wait(live.submit(ORDERED).json()["id"])
        running = live.submit(cross(7)).json()
        live.wait(running["id"], until=("running",))
        kept = live.get(f"/{done['id']}/result", format="csv").content
    # a job left "running" by a process that crashed on this host
    dead = subprocess.Popen(["true"])
    dead.wait()
    with session_scope(settings) as s:
        s.add(
            QueryJob(
                id="crashed-job",
                owner="client:owner-client",
                sql="SELECT 1",
                as_of={},
                status="running",
                rows=5,
                snapshots=[],
                cancel_requested=False,
                created=utcnow(),
                started=utcnow(),
                runner=f"{socket.gethostname()}:{dead.pid}:deadbeef",
                heartbeat_at=utcnow(),
            )
        )
    with live_server(settings, port=port) as base:  # the same hub started again (tokens name its URL)
        live = Live(matrix, base)
        jobs = {j["id"]: j for j in live.get("").json()["queries"]}
        assert jobs[done["id"]]["status"] == "succeeded"
        assert live.get(f"/{done['id']}/result", format="csv").content == kept
        for job_id in (running["id"], "crashed-job"):
            assert jobs[job_id]["status"] == "failed", jobs[job_id]
            assert jobs[job_id]["error"].startswith("interrupted")
    dispose_engines()


def test_hub_query_async_follows_the_job_to_its_file(live: Live, tmp_path: Path) -> None:
    from hub.cli.main import app

    token = live.matrix.tokens["owner-client"]
    assert token is not None
    runner = CliRunner()
    out = tmp_path / "births.parquet"
    args = ["query", "--async", ORDERED, "--url", live.base, "--output", str(out)]
    result = runner.invoke(app, args, env={"HUB_TOKEN": token, "COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert pq.read_table(out).to_pylist() == _duck(live.settings)
    assert "12 rows" in result.output
    as_csv = tmp_path / "births.csv"
    result = runner.invoke(app, [*args[:-1], str(as_csv), "--token", token])
    assert result.exit_code == 0, result.output
    assert _read("csv", as_csv.read_bytes()) == _duck(live.settings)
    printed = runner.invoke(
        app, ["query", "--async", ORDERED, "--url", live.base, "--token", token, "-f", "json", "--limit", "2"]
    )
    assert printed.exit_code == 0, printed.output
    assert '"REG-00001"' in printed.output
    assert '"REG-00002"' not in printed.output
    refused = runner.invoke(
        app, ["query", "--async", f"SELECT * FROM {BIRTHS}", "--url", live.base], env={"HUB_TOKEN": ""}
    )
    assert refused.exit_code == 1
    assert "401" in refused.output
