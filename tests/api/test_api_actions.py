"""The Action API transport and read actions, as a CKAN client sees them over HTTP."""

from __future__ import annotations

import re
import uuid

import httpx
import pytest

from tests.api.conftest import LiveHub

pytestmark = pytest.mark.integration
TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?$")


def get(hub: LiveHub, action: str, token: str | None = None, **params: object) -> httpx.Response:
    headers = {"Authorization": token} if token else {}
    return httpx.get(f"{hub.base}/api/3/action/{action}", params=params, headers=headers, timeout=30)


def test_envelope_versions_and_slashes(hub: LiveHub) -> None:
    r = httpx.get(f"{hub.base}/api/action/status_show")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert body["success"] is True
    assert body["help"] == f"{hub.settings.site_url}/api/3/action/help_show?name=status_show"
    assert "datastore" in body["result"]["extensions"]
    assert httpx.get(f"{hub.base}/api").json() == {"version": 1}
    assert httpx.get(f"{hub.base}/api/3").json() == {"version": 3}
    assert httpx.get(f"{hub.base}//api/3/action/site_read").json()["result"] is True
    assert httpx.get(f"{hub.base}/api/2/action/site_read").status_code == 404


def test_bare_string_400s(hub: LiveHub) -> None:
    r = httpx.get(f"{hub.base}/api/3/action/no_such_action")
    assert (r.status_code, r.json()) == (400, "Bad request: Action name not known: no_such_action")
    r = httpx.get(f"{hub.base}/api/3/action/package_create")
    assert r.status_code == 400
    assert "Please use POST method" in r.json()
    r = httpx.post(
        f"{hub.base}/api/3/action/package_show",
        content=b"{not json",
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 400
    assert r.json().startswith("Bad request: JSON Error")
    r = httpx.post(f"{hub.base}/api/3/action/package_show", json=[1, 2])
    assert r.status_code == 400


def test_error_envelopes(hub: LiveHub) -> None:
    r = get(hub, "package_show", id="nope")
    assert r.status_code == 404
    assert r.json()["error"] == {"__type": "Not Found Error", "message": "Not found"}
    r = get(hub, "package_show")
    assert r.status_code == 409
    assert r.json()["error"] == {"__type": "Validation Error", "id": ["Missing value"]}
    r = get(hub, "package_show", id="civil_status-births")
    assert r.status_code == 403
    assert r.json()["error"]["__type"] == "Authorization Error"
    r = get(hub, "package_show", hub.outsider_token, id="civil_status-births")
    assert r.status_code == 403
    r = get(hub, "package_search", q="x", bogus="1")
    assert r.status_code == 400
    assert r.json()["error"]["__type"] == "Search Query Error"
    r = get(hub, "package_search", fq="metadata_modified:[2020 TO")
    assert r.status_code == 400
    r = get(hub, "package_search", sort="nonsense desc")
    assert r.status_code == 400
    r = get(hub, "resource_show", id=str(uuid.uuid4()))
    assert r.json()["error"]["message"] == "Not found: Resource was not found."
    r = get(hub, "package_list", limit="x")
    assert r.status_code == 409


def test_invalid_token_is_anonymous(hub: LiveHub) -> None:
    r = get(hub, "package_list", "not-a-token")
    assert r.status_code == 200
    r = get(hub, "package_show", "Bearer nope.nope.nope", id="civil_status-births")
    assert r.status_code == 403


def test_post_forms_and_json(hub: LiveHub) -> None:
    url = f"{hub.base}/api/3/action/package_show"
    assert httpx.post(url, json={"id": "land-parcels"}).json()["result"]["name"] == "land-parcels"
    assert httpx.post(url, data={"id": "land-parcels"}).json()["result"]["name"] == "land-parcels"
    legacy = httpx.post(
        url, content=b'{"id": "land-parcels"}', headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert legacy.json()["result"]["name"] == "land-parcels"
    multi = httpx.post(url, files={"id": (None, "land-parcels")})
    assert multi.json()["result"]["name"] == "land-parcels"
    both = httpx.post(f"{url}?id=land-parcels", json={"id": "civil_status-marriages"})
    assert both.json()["result"]["name"] == "land-parcels"  # CKAN: the query string wins on read actions


def test_package_dict_shape(hub: LiveHub) -> None:
    pkg = get(hub, "package_show", id="land-parcels").json()["result"]
    uuid.UUID(pkg["id"])
    uuid.UUID(pkg["owner_org"])
    assert pkg["name"] == "land-parcels"
    assert pkg["license_title"] == "Creative Commons Attribution 4.0"
    assert pkg["license_url"].startswith("https://creativecommons.org/")
    assert pkg["isopen"] is True
    assert pkg["private"] is False
    assert pkg["type"] == "dataset"
    assert TS.match(pkg["metadata_created"])
    assert TS.match(pkg["metadata_modified"])
    assert pkg["num_tags"] == 2 == len(pkg["tags"])
    assert {t["name"] for t in pkg["tags"]} == {"đất đai", "bản đồ"}
    assert pkg["groups"][0]["name"] == "dat-dai"
    assert pkg["groups"][0]["display_name"] == "Đất đai"
    assert pkg["organization"]["is_organization"] is True
    keys = {e["key"] for e in pkg["extras"]}
    assert "hub_key" in keys
    assert not keys & {"name", "title", "id"}
    assert pkg["num_resources"] == 1
    res = pkg["resources"][0]
    uuid.UUID(res["id"])
    assert res["datastore_active"] is True
    assert res["url"] == (
        f"{hub.settings.site_url}/dataset/{pkg['id']}/resource/{res['id']}/download/land-parcels.csv"
    )
    assert TS.match(res["created"])
    shown = get(hub, "resource_show", id=res["id"]).json()["result"]
    assert shown == res
    search = get(hub, "package_search", fq="name:land-parcels").json()["result"]["results"][0]
    assert search == pkg


def test_private_datasets(hub: LiveHub) -> None:
    assert "civil_status-births" not in get(hub, "package_list").json()["result"]
    assert get(hub, "package_search", q="khai sinh").json()["result"]["count"] == 0
    assert get(hub, "package_search", hub.member_token, q="khai sinh").json()["result"]["count"] == 0
    found = get(hub, "package_search", hub.member_token, q="khai sinh", include_private="true").json()[
        "result"
    ]
    assert [p["name"] for p in found["results"]] == ["civil_status-births"]
    assert (
        get(hub, "package_search", hub.outsider_token, q="khai sinh", include_private="true").json()[
            "result"
        ]["count"]
        == 0
    )
    pkg = get(hub, "package_show", hub.member_token, id="civil_status-births").json()["result"]
    assert pkg["private"] is True


def test_organizations_groups_tags_licenses(hub: LiveHub) -> None:
    assert get(hub, "organization_list").json()["result"] == ["so-tai-nguyen-moi-truong", "so-tu-phap"]
    orgs = get(hub, "organization_list", all_fields="true", sort="name desc", limit=1, offset=0).json()[
        "result"
    ]
    assert [o["name"] for o in orgs] == ["so-tu-phap"]
    assert orgs[0]["package_count"] == 1  # the private one is not counted for anonymous callers
    org = get(hub, "organization_show", id="so-tu-phap", include_datasets="true").json()["result"]
    assert org["title"] == "Sở Tư pháp"
    assert [p["name"] for p in org["packages"]] == ["civil_status-marriages"]
    assert get(hub, "organization_show", id="ho-tich").status_code == 404
    assert get(hub, "group_show", id="so-tu-phap").status_code == 404
    assert get(hub, "group_list").json()["result"] == ["dat-dai", "ho-tich"]
    group = get(hub, "group_show", id="ho-tich").json()["result"]
    assert group["title"] == "Hộ tịch"
    pkgs = get(hub, "group_package_show", id="ho-tich").json()["result"]
    assert [p["name"] for p in pkgs] == ["civil_status-marriages"]
    tags = get(hub, "tag_list").json()["result"]
    assert "hộ tịch" in tags
    assert "đất đai" in tags
    assert get(hub, "tag_list", query="đất").json()["result"] == ["đất đai"]
    licenses = {lic["id"]: lic for lic in get(hub, "license_list").json()["result"]}
    assert licenses["cc-by"]["title"] == "Creative Commons Attribution"
    assert licenses["cc-by"]["domain_content"] == "True"
    ac = get(hub, "package_autocomplete", q="ket hon").json()["result"]
    assert ac == [
        {
            "name": "civil_status-marriages",
            "title": "Đăng ký kết hôn",
            "match_field": "title",
            "match_displayed": "Đăng ký kết hôn (civil_status-marriages)",
        }
    ]


def test_current_package_list_and_paging(hub: LiveHub) -> None:
    pkgs = get(hub, "current_package_list_with_resources").json()["result"]
    assert {p["name"] for p in pkgs} >= {"land-parcels", "civil_status-marriages"}
    assert all("resources" in p for p in pkgs)
    assert get(hub, "package_list", limit=1, offset=1).json()["result"] == ["land-parcels"]
