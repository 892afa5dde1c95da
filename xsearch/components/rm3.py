"""RM3 pseudo-relevance feedback over the BM25 components of a route (Lavrenko and Croft's relevance model as
Anserini implements it: the query re-weighted with terms of its top documents). No storage of its own: it
searches the Lucene snapshots of the components it expands, so it needs no writer and follows every update."""
from __future__ import annotations

from typing import Any, Literal, Mapping

from ..errors import IndexFormatError
from ..storage.manifest import ComponentEntry, RouteEntry
from . import ComponentSpec, Kind, OpenContext, register


class RM3Spec(ComponentSpec):
    kind: Literal["rm3"] = "rm3"
    over: str = "bm25"            # the route whose BM25 components are expanded (bm25 or bm25-dt)
    fb_terms: int = 10
    fb_docs: int = 10
    original_weight: float = 0.5
    qt: bool = False              # queries translated into the components' language first (BM25-QT + RM3)
    route: str | None = None


def open_rm3(ctx: OpenContext, name: str, entry: ComponentEntry, query_translation: bool = False) -> Any:
    from ..config import SearchDefaults
    from ..lucene import LuceneBM25
    from ..retrievers import BM25Retriever, FusedRetriever
    from .bm25 import BM25Spec

    spec = RM3Spec.model_validate(entry.spec)
    parts = []
    for comp_name, comp in ctx.components.items():
        if comp.kind == "bm25" and comp.spec.get("route", "bm25") == spec.over:
            bm25 = BM25Spec.model_validate(comp.spec)
            lucene = LuceneBM25(ctx.folder(comp_name) / comp.state["snapshot"], bm25.lang, bm25.k1, bm25.b,
                                rm3=(spec.fb_terms, spec.fb_docs, spec.original_weight))
            parts.append(BM25Retriever(lucene, name=f"{name}[{bm25.lang}]",
                                       translator=ctx.query_translator() if query_translation else None))
    if not parts:
        raise IndexFormatError(f"component {name!r} expands route {spec.over!r}, which has no BM25 component")
    if len(parts) == 1:
        parts[0].name = name
        return parts[0]
    defaults = SearchDefaults()
    return FusedRetriever(parts, name=name, method="rrf", depth=defaults.fusion_depth, rrf_k=defaults.rrf_k)


def missing(spec: RM3Spec, components: Mapping[str, ComponentEntry]) -> str | None:
    """None if some BM25 component serves the route RM3 expands, else why not."""
    if any(c.kind == "bm25" and c.spec.get("route", "bm25") == spec.over for c in components.values()):
        return None
    return f"route {spec.over!r} has no BM25 component in this index"


def routes(name: str, spec: RM3Spec) -> list[tuple[str, RouteEntry]]:
    return [(spec.route or name, RouteEntry(components=[name], query_translation=spec.qt, about=(
        f"BM25 with RM3 feedback ({spec.fb_docs} docs, {spec.fb_terms} terms, original weight "
        f"{spec.original_weight:g}) over {spec.over}" + (", queries translated first" if spec.qt else ""))))]


KIND = register(Kind("rm3", RM3Spec, opener=open_rm3, routes=routes, missing=missing))
