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
from hub.settings import Settings
from hub.testing.live import free_port, live_server

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
        r = client.get(url)
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
    build_release(settings, "civil_status.births", "births-by-ward-month")
    build_release(settings, "land.parcels", "parcels-without-owner")
    v2 = build_release(settings, "civil_status.births", "births-by-ward-month")
    assert v2.version == 2
    with live_server(settings, port=port) as base, httpx.Client(timeout=30) as client:
        listing = client.get(f"{base}/api/v1/releases").json()["releases"]
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
        page = client.get(f"{base}/dataset/civil_status-births")
        assert "births-by-ward-month/1/data.csv" in page.text
        assert "Từ điển dữ liệu" in page.text
        pre = client.options(f"{base}/catalog.ttl", headers={"Origin": "https://x.example",
                                                              "Access-Control-Request-Method": "GET"})  # fmt: skip
        assert pre.status_code == 204
        assert pre.headers["access-control-allow-origin"] == "*"
        ttl = client.get(f"{base}/catalog.ttl")
        assert (
            ttl.headers["content-type"].startswith("text/turtle")
        )
        assert (
            "hydra:PartialCollectionView" in ttl.text
        )
        assert client.get(f"{base}/dataset/land-parcels.jsonld").status_code == 200
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


def test_release_api_refuses_a_personal_id_and_needs_rights(publish_settings: Settings) -> None:
    settings, port = _live_settings(publish_settings)
    body = {"dataset": "civil_status.births", "id": "ids", "title": {"vi": "Số định danh"},
            "sql": "SELECT ward_code, child_personal_id FROM civil_status.births"}  # fmt: skip
    with live_server(settings, port=port) as base, httpx.Client(timeout=30) as client:
        anonymous = client.post(f"{base}/api/v1/releases", json=body)
        assert anonymous.status_code in (401, 403)
        from hub.api.app import create_app  # noqa: F401  (the app is importable with every router)

        _ = client.get(f"{base}/api/v1/releases/civil_status.births/births-by-ward-month")
        assert _.status_code == 200
        assert _.json()["versions"] == []
