"""The portal's pages over HTTP (no browser): one search with package_search, bad input, structured
data, languages, page weight."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from urllib.parse import urlencode

import httpx
import pytest

from hub.portal.query import SearchRequest
from tests.portal.conftest import Site

HTML = {"Accept": "text/html"}


@pytest.fixture(scope="module")
def client(portal_site: Site) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=portal_site.base, timeout=60, headers=HTML) as c:
        yield c


def names_on(page: str) -> list[str]:
    """The datasets a results page lists, in order."""
    cards = (
        page.split('<ul class="cards">', 1)[1].split("</ul>", 1)[0] if '<ul class="cards">' in page else ""
    )
    return re.findall(r'<h3><a href="/dataset/([^"]+)">', cards)


def count_on(page: str) -> int:
    found = re.search(r'<h2 id="results-heading" role="status">([\d,]+) ', page)
    assert found, page[:500]
    return int(found.group(1).replace(",", ""))


QUERIES = [
    [],
    [("q", "dat dai")],
    [("q", "đất đai")],
    [("q", "truong")],
    [("q", "trường")],
    [("q", "Can Tho")],
    [("q", "Cần Thơ")],
    [("q", "dia chi")],
    [("q", "ho tich"), ("sort", "name")],
    [("q", "nam"), ("page", "2")],
    [("groups", "dat-dai")],
    [("groups", "giao-duc"), ("license_id", "cc-by-4.0")],
    [("tags", "trường học"), ("organization", "so-giao-duc-dao-tao")],
    [("res_format", "CSV"), ("sort", "modified")],
    [("spatial", "92"), ("sort", "created"), ("page", "2")],
    [("q", "thanh pho"), ("tags", "thử nghiệm"), ("sort", "name"), ("page", "2")],
]


@pytest.mark.parametrize("params", QUERIES, ids=lambda p: urlencode(p) or "all")
def test_the_portal_lists_what_package_search_returns(
    client: httpx.Client, params: list[tuple[str, str]]
) -> None:
    """One search: the portal page and the CKAN API give the same datasets, in the same order, for the
    same query, filters, sort and page."""
    page = client.get("/dataset", params=params)
    assert page.status_code == 200
    api = client.get("/api/3/action/package_search", params=SearchRequest.from_params(params).data()).json()
    assert api["success"], api
    expected = [p["name"] for p in api["result"]["results"]]
    assert names_on(page.text) == expected
    assert count_on(page.text) == api["result"]["count"]


@pytest.mark.parametrize(
    ("plain", "accented"), [("dat dai", "đất đai"), ("truong", "trường"), ("Can Tho", "Cần Thơ")]
)
def test_text_without_accents_finds_what_accented_text_finds(
    client: httpx.Client, plain: str, accented: str
) -> None:
    with_accents = client.get("/dataset", params={"q": accented})
    without = client.get("/dataset", params={"q": plain})
    assert names_on(with_accents.text)
    assert names_on(without.text) == names_on(with_accents.text)
    assert count_on(without.text) == count_on(with_accents.text)


def test_facets_show_names_and_counts_that_filter(client: httpx.Client) -> None:
    page = client.get("/dataset").text
    # a group shows its name, never its slug, and links to the filtered search
    assert "Đất đai" in page
    assert re.search(r'href="/dataset\?groups=dat-dai"', page)
    filtered = client.get("/dataset", params={"groups": "dat-dai"}).text
    facet = re.search(
        r'href="/dataset\?groups=dat-dai"[^>]*>[^<]*</a> <span class="count">(\d+)</span>', page
    )
    assert facet
    assert count_on(filtered) == int(facet.group(1)) > 0


@pytest.mark.parametrize(
    "path",
    [
        "/dataset?q=%3Cscript%3Ealert(1)%3C/script%3E",
        "/dataset?q=a:b(",
        "/dataset?q=%22%5C",
        "/dataset?q=" + "x" * 20_000,
        "/dataset?q=*:*&sort=nonsense%20desc",
        "/dataset?page=99999999999999999999",
        "/dataset?page=-3",
        "/dataset?page=abc",
        "/dataset?page=400",
        "/dataset?tags=kh%C3%B4ng-c%C3%B3&organization=%22%27",
        "/dataset?spatial=%00",
        "/organization/so-tu-phap?page=99999",
        "/group/dat-dai?q=((((",
        "/dataset/education-schools?ppage=999999999&psort=nope&pcol=%3Cb%3E&pval=%25",
        "/dataset/education-schools?pv=release:nope&cm=x&cd=y",
        "/dataset/civil_status-births-open?cm=births&cd=child_sex&psort=births&pdir=desc",
    ],
)
def test_bad_input_gives_a_page_never_a_500(client: httpx.Client, path: str) -> None:
    r = client.get(path)
    assert r.status_code == 200, (path, r.status_code, r.text[:300])
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    assert "<script>alert(1)" not in r.text


@pytest.mark.parametrize(
    "path", ["/dataset/khong-co-bo-nay", "/organization/khong-co", "/group/khong-co", "/dataset/x/resource/y"]
)
def test_a_name_that_does_not_exist_is_the_html_404(client: httpx.Client, path: str) -> None:
    r = client.get(path)
    assert r.status_code == 404
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    assert "Không tìm thấy trang" in r.text
    assert 'action="/"' in r.text or 'role="search"' in r.text


def test_a_shared_dataset_leads_to_its_open_companion(client: httpx.Client) -> None:
    r = client.get("/dataset/civil_status-births", follow_redirects=False)
    assert r.status_code == 302
    assert r.headers["location"] == "/dataset/civil_status-births-open"


def test_the_dataset_page_answers_a_journalists_questions(client: httpx.Client) -> None:
    page = client.get("/dataset/civil_status-births-open").text
    for text in (
        "Sở Tư pháp",  # publisher
        'rel="license"',  # licence with its link
        "creativecommons.org/licenses/by/4.0",
        "/group/tu-phap",  # lĩnh vực
        "/spatial/province/92",  # coverage
        "Hằng ngày",  # frequency
        "Cập nhật lần cuối",
        "Đúng hạn",  # the stale flag, not stale
        "rest · births",  # the source system
        "dòng đã nạp",  # the last run's counts
        "dòng bị cách ly",
        "births-by-year-sex/1/data.csv",  # every file with its checksum
        "Mã kiểm tra",
        "Từ điển dữ liệu",
        "Số người",  # the bilingual dictionary
        "Number of persons",
        "curl ",
        "RemoteCKAN",
        "pd.read_csv",
        "read.csv(",
        'id="chart"',
    ):
        assert text in page, text
    schools = client.get("/dataset/education-schools").text
    assert 'id="map"' in schools
    assert "datastore_search" in schools
    assert "Tên trường" in schools  # the contract's labels, in both languages
    assert "School name" in schools


def test_dataset_pages_carry_schema_org_dataset_json_ld(client: httpx.Client) -> None:
    page = client.get("/dataset/education-schools").text
    found = re.search(r'<script type="application/ld\+json">(.*?)</script>', page, re.S)
    assert found
    data = json.loads(found.group(1))
    assert data["@type"] == "Dataset"
    assert data["name"] == "Danh sách trường học"
    assert data["license"].startswith("https://creativecommons.org/")
    assert data["publisher"]["name"]
    assert any(d["encodingFormat"] == "CSV" for d in data["distribution"])


def test_sitemap_and_robots(client: httpx.Client, portal_site: Site) -> None:
    robots = client.get("/robots.txt")
    assert robots.status_code == 200
    assert f"Sitemap: {portal_site.base}/sitemap.xml" in robots.text
    sitemap = client.get("/sitemap.xml")
    assert sitemap.headers["content-type"].startswith("application/xml")
    for path in ("/dataset/education-schools", "/organization/so-tu-phap", "/group/dat-dai", "/about"):
        assert f"<loc>{portal_site.base}{path}</loc>" in sitemap.text
    assert "civil_status-births<" not in sitemap.text  # not public


def test_the_language_switch_keeps_the_page_and_is_remembered(client: httpx.Client) -> None:
    vi = client.get("/dataset/education-schools")
    assert '<html lang="vi">' in vi.text
    assert 'href="/dataset/education-schools?lang=en"' in vi.text
    en = client.get("/dataset/education-schools", params={"lang": "en"})
    assert '<html lang="en">' in en.text
    assert "Data dictionary" in en.text
    assert en.cookies.get("hub_lang") == "en"
    with httpx.Client(base_url=str(client.base_url), headers=HTML, cookies={"hub_lang": "en"}) as other:
        assert '<html lang="en">' in other.get("/organization").text
        missing = other.get("/dataset/khong-co")
        assert missing.status_code == 404
        assert '<html lang="en">' in missing.text
    assert vi.headers["vary"] == "Accept-Encoding, Cookie"


def test_organization_without_open_data_says_so(client: httpx.Client) -> None:
    orgs = client.get("/organization").text
    names = re.findall(r'<h2><a href="/organization/([^"]+)">', orgs)
    assert "so-tu-phap" in names
    empty = [n for n in names if f'href="/organization/{n}"' in orgs]
    pages = {n: client.get(f"/organization/{n}").text for n in empty}
    assert all("Cơ quan này chưa công bố" in p or count_on(p) > 0 for p in pages.values())


def test_the_home_page_weighs_under_200_kb_and_loads_no_script(client: httpx.Client) -> None:
    home = client.get("/")
    assert home.status_code == 200
    assert "<script" not in home.text
    assets = re.findall(r'(?:href|src)="(/static/[^"]+)"', home.text)
    total = len(home.content) + sum(len(client.get(a).content) for a in assets)
    assert total < 200_000, total
    assert "Thành phố Cần Thơ" in home.text  # the province from the settings
    assert "dulieumo@cantho.gov.vn" in home.text  # the footer's contact
    assert 'href="/about#terms"' in home.text


def test_pages_load_nothing_from_another_host(client: httpx.Client) -> None:
    for path in ("/", "/dataset", "/dataset/education-schools", "/about", "/organization", "/group"):
        r = client.get(path)
        assert "default-src 'self'" in r.headers["content-security-policy"]
        for url in re.findall(r'<(?:script|link|img)[^>]+(?:src|href)="([^"]+)"', r.text):
            assert url.startswith("/") or url.startswith(str(client.base_url)), (path, url)


def test_other_resources_are_listed_with_their_download_links(client: httpx.Client) -> None:
    page = client.get("/dataset/thu-nghiem-000").text
    assert "Bảng số liệu gốc" in page
    assert (
        'href="https://opendata.cantho.gov.vn/quy-hoach-2000.csv"' in page
    )  # a link, nothing loaded from it
    assert "2.0 KB" in page
    assert "sha256:abababab" in page
