"""The DataStore API over warehouse snapshots, and the SQL sandbox."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest

from tests.api.conftest import LiveHub

pytestmark = pytest.mark.integration


def call(
    hub: LiveHub, action: str, token: str | None = None, post: bool = False, **params: Any
) -> httpx.Response:
    headers = {"Authorization": token} if token else {}
    url = f"{hub.base}/api/3/action/{action}"
    if post:
        return httpx.post(url, json=params, headers=headers, timeout=30)
    return httpx.get(url, params=params, headers=headers, timeout=30)


def rid(hub: LiveHub, name: str, token: str | None = None) -> str:
    pkg = call(hub, "package_show", token, id=name).json()["result"]
    return next(r["id"] for r in pkg["resources"] if r["datastore_active"])


def test_search_defaults_filters_and_total(hub: LiveHub) -> None:
    parcels = rid(hub, "land-parcels")
    r = call(hub, "datastore_search", resource_id=parcels).json()["result"]
    assert r["limit"] == 100
    assert len(r["records"]) == 100
    assert r["total"] == 250
    assert [f["id"] for f in r["fields"]][:3] == ["_id", "parcel_id", "ward_code"]
    assert {f["id"]: f["type"] for f in r["fields"]}["area_m2"] == "float8"
    assert [rec["_id"] for rec in r["records"][:3]] == [1, 2, 3]
    assert r["records"][0]["parcel_id"] == "P00000"
    assert r["records"][-1]["_id"] == 100  # _id runs across the snapshot's files (100 rows per file)
    f = call(
        hub,
        "datastore_search",
        resource_id=parcels,
        filters=json.dumps({"land_use": "ODT", "ward_code": ["26734", "26735"]}),
    )
    body = f.json()["result"]
    assert body["total"] == len([i for i in range(250) if i % 3 == 0 and i % 5 in (0, 1)])
    assert all(x["land_use"] == "ODT" for x in body["records"])
    ranged = call(
        hub,
        "datastore_search",
        post=True,
        resource_id=parcels,
        filters={"area_m2": {"gte": 300, "lt": 310}},
        fields=["parcel_id"],
        sort="parcel_id desc",
    )
    assert [x["parcel_id"] for x in ranged.json()["result"]["records"]] == [
        f"P{i:05d}" for i in range(209, 199, -1)
    ]
    ors = call(
        hub,
        "datastore_search",
        post=True,
        resource_id="land-parcels",
        filters={"$or": [{"parcel_id": "P00001"}, {"parcel_id": "P00002"}]},
        include_total=False,
    )
    assert len(ors.json()["result"]["records"]) == 2
    assert "total" not in ors.json()["result"]


def test_q_distinct_formats_and_paging(hub: LiveHub) -> None:
    parcels = rid(hub, "land-parcels")
    q = call(hub, "datastore_search", resource_id=parcels, q="nguyen van dat", limit=5).json()["result"]
    assert q["total"] == 125
    assert q["records"][0]["owner_note"] == "Nguyễn Văn Đạt"
    d = call(
        hub, "datastore_search", resource_id=parcels, distinct="true", fields="land_use", sort="land_use"
    )
    assert d.json()["result"]["records"] == [{"land_use": "LUC"}, {"land_use": "ODT"}]
    lists = call(
        hub,
        "datastore_search",
        resource_id=parcels,
        fields="parcel_id,area_m2",
        limit=2,
        records_format="lists",
    ).json()["result"]
    assert lists["records"] == [["P00000", 100.0], ["P00001", 101.0]]
    csv = call(
        hub,
        "datastore_search",
        resource_id=parcels,
        fields="parcel_id,area_m2",
        limit=2,
        records_format="csv",
    ).json()["result"]
    assert csv["records"] == "P00000,100.0\nP00001,101.0\n"
    page = call(hub, "datastore_search", resource_id=parcels, limit=10, offset=20).json()["result"]
    assert page["records"][0]["_id"] == 21
    assert page["_links"]["next"].startswith("/api/3/action/datastore_search?offset=30")
    assert page["_links"]["prev"].startswith("/api/3/action/datastore_search?offset=10")
    keyset = call(
        hub,
        "datastore_search",
        post=True,
        resource_id=parcels,
        limit=50,
        include_next_page=True,
        filters={"land_use": "LUC"},
    ).json()["result"]
    nxt = keyset["next_page"]
    assert nxt["land_use"] == "LUC"
    second = call(hub, "datastore_search", post=True, resource_id=parcels, limit=50, filters=nxt).json()[
        "result"
    ]
    first_ids = [x["_id"] for x in keyset["records"]]
    assert second["records"][0]["_id"] > first_ids[-1]
    assert call(hub, "datastore_search", resource_id=parcels, limit=99999).json()["result"]["limit"] == 32000


def test_errors(hub: LiveHub) -> None:
    parcels = rid(hub, "land-parcels")
    r = call(hub, "datastore_search", resource_id=parcels, colour="blue")
    assert r.status_code == 409
    assert r.json()["error"]["colour"] == ["The input field colour was not expected."]
    r = call(hub, "datastore_search", resource_id=parcels, filters=json.dumps({"nope": 1}))
    assert r.status_code == 409
    assert r.json()["error"]["filters"] == ['invalid value "nope"']
    r = call(hub, "datastore_search", resource_id=parcels, sort="nope desc")
    assert r.status_code == 409
    r = call(hub, "datastore_search", resource_id=parcels, fields="nope")
    assert r.status_code == 409
    r = call(hub, "datastore_search", resource_id="00000000-0000-4000-8000-000000000000")
    assert r.status_code == 404
    assert (
        r.json()["error"]["message"]
        == 'Not found: Resource "00000000-0000-4000-8000-000000000000" was not found.'
    )
    r = call(hub, "datastore_search", resource_id=parcels, filters=json.dumps({"area_m2": "abc"}))
    assert r.status_code == 409
    assert r.json()["error"]["__type"] == "Validation Error"


def test_equality_searches_answered_in_memory_as_in_a_thread(
    hub: LiveHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An anonymous text-equality search of open data, once the dataset, its snapshot and the lookup
    are held, is answered on the event loop (no thread), with the document a thread gives."""
    import hub.api.ckan as ckan

    threads: list[str] = []
    real = ckan.run_in_threadpool

    async def counting(fn: Any, *args: Any, **kwargs: Any) -> Any:
        if fn is ckan._call:
            threads.append(args[1].name)
        return await real(fn, *args, **kwargs)

    monkeypatch.setattr(ckan, "run_in_threadpool", counting)
    parcels = rid(hub, "land-parcels")
    base: dict[str, Any] = {"resource_id": parcels, "filters": json.dumps({"land_use": "ODT"})}
    for _ in range(300):  # the first searches build the lookup in the background
        threads.clear()
        assert call(hub, "datastore_search", **base).status_code == 200
        if not threads:
            break
        time.sleep(0.05)
    assert not threads, "the search still went to a thread after 15 s"

    cases: list[dict[str, Any]] = [
        {},
        {"limit": 7, "offset": 3, "include_next_page": "true"},
        {"fields": "parcel_id,_id", "include_total": "false"},
        {"records_format": "lists", "limit": 3},
        {"records_format": "csv", "limit": 3},
        {"filters": json.dumps({"land_use": "nowhere"})},
        {"limit": 0},
    ]
    for extra in cases:
        params = {**base, **extra}
        threads.clear()
        anonymous = call(hub, "datastore_search", **params)
        assert not threads, extra  # in memory
        with_token = call(hub, "datastore_search", hub.member_token, **params)
        assert threads == ["datastore_search"], extra  # a token: a thread
        assert anonymous.status_code == with_token.status_code == 200, extra
        assert anonymous.json() == with_token.json(), extra
    for extra in (  # more than one column, a page past the in-memory bound, not an equality: a thread
        {"filters": json.dumps({"land_use": "ODT", "ward_code": "26734"})},
        {"limit": 1001},
        {"filters": json.dumps({"land_use": ["ODT"]})},
        {"q": "nguyen"},
    ):
        threads.clear()
        assert call(hub, "datastore_search", **{**base, **extra}).status_code == 200, extra
        assert threads == ["datastore_search"], extra
    threads.clear()  # invalid input gets the same answer in memory
    bad = call(hub, "datastore_search", **{**base, "fields": "nope"})
    assert (bad.status_code, threads) == (409, [])
    assert bad.json()["error"]["fields"] == ['invalid value "nope"']


