"""Learned sparse retrieval (SPLADE) on a Lucene impact index: passages encoded into {term: impact} at write
time, queries by the same model (translated into the component's language first when it is not the query's)."""
from __future__ import annotations

from typing import Any, Literal

from ..storage.manifest import ComponentEntry, RouteEntry
from . import Batch, ComponentSpec, Kind, OpenContext, WriteContext, register
from ._lucene import LuceneSnapshotWriter, component_ids


class ImpactSpec(ComponentSpec):
    kind: Literal["impact"] = "impact"
    encoder: str = "splade-tiny"
    text: Literal["original", "translation"] = "translation"
    lang: str = "en"
    max_length: int = 256
    route: str = "splade"


class ImpactWriter:
    def __init__(self, ctx: WriteContext, name: str, spec: ImpactSpec, state: dict | None):
        self.ctx, self.spec = ctx, spec
        self._lucene = LuceneSnapshotWriter(ctx.folder(name), ctx.generation, state, impact=True)

    def apply(self, batch: Batch) -> None:
        from tqdm.auto import tqdm

        from ..encoders.splade import quantise

        self._lucene.delete(list(batch.removed))
        ids, texts = batch.texts(self.spec.text)
        if not texts:
            return
        encoder = self.ctx.models.sparse(self.spec.encoder, self.spec.max_length)
        records = []
        bar = tqdm(total=len(texts), desc="splade", unit="doc", disable=not self.ctx.show_progress)
        for start in range(0, len(texts), 32):
            for i, vec in zip(ids[start:start + 32], encoder.encode_passages(texts[start:start + 32])):
                records.append({"id": i, "contents": "", "vector": quantise(vec)})
            bar.update(len(texts[start:start + 32]))
        bar.close()
        self._lucene.add(records)

    def compact(self) -> None:
        self._lucene.compact()

    def commit(self) -> tuple[dict, int]:
        return self._lucene.commit()

    def abort(self) -> None:
        self._lucene.abort()


def open_impact(ctx: OpenContext, name: str, entry: ComponentEntry, query_translation: bool = False) -> Any:
    from ..lucene import LuceneImpact
    from ..retrievers import ImpactRetriever

    spec = ImpactSpec.model_validate(entry.spec)
    folder = ctx.folder(name) / entry.state["snapshot"]
    return ImpactRetriever(LuceneImpact(folder), ctx.models.sparse(spec.encoder, spec.max_length), name=name,
                           translator=ctx.query_translator(), lang=spec.lang)


def routes(name: str, spec: ImpactSpec) -> list[tuple[str, RouteEntry]]:
    return [(spec.route, RouteEntry(components=[name], about=f"SPLADE ({spec.encoder}) on the {spec.text} text"))]



KIND = register(Kind("impact", ImpactSpec, opener=open_impact, routes=routes, writer=ImpactWriter,
                     ids=component_ids))
