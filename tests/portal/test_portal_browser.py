"""The portal in a real browser (Debian's headless Chromium, driven by Playwright), as a new reader uses
it: search, facets, paging, the dataset page's preview, chart, map and downloads, the language switch,
the 404 page, a phone's screen, the keyboard, and axe-core's accessibility rules."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.portal.conftest import AXE, Tab

pytestmark = pytest.mark.browser

PAGES = [
    "/",
    "/dataset",
    "/dataset?q=truong&groups=giao-duc",
    "/dataset/civil_status-births-open",
    "/dataset/education-schools",
    "/dataset/land-parcels-open",
    "/dataset/thu-nghiem-000",
    "/organization",
    "/organization/so-tu-phap",
    "/group",
    "/group/dat-dai",
    "/about",
    "/dataset/khong-co-bo-nay",
    "/?lang=en",
    "/dataset/education-schools?lang=en",
]


def wait_until(tab: Tab, expression: str, timeout: float = 15.0) -> None:
    """Poll ``expression`` (page.evaluate: the portal's CSP forbids the eval of wait_for_function)."""
    deadline = time.monotonic() + timeout
    while not tab.page.evaluate(expression):
        assert time.monotonic() < deadline, f"still false after {timeout} s: {expression}"
        tab.page.wait_for_timeout(50)


def results(tab: Tab) -> list[str]:
    hrefs: list[str] = tab.page.eval_on_selector_all(
        "ul.cards .card h3 a", "els => els.map(e => e.getAttribute('href'))"
    )
    return hrefs


def search(tab: Tab, text: str) -> list[str]:
    tab.go("/")
    tab.page.get_by_label("Tìm bộ dữ liệu").fill(text)
    tab.page.keyboard.press("Enter")
    tab.page.wait_for_url("**/dataset?q=*")
    return results(tab)


@pytest.mark.parametrize(
    ("plain", "accented"), [("dat dai", "đất đai"), ("truong", "trường"), ("Can Tho", "Cần Thơ")]
)
def test_search_with_and_without_accents(tab: Tab, plain: str, accented: str) -> None:
    found = search(tab, accented)
    assert found
    assert search(tab, plain) == found
    assert tab.page.locator("#q").input_value() == plain  # the query stays in the box and the URL


@pytest.mark.parametrize("facet", ["groups", "organization", "tags", "res_format", "license_id", "spatial"])
def test_each_facet_filters_the_results(tab: Tab, facet: str) -> None:
    tab.go("/dataset")
    total = int(tab.page.locator("#results-heading").inner_text().split()[0].replace(",", ""))
    link = tab.page.locator(f'aside.facets a[href*="{facet}="]').first
    shown = int(link.locator("xpath=following-sibling::span[@class='count']").text_content() or 0)
    if not link.is_visible():  # a folded facet: open it as a reader would
        link.locator("xpath=ancestor::details/summary").click()
    link.click()
    tab.page.wait_for_url(f"**/dataset?{facet}=*")
    heading = tab.page.locator("#results-heading").inner_text()
    assert int(heading.split()[0].replace(",", "")) == shown <= total
    assert tab.page.locator("ul.active-filters a").count() >= 2  # the filter, and "clear all"
    tab.page.locator("ul.active-filters a").first.click()  # remove it again
    assert int(tab.page.locator("#results-heading").inner_text().split()[0].replace(",", "")) == total
    assert not tab.errors


def test_paging_through_the_results(tab: Tab) -> None:
    tab.go("/dataset?sort=name")
    first = results(tab)
    assert len(first) == 20
    tab.page.get_by_role("link", name="Trang sau").click()
    tab.page.wait_for_url("**page=2*")
    second = results(tab)
    assert second
    assert not set(first) & set(second)
    assert tab.page.locator('.pages a[aria-current="page"]').inner_text() == "2"
    tab.page.get_by_role("link", name="Trang trước").click()
    assert results(tab) == first


def _cells(tab: Tab, column: int = 0) -> list[str]:
    cells: list[str] = tab.page.eval_on_selector_all(
        f"#preview table.data tbody tr td:nth-child({column + 1})",
        "els => els.map(e => e.textContent.trim())",
    )
    return cells


def test_the_preview_table_pages_sorts_and_filters_in_place(tab: Tab) -> None:
    tab.go("/dataset/education-schools")
    caption = tab.page.locator("#preview-caption")
    assert "1–20" in caption.inner_text()
    header = tab.page.locator("#preview th", has_text="school_code").first
    header.locator("a").click()
    tab.page.wait_for_selector('#preview th[aria-sort="ascending"]')
    codes = _cells(tab, 1)
    assert codes == sorted(codes)
    tab.page.locator("#preview th", has_text="school_code").first.locator("a").click()
    tab.page.wait_for_selector('#preview th[aria-sort="descending"]')
    assert _cells(tab, 1) == sorted(codes + _cells(tab, 1), reverse=True)[:20] or _cells(tab, 1) == sorted(
        _cells(tab, 1), reverse=True
    )
    tab.page.get_by_role("link", name="Trang sau").first.click()
    wait_until(tab, "document.querySelector('#preview-caption').textContent.includes('21–')")
    tab.page.select_option("#pcol", "level")
    tab.page.fill("#pval", "Mầm non")
    tab.page.locator("#preview form.filter button").click()
    wait_until(tab, "new URL(location.href).searchParams.get('pval') === 'Mầm non'")
    levels = _cells(tab, 3)
    assert levels
    assert all("Mầm non" in v for v in levels)
    assert not tab.errors, tab.errors


def test_the_chart_and_the_map_render_without_console_errors(tab: Tab) -> None:
    tab.go("/dataset/civil_status-births-open")
    tab.page.wait_for_selector("#chart .chart[data-drawn=true] canvas", timeout=15_000)
    tab.page.select_option("#cd", "child_sex")  # another dimension, picked by the reader
    wait_until(tab, "document.querySelector('#chart .chart').dataset.dimension === 'child_sex'")
    tab.page.wait_for_selector("#chart .chart[data-drawn=true] canvas")
    assert tab.page.locator("#chart table.totals tbody tr").count() == 2
    tab.go("/dataset/education-schools?pv=release:schools-with-enrolment")
    tab.page.locator("#map").scroll_into_view_if_needed()
    tab.page.wait_for_selector("#map[data-drawn=true]", timeout=15_000)
    assert int(tab.page.get_attribute("#map", "data-features") or 0) > 10
    assert tab.page.locator("#map path.leaflet-interactive").count() > 10
    tab.go("/dataset/education-schools")  # the DataStore's coordinates
    tab.page.locator("#map").scroll_into_view_if_needed()
    tab.page.wait_for_selector("#map[data-drawn=true]", timeout=15_000)
    assert not tab.errors, tab.errors


def test_a_download_starts_from_the_dataset_page(tab: Tab) -> None:
    tab.go("/dataset/civil_status-births-open")
    with tab.page.expect_download() as info:
        tab.page.locator("table.files a", has_text="data.csv").first.click()
    download = info.value
    assert download.suggested_filename == "data.csv"
    text = Path(download.path()).read_text(encoding="utf-8")
    assert text.splitlines()[0].replace('"', "").startswith("year,child_sex,births")
    tab.go("/dataset/education-schools")
    with tab.page.expect_download() as info:
        tab.page.get_by_role("link", name="Tải xuống CSV").click()
    assert info.value.suggested_filename.endswith(".csv")


def test_the_language_switch_keeps_the_page(tab: Tab) -> None:
    tab.go("/dataset/education-schools?ppage=2")
    assert tab.page.get_attribute("html", "lang") == "vi"
    tab.page.get_by_role("link", name="English").click()
    tab.page.wait_for_url("**/dataset/education-schools?ppage=2&lang=en")
    assert tab.page.get_attribute("html", "lang") == "en"
    assert tab.page.get_by_role("heading", name="Data dictionary").count() >= 1
    tab.page.get_by_role("link", name="Organizations").first.click()  # remembered on the next page
    assert tab.page.get_attribute("html", "lang") == "en"
    tab.page.get_by_role("link", name="Tiếng Việt").click()
    assert tab.page.get_attribute("html", "lang") == "vi"


def test_the_404_page(tab: Tab) -> None:
    response = tab.go("/dataset/khong-co-bo-nay")
    assert response.status == 404
    assert tab.page.get_by_role("heading", name="Không tìm thấy trang").count() == 1
    tab.page.get_by_label("Tìm bộ dữ liệu").fill("truong")
    tab.page.keyboard.press("Enter")
    tab.page.wait_for_url("**/dataset?q=truong")  # the search page, with the query
    assert results(tab)


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/dataset?q=dat+dai",
        "/dataset/education-schools",
        "/dataset/civil_status-births-open",
        "/organization",
        "/about",
        "/dataset/khong-co",
    ],
)
def test_nothing_overflows_a_phone_screen(browser: Any, portal_site: Any, path: str, tmp_path: Path) -> None:
    context = browser.new_context(
        viewport={"width": 390, "height": 844}, device_scale_factor=1, is_mobile=True
    )
    page = context.new_page()
    page.goto(portal_site.base + path)
    page.wait_for_load_state("networkidle")
    width = page.evaluate("document.documentElement.scrollWidth")
    shot = tmp_path / "phone.png"
    page.screenshot(path=str(shot), full_page=True)
    png = shot.read_bytes()
    shot_width = int.from_bytes(png[16:20], "big")  # the PNG's IHDR
    context.close()
    assert width <= 390, (path, width)
    assert shot_width == 390, shot_width


