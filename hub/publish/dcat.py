"""DCAT-AP 3.0 metadata of the public catalogue (rdflib), with hydra paging.

Published datasets are the public catalogue of ``hub.publish.companion``: the active open datasets,
among them the open companion packages through which the releases of shared and internal datasets are
published (each names its source with ``prov:wasDerivedFrom`` and ``dct:source``). Each dataset
carries titles and descriptions in Vietnamese and English (language tags), publisher, contact point,
keywords, themes (EU data-theme), spatial coverage (the province and the wards found in its
releases), temporal coverage, licence, issued/modified, accrual periodicity (EU frequency) and its
distributions: the data files of each release's latest version (access and download URL, media type,
EU file type, byte size, SHA-256 checksum) and, for open datasets, their CKAN resources.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import pyarrow.parquet as pq
from rdflib import BNode, Graph, Literal, Namespace, URIRef
from rdflib.namespace import DCAT, DCTERMS, FOAF, PROV, RDF, SKOS, XSD
from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.catalog.ckan import datastore_filename, download_url
from hub.catalog.ckan_models import Resource
from hub.catalog.models import Dataset, Organization
from hub.publish.companion import public_datasets, source_of
from hub.publish.freshness import is_stale
from hub.publish.models import Release, ReleaseVersion
from hub.publish.resources import release_file_url
from hub.publish.spec import FREQUENCY_URI
from hub.settings import Settings

HYDRA = Namespace("http://www.w3.org/ns/hydra/core#")
SPDX = Namespace("http://spdx.org/rdf/terms#")
VCARD = Namespace("http://www.w3.org/2006/vcard/ns#")
HUB = Namespace("https://lienthong.example.vn/ns#")
EU = "http://publications.europa.eu/resource/authority/"
PAGE_SIZE = 100
LICENSES = {"cc-by-4.0": "CC_BY_4_0", "cc-by-sa-4.0": "CC_BY_SA_4_0", "cc0-1.0": "CC0", "odc-by": "ODC_BY",
            "odc-odbl": "ODC_ODBL", "cc-zero": "CC0"}  # fmt: skip
FILE_TYPES = {"csv": "CSV", "parquet": "PARQUET", "json": "JSON", "geojson": "GEOJSON"}
THEMES = {"giao-duc": "EDUC", "tu-phap": "SOCI", "dat-dai": "ENVI", "dia-chi": "REGI", "y-te": "HEAL",
          "giao-thong": "TRAN", "kinh-te": "ECON", "nong-nghiep": "AGRI", "moi-truong": "ENVI"}  # fmt: skip
THEME_LABELS = {"EDUC": "Giáo dục, văn hoá và thể thao", "SOCI": "Dân số và xã hội", "ENVI": "Môi trường",
                "REGI": "Vùng và đô thị", "HEAL": "Y tế", "TRAN": "Giao thông",
                "ECON": "Kinh tế và tài chính",
                "AGRI": "Nông nghiệp", "GOVE": "Chính phủ và khu vực công"}  # fmt: skip


@dataclass
class CatalogPage:
    graph: Graph
    page: int
    pages: int
    total: int


def _lit(text: str | None, lang: str) -> Literal | None:
    return Literal(text, lang=lang) if text else None


def _dt(value: dt.datetime | None) -> Literal | None:
    return Literal(value.replace(microsecond=0).isoformat(), datatype=XSD.dateTime) if value else None


class _Builder:
    def __init__(self, settings: Settings, session: Session, g: Graph) -> None:
        self.s = settings
        self.session = session
        self.g = g
        self.base = settings.site_url.rstrip("/")
        for prefix, ns in (("dcat", DCAT), ("dct", DCTERMS), ("foaf", FOAF), ("hydra", HYDRA), ("spdx", SPDX),
                           ("vcard", VCARD), ("skos", SKOS), ("hub", HUB), ("prov", PROV)):  # fmt: skip
            g.bind(prefix, ns)

    def add(self, s: Any, p: Any, o: Any) -> None:
        if o is not None:
            self.g.add((s, p, o))

    def typed(self, uri: str, cls: URIRef, label: str | None = None) -> URIRef:
        node = URIRef(uri)
        self.g.add((node, RDF.type, cls))
        if label:
            self.g.add((node, SKOS.prefLabel, Literal(label, lang="vi")))
        return node

    def agent(self, org: Organization | None) -> URIRef:
        if org is None:
            node = URIRef(f"{self.base}/")
            self.g.add((node, RDF.type, FOAF.Agent))
            self.g.add((node, FOAF.name, Literal(self.s.site_title, lang="vi")))
            return node
        node = URIRef(f"{self.base}/organization/{org.name}")
        self.g.add((node, RDF.type, FOAF.Agent))
        self.g.add((node, FOAF.name, Literal(org.title, lang="vi")))
        if org.title_en:
            self.g.add((node, FOAF.name, Literal(org.title_en, lang="en")))
        return node

    def dataset(self, ds: Dataset) -> URIRef:
        node = URIRef(f"{self.base}/dataset/{ds.name}")
        g, spec = self.g, ds.spec or {}
        g.add((node, RDF.type, DCAT.Dataset))
        g.add((node, DCTERMS.identifier, Literal(ds.key)))
        g.add((node, DCTERMS.title, Literal(ds.title, lang="vi")))
        self.add(node, DCTERMS.title, _lit(ds.title_en, "en"))
        g.add((node, DCTERMS.description, Literal(ds.notes or ds.title, lang="vi")))
        self.add(node, DCTERMS.description, _lit(ds.notes_en, "en"))
        org = self.session.get(Organization, ds.owner_org_id) if ds.owner_org_id else None
        g.add((node, DCTERMS.publisher, self.agent(org)))
        contact = spec.get("contact") or ({"email": org.email} if org and org.email else None)
        if contact:
            kind = URIRef(f"{node}#contact")
            g.add((kind, RDF.type, VCARD.Kind))
            self.add(kind, VCARD.fn, Literal(contact.get("name") or (org.title if org else ds.title)))
            if contact.get("email"):
                g.add((kind, VCARD.hasEmail, URIRef(f"mailto:{contact['email']}")))
            g.add((node, DCAT.contactPoint, kind))
        for tag in spec.get("tags", []):
            g.add((node, DCAT.keyword, Literal(tag, lang="vi")))
        for group in spec.get("groups", []) or ["-"]:
            code = THEMES.get(group, "GOVE")
            theme = self.typed(f"{EU}data-theme/{code}", SKOS.Concept, THEME_LABELS[code])
            g.add((node, DCAT.theme, theme))
        g.add((node, DCTERMS.language, self.typed(f"{EU}language/VIE", DCTERMS.LinguisticSystem)))
        self.add(node, DCTERMS.issued, _dt(ds.created))
        self.add(node, DCTERMS.modified, _dt(ds.modified))
        if spec.get("spatial"):
            for code in str(spec["spatial"]).replace(",", " ").split():
                g.add((node, DCTERMS.spatial, self.place(code)))
        source = source_of(self.session, ds)
        if source is not ds:  # an open companion package: it publishes the releases of its source
            origin = self.source(source, org)
            g.add((node, PROV.wasDerivedFrom, origin))
            g.add((node, DCTERMS.source, origin))
        releases = self.session.scalars(
            select(Release).where(Release.dataset_id == source.id, Release.state == "active")
        ).all()
        freq = spec.get("frequency") or next((r.spec.get("frequency") for r in releases), None)
        if freq in FREQUENCY_URI:
            g.add((node, DCTERMS.accrualPeriodicity,
                   self.typed(f"{EU}frequency/{FREQUENCY_URI[freq]}", DCTERMS.Frequency)))  # fmt: skip
        for rel in releases:
            self.release(node, source, rel)
        if ds.sharing == "open":
            self.add(node, DCTERMS.license, self.license(str(spec.get("license", ""))))
            self.resources(node, ds)
        return node

    def source(self, ds: Dataset, org: Organization | None) -> URIRef:
        """The private dataset an open companion package is derived from: named, described and marked
        restricted (shared) or non-public (internal), but not in the catalogue and without distributions."""
        node = URIRef(f"{self.base}/dataset/{ds.name}")
        g = self.g
        g.add((node, RDF.type, DCAT.Dataset))
        g.add((node, DCTERMS.identifier, Literal(ds.key)))
        g.add((node, DCTERMS.title, Literal(ds.title, lang="vi")))
        self.add(node, DCTERMS.title, _lit(ds.title_en, "en"))
        shared = ds.sharing == "shared"
        who = "dùng chung giữa các cơ quan" if shared else "dùng riêng của cơ quan chủ quản"
        g.add((node, DCTERMS.description, Literal(
            f"Bộ dữ liệu {who}, không công khai; chỉ các bản phát hành đã khử định danh là dữ liệu mở.",
            lang="vi")))  # fmt: skip
        g.add((node, DCTERMS.description, Literal(
            ("Shared between agencies" if shared else "Internal to its owner")
            + ", not public; only its de-identified releases are open data.", lang="en")))  # fmt: skip
        g.add((node, DCTERMS.publisher, self.agent(org)))
        access = "RESTRICTED" if shared else "NON_PUBLIC"
        g.add((node, DCTERMS.accessRights, self.typed(f"{EU}access-right/{access}", DCTERMS.RightsStatement)))
        return node

    def resources(self, node: URIRef, ds: Dataset) -> None:
        """The CKAN resources of an open dataset (its table download, uploads, links) as distributions."""
        rows = self.session.scalars(
            select(Resource).where(
                Resource.dataset_id == ds.id, Resource.state == "active", Resource.kind != "release"
            )
        ).all()
        lic = self.license(str((ds.spec or {}).get("license", "")))
        for r in rows:
            filename = (
                datastore_filename(ds) if r.kind == "datastore" else (r.url or "file").rsplit("/", 1)[-1]
            )
            url = URIRef(download_url(self.s, ds.id, r.id, filename) if r.kind != "link" else r.url)
            dist = URIRef(f"{self.base}/dataset/{ds.name}/resource/{r.id}")
            self.g.add((node, DCAT.distribution, dist))
            self.g.add((dist, RDF.type, DCAT.Distribution))
            self.g.add((dist, DCTERMS.title, Literal(r.name or ds.title, lang="vi")))
            self.g.add((dist, DCAT.accessURL, url))
            if r.kind != "link":
                self.g.add((dist, DCAT.downloadURL, url))
            fmt = "csv" if r.kind == "datastore" else (r.format or "").lower()
            if fmt in FILE_TYPES:
                ftype = self.typed(f"{EU}file-type/{FILE_TYPES[fmt]}", DCTERMS.MediaTypeOrExtent)
                self.g.add((dist, DCTERMS["format"], ftype))
            if r.size:
                self.g.add((dist, DCAT.byteSize, Literal(str(r.size), datatype=XSD.decimal)))
            self.add(dist, DCTERMS.license, lic)
            self.add(dist, DCTERMS.modified, _dt(r.last_modified or r.metadata_modified))

    def place(self, code: str) -> URIRef:
        kind = "province" if len(code) <= 2 else "ward"
        node = self.typed(f"{self.base}/spatial/{kind}/{code}", DCTERMS.Location)
        self.g.add((node, DCTERMS.identifier, Literal(code)))
        return node

    def license(self, license_id: str) -> URIRef | None:
        code = LICENSES.get(license_id)
        return self.typed(f"{EU}licence/{code}", DCTERMS.LicenseDocument) if code else None

    def release(self, node: URIRef, ds: Dataset, rel: Release) -> None:
        version = self.session.scalar(
            select(ReleaseVersion)
            .where(ReleaseVersion.release_id == rel.id)
            .order_by(ReleaseVersion.version.desc())
        )
        if version is None:
            return
        g = self.g
        lic = self.license(str(rel.spec.get("license", "cc-by-4.0")))
        stale = is_stale(rel)
        for f in version.files:
            if not f.is_data:
                continue
            url = URIRef(release_file_url(self.s, ds, rel, version.version, f.name))
            dist = URIRef(f"{url}#distribution")
            g.add((node, DCAT.distribution, dist))
            g.add((dist, RDF.type, DCAT.Distribution))
            g.add((dist, DCTERMS.title, Literal(f"{rel.title} ({f.format})", lang="vi")))
            self.add(dist, DCTERMS.title, _lit(rel.title_en and f"{rel.title_en} ({f.format})", "en"))
            g.add((dist, DCAT.accessURL, url))
            g.add((dist, DCAT.downloadURL, url))
            g.add((dist, DCAT.mediaType, self.typed(f"https://www.iana.org/assignments/media-types/{f.media_type}",
                                                    DCTERMS.MediaType)))  # fmt: skip
            if f.format in FILE_TYPES:
                ftype = self.typed(f"{EU}file-type/{FILE_TYPES[f.format]}", DCTERMS.MediaTypeOrExtent)
                g.add((dist, DCTERMS["format"], ftype))
            g.add((dist, DCAT.byteSize, Literal(str(f.size), datatype=XSD.decimal)))
            checksum = BNode()
            g.add((checksum, RDF.type, SPDX.Checksum))
            g.add((checksum, SPDX.algorithm, SPDX.checksumAlgorithm_sha256))
            g.add((checksum, SPDX.checksumValue, Literal(f.sha256, datatype=XSD.hexBinary)))
            g.add((dist, SPDX.checksum, checksum))
            self.add(dist, DCTERMS.license, lic)
            self.add(dist, DCTERMS.issued, _dt(version.built_at))
            self.add(dist, DCTERMS.modified, _dt(version.built_at))
            g.add((dist, HUB.stale, Literal(stale)))
            g.add((dist, HUB.release, Literal(rel.name)))
            g.add((dist, HUB.releaseVersion, Literal(version.version)))
        self.coverage(node, version)
        g.add((node, HUB.stale, Literal(stale)))

    def coverage(self, node: URIRef, version: ReleaseVersion) -> None:
        path = self.s.data_dir / version.path / "data.parquet"
        if not path.exists():
            return
        table = pq.read_table(path)
        if "ward_code" in table.column_names:
            for code in sorted({str(c) for c in table.column("ward_code").to_pylist() if c}):
                self.g.add((node, DCTERMS.spatial, self.place(code)))
        import pyarrow as pa
        import pyarrow.compute as pc

        for f in table.schema:
            if pa.types.is_date(f.type) or pa.types.is_timestamp(f.type):
                bounds = pc.min_max(table.column(f.name)).as_py()
                if bounds["min"] is None:
                    continue
                period = URIRef(f"{node}#temporal")
                self.g.add((period, RDF.type, DCTERMS.PeriodOfTime))
                self.g.add((period, DCAT.startDate, Literal(_as_date(bounds["min"]), datatype=XSD.date)))
                self.g.add((period, DCAT.endDate, Literal(_as_date(bounds["max"]), datatype=XSD.date)))
                self.g.add((node, DCTERMS.temporal, period))
                return


def _as_date(v: dt.date | dt.datetime) -> str:
    return (v.date() if isinstance(v, dt.datetime) else v).isoformat()


def catalog_graph(settings: Settings, session: Session, page: int = 1, fmt: str = "ttl") -> CatalogPage:
    datasets = public_datasets(session)
    total = len(datasets)
    pages = max(1, -(-total // PAGE_SIZE))
    page = min(max(1, page), pages)
    g = Graph()
    b = _Builder(settings, session, g)
    cat = URIRef(f"{b.base}/catalog")
    g.add((cat, RDF.type, DCAT.Catalog))
    g.add((cat, DCTERMS.title, Literal(settings.site_title, lang="vi")))
    g.add((cat, DCTERMS.title, Literal("Liên Thông open-data portal", lang="en")))
    g.add((cat, DCTERMS.description, Literal("Danh mục dữ liệu mở của tỉnh/thành phố.", lang="vi")))
    g.add((cat, DCTERMS.description, Literal("Open-data catalogue of the province.", lang="en")))
    g.add((cat, DCTERMS.publisher, b.agent(None)))
    g.add((cat, FOAF.homepage, b.typed(f"{b.base}/", FOAF.Document)))
    g.add((cat, DCTERMS.language, b.typed(f"{EU}language/VIE", DCTERMS.LinguisticSystem)))
    for ds in datasets[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]:
        g.add((cat, DCAT.dataset, b.dataset(ds)))
    modified = max((d.modified for d in datasets), default=None)
    b.add(cat, DCTERMS.modified, _dt(modified))
    view = URIRef(f"{b.base}/catalog.{fmt}?page={page}")
    g.add((cat, HYDRA.totalItems, Literal(total)))
    g.add((cat, HYDRA.view, view))
    g.add((view, RDF.type, HYDRA.PartialCollectionView))
    g.add((view, HYDRA.first, URIRef(f"{b.base}/catalog.{fmt}?page=1")))
    g.add((view, HYDRA.last, URIRef(f"{b.base}/catalog.{fmt}?page={pages}")))
    if page > 1:
        g.add((view, HYDRA.previous, URIRef(f"{b.base}/catalog.{fmt}?page={page - 1}")))
    if page < pages:
        g.add((view, HYDRA.next, URIRef(f"{b.base}/catalog.{fmt}?page={page + 1}")))
    return CatalogPage(g, page, pages, total)


def dataset_graph(settings: Settings, session: Session, ds: Dataset) -> Graph:
    g = Graph()
    _Builder(settings, session, g).dataset(ds)
    return g


RDF_FORMATS = {
    "ttl": ("turtle", "text/turtle; charset=utf-8"),
    "jsonld": ("json-ld", "application/ld+json"),
    "rdf": ("xml", "application/rdf+xml"),
}


def serialize(g: Graph, fmt: str) -> bytes:
    name, _ = RDF_FORMATS[fmt]
    return g.serialize(format=name, encoding="utf-8")
