"""The places of the DCAT catalogue: ``/spatial/province/{code}`` and ``/spatial/ward/{code}``.

``hub.publish.dcat`` names a dataset's spatial coverage with these URIs (the province of its catalog
entry's ``spatial``, the wards found in the ``ward_code`` column of its releases); here they resolve.
Each place is

- a page (``text/html``): its name in Vietnamese and in English, its code, the province a ward belongs
  to, and the public datasets covering it (for a province: covering it or one of its wards), linked;
- RDF, at ``.ttl``, ``.jsonld`` and ``.rdf`` or at the same URI by ``Accept``: a ``dct:Location`` with
  ``skos:prefLabel`` (vi, en), ``dct:identifier``, and for a ward ``skos:broader`` and ``dct:isPartOf``
  its province; each covering dataset points to it with ``dct:spatial``.

Names come from the units in force since 2025-07-01 (package ``vietnam-provinces``) and, for a code
found only before, from the pre-2025 list (``hub/contracts/data/pre2025_units.tsv``): data registered
before the reform carries the codes of its day. The reform reused codes: a current unit whose code named
another unit before says so (``skos:historyNote``). An unknown code is a 404; a code written without its
leading zeros (``/spatial/province/092``, ``/spatial/ward/1``) redirects to the canonical one.
"""

from __future__ import annotations

import functools
import unicodedata
from dataclasses import dataclass
from typing import Literal as TypingLiteral

import pyarrow.compute as pc
import pyarrow.parquet as pq
from fastapi import APIRouter, Request
from rdflib import Graph, Literal, URIRef
from rdflib.namespace import DCAT, DCTERMS, RDF, SKOS
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from hub.api.dcat import cached
from hub.api.deps import SessionDep, SettingsDep
from hub.api.errors import HTML, PAGE_CSP, preferred
from hub.catalog.models import Dataset
from hub.contracts.vn import DATA_FILE as PRE2025_FILE
from hub.errors import NotFoundError
from hub.publish.build import latest_version
from hub.publish.companion import public_datasets, source_of
from hub.publish.dcat import RDF_FORMATS, serialize
from hub.publish.models import Release
from hub.settings import Settings

router = APIRouter(tags=["spatial"])
Kind = TypingLiteral["province", "ward"]
CACHE = "public, max-age=300"
# what a bare place URI answers, by Accept (HTML first: a browser, or a client that says nothing)
OFFERS = {
    "text/html": "html",
    "text/turtle": "ttl",
    "application/ld+json": "jsonld",
    "application/rdf+xml": "rdf",
    "application/json": "jsonld",
}
REFORM = "01/07/2025"
# Vietnamese unit types and their English names, the longest first ("Thị xã" before "Thị")
UNIT_TYPES = (
    ("Thành phố", "City"),
    ("Thị trấn", "Township"),
    ("Thị xã", "Town"),
    ("Đặc khu", "Special Zone"),
    ("Phường", "Ward"),
    ("Tỉnh", "Province"),
    ("Quận", "District"),
    ("Huyện", "District"),
    ("Xã", "Commune"),
)


def unaccented(text: str) -> str:
    """Vietnamese without its diacritics ("Cần Thơ" -> "Can Tho", "Đồng" -> "Dong")."""
    text = text.replace("Đ", "D").replace("đ", "d")
    return "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn")


def english_name(name: str) -> str:
    """The English form of a unit's name: unaccented, the unit type after the name ("Phường Cái Khế" ->
    "Cai Khe Ward") or before a number ("Phường 1" -> "Ward 1")."""
    for vi, en in UNIT_TYPES:
        if name.startswith(vi + " "):
            rest = unaccented(name[len(vi) + 1 :])
            return f"{en} {rest}" if rest[:1].isdigit() else f"{rest} {en}"
    return unaccented(name)


@functools.cache
def current_units() -> tuple[dict[str, str], dict[str, tuple[str, str]]]:
    """Units in force since 2025-07-01: province code -> name, ward code -> (name, province code)."""
    from vietnam_provinces import Province, Ward

    provinces = {f"{int(p.code):02d}": p.name for p in Province.iter_all()}
    wards = {f"{int(w.code):05d}": (w.name, f"{int(w.province_code):02d}") for w in Ward.iter_all()}
    return provinces, wards


