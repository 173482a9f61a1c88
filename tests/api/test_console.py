"""The SQL console (``/query``) over HTTP against a live hub, as a browser uses it, with httpx: sign-in
through the hub's own login page (authorization code with PKCE), the session cookie's flags, CSRF
refusals, queries run as jobs and paged, downloads, the tables each person may read, saved queries
and who sees them, the refresh of the session's tokens, and sign-out revoking them."""

from __future__ import annotations

import csv
import io
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from html import unescape
from http.cookies import SimpleCookie
from urllib.parse import parse_qs, urlparse

import httpx
import pyarrow.parquet as pq
import pytest
from argon2 import PasswordHasher
from sqlalchemy import select

from hub.auth import tokens, users
from hub.auth.models import AuditEntry, RefreshToken, RevokedToken
from hub.console.models import ConsoleSession
from hub.console.sessions import CLIENT_ID, COOKIE, pkce_challenge, session_id, unseal
from hub.db import dispose_engines, session_scope
from hub.settings import Settings
from hub.testing.live import free_port, live_server
from tests.api.support import build_hub, hub_settings

PASSWORD = "mat-khau-an-toan-1"
BIRTHS = "civil_status.births"
NOT_READABLE = f'relation "{BIRTHS}" does not exist or is not readable'


@dataclass
class Site:
    settings: Settings
    base: str


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """A live hub (tests.api.support) with three people: lan and minh of Sở Tư pháp (which owns the
    internal births), hoa of the other agency."""
    original = users._hasher
    users._hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    port = free_port()
    settings = hub_settings(tmp_path_factory.mktemp("console"), port)
    build_hub(settings)
    with session_scope(settings) as s:
        for name, org in (("lan", "so-tu-phap"), ("minh", "so-tu-phap"), ("hoa", "so-tai-nguyen-moi-truong")):
            users.add_user(s, name, PASSWORD)
            users.set_role(s, name, org, "member")
    try:
        with live_server(settings, port=port) as base:
            yield Site(settings, base)
    finally:
        users._hasher = original
        dispose_engines()


def hidden_fields(html: str) -> dict[str, str]:
    return {
        unescape(k): unescape(v) for k, v in re.findall(r'type="hidden" name="([^"]+)" value="([^"]*)"', html)
    }


def csrf_of(html: str) -> str:
    return hidden_fields(html)["csrf_token"]


def start_sign_in(browser: httpx.Client) -> str:
    """Open /query/login; the URL of the hub's login page it sends the browser to."""
    r = browser.get("/query/login")
    assert r.status_code == 302, r.text
    return r.headers["location"]


def log_in(browser: httpx.Client, authorize_url: str, username: str) -> httpx.Response:
    """Fill in the hub's login page as a person would; the answer redirects to the console's callback."""
    page = browser.get(authorize_url)
    assert page.status_code == 200
    assert "Đăng nhập" in page.text
    fields = hidden_fields(page.text)
    fields.update(username=username, password=PASSWORD, decision="allow")
    r = browser.post("/oauth/authorize", data=fields)
    assert r.status_code == 302, r.text
    return r


def sign_in(site: Site, username: str) -> httpx.Client:
    browser = httpx.Client(base_url=site.base, timeout=60)
    callback = log_in(browser, start_sign_in(browser), username).headers["location"]
    r = browser.get(callback)
    assert r.status_code == 303, r.text
    assert r.headers["location"] == "/query"
    return browser


def run(browser: httpx.Client, sql: str) -> httpx.Response:
    home = browser.get("/query")
    return browser.post("/query/run", data={"sql": sql, "csrf_token": csrf_of(home.text)})


def finished(browser: httpx.Client, job_url: str, timeout: float = 60.0) -> dict[str, object]:
    """Follow a job as the page's script does (its status as JSON) until it ends."""
    deadline = time.monotonic() + timeout
    while True:
        state: dict[str, object] = browser.get(f"{job_url}/status").json()
        if state["status"] not in ("queued", "running"):
            return state
        assert time.monotonic() < deadline, state
        time.sleep(0.1)