def test_the_keyboard_reaches_the_main_content_and_the_search(tab: Tab) -> None:
    tab.go("/")
    tab.page.keyboard.press("Tab")
    assert tab.page.evaluate("document.activeElement.className") == "skip-link"
    tab.page.keyboard.press("Enter")
    assert tab.page.evaluate("document.activeElement.id") == "main"
    for _ in range(10):
        tab.page.keyboard.press("Tab")
        if tab.page.evaluate("document.activeElement.id") == "home-q":
            break
    assert tab.page.evaluate("document.activeElement.id") == "home-q"
    tab.page.keyboard.type("giao duc")
    tab.page.keyboard.press("Enter")
    tab.page.wait_for_url("**/dataset?q=giao+duc")
    assert results(tab)


@pytest.mark.parametrize("path", PAGES)
def test_axe_finds_no_serious_or_critical_violation(axe_tab: Tab, path: str) -> None:
    axe_tab.go(path)
    axe_tab.page.add_script_tag(path=str(AXE))
    violations = axe_tab.page.evaluate(
        """async () => {
            const result = await axe.run(document, {runOnly: {type: 'tag',
                values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice']}});
            return result.violations.map(v => ({id: v.id, impact: v.impact,
                nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))}));
        }"""
    )
    serious = [v for v in violations if v["impact"] in ("serious", "critical")]
    assert not serious, serious
