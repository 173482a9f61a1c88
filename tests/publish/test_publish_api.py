# ruff: noqa: E501  (SQL and fixture rows read best on one line)
"""The public face of releases through a real server: downloads, /api/v1/releases, DCAT, portal,
CORS, ETag and Cache-Control; and the PII scan of everything published."""

from __future__ import annotations

import hashlib
import re
from typing import Any

import httpx
import pytest

from hub.publish.build import build_release
from hub.runtime import Hub
from hub.settings import Settings
from hub.testing.live import free_port, live_server
from tests.publish.conftest import _write

pytestmark = pytest.mark.integration


def _live_settings(s: Settings) -> tuple[Settings, int]:
    port = free_port()
    return s.model_copy(update={"site_url": f"http://127.0.0.1:{port}"}), port


def _crawl(base: str, client: httpx.Client) -> dict[str, bytes]:
    """Every page and file reachable from the portal home, the release API and the DCAT catalogue."""
    seen: dict[str, bytes] = {}
    todo = [f"{base}/", f"{base}/api/v1/releases", f"{base}/catalog.ttl", f"{base}/catalog.jsonld"]
    while todo:
        url = todo.pop()
        if url in seen or not url.startswith(base):
            continue
        r = client.get(url, follow_redirects=True)  # a private dataset's page leads to its companion
        assert r.status_code == 200, (url, r.status_code, r.text[:300])
        seen[url] = r.content
        ctype = r.headers.get("content-type", "")
        if "html" in ctype or "json" in ctype or "turtle" in ctype:
            for link in re.findall(r'(?:href="|")(/[^"#?]*|https?://127\.0\.0\.1:\d+/[^"#?\s]*)"', r.text):
                full = link if link.startswith("http") else base + link
                if "/api/3/" in full or full.endswith("/distribution") or "/spatial/" in full:
                    continue
                if "/organization/" in full or "/dataset/" in full or full.endswith(".ttl"):
                    todo.append(full)
    return seen


def test_release_files_pages_and_catalogue_are_public_and_free_of_personal_data(
    publish_settings: Settings, births_rows: list[dict[str, Any]], parcels_rows: list[dict[str, Any]]
) -> None:
    settings, port = _live_settings(publish_settings)
    with Hub(settings) as hub:
        build_release(hub, "civil_status.births", "births-by-ward-month")
        build_release(hub, "land.parcels", "parcels-without-owner")
        _write(settings, "civil_status.births", "civil_status/births.v1", births_rows[:10])  # new data
        v2 = build_release(hub, "civil_status.births", "births-by-ward-month").current
    assert v2 is not None
    assert v2.version == 2
    with live_server(settings, port=port) as base, httpx.Client(timeout=30) as client:
        answer = client.get(f"{base}/api/v1/releases")
        assert answer.headers["cache-control"] == "public, max-age=60"
        etag = {"If-None-Match": answer.headers["etag"]}
        assert client.get(f"{base}/api/v1/releases", headers=etag).status_code == 304
        listing = answer.json()["releases"]
        births = next(r for r in listing if r["id"] == "births-by-ward-month")
        assert [v["version"] for v in births["versions"]] == [1, 2]
        assert births["stale"] is False
        for version in births["versions"]:  # earlier versions stay downloadable
            for f in version["files"]:
                r = client.get(f["url"])
                assert r.status_code == 200, f["url"]
                assert hashlib.sha256(r.content).hexdigest() == f["sha256"]
                assert len(r.content) == f["size"]
                assert r.headers["access-control-allow-origin"] == "*"
                assert "max-age" in r.headers["cache-control"]
                again = client.get(f["url"], headers={"If-None-Match": r.headers["etag"]})
                assert again.status_code == 304
        home = client.get(f"{base}/")
        assert home.status_code == 200
        assert "Đăng ký khai sinh" in home.text
        assert client.get(f"{base}/", headers={"If-None-Match": home.headers["etag"]}).status_code == 304
        # the shared dataset stays private; its open companion package carries the releases
        assert client.get(f"{base}/api/3/action/package_show?id=civil_status-births").status_code == 403
        moved = client.get(f"{base}/dataset/civil_status-births", follow_redirects=False)
        assert moved.status_code == 302
        assert moved.headers["location"] == "/dataset/civil_status-births-open"
        page = client.get(f"{base}/dataset/civil_status-births-open")
        assert "births-by-ward-month/1/data.csv" in page.text
        assert "Từ điển dữ liệu" in page.text
        pre = client.options(f"{base}/catalog.ttl", headers={"Origin": "https://x.example",
                                                              "Access-Control-Request-Method": "GET"})  # fmt: skip
        assert pre.status_code == 204
        assert pre.headers["access-control-allow-origin"] == "*"
        ttl = client.get(f"{base}/catalog.ttl")
        assert ttl.headers["content-type"].startswith("text/turtle")
        assert "hydra:PartialCollectionView" in ttl.text
        assert client.get(f"{base}/dataset/land-parcels-open.jsonld").status_code == 200
        assert client.get(f"{base}/dataset/land-parcels.jsonld").status_code == 404
        assert client.get(f"{base}/catalog.rdf").status_code == 200
        published = _crawl(base, client)
    assert any("/release/" in u for u in published)
    assert any("/organization/" in u for u in published)
    secrets: set[str] = set()
    for row in births_rows:
        for key in ("child_personal_id", "father_personal_id", "mother_personal_id", "child_full_name",
                    "father_full_name", "mother_full_name", "birth_place"):  # fmt: skip
            secrets.add(row[key])
    for row in parcels_rows:
        secrets.update(v for v in (row["owner_name"], row["owner_personal_id"], row["address"]) if v)
    leaks = [(url, s) for url, body in published.items() for s in secrets if s.encode() in body]
    assert not leaks, leaks[:5]


