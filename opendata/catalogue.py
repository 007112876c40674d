"""The DCAT catalogue of a release (JSON-LD, built with rdflib) and its validation."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from rdflib import BNode, Graph, Literal, Namespace, URIRef
from rdflib.namespace import DCAT, DCTERMS, FOAF, RDF, XSD

from core.i18n import LANGS, N_, gettext
from opendata.datasets import Dataset

LICENSE = URIRef("https://creativecommons.org/licenses/by/4.0/")
PUBLISHER = URIRef("https://www.city.maebashi.gunma.jp/")
PUBLISHER_NAME = N_("Maebashi City")
CATALOGUE_TITLE = N_("Maebashi mobility and local 5G open data")
CATALOGUE_DESCRIPTION = N_(
    "Aggregate, privacy-protected data on buses, MyTaku, autonomous buses and local 5G "
    "trials in Maebashi, published by the city's Mebuku platform."
)
# Maebashi's extent (WGS84), from the town blocks.
CITY_BBOX_WKT = "POLYGON((138.98 36.27, 139.28 36.27, 139.28 36.52, 138.98 36.52, 138.98 36.27))"
SPDX = Namespace("http://spdx.org/rdf/terms#")
CONTEXT = {
    "dcat": str(DCAT),
    "dct": str(DCTERMS),
    "foaf": str(FOAF),
    "xsd": str(XSD),
    "spdx": str(SPDX),
}
REQUIRED_DATASET = (DCTERMS.title, DCTERMS.description, DCTERMS.license, DCTERMS.publisher)


@dataclass(frozen=True)
class FileInfo:
    """One file of the release: dataset, size, checksum and data dictionary file."""

    dataset: Dataset
    byte_size: int
    sha256: str
    schema_file: str | None
    rows: int


@dataclass(frozen=True)
class ReleaseInfo:
    """What the catalogue says about a release as a whole."""

    release_id: str
    base_url: str  # ends with "/": the release's folder as served
    issued: date
    period: tuple[date, date] | None
    k: int
    epsilon: float
    extra_links: Sequence[tuple[str, str, str]] = ()  # (title msgid, url, media type)


def _titles(g: Graph, node: URIRef | BNode, prop: URIRef, msgid: str) -> None:
    for lang in LANGS:
        g.add((node, prop, Literal(gettext(msgid, lang), lang=lang)))


def build(files: Sequence[FileInfo], info: ReleaseInfo) -> Graph:
    """The catalogue graph: catalogue, publisher, datasets, distributions, dictionaries."""
    g = Graph()
    for prefix, ns in CONTEXT.items():
        g.bind(prefix, Namespace(ns))
    cat = URIRef(info.base_url + "catalog.jsonld")
    g.add((cat, RDF.type, DCAT.Catalog))
    _titles(g, cat, DCTERMS.title, CATALOGUE_TITLE)
    _titles(g, cat, DCTERMS.description, CATALOGUE_DESCRIPTION)
    g.add((cat, DCTERMS.issued, Literal(info.issued, datatype=XSD.date)))
    g.add((cat, DCTERMS.license, LICENSE))
    g.add((cat, DCTERMS.publisher, PUBLISHER))
    g.add((cat, DCTERMS.identifier, Literal(info.release_id)))
    g.add((PUBLISHER, RDF.type, FOAF.Agent))
    _titles(g, PUBLISHER, FOAF.name, PUBLISHER_NAME)
    spatial = BNode()
    g.add((spatial, RDF.type, DCTERMS.Location))
    g.add((spatial, DCAT.bbox, Literal(CITY_BBOX_WKT)))
    _titles(g, spatial, DCTERMS.title, PUBLISHER_NAME)
    for f in files:
        g.add((cat, DCAT.dataset, _dataset(g, f, info, spatial)))
    for title, url, media in info.extra_links:
        g.add((cat, DCAT.dataset, _link(g, title, url, media, spatial)))
    return g


def _dataset(g: Graph, f: FileInfo, info: ReleaseInfo, spatial: BNode) -> URIRef:
    ds = f.dataset
    node = URIRef(info.base_url + "#" + ds.id)
    g.add((node, RDF.type, DCAT.Dataset))
    g.add((node, DCTERMS.identifier, Literal(ds.id)))
    _titles(g, node, DCTERMS.title, ds.title)
    _titles(g, node, DCTERMS.description, ds.description)
    for kw in ds.keywords:
        g.add((node, DCAT.keyword, Literal(kw, lang="ja")))
    g.add((node, DCTERMS.license, LICENSE))
    g.add((node, DCTERMS.publisher, PUBLISHER))
    g.add((node, DCTERMS.issued, Literal(info.issued, datatype=XSD.date)))
    g.add((node, DCTERMS.spatial, spatial))
    if info.period is not None:
        t = BNode()
        g.add((t, RDF.type, DCTERMS.PeriodOfTime))
        g.add((t, DCAT.startDate, Literal(info.period[0], datatype=XSD.date)))
        g.add((t, DCAT.endDate, Literal(info.period[1], datatype=XSD.date)))
        g.add((node, DCTERMS.temporal, t))
    dist = URIRef(info.base_url + ds.filename)
    g.add((node, DCAT.distribution, dist))
    g.add((dist, RDF.type, DCAT.Distribution))
    _titles(g, dist, DCTERMS.title, ds.title)
    g.add((dist, DCAT.downloadURL, dist))
    g.add((dist, DCAT.accessURL, dist))
    g.add(
        (
            dist,
            DCAT.mediaType,
            URIRef("https://www.iana.org/assignments/media-types/" + ds.media_type),
        )
    )
    g.add((dist, DCTERMS.format, Literal(ds.fmt.upper())))
    g.add((dist, DCAT.byteSize, Literal(f.byte_size, datatype=XSD.nonNegativeInteger)))
    g.add((dist, DCTERMS.license, LICENSE))
    checksum = BNode()
    g.add((dist, SPDX.checksum, checksum))
    g.add((checksum, SPDX.algorithm, SPDX.checksumAlgorithm_sha256))
    g.add((checksum, SPDX.checksumValue, Literal(f.sha256, datatype=XSD.hexBinary)))
    if f.schema_file:
        dictionary = URIRef(info.base_url + f.schema_file)
        g.add((dist, DCTERMS.conformsTo, dictionary))
        g.add((node, DCTERMS.conformsTo, dictionary))
        g.add((dictionary, RDF.type, DCTERMS.Standard))
        _titles(g, dictionary, DCTERMS.title, N_("Data dictionary"))
    return node


def _link(g: Graph, title: str, url: str, media: str, spatial: BNode) -> URIRef:
    node = URIRef(url + "#dataset")
    g.add((node, RDF.type, DCAT.Dataset))
    _titles(g, node, DCTERMS.title, title)
    _titles(g, node, DCTERMS.description, title)
    g.add((node, DCTERMS.license, LICENSE))
    g.add((node, DCTERMS.publisher, PUBLISHER))
    g.add((node, DCTERMS.spatial, spatial))
    dist = URIRef(url)
    g.add((node, DCAT.distribution, dist))
    g.add((dist, RDF.type, DCAT.Distribution))
    g.add((dist, DCAT.accessURL, dist))
    g.add((dist, DCAT.mediaType, URIRef("https://www.iana.org/assignments/media-types/" + media)))
    return node


def to_jsonld(g: Graph) -> str:
    """The graph as JSON-LD with a compact context."""
    return g.serialize(format="json-ld", context=CONTEXT, indent=2, auto_compact=True)


def validate(text: str) -> list[str]:
    """Parse a JSON-LD catalogue back and check the DCAT properties we promise."""
    g = Graph()
    try:
        g.parse(data=text, format="json-ld")
    except (ValueError, json.JSONDecodeError) as e:
        return [f"not JSON-LD: {e}"]
    problems: list[str] = []
    cats = list(g.subjects(RDF.type, DCAT.Catalog))
    if len(cats) != 1:
        return [f"{len(cats)} dcat:Catalog nodes"]
    for p in (DCTERMS.title, DCTERMS.publisher, DCTERMS.license):
        if g.value(cats[0], p) is None:
            problems.append(f"catalogue lacks {p}")
    datasets = list(g.objects(cats[0], DCAT.dataset))
    if not datasets:
        problems.append("catalogue lists no dataset")
    for ds in datasets:
        problems += _check_dataset(g, ds)
    return problems


def _check_dataset(g: Graph, ds: Any) -> list[str]:
    problems = [f"{ds} lacks {p}" for p in REQUIRED_DATASET if g.value(ds, p) is None]
    if g.value(ds, DCTERMS.license) != LICENSE:
        problems.append(f"{ds}: license is not CC BY 4.0")
    langs = {getattr(t, "language", None) for t in g.objects(ds, DCTERMS.title)}
    if "ja" not in langs:
        problems.append(f"{ds} has no Japanese title")
    dists = list(g.objects(ds, DCAT.distribution))
    if not dists:
        problems.append(f"{ds} has no distribution")
    for d in dists:
        if g.value(d, DCAT.accessURL) is None or g.value(d, DCAT.mediaType) is None:
            problems.append(f"{d} lacks accessURL or mediaType")
    return problems


def catalogue_summary(text: str) -> Mapping[str, Any]:
    """Identifiers and Japanese titles of the datasets of a catalogue (for dashboards)."""
    g = Graph()
    g.parse(data=text, format="json-ld")
    out = {}
    for ds in g.subjects(RDF.type, DCAT.Dataset):
        ident = g.value(ds, DCTERMS.identifier)
        titles = {getattr(t, "language", None): str(t) for t in g.objects(ds, DCTERMS.title)}
        if ident is not None:
            out[str(ident)] = titles.get("ja")
    return out