def test_sign_in_through_the_login_page_with_pkce(site: Site) -> None:
    browser = httpx.Client(base_url=site.base, timeout=60)
    assert "Đăng nhập" in browser.get("/query").text  # signed out: the way in
    authorize = start_sign_in(browser)
    pending = browser.cookies[COOKIE]
    q = parse_qs(urlparse(authorize).query)
    assert authorize.startswith(f"{site.settings.site_url}/oauth/authorize?")
    assert q["client_id"] == [CLIENT_ID]
    assert q["response_type"] == ["code"]
    assert q["redirect_uri"] == [f"{site.settings.site_url}/query/callback"]
    assert q["code_challenge_method"] == ["S256"]
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", q["code_challenge"][0])
    assert "warehouse:query" in q["scope"][0].split()
    # the verifier stays on the server: the challenge is not derived from anything the browser holds
    assert q["code_challenge"][0] not in (pkce_challenge(pending), pkce_challenge(q["state"][0]))

    callback = log_in(browser, authorize, "lan").headers["location"]
    cq = parse_qs(urlparse(callback).query)
    assert callback.startswith(f"{site.settings.site_url}/query/callback?")
    assert cq["state"] == q["state"]
    r = browser.get(callback)
    assert r.status_code == 303
    signed = browser.cookies[COOKIE]
    assert signed != pending  # a new session at sign-in: the pending cookie opens nothing
    assert signed.count(".") == 0  # an opaque secret, not a token
    page = browser.get("/query")
    assert page.status_code == 200
    assert "lan" in page.text
    assert 'name="csrf_token"' in page.text
    assert page.headers["cache-control"] == "no-store"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    anonymous = httpx.get(f"{site.base}/query", cookies={COOKIE: pending})
    assert 'name="csrf_token"' not in anonymous.text
    with session_scope(site.settings) as s:
        row = s.get(ConsoleSession, session_id(signed))
        assert row is not None
        opened = unseal(signed, row.sealed)  # the tokens are sealed under the cookie's secret
        assert opened is not None
        assert opened["access_token"].startswith("eyJ")
        assert opened["access_token"] not in row.sealed
        assert opened["access_token"][:40] not in row.sealed
        assert unseal(pending, row.sealed) is None  # and nothing else opens them
        entries = s.scalars(select(AuditEntry).where(AuditEntry.action == "auth.token")).all()
        codes = [e for e in entries if e.client_id == CLIENT_ID]
        assert codes
        assert codes[-1].details is not None
        assert codes[-1].details["grant_type"] == "authorization_code"
        client = users.get_client(s, CLIENT_ID)
        assert client is not None
        assert client.secret_hash is None  # a public client: PKCE, no secret
        assert client.auth_method == "none"


def test_the_session_cookie_is_http_only_lax_and_kept_under_query(site: Site) -> None:
    browser = httpx.Client(base_url=site.base, timeout=60)
    r = browser.get("/query/login")
    cookie = SimpleCookie(r.headers["set-cookie"])[COOKIE]
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "lax"
    assert cookie["path"] == "/query"
    assert not cookie["secure"]  # the site is http://
    https = site.settings.model_copy(update={"site_url": "https://du-lieu.cantho.gov.vn"})
    with live_server(https) as base:
        r = httpx.get(f"{base}/query/login")
    cookie = SimpleCookie(r.headers["set-cookie"])[COOKIE]
    assert cookie["secure"] is True
    assert cookie["httponly"] is True
    assert r.headers["location"].startswith("https://du-lieu.cantho.gov.vn/oauth/authorize?")


