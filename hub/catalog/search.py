"""package_search over an in-memory index of the catalogue, rebuilt when the catalogue changes.

The index holds, per active dataset, its full CKAN package dict (so a search result is the same dict
package_show gives), inverted indexes of the exact-string fields CKAN's Solr schema has
(``organization``, ``owner_org``, ``groups``, ``tags``, ``res_format``, ``license_id``, ``name``, ...)
and ``spatial`` (the codes of the province or wards in the package extra ``spatial``),
accent-folded token postings of the text fields (``title``, ``notes``, ``text``, ...: "dat dai" finds
"đất đai") and sorted arrays of the date fields for ranges. Queries evaluate to sets of document
numbers, so a search over 10,000 datasets takes a few milliseconds.

Freshness: every search compares a cheap signature of the metadata database (counts and latest
modification times of datasets, resources, organizations, groups and runs) with the one the index
was built from, and rebuilds on change; writes through the API bump those times.
"""

from __future__ import annotations

import bisect
import fnmatch
import gc
import heapq
import math
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from hub.catalog.ckan import LICENSES, StateLookup, fold, package_dicts
from hub.catalog.models import Dataset
from hub.catalog.search_fq import (
    MAX_NESTING,
    All,
    And,
    Node,
    Not,
    Or,
    QuerySyntaxError,
    Range,
    Term,
    parse,
    parse_date,
)
from hub.settings import Settings

STRING_FIELDS = (
    "id",
    "name",
    "organization",
    "owner_org",
    "groups",
    "tags",
    "res_format",
    "license_id",
    "spatial",
    "state",
    "dataset_type",
    "capacity",
    "creator_user_id",
    "res_url",
    "res_type",
    "entity_type",
    "site_id",
    "type",
)
TEXT_FIELDS = ("title", "notes", "text", "res_name", "res_description", "author", "maintainer")
DATE_FIELDS = ("metadata_modified", "metadata_created")
NUMBER_FIELDS = ("num_resources", "num_tags")
SORT_FIELDS = {
    "score",
    "rank",
    "metadata_modified",
    "metadata_created",
    "name",
    "title_string",
    "title",
    "id",
    "num_resources",
    "num_tags",
    "license_id",
    "state",
    "views_recent",
    "views_total",
}
DEFAULT_SORT = "score desc, metadata_modified desc"
MAX_QUERY_CHARS = 10_000
"""Longest ``q`` or filter query when the caller names no limit (``HUB_SEARCH_MAX_FQ_CHARS``'s default)."""
_WORD = re.compile(r"\w+")


def tokens(value: str | None) -> list[str]:
    return _WORD.findall(fold(value)) if value else []


@dataclass
class Doc:
    n: int
    package: dict[str, Any]
    private: bool
    owner_org: str | None
    strings: dict[str, tuple[str, ...]]
    texts: dict[str, list[str]]
    dates: dict[str, datetime]


@dataclass
class Index:
    docs: list[Doc] = field(default_factory=list)
    by_id: dict[str, int] = field(default_factory=dict)
    strings: dict[str, dict[str, set[int]]] = field(default_factory=dict)
    texts: dict[str, dict[str, set[int]]] = field(default_factory=dict)
    dates: dict[str, tuple[list[datetime], list[int]]] = field(default_factory=dict)
    titles: dict[str, dict[str, str]] = field(default_factory=dict)
    signature: tuple[Any, ...] = ()
    all_docs: frozenset[int] = frozenset()
    public: frozenset[int] = frozenset()
    orders: dict[str, list[int]] = field(default_factory=dict)
    """Doc numbers in ascending order of each sort field."""
    ranks: dict[str, list[int]] = field(default_factory=dict)
    """Position of each doc in ``orders`` (for sorts on several keys)."""

    @property
    def everything(self) -> frozenset[int]:
        return self.all_docs


