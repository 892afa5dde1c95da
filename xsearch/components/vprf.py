"""Dense routes over an existing dense component's vectors, with no storage of their own (like rm3):

- `vprf`: vector pseudo-relevance feedback (Rocchio over the top `fb_docs` passage vectors; Li et al., "Pseudo
  Relevance Feedback with Deep Language Models and Dense Retrievers", TOIS 2023): q' = a*q + b*mean(top vectors),
  searched again;
- `dense-qt`: query translation feeding dense retrieval: queries translated into `lang` (the passages' language)
  before they are encoded (e5 is multilingual; a same-language query can match better than a cross-lingual one).

Both follow every update of the component they read (`over`), since they search its segments.
"""
from __future__ import annotations

from typing import Any, Literal, Mapping, Sequence

import numpy as np

from ..errors import IndexFormatError, InputError
from ..records import Query, Run
from ..storage.manifest import ComponentEntry, RouteEntry
from . import ComponentSpec, Kind, OpenContext, register


class VPRFSpec(ComponentSpec):
    kind: Literal["vprf"] = "vprf"
    over: str = "dense"           # the dense component (its name) whose vectors are fed back
    fb_docs: int = 3
    alpha: float = 1.0            # weight of the query vector
    beta: float = 0.5             # weight of the mean feedback vector
    route: str | None = None


class DenseQTSpec(ComponentSpec):
    kind: Literal["dense-qt"] = "dense-qt"
    over: str = "dense"
    lang: str                     # the language queries are translated into (the passages' own)
    route: str | None = None


def missing(spec: VPRFSpec | DenseQTSpec, components: Mapping[str, ComponentEntry]) -> str | None:
    """None if the dense component this route reads exists, else why not."""
    entry = components.get(spec.over)
    return None if entry is not None and entry.kind in ("dense", "xqg") else (
        f"no dense component {spec.over!r} in this index")


def _dense(ctx: OpenContext, name: str, over: str):
    from .dense import load_searcher

    entry = ctx.components.get(over)
    if entry is None or entry.kind not in ("dense", "xqg"):
        raise IndexFormatError(f"component {name!r} reads dense component {over!r}, which this index lacks "
                               f"(it has {sorted(ctx.components)})")
    query_spec = entry.spec.get("query_encoder") or entry.spec["encoder"]
    return ctx.folder(over), load_searcher(ctx, over, entry), ctx.models.encoder(query_spec)


class VectorPRFRetriever:
    def __init__(self, folder, searcher, encoder, spec: VPRFSpec, name: str):  # noqa: ANN001
        if spec.fb_docs < 1:
            raise InputError(f"vprf {name!r}: fb_docs must be >= 1, got {spec.fb_docs}")
        self.folder, self.searcher, self.encoder, self.spec, self.name = folder, searcher, encoder, spec, name
        self._vectors: dict[str, np.ndarray] = {}

    def _vector_rows(self) -> dict[str, np.ndarray]:
        """doc id -> its live stored vector (the segments' .vectors.npy, memory-mapped, read once)."""
        if not self._vectors:
            for seg in self.searcher.segments:
                vecs = np.load(self.folder / f"{seg.name}.vectors.npy", mmap_mode="r")
                dead = set(seg.dead_rows(self.searcher.tomb).tolist()) if self.searcher.tomb else set()
                for row, doc_id in enumerate(seg.ids.tolist()):
                    if row not in dead:
                        self._vectors[doc_id] = vecs[row]
        return self._vectors

    def search(self, queries: Sequence[Query], k: int = 10) -> Run:
        if not queries:
            return Run()
        qids = [q.query_id for q in queries]
        q = np.asarray(self.encoder.encode_queries([x.text for x in queries]), dtype=np.float32)
        first = self.searcher.search_vectors(q, qids, self.spec.fb_docs)
        rows = self._vector_rows()
        new = q * self.spec.alpha
        for i, qid in enumerate(qids):
            top = [rows[d] for d, _ in first.ranked(qid, self.spec.fb_docs) if d in rows]
            if top:
                new[i] += self.spec.beta * np.mean(np.asarray(top, dtype=np.float32), axis=0)
        new /= np.maximum(np.linalg.norm(new, axis=1, keepdims=True), 1e-9)
        return self.searcher.search_vectors(new, qids, k)


class TranslatedDenseRetriever:
    def __init__(self, searcher, encoder, translator, lang: str, name: str):  # noqa: ANN001
        self.searcher, self.encoder, self.translator, self.lang, self.name = searcher, encoder, translator, lang, name

    def search(self, queries: Sequence[Query], k: int = 10) -> Run:
        from ..retrievers import _translate_queries

        if not queries:
            return Run()
        texts = _translate_queries(queries, self.translator, self.lang)
        vectors = self.encoder.encode_queries(texts)
        return self.searcher.search_vectors(np.asarray(vectors, np.float32), [q.query_id for q in queries], k)


def open_vprf(ctx: OpenContext, name: str, entry: ComponentEntry, query_translation: bool = False) -> Any:
    spec = VPRFSpec.model_validate(entry.spec)
    folder, searcher, encoder = _dense(ctx, name, spec.over)
    return VectorPRFRetriever(folder, searcher, encoder, spec, name)


def open_dense_qt(ctx: OpenContext, name: str, entry: ComponentEntry, query_translation: bool = False) -> Any:
    spec = DenseQTSpec.model_validate(entry.spec)
    _folder, searcher, encoder = _dense(ctx, name, spec.over)
    return TranslatedDenseRetriever(searcher, encoder, ctx.query_translator(), spec.lang, name)


def vprf_routes(name: str, spec: VPRFSpec) -> list[tuple[str, RouteEntry]]:
    return [(spec.route or name, RouteEntry(components=[name], about=(
        f"dense with vector PRF over {spec.over} (Rocchio: {spec.alpha:g}*q + {spec.beta:g}*mean of the top "
        f"{spec.fb_docs} passage vectors)")))]


def qt_routes(name: str, spec: DenseQTSpec) -> list[tuple[str, RouteEntry]]:
    return [(spec.route or name, RouteEntry(components=[name], query_translation=True, about=(
        f"dense over {spec.over}, queries translated into {spec.lang} first")))]


VPRF = register(Kind("vprf", VPRFSpec, opener=open_vprf, routes=vprf_routes, missing=missing))
DENSE_QT = register(Kind("dense-qt", DenseQTSpec, opener=open_dense_qt, routes=qt_routes, missing=missing))
