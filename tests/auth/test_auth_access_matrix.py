"""The access matrix: every role and token kind x every sharing class x every endpoint family, against a
live hub. Each family asserts exactly the allowed set; a mismatch lists every wrong cell."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from hub.auth import oidc
from hub.auth.models import AuditEntry
from hub.db import dispose_engines, session_scope
from hub.settings import Settings
from hub.testing.live import free_port, live_server
from tests.auth.auth_matrix_world import MatrixWorld, build_matrix_world
from tests.auth.fake_idp import FakeIdP

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CLASSES = ("open", "shared", "internal")
ALL, OPEN, OPEN_SHARED = set(CLASSES), {"open"}, {"open", "shared"}
# who may read the rows (and the private metadata) of a dataset of each sharing class
READ: dict[str, set[str]] = {
    "anonymous": OPEN,
    "invalid-token": OPEN,  # CKAN routes: an invalid token is anonymous
    "sysadmin": ALL,
    "owner-admin": ALL,
    "owner-editor": ALL,
    "owner-member": ALL,
    "owner-client": ALL,
    "owner-client-catalog-only": ALL,
    "consumer-member": OPEN_SHARED,
    "consumer-client": OPEN_SHARED,
    "other-member": OPEN,
    "other-client": OPEN,
    "no-org-user": OPEN,
    "owner-member-oauth": ALL,  # a person's OAuth access token (authorization code + PKCE)
    "sso-linked-consumer": OPEN_SHARED,  # external OIDC token, linked to a consumer-agency account
    "sso-unlinked": OPEN,  # external OIDC token of a person the hub does not know
}
# rows need datastore:read on non-open data: the catalog-only client sees the metadata, not the rows
ROWS = {**READ, "owner-client-catalog-only": OPEN}
QUARANTINE = {"sysadmin", "owner-admin", "owner-editor", "owner-member", "owner-client", "owner-member-oauth"}
AUDIT = {"sysadmin", "owner-admin", "owner-client"}
CALLERS = tuple(READ)
WITHOUT_CATALOG_ONLY = tuple(c for c in CALLERS if c != "owner-client-catalog-only")


@pytest.fixture(scope="module")
def matrix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[MatrixWorld, str, dict[str, str]]]:
    tmp = tmp_path_factory.mktemp("matrix")
    port = free_port()
    oidc.clear_cache()
    idp = FakeIdP()
    settings = Settings(
        oidc_issuers=[{"issuer": idp.issuer, "audience": "lien-thong-hub"}],
        data_dir=tmp / "data",
        catalog_dir=tmp / "catalog",
        site_url=f"http://127.0.0.1:{port}",
        rate_limit_anonymous_per_minute=0,
        rate_limit_client_per_minute=0,
    )
    settings.ensure_dirs()
    world = build_matrix_world(settings, idp)
    with live_server(settings, port=port) as base:
        root = {"Authorization": str(world.tokens["sysadmin"])}
        rids = {}
        for c in CLASSES:
            pkg = httpx.post(
                f"{base}/api/3/action/package_show", json={"id": world.dataset_ids[c]}, headers=root
            )
            assert pkg.status_code == 200, pkg.text
            ds_res = [r for r in pkg.json()["result"]["resources"] if r.get("datastore_active")]
            assert ds_res, pkg.json()["result"]["resources"]
            rids[c] = ds_res[0]["id"]
            rids[f"{c}-url"] = ds_res[0]["url"]
        yield world, base, rids
    idp.close()
    oidc.clear_cache()
    dispose_engines()


def _headers(world: MatrixWorld, caller: str) -> dict[str, str]:
    token = world.tokens[caller]
    return {"Authorization": token} if token else {}


def _check(
    expected: Callable[[str, str], Any], actual: Callable[[str, str], Any], callers: tuple[str, ...] = CALLERS
) -> None:
    wrong = []
    for caller in callers:
        for c in CLASSES:
            want, got = expected(caller, c), actual(caller, c)
            if want != got:
                wrong.append(f"{caller} x {c}: expected {want}, got {got}")
    assert wrong == [], "\n" + "\n".join(wrong)


def _names(world: MatrixWorld, found: set[str]) -> set[str]:
    return {c for c in CLASSES if world.dataset_names[c] in found}


def test_ckan_package_list(matrix: tuple[MatrixWorld, str, dict[str, str]]) -> None:
    """As in CKAN, package_list names public (open) datasets only, whoever asks."""
    world, base, _ = matrix
    seen = {}
    for caller in CALLERS:
        r = httpx.get(f"{base}/api/3/action/package_list", headers=_headers(world, caller))
        assert r.status_code == 200, (caller, r.text)
        seen[caller] = _names(world, set(r.json()["result"]))
    _check(lambda caller, c: c == "open", lambda caller, c: c in seen[caller])


@pytest.mark.parametrize("include_private", [False, True])
def test_ckan_package_search(matrix: tuple[MatrixWorld, str, dict[str, str]], include_private: bool) -> None:
    """As in CKAN, private datasets appear in search only with include_private, and only to those who
    may read them (also under q and fq, and in the count)."""
    world, base, _ = matrix
    seen: dict[str, set[str]] = {}
    for caller in CALLERS:
        for base_params in (
            {"rows": 100},
            {"q": "Dữ liệu", "rows": 100},
            {"fq": "organization:so-tu-phap", "rows": 100},
        ):
            params = {**base_params, "include_private": str(include_private).lower()}
            r = httpx.get(
                f"{base}/api/3/action/package_search", params=params, headers=_headers(world, caller)
            )
            assert r.status_code == 200, (caller, r.text)
            body = r.json()["result"]
            names = {p["name"] for p in body["results"]}
            assert body["count"] == len(names), (caller, params)  # counts leak nothing either
            seen.setdefault(caller, set()).update(_names(world, names))
    _check(
        lambda caller, c: c in READ[caller] if include_private else c == "open",
        lambda caller, c: c in seen[caller],
    )


def test_ckan_package_show(matrix: tuple[MatrixWorld, str, dict[str, str]]) -> None:
    world, base, _ = matrix

    def status(caller: str, c: str) -> int:
        r = httpx.post(
            f"{base}/api/3/action/package_show",
            json={"id": world.dataset_ids[c]},
            headers=_headers(world, caller),
        )
        return r.status_code

    _check(lambda caller, c: 200 if c in READ[caller] else 403, status)


def test_datastore_search(matrix: tuple[MatrixWorld, str, dict[str, str]]) -> None:
    world, base, rids = matrix

    def result(caller: str, c: str) -> Any:
        r = httpx.post(
            f"{base}/api/3/action/datastore_search",
            json={"resource_id": rids[c]},
            headers=_headers(world, caller),
        )
        return (200, len(r.json()["result"]["records"])) if r.status_code == 200 else r.status_code

    _check(lambda caller, c: (200, 12) if c in ROWS[caller] else 403, result)


def test_downloads(matrix: tuple[MatrixWorld, str, dict[str, str]]) -> None:
    world, base, rids = matrix

    def result(caller: str, c: str) -> Any:
        url = rids[f"{c}-url"]
        path = url[url.index("/dataset/") :]
        r = httpx.get(f"{base}{path}", headers=_headers(world, caller))
        return (200, r.text.count("REG-")) if r.status_code == 200 else r.status_code

    _check(lambda caller, c: (200, 12) if c in ROWS[caller] else 403, result, WITHOUT_CATALOG_ONLY)


def test_sql(matrix: tuple[MatrixWorld, str, dict[str, str]]) -> None:
    """A query sees only the tables its caller may read; a refused table and a table that does not
    exist give the same error."""
    world, base, rids = matrix

    def run(caller: str, sql: str) -> httpx.Response:
        return httpx.post(
            f"{base}/api/3/action/datastore_search_sql", json={"sql": sql}, headers=_headers(world, caller)
        )

    def result(caller: str, c: str) -> Any:
        r = run(caller, f'SELECT count(*) AS n FROM "{rids[c]}"')
        if r.status_code == 200:
            return (200, r.json()["result"]["records"][0]["n"])
        zero = "00000000-0000-0000-0000-000000000000"
        missing = run(caller, f'SELECT count(*) AS n FROM "{zero}"')
        same = (r.status_code, json.dumps(r.json()["error"]).replace(rids[c], zero)) == (
            missing.status_code,
            json.dumps(missing.json()["error"]),
        )
        return (r.status_code, "indistinguishable" if same else r.json()["error"])

    _check(
        lambda caller, c: (200, 12) if c in ROWS[caller] else (409, "indistinguishable"),
        result,
        WITHOUT_CATALOG_ONLY,
    )


def _v1(world: MatrixWorld, base: str, caller: str, path: str) -> httpx.Response:
    token = world.tokens[caller]
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.get(f"{base}{path}", headers=headers)


def _v1_refusal(caller: str) -> int:
    return 401 if caller in ("anonymous", "invalid-token") else 403


def test_runs(matrix: tuple[MatrixWorld, str, dict[str, str]]) -> None:
    world, base, _ = matrix

    def result(caller: str, c: str) -> Any:
        r = _v1(world, base, caller, f"/api/v1/datasets/{world.dataset_ids[c]}/runs")
        return (200, len(r.json()["runs"])) if r.status_code == 200 else r.status_code

    def expected(caller: str, c: str) -> Any:
        if caller == "invalid-token":
            return 401
        return (200, 1) if c in READ[caller] else _v1_refusal(caller)

    _check(expected, result)


def test_quarantine(matrix: tuple[MatrixWorld, str, dict[str, str]]) -> None:
    """Quarantined rows hold personal data whatever the sharing class: the owning organization only."""
    world, base, _ = matrix

    def result(caller: str, c: str) -> Any:
        r = _v1(world, base, caller, f"/api/v1/datasets/{world.dataset_ids[c]}/quarantine")
        return (200, r.json()["count"]) if r.status_code == 200 else r.status_code

    _check(lambda caller, c: (200, 3) if caller in QUARANTINE else _v1_refusal(caller), result)


def test_audit_search(matrix: tuple[MatrixWorld, str, dict[str, str]]) -> None:
    world, base, _ = matrix
    got = {caller: _v1(world, base, caller, "/api/v1/audit?limit=1000") for caller in CALLERS}
    _check(
        lambda caller, c: 200 if caller in AUDIT else _v1_refusal(caller),
        lambda caller, c: got[caller].status_code,
    )
    # the owner's auditors see reads of its datasets, including the consumer's reads under the grant
    entries = got["owner-admin"].json()["entries"]
    shared_reads = [
        e
        for e in entries
        if e["client_id"] == "consumer-client"
        and e["outcome"] == "allowed"
        and e["dataset_id"] == world.dataset_ids["shared"]
    ]
    actions = {e["action"] for e in shared_reads}
    assert {"dataset.read", "datastore.search", "download", "query.sql", "runs.read"} <= actions
    for action in actions:  # each kind of read names the grant it relied on
        assert any(e["grant_id"] for e in shared_reads if e["action"] == action), action


def test_every_non_open_read_and_refusal_is_in_the_audit_log(
    matrix: tuple[MatrixWorld, str, dict[str, str]],
) -> None:
    world, base, rids = matrix
    headers = _headers(world, "consumer-client")
    before = _count(world.settings)
    httpx.post(f"{base}/api/3/action/datastore_search", json={"resource_id": rids["shared"]}, headers=headers)
    httpx.post(
        f"{base}/api/3/action/datastore_search", json={"resource_id": rids["internal"]}, headers=headers
    )
    httpx.post(f"{base}/api/3/action/datastore_search", json={"resource_id": rids["open"]}, headers=headers)
    with session_scope(world.settings) as s:
        new = s.query(AuditEntry).filter(AuditEntry.seq > before).order_by(AuditEntry.seq).all()
        rows = [(e.dataset_id, e.outcome, e.client_id, e.org_id, bool(e.grant_id), e.ip) for e in new]
    assert (
        world.dataset_ids["shared"],
        "allowed",
        "consumer-client",
        _org(world, "so-gddt"),
        True,
        "127.0.0.1",
    ) in rows
    assert (
        world.dataset_ids["internal"],
        "denied",
        "consumer-client",
        _org(world, "so-gddt"),
        False,
        "127.0.0.1",
    ) in rows
    assert not [r for r in rows if r[0] == world.dataset_ids["open"]]  # open data is not logged per read


def test_sql_and_download_entries_carry_rows_snapshot_and_grant(
    matrix: tuple[MatrixWorld, str, dict[str, str]],
) -> None:
    """Point 7: a read of non-open data records the rows it returned, the snapshot and the grant."""
    world, base, rids = matrix
    headers = _headers(world, "consumer-client")
    total = httpx.post(
        f"{base}/api/3/action/datastore_search", json={"resource_id": rids["shared"]}, headers=headers
    ).json()["result"]["total"]
    assert total > 1
    before = _count(world.settings)
    sql = f'SELECT * FROM "{rids["shared"]}" LIMIT 1'
    r = httpx.post(f"{base}/api/3/action/datastore_search_sql", json={"sql": sql}, headers=headers)
    assert r.status_code == 200, r.text
    url = rids["shared-url"]
    d = httpx.get(f"{base}{url[url.index('/dataset/') :]}", headers=headers)
    assert d.status_code == 200
    with session_scope(world.settings) as s:
        new = s.query(AuditEntry).filter(AuditEntry.seq > before).order_by(AuditEntry.seq).all()
        got = [
            (e.action, e.outcome, e.rows, e.snapshot_id is not None, bool(e.grant_id))
            for e in new
            if e.dataset_id == world.dataset_ids["shared"]
        ]
    assert ("query.sql", "allowed", 1, True, True) in got, got
    assert ("download", "allowed", total, True, True) in got, got


def _count(settings: Settings) -> int:
    with session_scope(settings) as s:
        return s.query(AuditEntry).count()


def _org(world: MatrixWorld, name: str) -> str:
    from hub.catalog.models import Organization

    with session_scope(world.settings) as s:
        return s.query(Organization).filter_by(name=name).one().id


def _rows_status(world: MatrixWorld, base: str, rids: dict[str, str], family: str, c: str) -> int:
    headers = _headers(world, "owner-client-catalog-only")
    if family == "datastore":
        r = httpx.post(
            f"{base}/api/3/action/datastore_search", json={"resource_id": rids[c]}, headers=headers
        )
    elif family == "downloads":
        url = rids[f"{c}-url"]
        r = httpx.get(f"{base}{url[url.index('/dataset/') :]}", headers=headers)
    elif family == "sql":
        sql = f'SELECT count(*) AS n FROM "{rids[c]}"'
        r = httpx.post(f"{base}/api/3/action/datastore_search_sql", json={"sql": sql}, headers=headers)
    else:
        r = _v1(
            world, base, "owner-client-catalog-only", f"/api/v1/datasets/{world.dataset_ids[c]}/quarantine"
        )
    return r.status_code


@pytest.mark.parametrize(
    "family",
    [
        "datastore",
        "quarantine",
        "downloads",
        "sql",
    ],
)
def test_a_catalog_only_token_reads_no_rows_of_non_open_data(
    matrix: tuple[MatrixWorld, str, dict[str, str]], family: str
) -> None:
    """A client token with catalog:read only sees the metadata of its organization's datasets, but
    reading their rows needs datastore:read."""
    world, base, rids = matrix
    got = {c: _rows_status(world, base, rids, family, c) for c in ("shared", "internal")}
    assert all(code in (403, 409) for code in got.values()), got
