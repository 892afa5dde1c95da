"""Retrievers: BM25, dense, impact (SPLADE) and fused, all behind `search(queries, k) -> Run`."""
from __future__ import annotations

from typing import TYPE_CHECKING, Literal, Sequence

from .fusion import fuse
from .records import Query, Run

if TYPE_CHECKING:
    from .dense import DenseIndex
    from .lucene import LuceneBM25, LuceneImpact
    from .protocols import Encoder, SparseEncoder, Translator


def _translate_queries(queries: Sequence[Query], translator: "Translator | None", lang: str) -> list[str]:
    """Query translation (QT): queries not already in `lang` go through the translator, grouped by language."""
    texts = [q.text for q in queries]
    if translator is None:
        return texts
    by_lang: dict[str, list[int]] = {}
    for i, q in enumerate(queries):
        if q.lang != lang:
            by_lang.setdefault(q.lang, []).append(i)
    for src, idxs in by_lang.items():
        for i, t in zip(idxs, translator.translate([texts[i] for i in idxs], src, lang)):
            texts[i] = t
    return texts


class BM25Retriever:
    """BM25 over one Lucene index; with a translator, queries are first translated into the index's language."""

    def __init__(self, lucene: "LuceneBM25", name: str = "bm25", translator: "Translator | None" = None):
        self.lucene = lucene
        self.name = name
        self.translator = translator

    def search(self, queries: Sequence[Query], k: int = 10) -> Run:
        texts = _translate_queries(queries, self.translator, self.lucene.lang)
        return self.lucene.search_texts(texts, [q.query_id for q in queries], k)


class DenseRetriever:
    def __init__(self, index: "DenseIndex", encoder: "Encoder", name: str = "dense", batch_size: int = 256):
        self.index = index
        self.encoder = encoder
        self.name = name
        self.batch_size = batch_size

    def search(self, queries: Sequence[Query], k: int = 10) -> Run:
        if not queries:
            return Run()
        vectors = self.encoder.encode_queries([q.text for q in queries], batch_size=self.batch_size)
        return self.index.search_vectors(vectors, [q.query_id for q in queries], k)


class ImpactRetriever:
    """Learned sparse retrieval: queries encoded by the same SPLADE model, scored on a Lucene impact index."""

    def __init__(self, lucene: "LuceneImpact", encoder: "SparseEncoder", name: str = "splade",
                 translator: "Translator | None" = None, lang: str = "en"):
        self.lucene = lucene
        self.encoder = encoder
        self.name = name
        self.translator = translator
        self.lang = lang

    def search(self, queries: Sequence[Query], k: int = 10) -> Run:
        texts = _translate_queries(queries, self.translator, self.lang)
        vectors = self.encoder.encode_queries(texts)
        return self.lucene.search_vectors(vectors, [q.query_id for q in queries], k)


class FusedRetriever:
    """Fuses the runs of several retrievers (RRF by default), each searched `depth` deep."""

    def __init__(self, retrievers: Sequence[object], name: str = "hybrid",
                 method: Literal["rrf", "wsum", "max"] = "rrf", weights: Sequence[float] | None = None,
                 depth: int = 100, rrf_k: int = 60, norm: str = "minmax", rrf_fill: int | None = None):
        self.retrievers = list(retrievers)
        self.name = name
        self.method = method
        self.weights = weights
        self.depth = depth
        self.rrf_k = rrf_k
        self.norm = norm
        self.rrf_fill = rrf_fill

    def search(self, queries: Sequence[Query], k: int = 10) -> Run:
        return self.search_with_components(queries, k)[0]

    def search_with_components(self, queries: Sequence[Query], k: int = 10) -> tuple[Run, dict[str, Run]]:
        """The fused run and each component's run (for per-route scores on a results page)."""
        depth = max(k, self.depth)
        runs = [r.search(queries, depth) for r in self.retrievers]
        fused = fuse(runs, method=self.method, weights=self.weights, norm=self.norm,  # type: ignore[arg-type]
                     rrf_k=self.rrf_k, rrf_fill=self.rrf_fill).cut(k)
        return fused, {r.name: run for r, run in zip(self.retrievers, runs)}