@functools.cache
def pre2025_units() -> tuple[dict[str, str], dict[str, tuple[str, str]]]:
    """Units before 2025-07-01, in the same shape as ``current_units`` (two-digit province codes)."""
    provinces: dict[str, str] = {}
    wards: dict[str, tuple[str, str]] = {}
    for line in PRE2025_FILE.read_text(encoding="utf-8").splitlines():
        parts = line.split("\t")
        if parts[0] == "P":
            provinces[f"{int(parts[1]):02d}"] = parts[2]
        elif parts[0] == "W":
            wards[parts[1]] = (parts[3], f"{int(parts[2]):02d}")
    return provinces, wards


@dataclass(frozen=True)
class Place:
    """A province or a ward (xã, phường, đặc khu) named by the DCAT catalogue."""

    kind: Kind
    code: str  # canonical: two digits for a province, five for a ward
    name: str  # Vietnamese, as the official list writes it
    current: bool  # in force since 2025-07-01; False: a unit of the pre-2025 list only
    province: Place | None = None  # a ward's province
    former: str | None = None  # the unit the same code named before 2025-07-01, when another one

    @property
    def name_en(self) -> str:
        return english_name(self.name)

    @property
    def path(self) -> str:
        return f"/spatial/{self.kind}/{self.code}"


def canonical(kind: Kind, code: str) -> str | None:
    """The code as the URIs write it, or None for what cannot be a code of ``kind``."""
    width = 2 if kind == "province" else 5
    if not code.isascii() or not code.isdigit() or len(code.lstrip("0")) > width:
        return None
    return f"{int(code):0{width}d}"


def find_place(kind: Kind, code: str) -> Place | None:
    """The province or ward of ``code`` (the current unit first, else the pre-2025 one), or None."""
    key = canonical(kind, code)
    if key is None:
        return None
    (provinces, wards), (old_provinces, old_wards) = current_units(), pre2025_units()
    if kind == "province":
        if key in provinces:
            before = old_provinces.get(key)
            return Place(kind, key, provinces[key], True, former=before if before != provinces[key] else None)
        if key in old_provinces:
            return Place(kind, key, old_provinces[key], False)
        return None
    if key in wards:
        name, province = wards[key]
        former = None
        if key in old_wards and old_wards[key] != (name, province):
            old_name, old_province = old_wards[key]
            province_name = old_provinces.get(old_province, old_province)
            former = f"{old_name}, {province_name}" if old_province != province else old_name
        return Place(kind, key, name, True, find_place("province", province), former)
    if key in old_wards:
        name, province = old_wards[key]
        return Place(kind, key, name, False, find_place("province", province))
    return None


def _codes(kind: Kind, text: object) -> set[tuple[Kind, str]]:
    out: set[tuple[Kind, str]] = set()
    for code in str(text).replace(",", " ").split():
        key = canonical(kind, code)
        if key is not None:
            out.add((kind, key))
    return out


def coverage(settings: Settings, session: Session, ds: Dataset) -> set[tuple[Kind, str]]:
    """The places DCAT gives ``ds`` as ``dct:spatial`` (as ``hub.publish.dcat`` finds them): the codes
    of its ``spatial`` (two digits at most: a province, else a ward) and the ``ward_code`` values of its
    releases' latest versions (a companion package: its source's releases)."""
    out: set[tuple[Kind, str]] = set()
    for code in str((ds.spec or {}).get("spatial") or "").replace(",", " ").split():
        out |= _codes("province" if len(code) <= 2 else "ward", code)
    source = source_of(session, ds)
    releases = session.scalars(
        select(Release).where(Release.dataset_id == source.id, Release.state == "active")
    )
    for rel in releases:
        version = latest_version(session, rel.id)
        path = settings.data_dir / version.path / "data.parquet" if version is not None else None
        if path is None or not path.exists() or "ward_code" not in pq.read_schema(path).names:
            continue
        codes = pc.unique(pq.read_table(path, columns=["ward_code"]).column(0)).to_pylist()
        out |= _codes("ward", " ".join(str(c) for c in codes if c))
    return out


def covering(settings: Settings, session: Session, place: Place) -> list[Dataset]:
    """The public datasets whose coverage holds ``place`` (a province: it or one of its wards)."""
    out = []
    for ds in public_datasets(session):
        places = coverage(settings, session, ds)
        if (place.kind, place.code) in places:
            out.append(ds)
        elif place.kind == "province":
            for kind, code in places:
                ward = find_place(kind, code) if kind == "ward" else None
                if ward is not None and ward.province is not None and ward.province.code == place.code:
                    out.append(ds)
                    break
    return out


