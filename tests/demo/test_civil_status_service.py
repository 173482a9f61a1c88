"""The simulated civil-status service as a real child process: auth, pages, updated_since, XML, faults."""

from __future__ import annotations

import sqlite3
import time
from typing import Any

import httpx
import orjson
import pytest
from lxml import etree

from hub.demo.civil_status_service import parse_faults
from hub.demo.generate import DemoPaths
from hub.demo.run import civil_status_service, free_port
from tests.demo.conftest import API_KEY

KEY = {"X-API-Key": API_KEY}


def all_pages(base: str, kind: str, **params: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    cursor = None
    with httpx.Client(base_url=base, headers=KEY, timeout=30) as client:
        while True:
            q = {**params, **({"cursor": cursor} if cursor else {})}
            r = client.get(f"/api/{kind}", params=q)
            assert r.status_code == 200, r.text
            body = r.json()
            out.extend(body["data"])
            cursor = body["next_cursor"]
            if cursor is None:
                assert "link" not in r.headers
                return out


def test_health_needs_no_key(service_url: str, demo_small: tuple[DemoPaths, dict[str, Any]]) -> None:
    r = httpx.get(f"{service_url}/health")
    assert r.status_code == 200
    assert r.json()["counts"] == {k: demo_small[1]["counts"][k] for k in ("births", "marriages", "deaths")}


@pytest.mark.parametrize("headers", [{}, {"X-API-Key": "wrong"}, {"Authorization": "Bearer wrong"}])
def test_records_without_the_key_are_refused(service_url: str, headers: dict[str, str]) -> None:
    for path in ("/api/births", "/export/births.xml"):
        r = httpx.get(service_url + path, headers=headers)
        assert r.status_code == 401
        assert r.headers["content-type"] == "application/json"
        assert r.json()["error"] == "unauthorized"


def test_bearer_token_is_accepted(service_url: str) -> None:
    r = httpx.get(
        f"{service_url}/api/deaths", params={"limit": 3}, headers={"Authorization": f"Bearer {API_KEY}"}
    )
    assert r.status_code == 200
    assert r.json()["count"] == 3


def test_cursor_pages_return_every_record_once_in_order(
    service_url: str, demo_small: tuple[DemoPaths, dict[str, Any]]
) -> None:
    records = all_pages(service_url, "births", limit=97)
    assert len(records) == demo_small[1]["counts"]["births"]
    numbers = [r["registration_number"] for r in records]
    assert len(set(numbers)) == len(numbers)
    order = [(r["updated_at"], r["registration_number"]) for r in records]
    assert order == sorted(order)
    assert set(records[0]) >= {"child_full_name", "child_personal_id", "mother_full_name", "updated_at"}


def test_updated_since_returns_the_changes_only(
    service_url: str, demo_small: tuple[DemoPaths, dict[str, Any]]
) -> None:
    paths, _ = demo_small
    since = "2025-07-01T00:00:00+07:00"
    con = sqlite3.connect(paths.civil_status_db)
    expected = {
        r[0] for r in con.execute("SELECT registration_number FROM marriages WHERE updated_at >= ?", (since,))
    }
    con.close()
    got = all_pages(service_url, "marriages", limit=50, updated_since=since)
    assert {r["registration_number"] for r in got} == expected
    assert 0 < len(expected) < demo_small[1]["counts"]["marriages"]
    # the same instant in UTC selects the same records
    assert len(all_pages(service_url, "marriages", limit=500, updated_since="2025-06-30T17:00:00Z")) == len(
        expected
    )


def test_offset_and_page_pagination_with_link_header(service_url: str) -> None:
    with httpx.Client(base_url=service_url, headers=KEY) as client:
        first = client.get("/api/deaths", params={"page": 1, "limit": 10})
        second = client.get("/api/deaths", params={"page": 2, "limit": 10})
        by_offset = client.get("/api/deaths", params={"offset": 10, "limit": 10})
        assert second.json()["data"] == by_offset.json()["data"]
        assert (
            first.json()["data"][-1]["registration_number"] != second.json()["data"][0]["registration_number"]
        )
        link = first.headers["link"]
        assert link.startswith("<")
        assert link.endswith('>; rel="next"')
        assert "page=2" in link
        followed = client.get(link[1 : link.index(">")])
        assert followed.json()["data"] == second.json()["data"]
        assert first.json()["total"] == client.get("/health").json()["counts"]["deaths"]


def test_bad_requests_are_400_with_a_reason(service_url: str) -> None:
    with httpx.Client(base_url=service_url, headers=KEY) as client:
        assert client.get("/api/births", params={"limit": 0}).status_code == 400
        r = client.get("/api/births", params={"cursor": "not-a-cursor"})
        assert r.status_code == 400
        assert r.json()["message"] == "invalid cursor"
        assert client.get("/api/births", params={"updated_since": "yesterday"}).status_code == 400
        assert client.get("/api/adoptions").status_code == 404


def test_xml_export_has_the_same_records(
    service_url: str, demo_small: tuple[DemoPaths, dict[str, Any]]
) -> None:
    with (
        httpx.Client(base_url=service_url, headers=KEY, timeout=30) as client,
        client.stream("GET", "/export/births.xml") as r,
    ):
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("application/xml")
        body = b"".join(r.iter_bytes())
    root = etree.fromstring(body)
    assert root.tag == "births"
    births = root.findall("birth")
    assert len(births) == int(root.get("count")) == demo_small[1]["counts"]["births"]
    json_numbers = [b["registration_number"] for b in all_pages(service_url, "births", limit=1000)]
    assert [b.findtext("registration_number") for b in births] == json_numbers
    first = all_pages(service_url, "births", limit=1000)[0]
    assert births[0].findtext("child_full_name") == first["child_full_name"]


def test_fault_500_then_recovers(service_url: str) -> None:
    with httpx.Client(base_url=service_url, headers=KEY) as client:
        params = {"limit": 5, "fault": "500:2", "probe": "a"}
        assert client.get("/api/births", params=params).status_code == 500
        assert client.get("/api/births", params=params).status_code == 500
        assert client.get("/api/births", params=params).status_code == 200


def test_fault_429_has_retry_after(service_url: str) -> None:
    with httpx.Client(base_url=service_url, headers=KEY) as client:
        params = {"limit": 5, "fault": "429", "retry_after": "2", "probe": "b"}
        r = client.get("/api/births", params=params)
        assert r.status_code == 429
        assert r.headers["retry-after"] == "2"
        assert client.get("/api/births", params=params).status_code == 200


def test_fault_truncate_sends_broken_json(service_url: str) -> None:
    r = httpx.get(f"{service_url}/api/births", params={"fault": "truncate", "probe": "c"}, headers=KEY)
    assert r.status_code == 200
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(r.content)


def test_fault_slow_waits(service_url: str) -> None:
    started = time.monotonic()
    r = httpx.get(
        f"{service_url}/api/births",
        params={"fault": "slow", "delay": "0.6", "limit": 1, "probe": "d"},
        headers=KEY,
        timeout=10,
    )
    assert r.status_code == 200
    assert time.monotonic() - started >= 0.6


def test_fault_drop_breaks_the_connection(service_url: str) -> None:
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{service_url}/api/births", params={"fault": "drop", "probe": "e"}, headers=KEY)


def test_fault_spec_parsing() -> None:
    assert parse_faults("500:2, 429") == [("500", 2), ("429", 1)]
    assert parse_faults("slow:0") == [("slow", 0)]
    assert parse_faults(None) == []
    with pytest.raises(ValueError, match="unknown fault"):
        parse_faults("404")
    with pytest.raises(ValueError, match="integer"):
        parse_faults("500:x")


def test_service_wide_faults(demo_small: tuple[DemoPaths, dict[str, Any]]) -> None:
    """--faults applies to every request that names no fault of its own, page by page."""
    paths, m = demo_small
    with civil_status_service(paths.civil_status_db, API_KEY, free_port(), faults="503,429") as base:
        with httpx.Client(base_url=base, headers=KEY) as client:
            statuses = [client.get("/api/deaths", params={"limit": 7}).status_code for _ in range(3)]
            assert statuses == [503, 429, 200]
            other_page = client.get("/api/deaths", params={"limit": 8})
            assert other_page.status_code == 503
            assert client.get("/api/deaths", params={"limit": 8, "fault": ""}).status_code == 200
        assert httpx.get(f"{base}/health").json()["counts"]["deaths"] == m["counts"]["deaths"]