def _doc(n: int, pkg: dict[str, Any]) -> Doc:
    org = pkg.get("organization") or {}
    res = pkg.get("resources") or []
    extras = {e["key"]: e["value"] for e in pkg.get("extras") or []}
    strings: dict[str, tuple[str, ...]] = {
        "id": (pkg["id"],),
        "name": (pkg["name"],),
        "organization": (org["name"],) if org else (),
        "owner_org": (pkg["owner_org"],) if pkg.get("owner_org") else (),
        "groups": tuple(g["name"] for g in pkg.get("groups") or []),
        "tags": tuple(t["name"] for t in pkg.get("tags") or []),
        "res_format": tuple(sorted({r["format"] for r in res if r.get("format")})),
        "license_id": (pkg["license_id"],) if pkg.get("license_id") else (),
        # the codes of the places it covers (extras "spatial": a province, or wards), for fq and facets
        "spatial": tuple(sorted(set(str(extras.get("spatial") or "").replace(",", " ").split()))),
        "state": (pkg["state"],),
        "dataset_type": (pkg["type"],),
        "type": (pkg["type"],),
        "capacity": ("private" if pkg["private"] else "public",),
        "creator_user_id": (pkg["creator_user_id"],) if pkg.get("creator_user_id") else (),
        "res_url": tuple(r["url"] for r in res if r.get("url")),
        "res_type": tuple(r["resource_type"] for r in res if r.get("resource_type")),
        "entity_type": ("package",),
        "site_id": ("default",),
    }
    group_titles = " ".join(f"{g['name']} {g.get('title') or ''}" for g in pkg.get("groups") or [])
    texts = {
        "title": tokens(pkg.get("title")),
        "notes": tokens(pkg.get("notes")),
        "res_name": tokens(" ".join(r.get("name") or "" for r in res)),
        "res_description": tokens(" ".join(r.get("description") or "" for r in res)),
        "author": tokens(pkg.get("author")),
        "maintainer": tokens(pkg.get("maintainer")),
        "name_tokens": tokens(pkg["name"]),
        "tags": tokens(" ".join(strings["tags"])),
        "groups": tokens(group_titles),
    }
    for key, value in extras.items():
        texts[f"extras_{key}"] = tokens(value)
    catch_all = [
        pkg["name"],
        pkg.get("title"),
        pkg.get("notes"),
        " ".join(strings["tags"]),
        group_titles,
        org.get("name"),
        org.get("title"),
        " ".join(extras.values()),
        pkg.get("author"),
        pkg.get("maintainer"),
        pkg.get("version"),
        pkg.get("url"),
    ]
    catch_all += [f"{r.get('name') or ''} {r.get('description') or ''}" for r in res]
    texts["text"] = tokens(" ".join(str(v) for v in catch_all if v))
    dates = {f: datetime.fromisoformat(pkg[f]) for f in DATE_FIELDS if pkg.get(f)}
    return Doc(n, pkg, bool(pkg["private"]), pkg.get("owner_org"), strings, texts, dates)


def build_index(packages: Iterable[dict[str, Any]], signature: tuple[Any, ...] = ()) -> Index:
    idx = Index(signature=signature)
    for pkg in packages:
        doc = _doc(len(idx.docs), pkg)
        idx.docs.append(doc)
        idx.by_id[pkg["id"]] = doc.n
        for name, values in doc.strings.items():
            postings = idx.strings.setdefault(name, {})
            for v in values:
                postings.setdefault(v, set()).add(doc.n)
        for name, toks in doc.texts.items():
            postings = idx.texts.setdefault(name, {})
            for tok in toks:
                postings.setdefault(tok, set()).add(doc.n)
        org = pkg.get("organization")
        if org:
            idx.titles.setdefault("organization", {})[org["name"]] = org.get("title") or org["name"]
        for g in pkg.get("groups") or []:
            idx.titles.setdefault("groups", {})[g["name"]] = g.get("title") or g["name"]
    for f in DATE_FIELDS:
        pairs = sorted((d.dates[f], d.n) for d in idx.docs if f in d.dates)
        idx.dates[f] = ([p[0] for p in pairs], [p[1] for p in pairs])
    for lid, (title, _url, _open) in LICENSES.items():
        idx.titles.setdefault("license_id", {})[lid] = title
    idx.all_docs = frozenset(range(len(idx.docs)))
    idx.public = frozenset(d.n for d in idx.docs if not d.private and d.package["state"] == "active")
    for name in SORT_FIELDS - {"score", "rank"}:
        key = _sort_key(name, idx, {})
        order = sorted(range(len(idx.docs)), key=lambda n: (key(n), n))
        idx.orders[name] = order
        ranks = [0] * len(order)
        for pos, n in enumerate(order):
            ranks[n] = pos
        idx.ranks[name] = ranks
    return idx