def test_a_callback_that_is_not_this_browsers_sign_in_is_refused(site: Site) -> None:
    alice = httpx.Client(base_url=site.base, timeout=60)
    callback = log_in(alice, start_sign_in(alice), "lan").headers["location"]
    mallory = httpx.Client(base_url=site.base, timeout=60)
    start_sign_in(mallory)  # a sign-in of her own, with another state
    r = mallory.get(callback)  # alice's code and state in mallory's browser
    assert r.status_code == 401
    assert "does not match" in r.text
    assert 'name="csrf_token"' not in mallory.get("/query").text
    # a wrong state in alice's own browser: refused, and the sign-in is used up
    wrong = re.sub(r"state=[^&]+", "state=not-the-state", callback)
    assert alice.get(wrong).status_code == 401
    assert alice.get(callback).status_code == 401
    # a person who denies: the sign-in page says so
    bob = httpx.Client(base_url=site.base, timeout=60)
    page = bob.get(start_sign_in(bob))
    fields = hidden_fields(page.text)
    fields.update(decision="deny")
    denied = bob.post("/oauth/authorize", data=fields).headers["location"]
    r = bob.get(denied)
    assert r.status_code == 401
    assert "access_denied" in r.text


def test_csrf_every_post_needs_the_token_and_this_site(site: Site) -> None:
    browser = sign_in(site, "lan")
    token = csrf_of(browser.get("/query").text)
    sql = {"sql": "SELECT 1 AS one"}
    for data, headers in (
        (sql, {}),  # no token
        ({**sql, "csrf_token": "x" * len(token)}, {}),  # a wrong one
        ({**sql, "csrf_token": token}, {"Origin": "https://evil.example"}),  # another site
        ({**sql, "csrf_token": token}, {"Sec-Fetch-Site": "cross-site"}),
    ):
        r = browser.post("/query/run", data=data, headers={"Accept": "text/html", **headers})
        assert r.status_code == 403, r.text
        assert "Refused" in r.text
    for path in ("/query/saved", "/query/logout"):
        assert browser.post(path, data={"sql": "SELECT 1", "title": "x"}).status_code == 403
    assert browser.get("/query").status_code == 200  # still signed in: the refused logout did nothing
    # without a session at all
    r = httpx.post(f"{site.base}/query/run", data={**sql, "csrf_token": token})
    assert r.status_code == 401
    # the header works for scripts, the same site's Origin passes
    r = browser.post(
        "/query/run", data=sql, headers={"X-CSRF-Token": token, "Origin": site.settings.site_url}
    )
    assert r.status_code == 303


def test_a_query_runs_as_a_job_pages_and_downloads(site: Site) -> None:
    browser = sign_in(site, "lan")
    sql = f"SELECT registration_number, ward_code, child_birth_date FROM {BIRTHS} ORDER BY 1"
    r = run(browser, sql)
    assert r.status_code == 303
    job_url = r.headers["location"]
    status = finished(browser, job_url)
    assert status["status"] == "succeeded"
    assert status["rows"] == 40
    page = browser.get(job_url)
    assert page.status_code == 200
    assert "KS-01-2025-000000" in page.text
    assert "KS-01-2025-000039" in page.text  # 40 rows: one page of 50
    assert "1–40" in page.text
    job_id = job_url.rsplit("/", 1)[1]
    csv_file = browser.get(f"/query/jobs/{job_id}/result", params={"format": "csv", "bom": "1"})
    assert csv_file.status_code == 200
    assert csv_file.content.startswith(b"\xef\xbb\xbf")
    assert "attachment" in csv_file.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(csv_file.content.decode("utf-8-sig"))))
    assert rows[0] == ["registration_number", "ward_code", "child_birth_date"]
    assert len(rows) == 41
    parquet = browser.get(f"/query/jobs/{job_id}/result", params={"format": "parquet"})
    table = pq.read_table(io.BytesIO(parquet.content))
    assert table.num_rows == 40
    assert table.column("registration_number")[0].as_py() == "KS-01-2025-000000"
    assert BIRTHS in parquet.headers["x-hub-snapshots"]
    # a longer result pages
    r = run(browser, "SELECT parcel_id FROM land.parcels ORDER BY 1")
    job_url = r.headers["location"]
    finished(browser, job_url)
    first = browser.get(job_url)
    assert "P00000" in first.text
    assert "P00050" not in first.text
    second = browser.get(job_url, params={"page": 2})
    assert "P00050" in second.text
    assert "P00099" in second.text
    assert "51–100" in second.text
    # the history lists both, newest first; another person does not see them
    history = browser.get("/query/history").text
    assert history.index("land.parcels") < history.index(BIRTHS)
    other = sign_in(site, "minh")
    assert other.get(job_url).status_code == 404
    assert other.get(f"/query/jobs/{job_id}/result", params={"format": "csv"}).status_code == 404
    assert "land.parcels" not in other.get("/query/history").text


