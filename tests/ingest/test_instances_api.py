"""``/api/v1/connectors`` and ``POST /api/v1/datasets`` on a live server with real access tokens."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from connectors.rest.fakeapi import FakeApi
from hub.auth import tokens, users
from hub.db import get_engine, session_scope
from hub.settings import Settings
from hub.testing.live import live_server

SECRET = "s3cr3t-of-the-hotich-system"


@dataclass
class Hub:
    url: str
    settings: Settings
    orgs: dict[str, str]

    def token(self, org: str, scope: str = "connectors:manage") -> dict[str, str]:
        with session_scope(self.settings) as s:
            token, _ = tokens.issue_access_token(
                self.settings,
                subject=f"{org}-system",
                client_id=f"{org}-system",
                scope=scope,
                org_id=self.orgs[org],
                session=s,
            )
        return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def hub(settings: Settings) -> Iterator[Hub]:
    settings = settings.model_copy(update={"secret_key": "key-of-the-test-hub"})
    get_engine(settings)
    orgs = {}
    with session_scope(settings) as s:
        for name in ("so-tu-phap", "so-xd"):
            orgs[name] = users.add_org(s, name, name).id
            users.add_client(
                s, name, f"system of {name}", scope="connectors:manage", client_id=f"{name}-system"
            )
    with live_server(settings) as url:
        yield Hub(url, settings, orgs)


def body(url: str) -> dict[str, object]:
    return {
        "name": "hotich",
        "connector": "rest",
        "config": {
            "base_url": url,
            "streams": [{"name": "items", "path": "/items"}],
            "auth": {"type": "api_key", "key": {"$secret": "api_key"}},
            "max_attempts": 1,
        },
        "secrets": {"api_key": SECRET},
    }


def test_register_check_list_delete(hub: Hub, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    auth = hub.token("so-tu-phap")
    with FakeApi([{"id": 1}], api_key=SECRET) as api, httpx.Client(base_url=hub.url, timeout=30) as c:
        created = c.post("/api/v1/connectors", json=body(api.url), headers=auth)
        assert created.status_code == 201, created.text
        assert created.json()["secrets"] == ["api_key"]
        assert created.json()["organization"] == "so-tu-phap"
        check = c.post("/api/v1/connectors/hotich/check", headers=auth)
        assert check.json()["ok"] is True
        listed = c.get("/api/v1/connectors", headers=auth)
        assert {i["name"] for i in listed.json()["connectors"]} >= {"rest", "xml", "files", "sql"}
        assert [i["name"] for i in listed.json()["instances"]] == ["hotich"]
        other = hub.token("so-xd")
        assert c.get("/api/v1/connectors", headers=other).json()["instances"] == []
        assert c.get("/api/v1/connectors/hotich", headers=other).status_code == 403
        assert c.delete("/api/v1/connectors/hotich", headers=other).status_code == 403
        texts = [created.text, check.text, listed.text, c.get("/api/v1/connectors/hotich", headers=auth).text]
        assert c.delete("/api/v1/connectors/hotich", headers=auth).status_code == 204
        assert c.get("/api/v1/connectors/hotich", headers=auth).status_code == 404
    for text in [*texts, caplog.text]:
        assert SECRET not in text


def test_refusals(hub: Hub) -> None:
    with httpx.Client(base_url=hub.url, timeout=30) as c:
        assert c.post("/api/v1/connectors", json=body("http://x")).status_code == 401
        no_scope = hub.token("so-tu-phap", scope="catalog:read")
        assert c.post("/api/v1/connectors", json=body("http://x"), headers=no_scope).status_code == 403
        foreign = {**body("http://x"), "organization": "so-tu-phap"}
        assert c.post("/api/v1/connectors", json=foreign, headers=hub.token("so-xd")).status_code == 403
        bad = {
            **body("http://x"),
            "config": {"base_url": "http://x", "streams": [], "oops": 1},
            "secrets": {},
        }
        answer = c.post("/api/v1/connectors", json=bad, headers=hub.token("so-tu-phap"))
        assert answer.status_code == 409
        assert answer.headers["content-type"].startswith("application/problem+json")
        assert "oops" in answer.text


def test_post_dataset(hub: Hub) -> None:
    spec = {
        "id": "civil_status.births_feed",
        "title": {"vi": "Khai sinh (API)"},
        "contract": "civil_status/births.v1",
        "schedule": "0 3 * * *",
        "source": {
            "connector": "rest",
            "config": {"base_url": "http://x", "streams": [{"name": "a", "path": "/a"}]},
        },
    }
    with httpx.Client(base_url=hub.url, timeout=30) as c:
        made = c.post("/api/v1/datasets", json=spec, headers=hub.token("so-tu-phap"))
        assert made.status_code == 201, made.text
        assert made.json()["organization"] == "so-tu-phap"
        wrong = c.post(
            "/api/v1/datasets", json={**spec, "schedule": "sometimes"}, headers=hub.token("so-tu-phap")
        )
        assert wrong.status_code == 409
        assert "schedule" in wrong.json()["errors"]
        theirs = c.post(
            "/api/v1/datasets", json={**spec, "organization": "so-tu-phap"}, headers=hub.token("so-xd")
        )
        assert theirs.status_code == 403