def test_private_table_access(hub: LiveHub) -> None:
    births = rid(hub, "civil_status-births", hub.member_token)
    assert call(hub, "datastore_search", resource_id=births).status_code == 403
    assert call(hub, "datastore_search", hub.outsider_token, resource_id=births).status_code == 403
    ok = call(hub, "datastore_search", hub.member_token, resource_id=births).json()["result"]
    assert ok["total"] == 40
    assert {f["id"]: f["type"] for f in ok["fields"]}["child_birth_date"] == "date"
    assert ok["records"][0]["child_birth_date"] == "2025-01-01"
    info = call(hub, "datastore_info", hub.member_token, id=births).json()["result"]
    assert info["meta"]["count"] == 40
    assert [f["id"] for f in info["fields"]] == ["registration_number", "ward_code", "child_birth_date"]
    label = info["fields"][0]["info"]["label"]
    assert label.startswith("Số đăng ký khai sinh")


def test_sql(hub: LiveHub) -> None:
    parcels = rid(hub, "land-parcels")
    sql = f'SELECT land_use, count(*) AS n FROM "{parcels}" GROUP BY land_use ORDER BY land_use'
    r = call(hub, "datastore_search_sql", sql=sql).json()["result"]
    assert r["records"] == [{"land_use": "LUC", "n": 166}, {"land_use": "ODT", "n": 84}]
    assert r["fields"] == [{"id": "land_use", "type": "text"}, {"id": "n", "type": "int8"}]
    assert "records_truncated" not in r
    joined = call(
        hub,
        "datastore_search_sql",
        sql='WITH m AS (SELECT * FROM "civil_status-marriages") '
        "SELECT count(*) AS n FROM m, land.parcels p WHERE p.parcel_id = 'P00001'",
    ).json()["result"]
    assert joined["records"] == [{"n": 30}]