def test_the_tables_show_their_columns_with_the_contracts_labels(site: Site) -> None:
    page = sign_in(site, "lan").get("/query", params={"lang": "en"}).text
    births = page[page.index(f"<code>{BIRTHS}</code>") :]
    births = births[: births.index("</details>")]
    assert "Birth registrations" in births  # the dataset's title, in the page's language first
    assert "Đăng ký khai sinh" in births  # and the other beside it
    assert '<code data-insert="registration_number">registration_number</code>' in births
    assert "Registration number" in births
    assert "Số đăng ký khai sinh" in births
    assert "date32" in births


def test_a_running_job_can_be_followed_and_cancelled_without_a_script(site: Site) -> None:
    browser = sign_in(site, "lan")
    # 3.9 billion rows: it runs until cancelled
    slow = "SELECT a.* FROM land.parcels a, land.parcels b, land.parcels c, land.parcels d"
    job_url = run(browser, slow).headers["location"]
    page = browser.get(job_url).text
    assert 'data-status="running"' in page or 'data-status="queued"' in page
    assert f'href="{job_url}">Làm mới' in page  # refresh, by hand
    token = csrf_of(page)
    r = browser.post(f"{job_url}/cancel", data={"csrf_token": token})
    assert r.status_code == 303
    assert finished(browser, job_url)["status"] == "cancelled"
    assert "Truy vấn đã bị huỷ." in browser.get(job_url).text
    assert browser.get(f"{job_url}/result", params={"format": "csv"}).status_code == 409


def test_a_table_the_person_may_not_read_is_refused_as_not_existing(site: Site) -> None:
    lan, hoa = sign_in(site, "lan"), sign_in(site, "hoa")
    assert f"<code>{BIRTHS}</code>" in lan.get("/query").text  # listed for the owning agency
    page = hoa.get("/query").text
    assert f"<code>{BIRTHS}</code>" not in page  # not for another agency
    assert "<code>land.parcels</code>" in page  # open data: for everyone
    r = run(hoa, f"SELECT count(*) FROM {BIRTHS}")
    assert r.status_code == 400
    assert NOT_READABLE.replace('"', "&#34;") in r.text or NOT_READABLE.replace('"', "&quot;") in r.text
    r = run(hoa, "SELECT count(*) FROM civil_status.no_such_table")
    assert r.status_code == 400
    assert "does not exist or is not readable" in r.text
    r = run(hoa, "SELECT * FROM read_csv('/etc/passwd')")
    assert r.status_code == 403
    assert "read_csv" in r.text


