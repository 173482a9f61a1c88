"""No 500 from input (issue 10, point 4): every input that gave a 500 answers a clear 4xx in the envelope
of its route, CKAN's on /api/3 and RFC 9457 problem JSON on /api/v1, through a real server."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from hub.catalog.models import Dataset
from hub.db import session_scope
from hub.publish.models import Release, ReleaseFile, ReleaseVersion
from tests.api.conftest import LiveHub

pytestmark = pytest.mark.integration

DEEP = 65  # one past HUB_QUERY_MAX_NESTING's default
VERY_DEEP = 100_000  # far past Python's recursion limit
HUGE = 2**63


@pytest.fixture(scope="module")
def client(hub: LiveHub) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=hub.base, timeout=60) as c:
        yield c


def assert_ckan_error(r: httpx.Response, status: int, error_type: str | None = None) -> dict[str, Any]:
    """CKAN's envelope (or its bare-string 400) with ``status``; returns the ``error`` object."""
    assert r.status_code == status, r.text[:500]
    body = r.json()
    if error_type is None:  # CKAN's bare string: "Bad request: ..."
        assert isinstance(body, str)
        assert body.startswith("Bad request: ")
        return {}
    assert body["success"] is False
    assert body["error"]["__type"] == error_type, body
    assert body["help"].endswith("/api/3/action/help_show?name=" + r.url.path.rsplit("/", 1)[1])
    error: dict[str, Any] = body["error"]
    return error