def wards_of(province: Place) -> list[Place]:
    """The wards of a province, from the list the province belongs to (current or pre-2025)."""
    _, wards = current_units() if province.current else pre2025_units()
    return [
        Place("ward", code, name, province.current, province)
        for code, (name, prov) in sorted(wards.items())
        if prov == province.code
    ]


def _describe(g: Graph, base: str, place: Place) -> URIRef:
    node = URIRef(base + place.path)
    g.add((node, RDF.type, DCTERMS.Location))
    g.add((node, SKOS.prefLabel, Literal(place.name, lang="vi")))
    g.add((node, SKOS.prefLabel, Literal(place.name_en, lang="en")))
    g.add((node, DCTERMS.identifier, Literal(place.code)))
    return node


def place_graph(base: str, place: Place, datasets: list[Dataset]) -> Graph:
    """``place`` in RDF (see the module docstring); ``base`` is the site URL without its last slash."""
    g = Graph()
    for prefix, ns in (("dct", DCTERMS), ("skos", SKOS), ("dcat", DCAT)):
        g.bind(prefix, ns)
    node = _describe(g, base, place)
    if place.province is not None:
        province = _describe(g, base, place.province)
        g.add((node, SKOS.broader, province))
        g.add((node, DCTERMS.isPartOf, province))
    if not place.current:
        g.add((node, SKOS.scopeNote, Literal(f"Đơn vị hành chính trước ngày {REFORM}.", lang="vi")))
        g.add((node, SKOS.scopeNote, Literal("An administrative unit before 2025-07-01.", lang="en")))
    if place.former:
        g.add(
            (
                node,
                SKOS.historyNote,
                Literal(f"Trước ngày {REFORM}, mã {place.code}: {place.former}.", lang="vi"),
            )
        )
        g.add(
            (
                node,
                SKOS.historyNote,
                Literal(f"Before 2025-07-01, code {place.code}: {place.former}.", lang="en"),
            )
        )
    for ds in datasets:
        g.add((URIRef(f"{base}/dataset/{ds.name}"), DCTERMS.spatial, node))
    return g


async def _answer(request: Request, settings: Settings, session: Session, kind: Kind, ref: str) -> Response:
    code, dot, ext = ref.partition(".")
    if dot and ext not in RDF_FORMATS:
        raise NotFoundError(f"unknown format {ext!r}; use ttl, jsonld or rdf")
    place = find_place(kind, code)
    if place is None:
        raise NotFoundError(f"no {kind} has the code {code!r}")
    if code != place.code:
        return RedirectResponse(place.path + dot + ext, status_code=301)
    fmt = ext or OFFERS[preferred(request.headers.get("accept"), list(OFFERS))]
    base = settings.site_url.rstrip("/")

    def work() -> bytes:
        datasets = covering(settings, session, place)
        if fmt != "html":
            return serialize(place_graph(base, place, datasets), fmt)
        wards = wards_of(place) if place.kind == "province" else []
        template = request.app.state.templates.get_template("spatial.html")
        return str(template.render(place=place, datasets=datasets, wards=wards)).encode()

    body = await run_in_threadpool(work)
    response = cached(request, body, HTML if fmt == "html" else RDF_FORMATS[fmt][1], CACHE)
    if fmt == "html":
        response.headers["Content-Security-Policy"] = PAGE_CSP
    if not ext:  # the same URI answers several formats
        response.headers["Vary"] = "Accept, Accept-Encoding"
        if fmt != "html":
            response.headers["Content-Location"] = f"{place.path}.{fmt}"
    return response


@router.get(
    "/spatial/province/{ref}",
    summary="A province of the DCAT catalogue: a page, or RDF (.ttl, .jsonld, .rdf, or by Accept)",
)
async def province(ref: str, request: Request, settings: SettingsDep, session: SessionDep) -> Response:
    return await _answer(request, settings, session, "province", ref)


@router.get(
    "/spatial/ward/{ref}",
    summary="A ward (xã, phường, đặc khu) of the DCAT catalogue: a page, or RDF (.ttl, .jsonld, .rdf)",
)
async def ward(ref: str, request: Request, settings: SettingsDep, session: SessionDep) -> Response:
    return await _answer(request, settings, session, "ward", ref)
