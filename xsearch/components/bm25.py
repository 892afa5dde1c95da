"""BM25 over Lucene, one component per document language (its analyzer), or over the document translation.

Routes: a component on the original text serves `bm25` (query as typed) and `bm25-qt` (query translated into the
component's language); one on the translation serves `bm25-dt`. Several languages' components of one route are
fused by RRF at search time (mixed-language corpora).
"""
from __future__ import annotations

from typing import Any, Literal

from ..records import Doc
from ..storage.manifest import ComponentEntry, RouteEntry
from . import Batch, ComponentSpec, Kind, OpenContext, WriteContext, register
from ._lucene import LuceneSnapshotWriter, component_ids


class BM25Spec(ComponentSpec):
    kind: Literal["bm25"] = "bm25"
    lang: str
    text: Literal["original", "translation"] = "original"
    k1: float = 0.9
    b: float = 0.4
    route: str = "bm25"


class BM25Writer:
    def __init__(self, ctx: WriteContext, name: str, spec: BM25Spec, state: dict | None):
        self.spec = spec
        self._lucene = LuceneSnapshotWriter(ctx.folder(name), ctx.generation, state, lang=spec.lang)

    def apply(self, batch: Batch) -> None:
        lang = self.spec.lang if self.spec.text == "original" else None
        self._lucene.delete([d for d, dl in batch.removed.items() if lang is None or dl == lang])
        ids, texts = batch.texts(self.spec.text, lang)
        self._lucene.add([{"id": i, "contents": t} for i, t in zip(ids, texts)])

    def compact(self) -> None:
        self._lucene.compact()

    def commit(self) -> tuple[dict, int]:
        from ..lucene import analyzer_for

        state, live = self._lucene.commit()
        return {**state, "analyzer": analyzer_for(self.spec.lang)}, live

    def abort(self) -> None:
        self._lucene.abort()


def open_bm25(ctx: OpenContext, name: str, entry: ComponentEntry, query_translation: bool = False) -> Any:
    from ..lucene import LuceneBM25
    from ..retrievers import BM25Retriever

    spec = BM25Spec.model_validate(entry.spec)
    folder = ctx.folder(name) / entry.state["snapshot"]
    translator = ctx.query_translator() if query_translation else None
    return BM25Retriever(LuceneBM25(folder, spec.lang, spec.k1, spec.b), name=name, translator=translator)


def routes(name: str, spec: BM25Spec) -> list[tuple[str, RouteEntry]]:
    if spec.text == "translation":
        return [(spec.route, RouteEntry(components=[name], about=f"BM25 on the {spec.lang} document translation"))]
    return [(spec.route, RouteEntry(components=[name], about="BM25 on the original text, query as typed")),
            (f"{spec.route}-qt", RouteEntry(components=[name], query_translation=True,
                                            about="BM25 on the original text, query translated into its language"))]



def _holds(spec: BM25Spec, doc: Doc) -> bool:
    return spec.text == "translation" or doc.lang == spec.lang


KIND = register(Kind("bm25", BM25Spec, opener=open_bm25, routes=routes, writer=BM25Writer, ids=component_ids,
                     holds=_holds))
