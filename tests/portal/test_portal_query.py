"""The search page's URL as one package_search call (hub.portal.query), the preview's parameters and the
pages' policy, without a server."""

from __future__ import annotations

import json

from hub.api.portal_render import csp
from hub.portal.preview import PreviewParams
from hub.portal.query import FACETS, MAX_PAGE, SearchRequest, quote
from hub.settings import Settings


def test_facet_values_become_quoted_fq_clauses_joined_with_and() -> None:
    req = SearchRequest.from_params(
        [("q", " dat dai "), ("tags", 'a "b" \\c'), ("groups", "dat-dai"), ("groups", "dat-dai"), ("x", "y")]
    )
    assert req.q == "dat dai"
    assert req.filters == {"tags": ['a "b" \\c'], "groups": ["dat-dai"]}  # repeated once, unknown left out
    assert req.fq() == 'groups:"dat-dai" AND tags:"a \\"b\\" \\\\c"'
    data = req.data()
    assert data["rows"] == "20"
    assert data["start"] == "0"
    assert data["sort"] == "score desc, metadata_modified desc"
    assert json.loads(data["facet.field"]) == list(FACETS)


def test_pages_and_sorts_outside_the_known_ones_fall_back() -> None:
    assert SearchRequest.from_params([("page", "abc")]).page == 1
    assert SearchRequest.from_params([("page", "-2")]).page == 1
    assert SearchRequest.from_params([("page", "9" * 30)]).page == 1
    far = SearchRequest.from_params([("page", str(MAX_PAGE + 1))])
    assert far.beyond
    assert SearchRequest.from_params([("sort", "nonsense desc")]).sort == "relevance"
    assert SearchRequest.from_params([("sort", "name")]).data()["sort"] == "title_string asc"


def test_links_keep_the_query_and_toggle_one_filter() -> None:
    req = SearchRequest.from_params([("q", "truong"), ("tags", "giáo dục"), ("sort", "name"), ("page", "3")])
    assert req.url("/dataset", page=2) == "/dataset?q=truong&tags=gi%C3%A1o+d%E1%BB%A5c&sort=name&page=2"
    assert req.toggled("/dataset", "tags", "giáo dục") == "/dataset?q=truong&sort=name"
    assert "groups=dat-dai" in req.toggled("/dataset", "groups", "dat-dai")
    assert quote('x"y') == '"x\\"y"'


def test_preview_parameters_are_bounded_and_links_reset_the_page() -> None:
    p = PreviewParams.from_params(
        [("ppage", "99999999999"), ("psort", "a"), ("pdir", "desc"), ("pval", " x ")]
    )
    assert p.page == 1
    assert (p.sort, p.desc, p.value) == ("a", True, "x")
    p.page = 4
    assert "ppage" not in p.url("/dataset/d", pcol="b")
    again = p.sort_url("/dataset/d", "a")  # the sorted column again: ascending, from the first page
    assert "pdir" not in again
    assert "ppage" not in again
    assert "pdir=desc" not in p.sort_url("/dataset/d", "b")


def test_the_policy_allows_the_tile_server_only_when_one_is_set(tmp_path) -> None:  # type: ignore[no-untyped-def]
    plain = csp(Settings(data_dir=tmp_path))
    assert "default-src 'self'" in plain
    assert "img-src 'self' data:" in plain
    tiles = csp(Settings(data_dir=tmp_path, map_tile_url="https://tiles.cantho.gov.vn/{z}/{x}/{y}.png"))
    assert "img-src 'self' data: https://tiles.cantho.gov.vn" in tiles