def test_a_saved_query_is_shared_with_the_owners_organization_only(site: Site) -> None:
    lan, minh, hoa = sign_in(site, "lan"), sign_in(site, "minh"), sign_in(site, "hoa")
    home = lan.get("/query").text
    org = re.search(r'<option value="([^"]+)">Sở Tư pháp', home)
    assert org is not None
    token = csrf_of(home)
    shared = lan.post(
        "/query/saved",
        data={
            "sql": f"SELECT count(*) FROM {BIRTHS}",
            "title": "Số ca khai sinh",
            "org": org[1],
            "csrf_token": token,
        },
    )
    assert shared.status_code == 303
    mine = lan.post(
        "/query/saved", data={"sql": "SELECT 2", "title": "Nháp riêng", "org": "", "csrf_token": token}
    )
    shared_url, mine_url = shared.headers["location"], mine.headers["location"]
    assert "Số ca khai sinh" in lan.get("/query").text
    assert "Nháp riêng" in lan.get("/query").text
    # a member of the organization sees the shared one, not the other
    page = minh.get("/query").text
    assert "Số ca khai sinh" in page
    assert "Nháp riêng" not in page
    seen = minh.get(shared_url)
    assert seen.status_code == 200
    assert f"SELECT count(*) FROM {BIRTHS}" in seen.text
    assert minh.get(mine_url).status_code == 404
    # another organization sees neither
    assert "Số ca khai sinh" not in hoa.get("/query").text
    assert hoa.get(shared_url).status_code == 404
    # only the owner changes or deletes it
    minh_token = csrf_of(minh.get("/query").text)
    r = minh.post(shared_url, data={"sql": "SELECT 3", "title": "x", "org": "", "csrf_token": minh_token})
    assert r.status_code == 403
    assert minh.post(f"{shared_url}/delete", data={"csrf_token": minh_token}).status_code == 403
    hoa_token = csrf_of(hoa.get("/query").text)
    assert hoa.post(f"{shared_url}/delete", data={"csrf_token": hoa_token}).status_code == 404
    r = lan.post(shared_url, data={"sql": "SELECT 4", "title": "Đổi tên", "org": org[1], "csrf_token": token})
    assert r.status_code == 303
    assert "Đổi tên" in minh.get("/query").text
    # sharing with an organization one does not belong to is refused
    elsewhere = {"sql": "SELECT 5", "title": "y", "org": "not-an-org-of-lan", "csrf_token": token}
    r = lan.post("/query/saved", data=elsewhere)
    assert r.status_code == 409  # the hub's validation error
    assert "only with an organization you belong to" in r.text
    assert lan.post(f"{shared_url}/delete", data={"csrf_token": token}).status_code == 303
    assert minh.get(shared_url).status_code == 404


def test_the_session_refreshes_its_tokens_once_under_concurrent_requests(site: Site) -> None:
    port = free_port()  # a second server on the same database, whose access tokens live 30 s: shorter
    # than the refresh margin, so that every request finds its token due
    short = site.settings.model_copy(update={"token_ttl_seconds": 30, "site_url": f"http://127.0.0.1:{port}"})
    with live_server(short, port=port) as base:
        browser = sign_in(Site(short, base), "lan")
        with session_scope(short) as s:
            row = s.get(ConsoleSession, session_id(browser.cookies[COOKIE]))
            assert row is not None
            family = row.family_id
        cookies = {COOKIE: browser.cookies[COOKIE]}
        results: list[int] = []

        def load() -> None:
            r = httpx.get(f"{base}/query", cookies=cookies, timeout=60)
            results.append(r.status_code if 'name="csrf_token"' in r.text else -1)

        threads = [threading.Thread(target=load) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert results == [200] * 8
        with session_scope(short) as s:
            rows = s.scalars(select(RefreshToken).where(RefreshToken.family_id == family)).all()
            assert len(rows) >= 3  # rotated at each refresh
            assert not any(r.revoked for r in rows)  # never presented twice
            reuse = s.scalars(select(AuditEntry).where(AuditEntry.action == "auth.refresh_reuse")).all()
            assert not reuse


def test_sign_out_revokes_the_tokens_and_ends_the_session(site: Site) -> None:
    browser = sign_in(site, "lan")
    secret = browser.cookies[COOKIE]
    with session_scope(site.settings) as s:
        row = s.get(ConsoleSession, session_id(secret))
        assert row is not None
        family = row.family_id
    token = csrf_of(browser.get("/query").text)
    r = browser.post("/query/logout", data={"csrf_token": token})
    assert r.status_code == 303
    assert "Bạn đã đăng xuất" in browser.get(r.headers["location"]).text
    with session_scope(site.settings) as s:
        assert s.get(ConsoleSession, session_id(secret)) is None
        rows = s.scalars(select(RefreshToken).where(RefreshToken.family_id == family)).all()
        assert rows
        assert all(r.revoked for r in rows)
        jtis = [r.access_jti for r in rows if r.access_jti]
        assert jtis
        assert all(s.get(RevokedToken, j) is not None for j in jtis)
    r = httpx.get(f"{site.base}/query", cookies={COOKIE: secret})
    assert 'name="csrf_token"' not in r.text
    assert httpx.get(f"{site.base}/query/history", cookies={COOKIE: secret}).status_code == 303
    assert tokens.issuer(site.settings) == site.settings.site_url
