"""Query workers: no query takes the server's memory or time.

A query that needs too much memory fails inside its worker; one that runs too long is killed with its
worker (which is replaced); when every worker is busy and the queue is full, a query is refused at once
with a retry hint; results stream in constant memory; a stream closed early frees its worker."""

from __future__ import annotations

import os
import resource
import threading
import time
from collections.abc import Iterator

import pyarrow as pa
import pytest

from hub.errors import BusyError, QueryError
from hub.warehouse.engine.pool import PoolConfig, WorkerPool
from hub.warehouse.engine.tables import TableSource

SLOW = "SELECT count(*) FROM t a, t b, t c, t d, t e, t f, t g"  # 10^14 rows: never finishes


def _rss() -> int:
    with open(f"/proc/{os.getpid()}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> TableSource:
    import pyarrow.parquet as pq

    folder = tmp_path_factory.mktemp("pool")
    path = folder / "t.parquet"
    n = 1_000_000
    pq.write_table(
        pa.table(
            {"i": pa.array(range(n), pa.int64()), "s": pa.array([f"giá trị {k % 1000}" for k in range(n)])}
        ),
        path,
    )
    return TableSource("test.t", 1, (str(path),), pq.read_schema(path))


@pytest.fixture
def pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerPool]:
    p = WorkerPool(
        PoolConfig(size=1, queue=0, memory_mb=512, cache_mb=256, temp_dir=tmp_path_factory.mktemp("tmp"))
    )
    yield p
    p.close()


def test_a_query_that_needs_too_much_memory_fails_in_its_worker(pool: WorkerPool, table: TableSource) -> None:
    pool.query("SELECT 1 AS one", {})  # the worker is up
    before = _rss()
    for sql in (
        "SELECT length(repeat('x', 1200000000)) AS n",
        "SELECT length(list(a.s)) AS n FROM t AS a, t AS b",
    ):
        with pytest.raises(QueryError) as info:
            pool.query(sql, {"t": table}, timeout=60)
        assert info.value.details["kind"] in ("memory", "killed"), info.value.message
    assert _rss() - before < 50 << 20  # the server's memory did not move
    assert pool.query("SELECT count(*) AS n FROM t", {"t": table})[0].to_pylist() == [{"n": 1_000_000}]


def test_a_query_past_its_time_limit_is_killed_and_its_worker_replaced(
    pool: WorkerPool, table: TableSource
) -> None:
    pool.query("SELECT 1 AS one", {})
    [pid] = pool.workers
    started = time.monotonic()
    with pytest.raises(QueryError, match="took too long"):
        pool.query(SLOW, {"t": table}, timeout=1.5)
    assert time.monotonic() - started < 5
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # killed, not asked
    assert pool.query("SELECT count(*) AS n FROM t", {"t": table}, timeout=30)[0].to_pylist() == [
        {"n": 1_000_000}
    ]
    assert pool.workers != [pid]


def test_a_full_pool_answers_busy_at_once(pool: WorkerPool, table: TableSource) -> None:
    stream = pool.run("SELECT * FROM t", {"t": table})  # holds the only worker until closed
    try:
        started = time.monotonic()
        with pytest.raises(BusyError) as info:
            pool.query("SELECT 1", {})
        assert time.monotonic() - started < 1
        assert info.value.retry_after > 0
        assert info.value.http_status == 503
    finally:
        stream.close()
    assert pool.query("SELECT 1 AS one", {})[0].to_pylist() == [{"one": 1}]  # freed by close()


def test_a_queued_query_waits_for_a_free_worker(tmp_path_factory: pytest.TempPathFactory) -> None:
    p = WorkerPool(PoolConfig(size=1, queue=4, temp_dir=tmp_path_factory.mktemp("tmp")))
    try:
        stream = p.run("SELECT 1 AS one", {})
        results: list[object] = []
        waiter = threading.Thread(
            target=lambda: results.append(p.query("SELECT 2 AS two", {})[0].to_pylist())
        )
        waiter.start()
        time.sleep(0.5)
        assert not results  # waiting for the worker
        stream.close()
        waiter.join(timeout=30)
        assert results == [[{"two": 2}]]
    finally:
        p.close()


def test_results_stream_in_constant_memory_and_an_early_close_frees_the_worker(
    pool: WorkerPool, table: TableSource
) -> None:
    pool.query("SELECT 1 AS one", {})
    [pid] = pool.workers
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    rows = 0
    with pool.run(
        "SELECT i, s, i * 2 AS j FROM t, (SELECT 1 UNION ALL SELECT 2) AS two(k)", {"t": table}
    ) as s:
        for batch in s:
            rows += batch.num_rows
    assert rows == 2_000_000
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before  # KiB
    assert grown < 100_000  # far less than the result (about 60 MB as Arrow)
    stream = pool.run("SELECT * FROM t", {"t": table})
    next(iter(stream))
    stream.close()  # cancelled in the worker, which stays
    assert pool.workers == [pid]


def test_a_worker_that_dies_mid_query_is_an_error_and_is_replaced(
    pool: WorkerPool, table: TableSource
) -> None:
    pool.query("SELECT 1 AS one", {})
    [pid] = pool.workers
    threading.Timer(0.5, os.kill, (pid, 9)).start()
    with pytest.raises(QueryError, match="stopped"):
        pool.query(SLOW, {"t": table}, timeout=30)
    assert pool.query("SELECT 3 AS three", {})[0].to_pylist() == [{"three": 3}]


def test_enum_and_nested_enum_results_travel_as_text(pool: WorkerPool) -> None:
    table, _ = pool.query("SELECT 'x'::ENUM('x', 'y') AS e, ['y'::ENUM('x', 'y')] AS l", {})
    assert table.to_pylist() == [{"e": "x", "l": ["y"]}]
