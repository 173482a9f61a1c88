"""DCAT-AP 3.0: the whole catalogue validates against the official shapes with zero violations."""

from __future__ import annotations

from pathlib import Path

from rdflib import Graph, URIRef
from rdflib.namespace import DCAT, RDF

from hub.db import session_scope
from hub.publish.build import build_release
from hub.publish.dcat import HYDRA, catalog_graph, dataset_graph, serialize
from hub.runtime import Hub
from hub.settings import Settings

SHAPES = Path(__file__).resolve().parents[1] / "data" / "dcat-ap"  # the official shapes, see its README


def _shapes() -> Graph:
    files = [SHAPES / "dcat-ap-3.0.0-shapes.ttl", SHAPES / "dcat-ap-3.0.0-range.ttl"]
    g = Graph()
    for f in files:
        g.parse(f, format="turtle")
    return g


def _violations(data: Graph) -> tuple[bool, str]:
    from pyshacl import validate

    conforms, _, text = validate(data, shacl_graph=_shapes(), inference="none", allow_warnings=True)
    return bool(conforms), str(text)


def test_catalog_with_releases_has_zero_shacl_violations(
    publish_hub: Hub, publish_settings: Settings
) -> None:
    build_release(publish_hub, "civil_status.births", "births-by-ward-month")
    build_release(publish_hub, "land.parcels", "parcels-without-owner")
    with session_scope(publish_settings) as session:
        page = catalog_graph(publish_settings, session, 1, "ttl")
        assert page.total == 2
        g = page.graph
        for fmt in ("ttl", "jsonld", "rdf"):
            assert len(serialize(g, fmt)) > 1000
        conforms, text = _violations(g)
        assert conforms, text
        datasets = list(g.objects(None, DCAT.dataset))
        assert len(datasets) == 2
        dists = list(g.subjects(RDF.type, DCAT.Distribution))
        # births: CSV, Parquet, JSON; parcels: + GeoJSON
        assert len(dists) == 7
        ds = URIRef("http://127.0.0.1:8000/dataset/civil_status-births")
        titles = {(t.language, str(t)) for t in g.objects(ds, URIRef("http://purl.org/dc/terms/title"))}
        assert ("vi", "Đăng ký khai sinh") in titles
        assert ("en", "Birth registrations") in titles
        one = dataset_graph(
            publish_settings,
            session,
            session.get(__import__("hub.catalog.models", fromlist=["Dataset"]).Dataset, _id(session)),
        )
        conforms, text = _violations(one)
        assert conforms, text


def _id(session) -> str:  # type: ignore[no-untyped-def]
    from hub.catalog.loader import get_dataset

    return get_dataset(session, "land.parcels").id


def test_catalog_paging_uses_hydra(publish_settings: Settings) -> None:
    from hub.catalog.models import Dataset

    with session_scope(publish_settings) as session:
        for i in range(150):
            session.add(Dataset(key=f"open_data.t{i:03d}", name=f"open_data-t{i:03d}", title=f"Bảng {i}",
                                sharing="open", spec={}))  # fmt: skip
    with session_scope(publish_settings) as session:
        first = catalog_graph(publish_settings, session, 1, "ttl")
        second = catalog_graph(publish_settings, session, 2, "ttl")
    assert (first.total, first.pages) == (150, 2)
    assert len(list(first.graph.objects(None, DCAT.dataset))) == 100
    assert len(list(second.graph.objects(None, DCAT.dataset))) == 50
    view = next(first.graph.subjects(RDF.type, HYDRA.PartialCollectionView))
    assert str(next(first.graph.objects(view, HYDRA.next))).endswith("/catalog.ttl?page=2")
    view2 = next(second.graph.subjects(RDF.type, HYDRA.PartialCollectionView))
    assert str(next(second.graph.objects(view2, HYDRA.previous))).endswith("/catalog.ttl?page=1")
    assert not list(second.graph.objects(view2, HYDRA.next))
    conforms, text = _violations(first.graph)
    assert conforms, text