def _client_token(settings: Settings, org: str, scope: str) -> str:
    from hub.auth.tokens import issue_access_token
    from hub.auth.users import add_client
    from hub.db import session_scope

    with session_scope(settings) as session:
        client, _ = add_client(session, org, f"{org} publisher", scope=scope)
        token, _ = issue_access_token(settings, subject=client.client_id, client_id=client.client_id,
                                      scope=scope, org_id=client.org_id, session=session)  # fmt: skip
    return token


def test_release_api_defines_releases_through_the_gate_and_needs_rights(publish_settings: Settings) -> None:
    settings, port = _live_settings(publish_settings)
    refused = {"dataset": "civil_status.births", "id": "ids", "title": {"vi": "Số định danh"},
               "sql": "SELECT ward_code, child_personal_id FROM civil_status.births"}  # fmt: skip
    good = {"dataset": "civil_status.births", "id": "births-by-year", "title": {"vi": "Sinh theo năm", "en": "By year"},
            "sql": "SELECT year(registration_date) AS year, count(*) AS births FROM civil_status.births GROUP BY 1",
            "frequency": "annual", "person_count": "births"}  # fmt: skip
    writer = _client_token(settings, "so-tu-phap", "catalog:read catalog:write")
    other_org = _client_token(settings, "so-nong-nghiep-moi-truong", "catalog:read catalog:write")
    with live_server(settings, port=port) as base, httpx.Client(timeout=30) as client:
        assert client.post(f"{base}/api/v1/releases", json=good).status_code in (401, 403)
        wrong = client.post(
            f"{base}/api/v1/releases", json=good, headers={"Authorization": f"Bearer {other_org}"}
        )
        assert wrong.status_code == 403
        auth = {"Authorization": f"Bearer {writer}"}
        bad = client.post(f"{base}/api/v1/releases", json=refused, headers=auth)
        assert bad.status_code == 422
        assert "civil_status.births.child_personal_id" in bad.json()["detail"]
        created = client.post(f"{base}/api/v1/releases", json=good, headers=auth)
        assert created.status_code == 201, created.text
        assert created.json()["origin"] == "api"
        built = client.post(f"{base}/api/v1/releases/civil_status.births/births-by-year/build", headers=auth)
        assert built.status_code == 200, built.text
        files = built.json()["versions"][0]["files"]
        csv = client.get(next(f["url"] for f in files if f["name"] == "data.csv"))
        assert csv.text.splitlines()[0] == '"year","births","suppressed"'
        public = client.get(f"{base}/api/v1/releases/civil_status.births/births-by-year").json()
        assert public["versions"][0]["version"] == 1
