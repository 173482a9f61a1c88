"""HTTP as browsers and crawlers expect it (issue 11, point 6), on a live hub with a published release.

- HEAD answers every GET route (the OpenAPI spec's and the others) with GET's status and headers;
- a browser gets an HTML error page outside the API paths, API clients keep their JSON;
- /docs and /redoc load nothing from another host;
- the DCAT place URIs (``/spatial/province/92``, ``/spatial/ward/31117``) resolve to a page and RDF.
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import fastapi.routing
import httpx
import pytest
from rdflib import Graph, Literal, URIRef
from rdflib.namespace import DCTERMS, RDF, SKOS
from sqlalchemy import select

from hub.api.app import create_app
from hub.catalog.ckan_models import Resource
from hub.catalog.loader import get_dataset, sync_catalog
from hub.db import dispose_engines, session_scope
from hub.publish.build import build_release
from hub.runtime import Hub
from hub.settings import PROJECT_ROOT, Settings
from hub.testing.live import free_port, live_server
from tests.publish.conftest import BIRTHS_RELEASE, _births, _write, write_catalog

BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"
COMPANION = "civil_status-births-open"  # the open package of the births release (wards of Cần Thơ)


@dataclass
class Site:
    settings: Settings
    base: str
    client: httpx.Client
    routes: list[tuple[str, set[str]]]  # every route of the app: path, methods (empty: a mount)
    private_rid: str  # the DataStore resource of the raw births (shared: not public)
    release_url: str  # a file of the births release, through its companion package


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    tmp = tmp_path_factory.mktemp("http")
    port = free_port()
    catalog = tmp / "catalog"
    write_catalog(catalog, [BIRTHS_RELEASE], [])
    settings = Settings(data_dir=tmp / "data", catalog_dir=catalog, schemas_dir=PROJECT_ROOT / "schemas",
                        site_url=f"http://127.0.0.1:{port}")  # fmt: skip
    settings.ensure_dirs()
    with session_scope(settings) as session:
        sync_catalog(session, settings)
    _write(settings, "civil_status.births", "civil_status/births.v1", _births(400))
    with Hub(settings) as hub:
        build_release(hub, "civil_status.births", "births-by-ward-month")
    routes = [
        (str(r.path), set(r.methods or ()))
        for r in fastapi.routing.iter_route_contexts(create_app(settings).routes)
    ]
    with live_server(settings, port=port) as base, httpx.Client(base_url=base, timeout=60) as client:
        package = client.get("/api/3/action/package_show", params={"id": COMPANION}).json()["result"]
        with session_scope(settings) as session:
            births = get_dataset(session, "civil_status.births")
            private = session.scalar(
                select(Resource.id).where(Resource.dataset_id == births.id, Resource.kind == "datastore")
            )
        assert private is not None
        yield Site(settings, base, client, routes, private, package["resources"][0]["url"])
    dispose_engines()


# --- HEAD ------------------------------------------------------------------------------------------


def _fill(site: Site, template: str) -> str:
    """A URL of the route ``template``, with parameters that exist in the site where that is easy."""
    release = urlsplit(site.release_url).path
    known = {
        "/dataset/{dataset}/release/{release}/{version}/{name}": release,
        "/spatial/province/{ref}": "/spatial/province/92",
        "/spatial/ward/{ref}": "/spatial/ward/31117",
        "/dataset/{name}/resource/{rid}": "/dataset/x/resource/y",
        "/organization/{name}": "/organization/so-tu-phap",
    }
    if template in known:
        return known[template]
    values = {"name": COMPANION, "fmt": "ttl", "version": "3", "resource_id": "nope", "dataset_id": COMPANION}
    url = re.sub(r"\{(\w+)\}", lambda m: values.get(m.group(1), "x"), template)
    if template.startswith(("/api/3/action/", "/api/action/", "/api/{version}/action/")):
        url = url.rsplit("/", 1)[0] + "/package_list"
    return url


def _get_routes(site: Site) -> list[str]:
    spec = site.client.get("/openapi.json").json()
    in_spec = [path for path, ops in spec["paths"].items() if "get" in ops]
    others = [path for path, methods in site.routes if "GET" in methods and path not in spec["paths"]]
    statics = ["/static/hub.css", "/static/vendor/swagger-ui/swagger-ui-bundle.js"]  # the one mount
    assert len(in_spec) > 20
    assert {"/", "/docs", "/redoc", "/openapi.json", "/dataset/{name}"} <= set(others)
    return sorted({*in_spec, *others}) + statics


def test_head_answers_every_get_route_as_get_does(site: Site) -> None:
    checked = []
    for template in _get_routes(site):
        url = _fill(site, template)
        got = site.client.get(url)
        head = site.client.head(url)
        assert head.status_code != 405, url
        assert head.status_code == got.status_code, (url, head.status_code, got.status_code)
        assert head.content == b"", url
        assert head.headers.get("content-type") == got.headers.get("content-type"), url
        if got.status_code == 200 and "content-length" in got.headers:
            assert head.headers["content-length"] == got.headers["content-length"], url
        assert head.headers.get("etag") == got.headers.get("etag"), url
        checked.append((url, head.status_code))
    ok = {url for url, status in checked if status == 200}
    assert {"/", "/healthz", "/catalog.ttl", "/docs", "/spatial/ward/31117", f"/dataset/{COMPANION}"} <= ok
    assert {"/static/hub.css", "/static/vendor/swagger-ui/swagger-ui-bundle.js"} <= ok
    assert urlsplit(site.release_url).path in ok
    assert "/api/3/action/package_list" in ok


def test_head_keeps_the_headers_of_get_and_405_where_there_is_no_get(site: Site) -> None:
    got = site.client.get("/catalog.ttl")
    head = site.client.head("/catalog.ttl")
    assert head.status_code == 200
    assert head.headers["content-length"] == str(len(got.content))
    for name in ("content-type", "etag", "cache-control", "access-control-allow-origin"):
        assert head.headers[name] == got.headers[name], name
    # a revalidation by HEAD is a 304 like GET's
    assert site.client.head("/catalog.ttl", headers={"If-None-Match": got.headers["etag"]}).status_code == 304
    # a path without GET has no HEAD either: GET's answer, 405 with its Allow header
    got, head = site.client.get("/oauth/token"), site.client.head("/oauth/token")
    assert got.status_code == head.status_code == 405
    assert head.headers["allow"] == got.headers["allow"]


# --- error pages -----------------------------------------------------------------------------------


def _is_problem(resp: httpx.Response, status: int) -> None:
    assert resp.status_code == status
    assert resp.headers["content-type"].startswith("application/problem+json")
    assert resp.json()["status"] == status


@pytest.mark.parametrize(
    ("method", "path", "status", "title"),
    [
        ("GET", "/no/such/page", 404, "Không tìm thấy trang"),
        ("GET", "/dataset/no-such-dataset", 404, "Không tìm thấy trang"),  # a HubError of the portal
        ("GET", "/spatial/ward/99999", 404, "Không tìm thấy trang"),
        ("POST", "/", 405, "Phương thức không được hỗ trợ"),
        ("GET", "/datastore/dump/{private}", 403, "Không có quyền truy cập"),
    ],
)
def test_browsers_get_an_html_error_page_and_api_clients_json(
    site: Site, method: str, path: str, status: int, title: str
) -> None:
    url = path.format(private=site.private_rid)
    page = site.client.request(method, url, headers={"Accept": BROWSER})
    assert page.status_code == status
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert "Accept" in page.headers["vary"]
    html = page.text
    assert '<html lang="vi">' in html
    assert f"<h1>{title} <span" in html
    assert '<span lang="en" class="en">/ ' in html
    assert "<main" in html
    assert "<header" in html
    assert "<nav" in html
    assert re.search(r'<form[^>]*role="search"[^>]*action="/"[^>]*method="get"', html)
    assert 'name="q"' in html
    assert 'href="/"' in html
    assert site.settings.site_title in html
    _only_own_host(site, html, page.url)
    for accept in (None, "application/json", "*/*", "application/json, text/html", "text/html;q=0.5, */*"):
        resp = site.client.request(method, url, headers={"Accept": accept} if accept else {})
        _is_problem(resp, status)
    if status == 405:
        assert page.headers["allow"] == resp.headers["allow"]


def test_api_paths_answer_json_to_browsers_too(site: Site) -> None:
    page = site.client.get("/no/such/page", headers={"Accept": BROWSER})
    assert page.headers["content-type"].startswith("text/html")  # the pages' side of the same request
    ckan = site.client.get("/api/3/action/package_show", params={"id": "nope"}, headers={"Accept": BROWSER})
    assert ckan.status_code == 404
    assert ckan.json()["success"] is False
    assert ckan.json()["error"]["__type"] == "Not Found Error"
    assert site.client.get("/api/3/action/no_such_action", headers={"Accept": BROWSER}).status_code == 400
    _is_problem(site.client.get("/api/v1/releases/nope/nope", headers={"Accept": BROWSER}), 404)
    _is_problem(site.client.get("/api/v1/grants", headers={"Accept": BROWSER}), 401)
    assert (
        site.client.get("/oauth/no-such", headers={"Accept": BROWSER})
        .headers["content-type"]
        .startswith("application/problem+json")
    )


# --- /docs and /redoc ------------------------------------------------------------------------------


class _Refs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.refs += [v for k, v in attrs if k in ("src", "href", "spec-url", "action") and v]
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.scripts.append(data)


def _only_own_host(site: Site, html: str, page_url: httpx.URL) -> list[str]:
    parser = _Refs()
    parser.feed(html)
    own = urlsplit(site.base).netloc
    urls = [urljoin(str(page_url), ref) for ref in parser.refs]
    urls += [urljoin(str(page_url), u) for s in parser.scripts for u in re.findall(r"url: '([^']+)'", s)]
    assert urls
    for url in urls:
        assert urlsplit(url).netloc == own, url
    assert not re.search(r"https?://(?!127\.0\.0\.1)", "".join(parser.scripts))
    return urls


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
def test_docs_load_nothing_from_another_host(site: Site, path: str) -> None:
    page = site.client.get(path)
    assert page.status_code == 200
    urls = _only_own_host(site, page.text, page.url)
    assert "default-src 'self'" in page.headers["content-security-policy"]  # nor from a script
    scripts = [u for u in urls if urlsplit(u).path.endswith(".js")]
    assert scripts, urls
    assert any("/openapi.json" in u for u in urls)
    for url in urls:
        resp = site.client.get(url)
        assert resp.status_code == 200, url
        assert len(resp.content) > 100, url
    for url in scripts:
        resp = site.client.get(url)
        assert resp.headers["content-type"].startswith(("text/javascript", "application/javascript"))
        assert "immutable" in resp.headers["cache-control"]
        assert len(resp.content) > 500_000  # the bundle itself, not a stub
    if path == "/docs":
        redirect = site.client.get("/docs/oauth2-redirect")
        assert redirect.status_code == 200
        assert "<script" in redirect.text
        assert not re.search(r"(src|href)=", redirect.text)


# --- DCAT places -----------------------------------------------------------------------------------


def test_every_place_of_the_dcat_catalogue_resolves(site: Site) -> None:
    catalogue = Graph().parse(data=site.client.get("/catalog.ttl").text, format="turtle")
    places = set(catalogue.objects(None, DCTERMS.spatial))
    province = URIRef(f"{site.base}/spatial/province/92")
    assert province in places
    wards = {p for p in places if "/spatial/ward/" in str(p)}
    assert URIRef(f"{site.base}/spatial/ward/31117") in wards
    for place in places:
        path = urlsplit(str(place)).path
        page = site.client.get(path, headers={"Accept": BROWSER})
        assert page.status_code == 200, path
        assert page.headers["content-type"] == "text/html; charset=utf-8"
        rdf = site.client.get(f"{path}.ttl")
        assert rdf.status_code == 200, path
        g = Graph().parse(data=rdf.text, format="turtle")
        code = path.rsplit("/", 1)[1]
        assert (place, RDF.type, DCTERMS.Location) in g
        assert (place, DCTERMS.identifier, Literal(code)) in g
        labels = {label.language for label in g.objects(place, SKOS.prefLabel)}
        assert labels == {"vi", "en"}
        if place in wards:
            assert (place, SKOS.broader, province) in g
            assert (place, DCTERMS.isPartOf, province) in g
        assert (URIRef(f"{site.base}/dataset/{COMPANION}"), DCTERMS.spatial, place) in g


def test_a_ward_page_names_it_and_links_its_province_and_datasets(site: Site) -> None:
    page = site.client.get("/spatial/ward/31117", headers={"Accept": BROWSER})
    html = page.text
    assert "<h1>Phường Cái Khế <span" in html
    assert "/ Cai Khe Ward" in html
    assert "<code>31117</code>" in html
    assert '<a href="/spatial/province/92">Thành phố Cần Thơ</a>' in html
    assert "Can Tho City" in html
    assert f'<a href="/dataset/{COMPANION}">' in html
    assert "Trước ngày 01/07/2025" in html  # 31117 is a code of the pre-2025 list only
    assert '<link rel="alternate" type="text/turtle" href="/spatial/ward/31117.ttl">' in html
    assert "default-src 'self'" in page.headers["content-security-policy"]
    _only_own_host(site, html, page.url)
    # a code the reform gave to another ward says what it named before
    reused = site.client.get("/spatial/ward/31120", headers={"Accept": BROWSER}).text
    assert "Phường Cái Khế" in reused
    assert "Phường An Hòa" in reused


def test_a_province_page_lists_its_datasets_and_wards(site: Site) -> None:
    html = site.client.get("/spatial/province/92").text  # no Accept: the page
    assert "<h1>Thành phố Cần Thơ <span" in html
    assert "/ Can Tho City" in html
    assert f'<a href="/dataset/{COMPANION}">' in html
    assert '<a href="/spatial/ward/31120">Phường Cái Khế</a>' in html  # its wards since 2025-07-01
    old = site.client.get("/spatial/province/93", headers={"Accept": BROWSER})
    assert old.status_code == 200
    assert "Tỉnh Hậu Giang" in old.text


@pytest.mark.parametrize(
    ("suffix", "accept", "media", "rdflib_format"),
    [
        (".ttl", None, "text/turtle", "turtle"),
        (".jsonld", None, "application/ld+json", "json-ld"),
        (".rdf", None, "application/rdf+xml", "xml"),
        ("", "text/turtle", "text/turtle", "turtle"),
        ("", "application/ld+json", "application/ld+json", "json-ld"),
        ("", "application/rdf+xml;q=0.9, text/html;q=0.1", "application/rdf+xml", "xml"),
    ],
)
def test_place_rdf_by_extension_and_by_accept(
    site: Site, suffix: str, accept: str | None, media: str, rdflib_format: str
) -> None:
    resp = site.client.get(f"/spatial/ward/31117{suffix}", headers={"Accept": accept} if accept else {})
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith(media)
    if not suffix:
        assert "Accept" in resp.headers["vary"]
        assert resp.headers["content-location"].startswith("/spatial/ward/31117.")
    with warnings.catch_warnings():  # rdflib's JSON-LD parser builds a ConjunctiveGraph (deprecated)
        warnings.filterwarnings("ignore", "ConjunctiveGraph is deprecated", DeprecationWarning)
        g = Graph().parse(data=resp.text, format=rdflib_format)
    ward = URIRef(f"{site.base}/spatial/ward/31117")
    assert (ward, SKOS.prefLabel, Literal("Phường Cái Khế", lang="vi")) in g
    assert (ward, SKOS.prefLabel, Literal("Cai Khe Ward", lang="en")) in g
    assert (ward, SKOS.broader, URIRef(f"{site.base}/spatial/province/92")) in g
    if rdflib_format == "json-ld":
        assert json.loads(resp.text)


def test_unknown_places_are_404_and_short_codes_redirect(site: Site) -> None:
    for path in (
        "/spatial/ward/99999",
        "/spatial/province/00",
        "/spatial/ward/abc",
        "/spatial/ward/31117.csv",
    ):
        _is_problem(site.client.get(path), 404)
    assert (
        site.client.get("/spatial/ward/99999", headers={"Accept": BROWSER})
        .headers["content-type"]
        .startswith("text/html")
    )
    moved = site.client.get("/spatial/province/092.ttl", follow_redirects=False)
    assert moved.status_code == 301
    assert moved.headers["location"] == "/spatial/province/92.ttl"
