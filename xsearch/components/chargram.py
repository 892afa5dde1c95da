"""BM25 over character n-grams (xsearch.chargrams) in a pretokenized Lucene index: a lexical route that needs no
query translation and no language analyzer.

Queries are searched as typed: their n-grams meet the original text's cognates and, over `text: both`, the
translation's words too, where a word the translator left untranslated or mangled still shares most of its
n-grams. On TALN-CLIR (English keywords, French abstracts) 4-grams over the French text and its Apertium
translation score 0.580 nDCG@10 on dev, against 0.490 for word BM25 on the translation (docs/notes/issue12.md).
One component serves one route (its `route`, else its name). Deletes and adds go through the same snapshot writer
as BM25, with whitespace analysis on both sides.
"""
from __future__ import annotations

from typing import Any, Literal, Optional, Sequence

from pydantic import Field

from ..records import Query, Run
from ..storage.manifest import ComponentEntry, RouteEntry
from . import Batch, ComponentSpec, Kind, OpenContext, WriteContext, register
from ._lucene import LuceneSnapshotWriter, component_ids


class CharGramSpec(ComponentSpec):
    kind: Literal["chargram"] = "chargram"
    n: int = Field(4, ge=2, le=8)
    text: Literal["original", "translation", "both"] = "both"
    k1: float = 1.2         # chosen on TALN-CLIR dev (1.2/0.75 0.580; 0.9/0.4 0.570; 1.2/0.9 0.580; 1.6/0.75 0.579)
    b: float = 0.75
    route: Optional[str] = None


class CharGramWriter:
    def __init__(self, ctx: WriteContext, name: str, spec: CharGramSpec, state: dict | None):
        self.spec = spec
        # no positions or doc vectors: no phrase query or RM3 reads n-grams, and they made the index 7x larger
        self._lucene = LuceneSnapshotWriter(ctx.folder(name), ctx.generation, state, pretokenized=True,
                                            positions=False)

    def apply(self, batch: Batch) -> None:
        from ..chargrams import document_terms

        self._lucene.delete(list(batch.removed))
        ids, texts = batch.texts(self.spec.text)
        self._lucene.add([{"id": i, "contents": document_terms(t, self.spec.n)} for i, t in zip(ids, texts)])

    def compact(self) -> None:
        self._lucene.compact()

    def commit(self) -> tuple[dict, int]:
        state, live = self._lucene.commit()
        return {**state, "analyzer": f"char {self.spec.n}-grams"}, live

    def abort(self) -> None:
        self._lucene.abort()


class CharGramRetriever:
    """Queries turned into their distinct n-grams, then BM25 over the pretokenized index."""

    def __init__(self, lucene: Any, n: int, name: str):
        self.lucene, self.n, self.name = lucene, n, name

    def search(self, queries: Sequence[Query], k: int = 10) -> Run:
        from ..chargrams import query_terms

        return self.lucene.search_texts([query_terms(q.text, self.n) for q in queries],
                                        [q.query_id for q in queries], k)


def open_chargram(ctx: OpenContext, name: str, entry: ComponentEntry, query_translation: bool = False
                  ) -> CharGramRetriever:
    from ..lucene import LuceneBM25

    spec = CharGramSpec.model_validate(entry.spec)
    folder = ctx.folder(name) / entry.state["snapshot"]
    return CharGramRetriever(LuceneBM25(folder, "en", spec.k1, spec.b, pretokenized=True), spec.n, name)


def routes(name: str, spec: CharGramSpec) -> list[tuple[str, RouteEntry]]:
    on = {"original": "the original text", "translation": "the document translation",
          "both": "the original text and its translation"}[spec.text]
    return [(spec.route or name, RouteEntry(components=[name], about=f"BM25 over character {spec.n}-grams of {on}, "
                                            "query as typed"))]



KIND = register(Kind("chargram", CharGramSpec, opener=open_chargram, routes=routes, writer=CharGramWriter,
                     ids=component_ids))