def assert_problem(r: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    """RFC 9457 problem JSON with ``status`` (and ``code``)."""
    assert r.status_code == status, r.text[:500]
    assert r.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = r.json()
    assert body["status"] == status
    assert body["title"]
    if code is not None:
        assert body["code"] == code, body
    return body


def nested(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


def search_error(r: httpx.Response) -> str:
    return str(assert_ckan_error(r, 400, "Search Query Error")["message"])


# --- deeply nested JSON bodies --------------------------------------------------------------------


@pytest.mark.parametrize("depth", [DEEP, VERY_DEEP])
@pytest.mark.parametrize(
    "content_type", ["application/json", "text/plain", None], ids=["json", "text", "no-type"]
)
def test_deeply_nested_json_bodies_are_a_400_on_ckan_actions(
    client: httpx.Client, depth: int, content_type: str | None
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    body = ('{"q": ' + nested(depth) + "}").encode()
    r = client.post("/api/3/action/package_search", content=body, headers=headers)
    assert_ckan_error(r, 400)
    assert "nested deeper than 64 levels" in r.json()


def test_deeply_nested_json_in_a_ckan_form_field_or_parameter_is_refused(client: httpx.Client) -> None:
    # curl -d '{...}': one form field whose name is the JSON
    r = client.post(
        "/api/3/action/package_search",
        content=nested(VERY_DEEP).encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert_ckan_error(r, 400)
    # a JSON list parameter of a GET request
    r = client.get("/api/3/action/package_search", params={"facet.field": "[" * 5000 + "]" * 5000})
    error = assert_ckan_error(r, 409, "Validation Error")
    assert error["facet.field"] == ["JSON nested deeper than 64 levels"]
    r = client.get("/api/3/action/organization_list", params={"organizations": "[" * DEEP + "]" * DEEP})
    assert_ckan_error(r, 409, "Validation Error")


def test_json_as_deep_as_allowed_still_works(client: httpx.Client) -> None:
    r = client.post("/api/3/action/package_search", content=('{"ext_x": ' + nested(63) + "}").encode())
    assert r.status_code == 200, r.text[:300]
    strings = json.dumps({"q": "[[[[" * 100 + "{{{{" * 100})  # brackets inside strings do not nest
    assert client.post("/api/3/action/package_search", content=strings).status_code == 200


@pytest.mark.parametrize(
    "path",
    ["/api/v1/releases", "/api/v1/grants", "/api/v1/datasets", "/api/v1/connectors"],
)
@pytest.mark.parametrize("depth", [DEEP, VERY_DEEP])
def test_deeply_nested_json_bodies_are_a_400_on_v1(
    client: httpx.Client, hub: LiveHub, path: str, depth: int
) -> None:
    body = '{"dataset": "land.parcels", "config": ' + nested(depth) + "}"
    r = client.post(
        path, content=body, headers={**hub.auth(hub.editor_token), "Content-Type": "application/json"}
    )
    problem = assert_problem(r, 400, "invalid_body")
    assert problem["detail"] == "JSON nested deeper than 64 levels"


def test_json_bodies_larger_than_the_limit_are_a_413(client: httpx.Client, hub: LiveHub) -> None:
    big = json.dumps({"q": "x" * hub.settings.request_max_json_bytes}).encode()
    r = client.post("/api/3/action/package_search", content=big, headers={"Content-Type": "application/json"})
    assert_ckan_error(r, 413, "Validation Error")
    r = client.post("/api/3/action/package_search", content=big, headers={"Content-Type": "text/plain"})
    assert_ckan_error(r, 413, "Validation Error")
    r = client.post(
        "/api/v1/releases",
        content=big,
        headers={**hub.auth(hub.editor_token), "Content-Type": "application/json"},
    )
    assert_problem(r, 413, "body_too_large")

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit counts what arrives
        yield b'{"q": "'
        for _ in range(hub.settings.request_max_json_bytes // 65536 + 1):
            yield b"x" * 65536
        yield b'"}'

    r = client.post(
        "/api/3/action/package_search", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert_ckan_error(r, 413, "Validation Error")


# --- q and fq ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [
        {"fq": "(" * DEEP + "name:x" + ")" * DEEP},
        {"fq": "(" * 4000 + "name:x" + ")" * 4000},
        {"fq": "tags:" + "(" * 3000 + "x" + ")" * 3000},
        {"q": "name:" + "(" * 3000 + "x" + ")" * 3000},
        {"fq": "NOT " * 2000 + "name:x"},
        {"fq": "-" * 3000 + "name:x"},
        {"fq_list": json.dumps(["(" * 3000 + "x" + ")" * 3000])},
    ],
    ids=["fq-65", "fq-4000", "fq-field-group", "q-fielded", "fq-not-chain", "fq-minus-chain", "fq_list"],
)
def test_deeply_nested_queries_are_a_search_query_error(client: httpx.Client, params: dict[str, str]) -> None:
    r = client.get("/api/3/action/package_search", params=params)
    assert "nests deeper than 64 levels" in search_error(r)


def test_queries_as_deep_as_allowed_still_work(client: httpx.Client) -> None:
    r = client.get("/api/3/action/package_search", params={"fq": "(" * 64 + "name:land-parcels" + ")" * 64})
    assert r.status_code == 200, r.text[:300]
    assert r.json()["result"]["count"] == 1


@pytest.mark.parametrize("name", ["q", "fq"])
def test_q_and_fq_longer_than_the_limit_are_a_search_query_error(
    client: httpx.Client, hub: LiveHub, name: str
) -> None:
    text = "dat " * (hub.settings.search_max_fq_chars // 4 + 1)
    r = client.post("/api/3/action/package_search", json={name: text})
    assert f"{name} is longer than {hub.settings.search_max_fq_chars} characters" in search_error(r)


@pytest.mark.parametrize(
    "fq",
    [
        "metadata_modified:[NOW-1000000000YEAR TO NOW]",
        "metadata_modified:[NOW-1000000000000DAY TO NOW]",
        "metadata_created:[* TO NOW+99999999999999999999999MILLI]",
        "metadata_modified:NOW-" + "9" * 5000 + "YEAR",
        "metadata_modified:[9999-12-31T23:59:59Z+1DAY TO *]",
        "metadata_modified:[0001-01-01T00:00:00Z-1MONTH TO *]",
    ],
    ids=["years", "days", "millis", "5000-digits", "past-9999", "before-year-1"],
)
def test_date_math_out_of_range_is_a_search_query_error(client: httpx.Client, fq: str) -> None:
    r = client.post("/api/3/action/package_search", json={"fq": fq})
    message = search_error(r)
    assert "out of range" in message or "longer than 200 characters" in message


def test_date_math_within_range_still_works(client: httpx.Client) -> None:
    r = client.get(
        "/api/3/action/package_search", params={"fq": "metadata_modified:[NOW-100YEARS TO NOW+1DAY]"}
    )
    assert r.status_code == 200
    assert r.json()["result"]["count"] == 2  # the two open datasets


@pytest.mark.parametrize("fq", ["num_resources:[a TO b]", "num_tags:[1 TO b]", "num_resources:{x TO *}"])
def test_a_non_numeric_range_on_a_numeric_field_is_a_search_query_error(
    client: httpx.Client, fq: str
) -> None:
    r = client.get("/api/3/action/package_search", params={"fq": fq})
    assert "is a number" in search_error(r)
    r = client.get("/api/3/action/package_search", params={"fq": "num_resources:[0 TO 100]"})
    assert r.status_code == 200


# --- huge integers -------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [str(HUGE), "9" * 5000, HUGE, -HUGE])
def test_package_list_with_a_huge_limit_is_a_validation_error(client: httpx.Client, value: object) -> None:
    r = client.post("/api/3/action/package_list", json={"limit": value})
    error = assert_ckan_error(r, 409, "Validation Error")
    assert error["limit"] in (["Must be at most 2147483647"], ["Must be a natural number"])
    r = client.get("/api/3/action/package_list", params={"offset": str(HUGE)})
    assert assert_ckan_error(r, 409, "Validation Error")["offset"] == ["Must be at most 2147483647"]


def _action_names(client: httpx.Client) -> list[str]:
    from hub.api.ckan_registry import ACTIONS

    return sorted(ACTIONS)


PAGING = ("limit", "offset", "rows", "start", "page", "facet.limit", "facet.mincount", "expires_in")


def test_huge_integers_in_paging_parameters_are_a_4xx_on_every_action(
    client: httpx.Client, hub: LiveHub
) -> None:
    pkg = client.get("/api/3/action/package_show", params={"id": "land-parcels"}).json()["result"]
    resource_id = pkg["resources"][0]["id"]
    answers: dict[str, int] = {}
    for name in _action_names(client):
        for value in (HUGE, str(HUGE), -HUGE, "9" * 40):
            data: dict[str, Any] = dict.fromkeys(PAGING, value)
            if not name.endswith(("_create", "_update", "_patch", "_delete", "_purge", "_revoke", "_upsert")):
                data.update(id="land-parcels", resource_id=resource_id, q="đất", name="package_show")
            r = client.post(f"/api/3/action/{name}", json=data, headers=hub.auth(hub.admin_token))
            answers[f"{name} {value!r:.12}"] = r.status_code
            assert r.status_code < 500, (name, value, r.text[:500])
            body = r.json()
            assert isinstance(body, str) or body["success"] is (r.status_code == 200)
    assert 409 in answers.values()


# --- releases ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def release(hub: LiveHub) -> tuple[str, str]:
    """A release of land.parcels with one version (its file is not on disk: a download is a 404)."""
    with session_scope(hub.settings) as s:
        ds = s.scalar(select(Dataset).where(Dataset.key == "land.parcels"))
        assert ds is not None
        rel = Release(
            dataset_id=ds.id, name="parcels-by-ward", title="Thửa đất theo xã", origin="api", spec={}
        )
        s.add(rel)
        s.flush()
        version = ReleaseVersion(release_id=rel.id, version=1, rows=1, path="releases/none/1")
        s.add(version)
        s.flush()
        s.add(
            ReleaseFile(
                version_id=version.id,
                name="data.csv",
                format="CSV",
                media_type="text/csv",
                path="releases/none/1/data.csv",
                size=1,
                sha256="0" * 64,
            )
        )
    return "land.parcels", "parcels-by-ward"


@pytest.mark.parametrize("version", ["99999999999999999999", str(HUGE), "9223372036854775807", "0", "-1"])
def test_a_release_version_out_of_range_is_a_404(
    client: httpx.Client, release: tuple[str, str], version: str
) -> None:
    dataset, name = release
    r = client.get(f"/dataset/{dataset}/release/{name}/{version}/data.csv")
    problem = assert_problem(r, 404, "not_found")
    assert f"has no version {version}" in problem["detail"]
    r = client.get(f"/dataset/{dataset}/release/{name}/1/data.csv")  # the version exists, its file does not
    assert_problem(r, 404, "not_found")
    assert client.get(f"/api/v1/releases/{dataset}/{name}").status_code == 200


@pytest.mark.parametrize(
    ("body", "content_type", "status", "code"),
    [
        (b"", None, 400, "invalid_body"),
        (b"   ", "application/json", 400, "invalid_body"),
        (b"{", "application/json", 400, "invalid_body"),
        (b"{", None, 400, "invalid_body"),
        (b"\xff\xfe{", "application/json", 400, "invalid_body"),
        (b"[1, 2]", "application/json", 409, "validation_error"),
        (b"null", "application/json", 409, "validation_error"),
        (b'{"title": "no dataset"}', "application/json", 409, "validation_error"),
        (b'{"dataset": "land.parcels", "id": "x", "k": "many"}', "application/json", 409, "validation_error"),
    ],
    ids=["empty", "blank", "broken", "broken-no-type", "not-utf8", "list", "null", "no-dataset", "invalid"],
)
def test_post_releases_with_an_empty_or_broken_body_is_a_4xx(
    client: httpx.Client, hub: LiveHub, body: bytes, content_type: str | None, status: int, code: str
) -> None:
    headers = {**hub.auth(hub.editor_token), **({"Content-Type": content_type} if content_type else {})}
    assert_problem(client.post("/api/v1/releases", content=body, headers=headers), status, code)
    # anonymous: the same answer for a body that cannot be read, else the refusal
    r = client.post("/api/v1/releases", content=body, headers={"Content-Type": content_type or ""})
    assert r.status_code in (status, 403)


# --- odd tokens ----------------------------------------------------------------------------------


def _b64(data: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _odd_tokens(hub: LiveHub) -> dict[str, str]:
    claims = _b64({"iss": hub.settings.site_url.rstrip("/"), "exp": 9_999_999_999})
    return {
        "kid-list": f"{_b64({'alg': 'ES256', 'kid': ['a']})}.{claims}.c2ln",
        "kid-int": f"{_b64({'alg': 'ES256', 'kid': 1})}.{claims}.c2ln",
        "kid-dict": f"{_b64({'alg': 'ES256', 'kid': {'a': 1}})}.{claims}.c2ln",
        "kid-null": f"{_b64({'alg': 'ES256', 'kid': None})}.{claims}.c2ln",
        "no-alg": f"{_b64({'kid': 'x'})}.{claims}.c2ln",
        "alg-list": f"{_b64({'alg': ['ES256'], 'kid': 'x'})}.{claims}.c2ln",
        "header-list": f"{_b64(['x'])}.{claims}.c2ln",
        "header-deep": f"{_b64(json.loads(nested(500)))}.{claims}.c2ln",
        "iss-list": f"{_b64({'alg': 'ES256', 'kid': 'x'})}.{_b64({'iss': ['x']})}.c2ln",
        "huge": "a" * 6000 + "." + "b" * 6000 + ".c",
        "not-base64": "***.!!!.###",
        "not-utf8": base64.urlsafe_b64encode(b"\xff\xfe").decode() + ".e30.x",
    }


@pytest.mark.parametrize(
    "case",
    [
        "kid-list",
        "kid-int",
        "kid-dict",
        "kid-null",
        "no-alg",
        "alg-list",
        "header-list",
        "header-deep",
        "iss-list",
        "huge",
        "not-base64",
        "not-utf8",
    ],
)
def test_odd_jwt_headers_are_anonymous_on_ckan_and_a_401_on_v1(
    client: httpx.Client, hub: LiveHub, case: str
) -> None:
    token = _odd_tokens(hub)[case]
    for headers in (
        {"Authorization": f"Bearer {token}"},
        {"Authorization": token},
        {"X-CKAN-API-Key": token},
    ):
        r = client.get("/api/3/action/status_show", headers=headers)
        assert r.status_code == 200, r.text[:300]
        r = client.get("/api/3/action/package_show", params={"id": "civil_status-births"}, headers=headers)
        assert_ckan_error(r, 403, "Authorization Error")  # the token gave no rights
        assert client.get("/catalog.ttl", headers=headers).status_code == 200
        problem = assert_problem(
            client.get("/api/v1/grants", headers=headers), 401, "authentication_required"
        )
        assert problem["detail"].startswith("invalid token")


def test_api_token_create_with_a_huge_or_odd_expiry_is_a_validation_error(
    client: httpx.Client, hub: LiveHub
) -> None:
    for value in (HUGE, "9" * 40, 10**12, 2**31 - 1, "soon", -5, 0, [1]):
        r = client.post(
            "/api/3/action/api_token_create",
            json={"user": "editor", "name": "x", "expires_in": value, "unit": "day"},
            headers=hub.auth(hub.editor_token),
        )
        assert_ckan_error(r, 409, "Validation Error")
    for value in ({"a": 1}, ["editor"]):
        r = client.post(
            "/api/3/action/api_token_create",
            json={"user": value, "name": "x"},
            headers=hub.auth(hub.editor_token),
        )
        assert r.status_code in (403, 404), r.text[:300]


# --- found while fuzzing: odd values in write actions, /api/v1 dates and paging, OAuth client auth -------


@pytest.mark.parametrize(
    ("data", "status", "field"),
    [
        ({"notes": {"a": 1}, "license_id": ["x"]}, 200, None),
        ({"extras": 5}, 409, "extras"),
        ({"groups": 5}, 409, "groups"),
        ({"resources": 5}, 409, "resources"),
        ({"resources": [{"url": "http://example.org/x.csv", "size": 2**70}]}, 409, "size"),
        ({"resources": [{"url": "http://example.org/x.csv", "size": "Infinity"}]}, 409, "size"),
    ],
    ids=[
        "text-fields-of-any-type",
        "extras-int",
        "groups-int",
        "resources-int",
        "size-2^70",
        "size-infinity",
    ],
)
def test_package_create_with_odd_value_types_is_a_validation_error_or_text(
    client: httpx.Client, hub: LiveHub, data: dict[str, Any], status: int, field: str | None
) -> None:
    name = "odd-" + hashlib.sha1(json.dumps(data, sort_keys=True).encode()).hexdigest()[:12]
    body = {"name": name, "owner_org": "so-tai-nguyen-moi-truong", **data}
    r = client.post("/api/3/action/package_create", json=body, headers=hub.auth(hub.editor_token))
    if status == 200:
        assert r.status_code == 200, r.text[:300]
        assert r.json()["result"]["notes"] == "{'a': 1}"  # as CKAN's unicode_safe stores it
        return
    assert field in assert_ckan_error(r, 409, "Validation Error")


def test_package_create_with_an_infinite_size_in_json_is_a_validation_error(
    client: httpx.Client, hub: LiveHub
) -> None:
    body = (
        b'{"name": "odd-infinity", "owner_org": "so-tai-nguyen-moi-truong", '
        b'"resources": [{"url": "x", "size": Infinity}]}'
    )
    r = client.post("/api/3/action/package_create", content=body, headers=hub.auth(hub.editor_token))
    assert assert_ckan_error(r, 409, "Validation Error")["size"] == ["Invalid integer"]


def test_organization_and_group_fields_of_any_type_are_text(client: httpx.Client, hub: LiveHub) -> None:
    odd = {"title": {"a": 1}, "description": [1, 2], "image_url": 5, "extras": [{"key": "k", "value": [1]}]}
    r = client.post(
        "/api/3/action/organization_create",
        json={"name": "odd-org", **odd},
        headers=hub.auth(hub.admin_token),
    )
    assert r.status_code == 200, r.text[:300]
    assert r.json()["result"]["description"] == "[1, 2]"
    r = client.post(
        "/api/3/action/organization_update",
        json={"id": "odd-org", "extras": 5},
        headers=hub.auth(hub.admin_token),
    )
    assert assert_ckan_error(r, 409, "Validation Error")["extras"] == ["Not a list"]
    r = client.post(
        "/api/3/action/group_create", json={"name": "odd-group", **odd}, headers=hub.auth(hub.admin_token)
    )
    assert r.status_code == 200, r.text[:300]


@pytest.mark.parametrize(
    "params",
    [
        {"offset": str(HUGE)},
        {"since": "9999-12-31T23:59:59-23:59"},
        {"until": "0001-01-01T00:00:00+23:59"},
    ],
    ids=["offset-2^63", "since-past-9999", "until-before-year-1"],
)
def test_audit_search_with_out_of_range_paging_or_dates_is_a_422(
    client: httpx.Client, hub: LiveHub, params: dict[str, str]
) -> None:
    r = client.get("/api/v1/audit", params=params, headers=hub.auth(hub.admin_token))
    problem = assert_problem(r, 422, "validation_error")
    assert list(problem["errors"]) == list(params)


@pytest.mark.parametrize("expires_at", ["9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00+05:00"])
def test_a_grant_expiring_outside_the_utc_calendar_is_a_422(
    client: httpx.Client, hub: LiveHub, expires_at: str
) -> None:
    body = {
        "dataset": "civil_status.births",
        "consumer_org": "so-tai-nguyen-moi-truong",
        "purpose": "thử",
        "legal_basis": "thử",
        "expires_at": expires_at,
    }
    r = client.post("/api/v1/grants", json=body, headers=hub.auth(hub.admin_token))
    assert list(assert_problem(r, 422, "validation_error")["errors"]) == ["expires_at"]


@pytest.mark.parametrize("path", ["/oauth/token", "/oauth/introspect", "/oauth/revoke"])
def test_client_credentials_that_are_not_utf8_are_an_invalid_client(client: httpx.Client, path: str) -> None:
    basic = base64.b64encode(b"\xff\xfe:\xfd").decode()
    r = client.post(
        path,
        data={"grant_type": "client_credentials", "token": "a.b.c"},
        headers={"Authorization": f"Basic {basic}"},
    )
    assert r.status_code == 401, r.text[:300]
    assert r.json()["error"] == "invalid_client"
    assert r.headers["www-authenticate"].startswith("Basic")


def test_integers_beyond_64_bits_are_answered_as_their_text(client: httpx.Client, hub: LiveHub) -> None:
    """A custom field of 2**70 made package_create, package_show and every package_search a 500."""
    body = {"name": "wide-int", "owner_org": "so-tai-nguyen-moi-truong", "custom_field": 2**70}
    r = client.post("/api/3/action/package_create", json=body, headers=hub.auth(hub.editor_token))
    assert r.status_code == 200, r.text[:300]
    assert r.json()["result"]["custom_field"] == str(2**70)
    assert client.get("/api/3/action/package_show", params={"id": "wide-int"}).json()["result"][
        "custom_field"
    ] == str(2**70)
    assert client.get("/api/3/action/package_search", params={"q": "name:wide-int"}).status_code == 200
    pkg = client.get("/api/3/action/package_show", params={"id": "land-parcels"}).json()["result"]
    filters = {"ward_code": 2**70, "area_m2": -(2**64)}  # echoed in the result
    r = client.post(
        "/api/3/action/datastore_search", json={"resource_id": pkg["resources"][0]["id"], "filters": filters}
    )
    assert r.status_code == 200, r.text[:300]
    assert r.json()["result"]["filters"] == {"ward_code": str(2**70), "area_m2": str(-(2**64))}


def test_datastore_sql_returning_an_enum_is_not_a_500(client: httpx.Client) -> None:
    r = client.get("/api/3/action/datastore_search_sql", params={"sql": "SELECT 'x'::ENUM('x') AS e"})
    assert r.status_code == 200, r.text[:300]  # was a 500 (a dictionary column of the query workers)
    assert r.json()["result"]["records"] == [{"e": "x"}]
