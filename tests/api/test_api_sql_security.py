"""The DataStore's SQL door as an attacker sees it, against a live hub: anonymous callers, another
agency's token, a revoked grant, SQL that names files or hides tables, SQL that wants all the memory or
all the workers. Each case is one of issue 10's findings; none may return a row it should not, or
bring the server down."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from hub.auth import grants
from hub.auth.models import AuditEntry, Grant
from hub.auth.principal import SYSTEM
from hub.db import dispose_engines, session_scope
from hub.settings import Settings
from hub.testing.live import free_port, live_server
from tests.auth.auth_matrix_world import MatrixWorld, build_matrix_world

pytestmark = [pytest.mark.integration]

SECRET_MARKERS = ("Nguyễn Văn", "REG-0", "Trần Thị B", "001099012345")


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[MatrixWorld, str]]:
    tmp = tmp_path_factory.mktemp("sqlsec")
    port = free_port()
    settings = Settings(
        data_dir=tmp / "data",
        catalog_dir=tmp / "catalog",
        site_url=f"http://127.0.0.1:{port}",
        rate_limit_anonymous_per_minute=0,
        rate_limit_client_per_minute=0,
    )
    settings.ensure_dirs()
    world = build_matrix_world(settings)
    with live_server(settings, port=port) as base:
        yield world, base
    dispose_engines()


def sql(base: str, query: str, token: str | None = None) -> httpx.Response:
    headers = {"Authorization": token} if token else {}
    return httpx.post(
        f"{base}/api/3/action/datastore_search_sql", json={"sql": query}, headers=headers, timeout=60
    )


def _no_leak(r: httpx.Response, query: str) -> None:
    assert r.status_code in (403, 409), (query, r.status_code, r.text[:300])
    for marker in SECRET_MARKERS:
        assert marker not in r.text, (query, r.text[:300])


def _warehouse_paths(settings: Settings) -> list[str]:
    root = settings.warehouse_path
    rel = os.path.relpath(root, Path.cwd())
    files = sorted(str(p) for p in root.rglob("*.parquet"))
    births = [f for f in files if "/births/" in f]
    quarantine = [f for f in files if "__quarantine" in f]
    metadata = sorted(str(p) for p in root.rglob("*.metadata.json"))
    return [
        f"{rel}/civil_status/births/data/*.parquet",  # the relative path
        f"{root}/civil_status/births/data/*.parquet",  # absolute
        births[0],
        f"{root}/**/*.parquet",  # every dataset at once
        "**/*.parquet",
        quarantine[0],
        f"{root}/civil_status/births__quarantine/data/*.parquet",
        metadata[0],
    ]


def test_no_path_reaches_the_warehouse(hub: tuple[MatrixWorld, str]) -> None:
    world, base = hub
    for path in _warehouse_paths(world.settings):
        q = path.replace("'", "''")
        for query in (
            f'WITH "{path}" AS (SELECT * FROM "{path}") SELECT * FROM "{path}" LIMIT 3',  # the issue's
            f'SELECT * FROM "{path}"',
            f"SELECT * FROM '{q}'",
            f"SELECT * FROM read_parquet('{q}')",
            f'SELECT * FROM (WITH x AS (SELECT 1) SELECT * FROM x), "{path}"',
            f"SELECT * FROM read_json('{q}')",
        ):
            _no_leak(sql(base, query), query)
            _no_leak(sql(base, query, world.tokens["other-client"]), query)


def test_protected_tables_are_unknown_to_those_who_may_not_read_them(hub: tuple[MatrixWorld, str]) -> None:
    world, base = hub
    shared, internal = world.dataset_names["shared"], world.dataset_names["internal"]
    for caller in ("anonymous", "other-client", "other-member", "no-org-user"):
        token = world.tokens[caller]
        for name in (shared, internal, "civil_status.births", "civil_status.deaths"):
            # a CTE of the same name is the CTE wherever it is in scope (and only there)
            cte = sql(
                base, f'WITH "{name}" AS (SELECT 1 AS n) SELECT * FROM (SELECT * FROM "{name}") q', token
            )
            assert cte.json()["result"]["records"] == [{"n": 1}]
            for query in (
                f'SELECT * FROM "{name}"',
                f'SELECT * FROM (WITH "{name}" AS (SELECT 1 AS n) SELECT n FROM "{name}") q, "{name}"',
                f'WITH a AS (SELECT * FROM "{name}"), "{name}" AS (SELECT 1 AS n) SELECT * FROM a',
                f'SELECT count(*) FROM "{world.dataset_names["open"]}" WHERE EXISTS (SELECT 1 FROM "{name}")',
                "SELECT * FROM civil_status.births__quarantine",
                f'SELECT * FROM "{name}__quarantine"',
            ):
                r = sql(base, query, token)
                _no_leak(r, query)
                assert "does not exist or is not readable" in r.text, (caller, query, r.text)
        # a table that exists and one that does not are refused alike
        missing = sql(base, 'SELECT * FROM "civil_status.nothing_here"', token).json()["error"]
        present = sql(base, 'SELECT * FROM "civil_status.deaths"', token).json()["error"]
        assert missing["__type"] == present["__type"]
        assert missing["query"][0].replace("nothing_here", "X") == present["query"][0].replace("deaths", "X")
    # the open table is readable by anyone, the CTE of the same name is the CTE
    ok = sql(base, f'SELECT count(*) AS n FROM "{world.dataset_names["open"]}"')
    assert ok.status_code == 200, ok.text
    assert ok.json()["result"]["records"] == [{"n": 12}]


def test_a_grant_opens_the_table_and_its_revocation_closes_it(hub: tuple[MatrixWorld, str]) -> None:
    world, base = hub
    query = 'SELECT count(*) AS n FROM "civil_status.births"'
    consumer = world.tokens["consumer-client"]
    assert sql(base, query, consumer).json()["result"]["records"] == [{"n": 12}]
    with session_scope(world.settings) as s:
        g = s.scalar(select(Grant).where(Grant.dataset_id == world.dataset_ids["shared"]))
        assert g is not None
        grant_id = g.id
        grants.revoke(s, SYSTEM, grant_id, reason="test")
    try:
        r = sql(base, query, consumer)
        _no_leak(r, query)
        with session_scope(world.settings) as s:
            denied = s.scalars(
                select(AuditEntry).where(
                    AuditEntry.action == "query.sql",
                    AuditEntry.outcome == "denied",
                    AuditEntry.client_id == "consumer-client",
                )
            ).all()
        assert denied  # the refusal is in the audit log
    finally:
        with session_scope(world.settings) as s:
            grants.create(
                s,
                SYSTEM,
                dataset="civil_status.births",
                consumer_org="so-gddt",
                purpose="Tuyển sinh đầu cấp",
                legal_basis="Nghị định 194/2025/NĐ-CP Điều 16",
            )


def _rss() -> int:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_queries_that_want_all_the_memory_do_not_grow_the_server(hub: tuple[MatrixWorld, str]) -> None:
    """The live server runs in this process: its memory is this process's."""
    world, base = hub
    open_name = world.dataset_names["open"]
    assert sql(base, f'SELECT count(*) FROM "{open_name}"').status_code == 200  # workers up
    before = _rss()
    answers: list[httpx.Response] = []

    def hog() -> None:
        answers.append(sql(base, "SELECT length(repeat('x', 1200000000)) AS n"))

    threads = [threading.Thread(target=hog) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(answers) == 4
    for r in answers:
        assert r.status_code in (409, 503), r.text
        assert "memory" in r.text or "busy" in r.text, r.text
    assert _rss() - before < 80 << 20
    assert sql(base, f'SELECT count(*) AS n FROM "{open_name}"').json()["result"]["records"] == [{"n": 12}]


def test_values_json_cannot_hold_follow_one_rule(hub: tuple[MatrixWorld, str]) -> None:
    _, base = hub
    r = sql(
        base,
        "SELECT 'infinity'::DATE AS d, DATE '5877642-06-25' AS far, INTERVAL 1 DAY AS i, "
        "'nan'::DOUBLE AS f, 'infinity'::TIMESTAMP AS ts",
    )
    assert r.status_code == 200, r.text
    assert r.json()["result"]["records"] == [
        {"d": "infinity", "far": "+5877642-06-25", "i": "P1D", "f": "NaN", "ts": "infinity"}
    ]


@pytest.mark.slow
def test_a_busy_hub_says_so_and_when_to_retry(tmp_path: Path) -> None:
    port = free_port()
    settings = Settings(
        data_dir=tmp_path / "data",
        catalog_dir=tmp_path / "catalog",
        site_url=f"http://127.0.0.1:{port}",
        rate_limit_anonymous_per_minute=0,
        query_workers=1,
        query_queue=0,
        query_timeout_seconds=3,
    )
    settings.ensure_dirs()
    world = build_matrix_world(settings)
    slow = (
        'SELECT count(*) FROM "{0}" a, "{0}" b, "{0}" c, "{0}" d, "{0}" e, "{0}" f, "{0}" g, '
        '"{0}" h, "{0}" i, "{0}" j, "{0}" k, "{0}" l, "{0}" m'  # rows^13: far beyond 3 s on any machine
    )
    query = slow.format(world.dataset_names["open"])
    with live_server(settings, port=port) as base:
        assert sql(base, "SELECT 1 AS one").status_code == 200
        answers: dict[str, Any] = {}
        first = threading.Thread(target=lambda: answers.setdefault("slow", sql(base, query)))
        first.start()
        threading.Event().wait(0.8)
        busy = sql(base, "SELECT 1 AS one")
        first.join()
        assert busy.status_code == 503, busy.text
        assert int(busy.headers["Retry-After"]) > 0
        assert answers["slow"].status_code == 409
        assert "took too long" in answers["slow"].text  # killed at the time limit
        assert sql(base, "SELECT 2 AS two").json()["result"]["records"] == [{"two": 2}]
    dispose_engines()


def test_deep_or_huge_input_is_a_clear_error(hub: tuple[MatrixWorld, str]) -> None:
    world, base = hub
    deep = "SELECT " + "(" * 5000 + "1" + ")" * 5000
    r = sql(base, deep)
    assert r.status_code == 409, r.text
    assert "HUB_QUERY_MAX_NESTING" in r.text
    huge = "SELECT 1 AS n" + " " * 200_000
    r = sql(base, huge)
    assert r.status_code == 409
    assert "HUB_QUERY_MAX_SQL_CHARS" in r.text
    filters: object = {"ward_code": "26734"}
    for _ in range(200):
        filters = {"$or": [filters]}
    r = httpx.post(
        f"{base}/api/3/action/datastore_search",
        json={"resource_id": world.dataset_names["open"], "filters": filters},
        timeout=60,
    )
    assert r.status_code in (400, 409), r.text