# --- evaluation -----------------------------------------------------------------------------------


class _Eval:
    def __init__(self, idx: Index, now: datetime | None = None) -> None:
        self.idx = idx
        self.now = now

    def run(self, node: Node) -> set[int] | frozenset[int]:
        if isinstance(node, All):
            return self.idx.everything
        if isinstance(node, And):
            positives: list[Node] = [i for i in node.items if not isinstance(i, Not)]
            negatives: list[Node] = [i.item for i in node.items if isinstance(i, Not)]
            result: set[int] | frozenset[int] = self.run(positives[0]) if positives else self.idx.everything
            for item in positives[1:]:
                result = result & self.run(item)
            for item in negatives:
                result = result - self.run(item)
            return result
        if isinstance(node, Or):
            out: set[int] = set()
            for item in node.items:
                out |= self.run(item)
            return out
        if isinstance(node, Not):
            return self.idx.everything - self.run(node.item)
        if isinstance(node, Range):
            return self.range(node)
        return self.term(node)

    def term(self, node: Term) -> set[int]:
        name = node.field or "text"
        if name.startswith("extras_") or name in TEXT_FIELDS:
            return self.text(name, node)
        if name in NUMBER_FIELDS:
            return {d.n for d in self.idx.docs if str(d.package.get(name)) == node.value}
        if name in DATE_FIELDS:
            if node.value == "*":
                return {d.n for d in self.idx.docs if name in d.dates}
            when = parse_date(node.value, self.now)
            return {d.n for d in self.idx.docs if d.dates.get(name) == when}
        postings = self.idx.strings.get(name)
        if postings is None:
            return set()
        if node.value == "*":
            return set().union(*postings.values()) if postings else set()
        if node.wildcard:
            out: set[int] = set()
            for value, docs in postings.items():
                if fnmatch.fnmatchcase(value, node.value):
                    out |= docs
            return out
        return set(postings.get(node.value, ()))

    def text(self, name: str, node: Term) -> set[int]:
        postings = self.idx.texts.get(name, {})
        if node.value == "*":
            return set().union(*postings.values()) if postings else set()
        words = tokens(node.value.replace("*", "STAR").replace("?", "QMARK"))
        words = [w.replace("star", "*").replace("qmark", "?") for w in words]
        if not words:
            return set()
        sets = []
        for w in words:
            if "*" in w or "?" in w:
                hit: set[int] = set()
                for tok, docs in postings.items():
                    if fnmatch.fnmatchcase(tok, w):
                        hit |= docs
                sets.append(hit)
            else:
                sets.append(postings.get(w, set()))
        result = set(sets[0])
        for s in sets[1:]:
            result &= s
        if node.phrase and len(words) > 1:
            result = {n for n in result if _has_phrase(self.idx.docs[n].texts.get(name, []), words)}
        return result

    def range(self, node: Range) -> set[int]:
        name = node.field or "text"
        if name in DATE_FIELDS:
            keys, nums = self.idx.dates.get(name, ([], []))
            lo = parse_date(node.lo, self.now) if node.lo else None
            hi = parse_date(node.hi, self.now) if node.hi else None
            start = (
                0 if lo is None else (bisect.bisect_left if node.lo_incl else bisect.bisect_right)(keys, lo)
            )
            end = (
                len(keys)
                if hi is None
                else (bisect.bisect_right if node.hi_incl else bisect.bisect_left)(keys, hi)
            )
            return set(nums[start:end])
        if name in NUMBER_FIELDS:
            lo_n = _number(name, node.lo) if node.lo else -math.inf
            hi_n = _number(name, node.hi) if node.hi else math.inf
            out = set()
            for d in self.idx.docs:
                v = float(d.package.get(name) or 0)
                if (v > lo_n or (node.lo_incl and v == lo_n)) and (v < hi_n or (node.hi_incl and v == hi_n)):
                    out.add(d.n)
            return out
        postings = self.idx.strings.get(name, {})
        res: set[int] = set()
        for value, docs in postings.items():
            ok_lo = node.lo is None or value > node.lo or (node.lo_incl and value == node.lo)
            ok_hi = node.hi is None or value < node.hi or (node.hi_incl and value == node.hi)
            if ok_lo and ok_hi:
                res |= docs
        return res


