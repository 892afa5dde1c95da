"""xQG: dense passage vectors augmented with the vectors of queries generated from each passage
(Zhuang, Shou and Zuccon, SIGIR 2023; the formulas are in xsearch.qgen.augment).

Stored like a dense component (segments + tombstones), each segment also keeping, per row, the plain passage
vector, the mean generated-query vector, the query count and the queries themselves: a new alpha or formula
(`xsearch qgen reaugment`) rewrites the vectors from them through the writer, encoding nothing. Documents added by
live updates get their queries generated and are augmented like the built ones.
"""
from __future__ import annotations

from typing import Any, Literal, Optional

import numpy as np

from ..storage.manifest import ComponentEntry, RouteEntry
from . import Batch, ComponentSpec, Kind, OpenContext, WriteContext, register
from .dense import SegmentWriter, live_ids, open_dense, passage_vectors


class XQGSpec(ComponentSpec):
    kind: Literal["xqg"] = "xqg"
    encoder: str = "e5-small-st"
    query_encoder: Optional[str] = None
    index: Literal["flat", "hnsw", "ivfpq"] = "flat"
    text: Literal["original"] = "original"
    batch_size: Optional[int] = None
    generator: str = "keyphrase"
    n: int = 10
    alpha: float = 0.02
    formula: Literal["xqg", "mean"] = "xqg"
    lang: str = "en"
    translate: Optional[str] = None
    route: Optional[str] = None


def _generator(ctx: WriteContext, spec: XQGSpec) -> Any:
    from ..errors import InputError
    from ..paths import cache_dir
    from ..qgen import make_query_generator

    key = ("generator", spec.generator, spec.translate, spec.query_encoder or spec.encoder)
    if key not in ctx.memo:
        options: dict[str, Any] = {}
        if spec.generator == "keyphrase":
            options.update(encoder=ctx.models.encoder(spec.query_encoder or spec.encoder), translator=spec.translate)
        elif spec.translate:
            raise InputError(f"xqg.translate applies to the keyphrase generator, not to {spec.generator!r}")
        ctx.memo[key] = make_query_generator(spec.generator, cache_path=cache_dir() / "qgen.sqlite",
                                             show_progress=ctx.show_progress, **options)
    return ctx.memo[key]


class XQGWriter(SegmentWriter):
    extra_keys = ("plain", "qmeans", "qcounts", "queries")

    def __init__(self, ctx: WriteContext, name: str, spec: XQGSpec, state: dict | None):
        super().__init__(ctx, name, spec, state)
        self._reaugment = False

    def vectors(self, ids: list[str], texts: list[str], batch: Batch) -> tuple[np.ndarray, dict[str, Any]]:
        from ..qgen.augment import _encode_sorted, augment_vectors, query_means

        spec = self.spec
        plain = passage_vectors(self.ctx, spec.encoder, "original", ids, texts, spec.batch_size)
        langs = {d.doc_id: d.lang for d in batch.docs}
        generator = _generator(self.ctx, spec)
        queries: list[list[str]] = [[] for _ in ids]
        by_lang: dict[str, list[int]] = {}
        for i, doc_id in enumerate(ids):
            by_lang.setdefault(langs[doc_id], []).append(i)
        for lang, idx in by_lang.items():
            out = generator.generate([texts[i] for i in idx], spec.n, spec.lang, src_lang=lang,
                                     passage_vectors=plain[idx])
            for i, qs in zip(idx, out):
                queries[i] = list(qs)
        counts = np.array([len(qs) for qs in queries], np.int64)
        qvecs = _encode_sorted(self.ctx.models.encoder(spec.query_encoder or spec.encoder),
                               [q for qs in queries for q in qs])
        means = query_means(qvecs, counts.tolist())
        self.ctx.log(f"  {self.name}: {int(counts.sum())} generated queries for {len(ids)} documents")
        vectors = augment_vectors(plain, means, counts, spec.alpha, spec.formula)
        return vectors, {"plain": plain, "qmeans": means, "qcounts": counts, "queries": queries}

    def reaugment(self) -> None:
        """At commit, rewrite every live row's vector from its stored plain and query vectors (the spec's alpha
        and formula), as one segment."""
        self._reaugment = True
        self._compact = True

    def transform(self, rows: Any) -> Any:
        from ..qgen.augment import augment_vectors

        if self._reaugment and rows.ids:
            rows.vectors = augment_vectors(rows.extras["plain"], rows.extras["qmeans"], rows.extras["qcounts"],
                                           self.spec.alpha, self.spec.formula)
        return rows


def generated_queries(ctx: OpenContext, name: str, entry: ComponentEntry, doc_id: str) -> list[str] | None:
    """The queries generated for `doc_id` in this generation, None if the component holds no live row for it."""
    import json

    from .dense import load_searcher

    searcher = load_searcher(ctx, name, entry)
    tomb = searcher.tomb
    for seg in reversed(searcher.segments):
        for row in seg.rows_of(doc_id):
            if tomb.get(doc_id, -1) <= seg.gens[row]:
                key = ("queries", str(ctx.folder(name)), seg.name)
                if key not in ctx.cache:
                    path = ctx.folder(name) / f"{seg.name}.queries.json"
                    ctx.cache[key] = json.loads(path.read_text(encoding="utf-8"))
                return list(ctx.cache[key][row])
    return None


def routes(name: str, spec: XQGSpec) -> list[tuple[str, RouteEntry]]:
    return [(spec.route or name, RouteEntry(components=[name], about=(
        f"dense retrieval on passage vectors augmented with {spec.n} {spec.generator} queries each "
        f"({spec.formula}, alpha={spec.alpha:g})")))]


KIND = register(Kind("xqg", XQGSpec, opener=open_dense, routes=routes, writer=XQGWriter, ids=live_ids))
