"""The SQL console (``/query``) in a real browser (Debian's headless Chromium, driven by Playwright), as
analysts of the demo province use it: sign-in through the hub's login page, a query run and its result
paged, a refused table's message, downloads, the history, a query saved and shared with the agency
(seen by a colleague, not by another agency), sign-out; the session cookie out of scripts' reach and a
POST without the page's token refused; the page without JavaScript; a phone's screen; axe-core."""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pyarrow.parquet as pq
import pytest
from argon2 import PasswordHasher
from playwright.sync_api import Error as PlaywrightError

from hub.auth import users
from hub.db import session_scope
from tests.portal.conftest import AXE, Site, Tab, new_tab

pytestmark = pytest.mark.browser

PASSWORD = "mat-khau-an-toan-1"
BIRTHS = "civil_status.births"
PEOPLE = {"chi": "so-tu-phap", "dung": "so-tu-phap", "em": "so-giao-duc-dao-tao"}
PAGED = f"SELECT registration_number FROM {BIRTHS} ORDER BY 1 LIMIT 120"
# what Chromium reports of the page of a refused query (answered 400, as the API answers it)
REFUSED = "Failed to load resource: the server responded with a status of 400 (Bad Request)"


@pytest.fixture(scope="module")
def people(portal_site: Site) -> Site:
    """Two analysts of Sở Tư pháp (which owns the births) and one of Sở Giáo dục và Đào tạo."""
    original = users._hasher
    users._hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    try:
        with session_scope(portal_site.settings) as s:
            for name, org in PEOPLE.items():
                users.add_user(s, name, PASSWORD)
                users.set_role(s, name, org, "member")
    finally:
        users._hasher = original
    return portal_site


@contextmanager
def opened(browser: Any, site: Site, **options: Any) -> Iterator[Tab]:
    yield from new_tab(browser, site.base, **{"accept_downloads": True, **options})