def _number(field: str, text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise QuerySyntaxError(f"{field} is a number: {text[:40]!r} is not") from None


def _has_phrase(toks: list[str], words: list[str]) -> bool:
    n = len(words)
    return any(toks[i : i + n] == words for i in range(len(toks) - n + 1))


_BOOSTS = (("name_tokens", 4.0), ("title", 4.0), ("tags", 2.0), ("groups", 2.0), ("text", 1.0))


def dismax(idx: Index, q: str) -> tuple[set[int], Counter[int]]:
    """CKAN's free-text q (no ``:``): terms over name^4 title^4 tags^2 groups^2 text, mm ``2<-1 5<80%``.

    Returns the matching documents and their scores (the sum of the boosts of the fields each term hits).
    """
    words = tokens(q.replace("*", " STARSUFFIX ")) if "*" in q else tokens(q)
    terms: list[str] = []
    for w in words:
        if w == "starsuffix" and terms:
            terms[-1] += "*"
        elif w != "starsuffix":
            terms.append(w)
    if not terms:
        return set(idx.everything), Counter()
    n = len(terms)
    required = n if n <= 2 else (n - 1 if n <= 5 else int(0.8 * n))
    per_term: list[list[tuple[set[int], float]]] = []
    term_sets: list[set[int]] = []
    for term in terms:
        hits: list[tuple[set[int], float]] = []
        for fname, boost in _BOOSTS:
            postings = idx.texts.get(fname, {})
            if term.endswith("*"):
                docs: set[int] = set()
                for tok, ds in postings.items():
                    if tok.startswith(term[:-1]):
                        docs |= ds
            else:
                docs = postings.get(term, set())
            if docs:
                hits.append((docs, boost))
        per_term.append(hits)
        # "text" is the catch-all: it holds every token of the other fields
        term_sets.append(next((d for d, b in hits if b == 1.0), set()))
    if required == n:
        found = set(term_sets[0]).intersection(*term_sets[1:])
    else:
        counts: Counter[int] = Counter()
        for ts in term_sets:
            counts.update(ts)
        found = {d for d, c in counts.items() if c >= required}
    scores: Counter[int] = Counter()
    for hits in per_term:
        for docs, boost in hits:
            if boost == 1.0 and required == n:
                continue  # every match has every term in "text": the same share of score for all
            part = docs & found if len(docs) > len(found) else found & docs
            for _ in range(int(boost)):
                scores.update(part)
    return found, scores


def evaluate(
    idx: Index, query: str, now: datetime | None = None, max_nesting: int = MAX_NESTING
) -> set[int] | frozenset[int]:
    return _Eval(idx, now).run(parse(query, max_nesting))


# --- the search -----------------------------------------------------------------------------------


@dataclass
class SearchParams:
    q: str = ""
    fq: str = ""
    fq_list: list[str] = field(default_factory=list)
    rows: int = 10
    start: int = 0
    sort: str = DEFAULT_SORT
    facet_fields: list[str] = field(default_factory=list)
    facet_limit: int = 50
    facet_mincount: int = 1
    include_private: bool = False
    include_drafts: bool = False


@dataclass
class SearchResult:
    count: int
    results: list[dict[str, Any]]
    facets: dict[str, dict[str, int]]
    search_facets: dict[str, dict[str, Any]]
    sort: str


def parse_sort(sort: str) -> list[tuple[str, bool]]:
    out = []
    for part in (sort or DEFAULT_SORT).split(","):
        bits = part.split()
        if not bits:
            continue
        name = bits[0]
        direction = bits[1].lower() if len(bits) > 1 else "asc"
        if name not in SORT_FIELDS or direction not in ("asc", "desc") or len(bits) > 2:
            raise QuerySyntaxError(f"Can't determine Sort Order: {part.strip()!r}")
        out.append((name, direction == "desc"))
    return out


def _sort_key(name: str, idx: Index, scores: dict[int, float]) -> Callable[[int], Any]:
    if name in ("score", "rank"):
        return lambda n: scores.get(n, 0.0)
    if name in DATE_FIELDS:
        return lambda n: idx.docs[n].dates.get(name, datetime.min)  # noqa: DTZ901
    if name in ("title_string", "title"):
        return lambda n: fold(idx.docs[n].package.get("title") or "")
    if name in NUMBER_FIELDS or name in ("views_recent", "views_total"):
        return lambda n: idx.docs[n].package.get(name) or 0
    return lambda n: str(idx.docs[n].package.get(name) or "")


def run_search(
    idx: Index,
    params: SearchParams,
    visible: Callable[[Doc], bool],
    now: datetime | None = None,
    *,
    max_chars: int = MAX_QUERY_CHARS,
    max_nesting: int = MAX_NESTING,
) -> SearchResult:
    """Evaluate ``params`` over ``idx``; ``visible`` decides which private documents the caller sees.

    ``q`` and each filter query are refused (``QuerySyntaxError``) beyond ``max_chars`` characters or
    ``max_nesting`` levels of parentheses and prefix operators (the API passes its settings).
    """
    for name, query in (("q", params.q), ("fq", params.fq), *(("fq_list", f) for f in params.fq_list)):
        if query and len(query) > max_chars:
            raise QuerySyntaxError(f"{name} is longer than {max_chars} characters")
    q = (params.q or "").strip()
    scores: Counter[int] | None = None
    matched: set[int] | frozenset[int]
    if q in ("", '""', "''", "*:*", "*"):
        matched = idx.everything
    elif ":" in q:
        matched = evaluate(idx, q, now, max_nesting)
    else:
        matched, scores = dismax(idx, q)
    for fq in [params.fq, *params.fq_list]:
        if fq and fq.strip():
            matched = matched & evaluate(idx, fq, now, max_nesting)
    if params.include_private:
        private = [
            n
            for n in matched - idx.public
            if idx.docs[n].package["state"] == "active" and visible(idx.docs[n])
        ]
        matched = (matched & idx.public) | set(private)
    else:
        matched = matched & idx.public
    sort = [
        (name, desc)
        for name, desc in parse_sort(params.sort)
        if scores is not None or name not in ("score", "rank")
    ]
    want = params.start + params.rows
    page: list[int] = []
    if params.rows > 0 and params.start < len(matched):
        if not sort:
            sort = [("id", False)]
        if len(sort) <= 2 and sort[0][0] in ("score", "rank") and sort[0][1] and scores is not None:
            page = _by_score(idx, matched, scores, sort[1] if len(sort) > 1 else ("id", False))[
                params.start : want
            ]
        elif len(sort) == 1 and sort[0][0] not in ("score", "rank"):
            order = idx.orders[sort[0][0]]
            seq = reversed(order) if sort[0][1] else iter(order)
            picked: list[int] = []
            for n in seq:
                if n in matched:
                    picked.append(n)
                    if len(picked) >= want:
                        break
            page = picked[params.start : want]
        else:
            keys = []
            for name, desc in sort:
                if name in ("score", "rank"):
                    sc = scores or Counter()
                    keys.append((lambda n, sc=sc: sc[n]) if not desc else (lambda n, sc=sc: -sc[n]))
                else:
                    ranks = idx.ranks[name]
                    keys.append((lambda n, r=ranks: -r[n]) if desc else (lambda n, r=ranks: r[n]))
            top = heapq.nsmallest(want, matched, key=lambda n: tuple(k(n) for k in keys))  # type: ignore[no-untyped-call]
            page = top[params.start : want]
    facets, search_facets = _facets(idx, matched, params)
    return SearchResult(
        count=len(matched),
        results=[idx.docs[n].package for n in page],
        facets=facets,
        search_facets=search_facets,
        sort=params.sort or DEFAULT_SORT,
    )


def _by_score(
    idx: Index, matched: set[int] | frozenset[int], scores: Counter[int], then: tuple[str, bool]
) -> list[int]:
    """Matched docs by score (descending), then by a precomputed order: one pass, no per-doc sort key."""
    buckets: dict[int, list[int]] = {}
    order = idx.orders["id" if then[0] in ("score", "rank") else then[0]]
    for n in reversed(order) if then[1] else order:
        if n in matched:
            sc = scores[n]
            bucket = buckets.get(sc)
            if bucket is None:
                buckets[sc] = [n]
            else:
                bucket.append(n)
    out: list[int] = []
    for sc in sorted(buckets, reverse=True):
        out.extend(buckets[sc])
    return out


def _facets(
    idx: Index, matched: set[int] | frozenset[int], params: SearchParams
) -> tuple[dict[str, Any], dict[str, Any]]:
    facets: dict[str, dict[str, int]] = {}
    search_facets: dict[str, dict[str, Any]] = {}
    for name in params.facet_fields:
        postings = idx.strings.get(name, {})
        items = []
        for value, docs in postings.items():
            c = len(docs & matched) if len(docs) < len(matched) * 4 else len(matched & docs)
            if c >= max(params.facet_mincount, 1):
                items.append((value, c))
        items.sort(key=lambda vc: (-vc[1], vc[0]))
        if params.facet_limit >= 0:
            items = items[: params.facet_limit]
        facets[name] = dict(items)
        titles = idx.titles.get(name, {})
        entries = [{"name": v, "display_name": titles.get(v, v), "count": c} for v, c in items]
        entries.sort(key=lambda e: str(e["display_name"]), reverse=True)
        search_facets[name] = {"title": name, "items": entries}
    return facets, search_facets


# --- the process-wide index -----------------------------------------------------------------------

_SIGNATURE_SQL = text(
    "SELECT (SELECT count(*) FROM datasets), (SELECT max(modified) FROM datasets), "
    "(SELECT count(*) FROM resources), (SELECT max(metadata_modified) FROM resources), "
    "(SELECT count(*) FROM organizations), (SELECT max(modified) FROM organizations), "
    "(SELECT count(*) FROM groups), (SELECT max(modified) FROM groups), "
    "(SELECT count(*) FROM runs), (SELECT max(finished_at) FROM runs)"
)


class CatalogIndex:
    """The index of one metadata database, rebuilt when its signature changes."""

    #: How long a checked signature is trusted: changes made by other processes (ingest workers, other
    #: server workers) show up within this time; this process's own writes call ``invalidate``.
    CHECK_SECONDS = 1.0

    def __init__(self) -> None:
        self._index: Index | None = None
        self._lock = threading.Lock()
        self._checked = 0.0

    def signature(self, session: Session) -> tuple[Any, ...]:
        return tuple(str(v) for v in session.execute(_SIGNATURE_SQL).one())

    def get(self, session: Session, settings: Settings, states: StateLookup) -> Index:
        current = self._index
        if current is not None and time.monotonic() - self._checked < self.CHECK_SECONDS:
            return current
        sig = self.signature(session)
        self._checked = time.monotonic()
        if current is not None and current.signature == sig:
            return current
        with self._lock:
            current = self._index
            if current is not None and current.signature == sig:
                return current
            datasets = list(
                session.scalars(select(Dataset).where(Dataset.state == "active").order_by(Dataset.id))
            )
            packages = package_dicts(session, settings, datasets, states)
            self._index = build_index(packages, sig)
            gc.collect()
            gc.freeze()  # the index is long-lived: keep it out of the collector's scans
            return self._index

    def recent(self) -> Index | None:
        """The index when its signature was checked less than ``CHECK_SECONDS`` ago (no database
        access: what ``get`` would return without querying), else None."""
        current = self._index
        if current is not None and time.monotonic() - self._checked < self.CHECK_SECONDS:
            return current
        return None

    def invalidate(self) -> None:
        """Check the database on the next search (after a write of this process)."""
        self._checked = 0.0


__all__ = [
    "CatalogIndex",
    "Doc",
    "Index",
    "QuerySyntaxError",
    "SearchParams",
    "SearchResult",
    "build_index",
    "dismax",
    "evaluate",
    "parse_sort",
    "run_search",
    "tokens",
]