@pytest.mark.parametrize(
    ("sql", "status", "fragment"),
    [
        ("SELECT 1; SELECT 2", 409, "not a single statement"),
        ("DELETE FROM x", 409, "Only a SELECT"),
        ("PRAGMA database_list", 409, "Only a SELECT"),
        ("COPY (SELECT 1) TO '/tmp/x.csv'", 409, "Only a SELECT"),
        ("SELECT * FROM read_parquet('/etc/passwd')", 403, "read_parquet"),
        ("SELECT * FROM '/etc/passwd'", 409, "does not exist or is not readable"),
        ("SELECT current_setting('allowed_directories')", 403, "current_setting"),
        ("SELECT * FROM duckdb_settings()", 403, "Not authorized"),
        ("SELECT * FROM range(10)", 403, "Not authorized"),
        ("SELECT * FROM information_schema.tables", 409, "does not exist or is not readable"),
        ("SELECT * FROM no_such_table", 409, '"no_such_table" does not exist or is not readable'),
        (
            'SELECT * FROM "civil_status-births"',
            409,
            '"civil_status-births" does not exist or is not readable',
        ),
        ("ATTACH '/tmp/x.db'", 409, "Only a SELECT"),
    ],
)
def test_sql_sandbox_refuses(hub: LiveHub, sql: str, status: int, fragment: str) -> None:
    r = call(hub, "datastore_search_sql", sql=sql)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert fragment.lower() in " ".join(str(v) for v in error.values()).lower()


def test_sql_private_table_with_access_and_limits(hub: LiveHub) -> None:
    r = call(
        hub, "datastore_search_sql", hub.member_token, sql='SELECT count(*) AS n FROM "civil_status-births"'
    )
    assert r.json()["result"]["records"] == [{"n": 40}]
    big = call(
        hub, "datastore_search_sql", sql="SELECT a.parcel_id FROM land.parcels a, land.parcels b LIMIT 33000"
    )
    body = big.json()["result"]
    assert body["records_truncated"] is True
    assert len(body["records"]) == 32000


def test_sql_time_limit_interrupts(hub: LiveHub) -> None:
    hub.settings.query_timeout_seconds = 1.0
    try:
        r = call(
            hub,
            "datastore_search_sql",
            sql="SELECT count(*) FROM land.parcels a, land.parcels b, land.parcels c, land.parcels d "
            "WHERE (a.area_m2 * b.area_m2 + c.area_m2 * d.area_m2) % 7 = 3",
        )
    finally:
        hub.settings.query_timeout_seconds = 30.0
    assert r.status_code == 409
    assert r.json()["error"]["query"] == ["Search took too long"]
