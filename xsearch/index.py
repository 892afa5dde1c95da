"""Open an index folder by its manifest and search it by any of the routes the manifest lists."""
from __future__ import annotations

import json
import threading
from functools import cached_property
from pathlib import Path
from typing import Any

from .build import FORMAT, MANIFEST, build_index
from .config import SearchDefaults
from .docstore import DocStore
from .errors import IndexFormatError, InputError
from .records import Hit, Query, Run, as_queries
from .retrievers import BM25Retriever, DenseRetriever, FusedRetriever, ImpactRetriever

DEFAULTS = SearchDefaults()


class Index:
    """A built index: manifest, doc store, and one retriever per route, created on first use."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        manifest_path = self.path / MANIFEST
        if not manifest_path.exists():
            raise IndexFormatError(f"{self.path} is not an xsearch index (no {MANIFEST}); build one with "
                                   "'xsearch index'")
        self.manifest: dict[str, Any] = json.loads(manifest_path.read_text(encoding="utf-8"))
        if self.manifest.get("format") != FORMAT:
            raise IndexFormatError(f"{manifest_path}: format {self.manifest.get('format')!r}, expected {FORMAT!r}")
        self.docstore = DocStore(self.path / "docstore.sqlite", readonly=True)
        self._retrievers: dict[str, Any] = {}
        self._components: dict[str, Any] = {}
        self._lock = threading.RLock()
        self.translator = None  # set by the caller (or lazily from the manifest) for query translation

    # ---- routes -------------------------------------------------------------------------------------------
    @property
    def routes(self) -> list[str]:
        return list(self.manifest["routes"])

    @property
    def default_route(self) -> str:
        return self.manifest.get("default_route", self.routes[0])

    def retriever(self, route: str):
        """The retriever behind `route` (protocol: search(queries, k) -> Run)."""
        if route not in self.manifest["routes"]:
            raise InputError(f"unknown route {route!r}; this index has: {', '.join(self.routes)}")
        with self._lock:
            if route not in self._retrievers:
                self._retrievers[route] = self._make_route(route)
            return self._retrievers[route]

    def _make_route(self, route: str):
        spec = self.manifest["routes"][route]
        if "fuse" in spec:
            parts = [self.retriever(r) for r in spec["fuse"]]
            return FusedRetriever(parts, name=route, method=spec.get("method", "rrf"), weights=spec.get("weights"),
                                  depth=DEFAULTS.fusion_depth, rrf_k=DEFAULTS.rrf_k)
        translator = self.query_translator() if spec.get("query_translation") else None
        parts = [self._retriever_for(c, translator) for c in spec["components"]]
        if len(parts) == 1:
            parts[0].name = route
            return parts[0]
        # one component per document language (mixed-language corpora): merge their runs by RRF
        return FusedRetriever(parts, name=route, method="rrf", depth=DEFAULTS.fusion_depth, rrf_k=DEFAULTS.rrf_k)

    def _retriever_for(self, name: str, translator):
        comp = self.manifest["components"][name]
        folder = self.path / comp["path"]
        if comp["type"] == "bm25":
            from .lucene import LuceneBM25

            return BM25Retriever(LuceneBM25(folder, comp["lang"], comp.get("k1", 0.9), comp.get("b", 0.4)),
                                 name=name, translator=translator)
        if comp["type"] == "dense":
            from .dense import DenseIndex

            spec = comp.get("query_encoder_spec") or comp["encoder_spec"]
            return DenseRetriever(DenseIndex.load(folder, comp["kind"]), self.encoder(spec), name=name)
        if comp["type"] == "impact":
            from .encoders import make_sparse_encoder
            from .lucene import LuceneImpact

            tr = self.query_translator() if comp.get("lang") else None
            return ImpactRetriever(LuceneImpact(folder), make_sparse_encoder(comp["encoder_spec"]), name=name,
                                   translator=tr, lang=comp.get("lang", "en"))
        raise IndexFormatError(f"component {name!r} has unknown type {comp['type']!r}")

    def encoder(self, spec: str):
        with self._lock:
            key = f"encoder:{spec}"
            if key not in self._components:
                from .encoders import make_encoder
                from .qcache import QueryCachingEncoder

                self._components[key] = QueryCachingEncoder(make_encoder(spec))
            return self._components[key]

    def query_translator(self):
        """The translator used for query translation: the caller's, else the index's DT translator, else apertium."""
        with self._lock:
            if self.translator is None:
                from .paths import cache_dir
                from .translate import make_translator

                spec = (self.manifest.get("translation") or {}).get("translator") or "apertium"
                self.translator = make_translator(spec, cache_path=cache_dir() / "translations.sqlite")
            return self.translator

    # ---- search -------------------------------------------------------------------------------------------
    def run(self, queries, route: str | None = None, k: int = DEFAULTS.k, lang: str = DEFAULTS.query_lang) -> Run:
        """Batch search: a Run for many queries (what evaluation uses)."""
        return self.retriever(route or self.default_route).search(as_queries(queries, lang), _check_k(k))

    def search(self, query: str, route: str | None = None, k: int = DEFAULTS.k, lang: str = DEFAULTS.query_lang,
               offset: int = 0) -> list[Hit]:
        """One query -> ranked Hits with their stored documents and, for fused routes, per-route scores."""
        route = route or self.default_route
        q = as_queries([Query("q", query, lang)])
        retriever = self.retriever(route)
        depth = _check_k(k + offset)
        parts: dict[str, Run] = {}
        if isinstance(retriever, FusedRetriever):
            run, parts = retriever.search_with_components(q, depth)
        else:
            run = retriever.search(q, depth)
        ranked = run.ranked("q", depth)[offset:]
        docs = self.docstore.get_many([d for d, _ in ranked])
        return [Hit(doc_id=d, score=s, rank=offset + i + 1, doc=docs.get(d),
                    route_scores={name: r["q"][d] for name, r in parts.items() if d in r.get("q", {})})
                for i, (d, s) in enumerate(ranked)]

    @cached_property
    def doc_count(self) -> int:
        return int(self.manifest["doc_count"])

    def translation(self, doc_id: str, lang: str = "en") -> tuple[str, str] | None:
        return self.docstore.translation(doc_id, lang)

    def generated_queries(self, doc_id: str, component: str | None = None) -> list[str] | None:
        """The xQG queries generated for `doc_id` (None if it has none); InputError if the index has no xQG."""
        from .qgen.augment import generated_queries

        return generated_queries(self, doc_id, component)


def _check_k(k: int) -> int:
    if not isinstance(k, int) or k < 1 or k > DEFAULTS.max_k:
        raise InputError(f"k must be an integer between 1 and {DEFAULTS.max_k}, got {k!r}")
    return k


def open_index(path: str | Path) -> Index:
    return Index(path)


__all__ = ["Index", "open_index", "build_index"]