def wait_until(tab: Tab, expression: str, timeout: float = 30.0) -> None:
    """Poll ``expression`` (page.evaluate: the console's CSP forbids wait_for_function's eval); a page
    that navigates meanwhile (the script reloads a job's page once it ends) is asked again."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if tab.page.evaluate(expression):
                return
        except PlaywrightError as exc:
            if "context was destroyed" not in str(exc):
                raise
        assert time.monotonic() < deadline, f"still false after {timeout} s: {expression}"
        tab.page.wait_for_timeout(50)


def sign_in(tab: Tab, name: str) -> None:
    """From the console's page, through the hub's login page, back to the console."""
    tab.go("/query")
    tab.page.get_by_role("link", name="Đăng nhập").click()
    tab.page.wait_for_url("**/oauth/authorize?**")
    tab.page.get_by_label("Tên đăng nhập").fill(name)
    tab.page.get_by_label("Mật khẩu").fill(PASSWORD)
    tab.page.get_by_role("button", name="Đăng nhập và cho phép").click()
    tab.page.wait_for_url("**/query")
    assert tab.page.locator(".console-bar strong").inner_text() == name


def run(tab: Tab, sql: str, *, keyboard: bool = False) -> None:
    """Write ``sql`` in the editor and run it; wait until its job has ended (the script follows it)."""
    tab.page.get_by_label("Câu truy vấn SQL").fill(sql)
    with tab.page.expect_navigation():
        if keyboard:
            tab.page.get_by_label("Câu truy vấn SQL").press("Control+Enter")
        else:
            tab.page.get_by_role("button", name="Chạy truy vấn").click()
    wait_until(
        tab,
        "!!document.querySelector('#error') || ['succeeded', 'failed', 'cancelled'].includes("
        "(document.querySelector('#job') || {dataset: {}}).dataset.status)",
    )


def cells(tab: Tab) -> list[str]:
    found: list[str] = tab.page.eval_on_selector_all(
        "table.result tbody td:first-child", "els => els.map(e => e.textContent.trim())"
    )
    return found


def test_sign_in_run_a_query_and_page_its_result(browser: Any, people: Site) -> None:
    with opened(browser, people) as tab:
        sign_in(tab, "chi")
        run(tab, PAGED, keyboard=True)  # Ctrl+Enter
        caption = tab.page.locator("#result-caption").inner_text()
        assert "1–50" in caption
        assert "120" in caption
        first = cells(tab)
        assert len(first) == 50
        assert first == sorted(first)
        tab.page.get_by_role("link", name="Trang sau").click()
        tab.page.wait_for_url("**page=2")
        assert "51–100" in tab.page.locator("#result-caption").inner_text()
        second = cells(tab)
        assert second[0] > first[-1]
        tab.page.get_by_role("link", name="Trang sau").click()
        assert "101–120" in tab.page.locator("#result-caption").inner_text()
        assert tab.page.get_by_label("Câu truy vấn SQL").input_value() == PAGED  # the SQL stays
        # the tables the person may read, with their contract's labels
        births = tab.page.locator("ul.console-tables li", has=tab.page.locator(f"code:text-is('{BIRTHS}')"))
        births.locator("summary").click()
        assert births.get_by_text("Số đăng ký khai sinh").is_visible()
        births.get_by_role("button", name="Chèn tên bảng").click()  # the script's insert
        assert tab.page.get_by_label("Câu truy vấn SQL").input_value().endswith(BIRTHS)
        assert not tab.errors, tab.errors


def test_a_table_of_another_agency_is_refused_with_the_hubs_message(browser: Any, people: Site) -> None:
    with opened(browser, people) as tab:
        sign_in(tab, "em")
        assert tab.page.locator(f"ul.console-tables code:text-is('{BIRTHS}')").count() == 0
        run(tab, f"SELECT count(*) FROM {BIRTHS}")
        alert = tab.page.get_by_role("alert")
        assert f'relation "{BIRTHS}" does not exist or is not readable' in alert.inner_text()
        assert tab.page.get_by_label("Câu truy vấn SQL").input_value() == f"SELECT count(*) FROM {BIRTHS}"
        assert tab.errors == [REFUSED], tab.errors  # the page of the refused query, and nothing else


def test_downloads_as_csv_and_parquet_and_the_history(browser: Any, people: Site) -> None:
    sql = f"SELECT registration_number, ward_code FROM {BIRTHS} ORDER BY 1 LIMIT 7"
    with opened(browser, people) as tab:
        sign_in(tab, "chi")
        run(tab, sql)
        with tab.page.expect_download() as info:
            tab.page.locator("p.downloads a", has_text="CSV (Excel)").click()
        data = Path(info.value.path()).read_bytes()
        assert info.value.suggested_filename.endswith(".csv")
        assert data.startswith(b"\xef\xbb\xbf")  # a BOM: Excel reads the Vietnamese text right
        rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
        assert rows[0] == ["registration_number", "ward_code"]
        assert len(rows) == 8
        with tab.page.expect_download() as info:
            tab.page.locator("p.downloads a", has_text="Parquet").click()
        assert info.value.suggested_filename.endswith(".parquet")
        table = pq.read_table(info.value.path())
        assert table.column_names == ["registration_number", "ward_code"]
        assert [r[0] for r in rows[1:]] == table.column("registration_number").to_pylist()
        tab.page.get_by_role("link", name="Lịch sử", exact=True).click()
        tab.page.wait_for_url("**/query/history")
        first = tab.page.locator("table.history tbody tr").first
        assert sql[:60] in first.inner_text()
        first.get_by_role("link").click()  # back to the job, its result still there
        assert tab.page.locator("table.result tbody tr").count() == 7
        assert not tab.errors, tab.errors


def test_a_query_shared_with_the_agency_is_seen_by_a_colleague_only(browser: Any, people: Site) -> None:
    sql = f"SELECT ward_code, count(*) AS births FROM {BIRTHS} GROUP BY 1 ORDER BY 2 DESC"
    with opened(browser, people) as chi:
        sign_in(chi, "chi")
        chi.page.get_by_label("Câu truy vấn SQL").fill(sql)
        chi.page.get_by_label("Tên", exact=True).fill("Khai sinh theo phường")
        agency = chi.page.locator("#org option", has_text="Sở Tư pháp").get_attribute("value")
        chi.page.get_by_label("Chia sẻ với").select_option(value=agency)
        chi.page.get_by_role("button", name="Lưu", exact=True).click()
        chi.page.wait_for_url("**/query/saved/*")
        assert chi.page.get_by_role("heading", level=1).inner_text() == "Khai sinh theo phường"
        saved_url = chi.page.url
        assert not chi.errors, chi.errors
    with opened(browser, people) as dung:
        sign_in(dung, "dung")
        dung.page.locator("#saved").get_by_role("link", name="Khai sinh theo phường").click()
        dung.page.wait_for_url(saved_url)
        assert dung.page.get_by_label("Câu truy vấn SQL").input_value() == sql
        assert "chi" in dung.page.locator("p.meta").first.inner_text()
        assert dung.page.get_by_role("button", name="Xoá truy vấn đã lưu này").count() == 0  # not the owner
        run(dung, sql)  # a colleague runs it as herself
        assert dung.page.locator("table.result tbody tr").count() > 0
        assert not dung.errors, dung.errors
    with opened(browser, people) as em:
        sign_in(em, "em")
        assert em.page.locator("#saved").get_by_text("Khai sinh theo phường").count() == 0
        assert em.go(saved_url.removeprefix(people.base)).status == 404


def test_sign_out(browser: Any, people: Site) -> None:
    with opened(browser, people) as tab:
        sign_in(tab, "dung")
        tab.page.get_by_role("button", name="Đăng xuất").click()
        tab.page.wait_for_url("**/query?signed_out=1")
        assert tab.page.get_by_role("status").inner_text() == "Bạn đã đăng xuất."
        assert all(c["name"] != "hub_console" for c in tab.page.context.cookies())
        tab.go("/query/history")  # a page of the console leads to the hub's login page again
        tab.page.wait_for_url("**/oauth/authorize?**")
        assert not tab.errors, tab.errors


def test_the_cookie_is_out_of_scripts_reach_and_a_post_needs_the_pages_token(
    browser: Any, people: Site
) -> None:
    with opened(browser, people) as tab:
        sign_in(tab, "chi")
        cookie = next(c for c in tab.page.context.cookies() if c["name"] == "hub_console")
        assert cookie["httpOnly"] is True
        assert cookie["sameSite"] == "Lax"
        assert cookie["path"] == "/query"
        assert "hub_console" not in tab.page.evaluate("document.cookie")
        session = {"hub_console": cookie["value"]}
        r = httpx.post(f"{people.base}/query/run", data={"sql": "SELECT 1"}, cookies=session)
        assert r.status_code == 403  # the browser's own session, without the page's token
        token = tab.page.locator("#editor input[name=csrf_token]").input_value()
        r = httpx.post(
            f"{people.base}/query/run",
            data={"sql": "SELECT 1", "csrf_token": token},
            cookies=session,
            headers={"Origin": "https://not-the-hub.example", "Accept": "text/html"},
        )
        assert r.status_code == 403  # the token, from another site
        r = httpx.post(
            f"{people.base}/query/run", data={"sql": "SELECT 1", "csrf_token": token}, cookies=session
        )
        assert r.status_code == 303


def test_the_console_works_without_javascript(browser: Any, people: Site) -> None:
    with opened(browser, people, java_script_enabled=False) as tab:
        sign_in(tab, "chi")
        tab.page.get_by_label("Câu truy vấn SQL").fill(PAGED)
        tab.page.get_by_role("button", name="Chạy truy vấn").click()
        tab.page.wait_for_url("**/query/jobs/*")
        for _ in range(100):  # a running job: refresh by hand, as a reader without scripts does
            if tab.page.locator("table.result").count():
                break
            tab.page.wait_for_timeout(200)
            tab.page.get_by_role("link", name="Làm mới").click()
        assert len(cells(tab)) == 50
        tab.page.get_by_role("link", name="Trang sau").click()
        assert "51–100" in tab.page.locator("#result-caption").inner_text()


@contextmanager
def phone(browser: Any, site: Site) -> Iterator[Tab]:
    with opened(
        browser, site, viewport={"width": 390, "height": 844}, device_scale_factor=1, is_mobile=True
    ) as t:
        yield t


def test_nothing_overflows_a_phone_screen(browser: Any, people: Site, tmp_path: Path) -> None:
    def fits(tab: Tab, what: str) -> None:
        tab.page.wait_for_load_state("networkidle")
        tab.page.evaluate("document.querySelectorAll('details').forEach(d => { d.open = true; })")
        width = tab.page.evaluate("document.documentElement.scrollWidth")
        shot = tmp_path / "phone.png"
        tab.page.screenshot(path=str(shot), full_page=True)
        assert width <= 390, (what, width)
        assert int.from_bytes(shot.read_bytes()[16:20], "big") == 390, what  # the PNG's width

    with phone(browser, people) as tab:
        tab.go("/query")
        fits(tab, "/query, signed out")
        sign_in(tab, "chi")
        fits(tab, "/query")
        run(tab, f"SELECT * FROM {BIRTHS} ORDER BY 1 LIMIT 60")  # a wide table
        fits(tab, "a job's result")
        run(tab, "SELECT * FROM khong_co_bang_nay")
        fits(tab, "an error")
        tab.go("/query/history")
        fits(tab, "/query/history")
        assert tab.errors == [REFUSED], tab.errors  # the page of the refused query, and nothing else


def axe(tab: Tab) -> list[dict[str, Any]]:
    tab.page.add_script_tag(path=str(AXE))
    violations: list[dict[str, Any]] = tab.page.evaluate(
        """async () => {
            const result = await axe.run(document, {runOnly: {type: 'tag',
                values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice']}});
            return result.violations.map(v => ({id: v.id, impact: v.impact,
                nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))}));
        }"""
    )
    return [v for v in violations if v["impact"] in ("serious", "critical")]


def test_axe_finds_no_serious_or_critical_violation_on_the_console(browser: Any, people: Site) -> None:
    with opened(browser, people, bypass_csp=True) as tab:
        tab.go("/query")
        assert not axe(tab), "/query (signed out)"
        sign_in(tab, "chi")
        found: dict[str, list[dict[str, Any]]] = {"/query": axe(tab)}
        run(tab, PAGED)
        found["a job's result"] = axe(tab)
        run(tab, f"SELECT * FROM {BIRTHS} WHERE no_such_column = 1")
        found["an error"] = axe(tab)
        tab.page.get_by_label("Tên", exact=True).fill("Kiểm tra axe")
        tab.page.get_by_role("button", name="Lưu", exact=True).click()
        tab.page.wait_for_url("**/query/saved/*")
        found["a saved query"] = axe(tab)
        tab.go("/query/history")
        found["/query/history"] = axe(tab)
        tab.go("/query?lang=en")
        found["/query?lang=en"] = axe(tab)
        assert not any(found.values()), {k: v for k, v in found.items() if v}
        assert not tab.errors, tab.errors
