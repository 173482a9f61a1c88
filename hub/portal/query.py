"""A search page's URL as one ``package_search`` call, and the links that change it.

``/dataset?q=truong&organization=so-giao-duc-dao-tao&tags=trường học&sort=name&page=2`` is

- ``q``: the text, as typed (``package_search``'s ``q``: accent folding and ranking are its own);
- one parameter per facet (``organization``, ``groups``, ``tags``, ``res_format``, ``license_id``,
  ``spatial``), repeatable: each value is an exact filter, joined with AND into ``fq``;
- ``sort``: a key of ``SORTS``; anything else is the default (relevance);
- ``page``: 1-based, ``ROWS`` datasets a page.

So a page of results can be shared by its URL, and the same call answers ``package_search`` on the
CKAN API (``SearchRequest.data``): the portal has no search of its own.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

FACETS = ("organization", "groups", "tags", "res_format", "license_id", "spatial")
ROWS = 20
MAX_PAGE = 100_000
"""Pages beyond this are beyond any catalogue: answered as an empty page, never passed on."""
SORTS: dict[str, str] = {
    "relevance": "score desc, metadata_modified desc",
    "modified": "metadata_modified desc",
    "created": "metadata_created desc",
    "name": "title_string asc",
}
SORT_WORDS = {
    "relevance": "sort_relevance",
    "modified": "sort_modified",
    "created": "sort_created",
    "name": "sort_name",
}
MAX_Q = 500
"""Longest text kept from the search box (a longer one is cut: the page still answers)."""


def quote(value: str) -> str:
    """``value`` as a quoted term of ``fq`` (backslash and double quote escaped)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass
class SearchRequest:
    """What a search page asks (see the module docstring)."""

    q: str = ""
    filters: dict[str, list[str]] = field(default_factory=dict)
    sort: str = "relevance"
    page: int = 1
    base_filters: list[str] = field(default_factory=list)
    """``fq`` clauses of the page itself (an organization's or a group's page), not shown as filters."""

    @classmethod
    def from_params(
        cls, params: Iterable[tuple[str, str]], base_filters: list[str] | None = None
    ) -> SearchRequest:
        req = cls(base_filters=list(base_filters or []))
        for key, value in params:
            if key == "q":
                req.q = value.strip()[:MAX_Q]
            elif key in FACETS and value and value not in req.filters.get(key, []):
                req.filters.setdefault(key, []).append(value[:200])
            elif key == "sort" and value in SORTS:
                req.sort = value
            elif key == "page":
                text = value.strip()
                req.page = int(text) if text.isdecimal() and len(text) <= 9 else 1
                req.page = max(1, req.page)
        return req

    @property
    def start(self) -> int:
        return (self.page - 1) * ROWS

    @property
    def beyond(self) -> bool:
        """A page number past any catalogue (no search is made for it)."""
        return self.page > MAX_PAGE

    def fq(self) -> str:
        clauses = list(self.base_filters)
        for name in FACETS:
            clauses += [f"{name}:{quote(v)}" for v in self.filters.get(name, [])]
        return " AND ".join(clauses)

    def data(self, *, rows: int = ROWS, facets: Sequence[str] = FACETS) -> dict[str, Any]:
        """The ``package_search`` parameters of this page (as a GET on the CKAN API would send them),
        counting the values of ``facets``."""
        out: dict[str, Any] = {
            "q": self.q,
            "rows": str(rows),
            "start": str(self.start),
            "sort": SORTS[self.sort],
        }
        fq = self.fq()
        if fq:
            out["fq"] = fq
        if facets:
            out["facet.field"] = json.dumps(list(facets))
            out["facet.limit"] = "50"
        return out

    def params(self, **changes: Any) -> list[tuple[str, str]]:
        q = changes.get("q", self.q)
        sort = changes.get("sort", self.sort)
        page = changes.get("page", 1)
        filters = changes.get("filters", self.filters)
        out: list[tuple[str, str]] = []
        if q:
            out.append(("q", q))
        for name in FACETS:
            out += [(name, v) for v in filters.get(name, [])]
        if sort != "relevance":
            out.append(("sort", sort))
        if page and page > 1:
            out.append(("page", str(page)))
        return out

    def url(self, path: str, **changes: Any) -> str:
        """``path`` with this request's parameters, changed by ``changes`` (the page goes back to 1
        unless given)."""
        query = urlencode(self.params(**changes))
        return f"{path}?{query}" if query else path

    def toggled(self, path: str, name: str, value: str) -> str:
        """The URL with the filter ``name=value`` added, or removed when it is on."""
        filters = {k: list(v) for k, v in self.filters.items()}
        values = filters.setdefault(name, [])
        if value in values:
            values.remove(value)
        else:
            values.append(value)
        return self.url(path, filters=filters)

    def active(self) -> list[tuple[str, str]]:
        return [(name, v) for name in FACETS for v in self.filters.get(name, [])]

    def pages(self, count: int) -> int:
        return max(1, -(-count // ROWS))
