"""ShardedIndex: open_index() of a sharded folder, with the interface of xsearch.index.Index.

A leaf route (components searched directly) is searched on every shard in parallel threads, each on its own
pinned generation, and the shard runs are merged by score: exact for dense (the global top-k is in the union of
the shards' top-k), per-shard statistics for BM25 and SPLADE (as Elasticsearch's query-then-fetch does by
default). A fused route fuses the merged leaf runs with the route's own method and weights, so it ranks as the
same fusion over one index would, given the same leaf runs. Models and the query translator are shared by all
shards: a query is encoded and translated once, whatever the shard count.
"""
from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from ..components import Models
from ..errors import InputError
from ..index import DEFAULTS, Index, IndexView
from ..records import Doc, Query, Run
from ..retrievers import FusedRetriever
from ..storage.manifest import RouteEntry
from .layout import SHARDED_MANIFEST, read_sharded, shard_of


def merge_runs(runs: Sequence[Run], k: int) -> Run:
    """Shard runs (disjoint documents) -> one run of each query's top k by score (ties by doc id)."""
    merged = Run()
    for run in runs:
        for qid, docs in run.items():
            merged.setdefault(qid, {}).update(docs)
    return merged.cut(k)


class ShardedRetriever:
    """A leaf route over every shard that has it: searched in parallel, merged by score."""

    def __init__(self, shards: Sequence[Any], route: str, pool: ThreadPoolExecutor):
        self.shards = [s for s in shards if route in s.routes]
        self.name, self.pool = route, pool

    def search(self, queries: Sequence[Query], k: int = 10) -> Run:
        futures = [self.pool.submit(s.retriever(self.name).search, queries, k) for s in self.shards]
        return merge_runs([f.result() for f in futures], k)


def route_tree(shards: Sequence[Any], routes: Mapping[str, Any], route: str, pool: ThreadPoolExecutor,
               memo: dict[str, Any]) -> Any:
    """The retriever of `route` over `shards` (Index or IndexView objects): fusions over merged leaves."""
    if route in memo:
        return memo[route]
    spec = routes.get(route)
    if spec is None:
        raise InputError(f"unknown route {route!r}; this index has: {', '.join(routes)}")
    if spec.fuse:
        parts = [route_tree(shards, routes, r, pool, memo) for r in spec.fuse]
        retriever: Any = FusedRetriever(parts, name=route, method=spec.method, weights=spec.weights,
                                        norm=spec.norm, depth=DEFAULTS.fusion_depth,
                                        rrf_k=spec.rrf_k or DEFAULTS.rrf_k, rrf_fill=spec.rrf_fill)
    else:
        retriever = ShardedRetriever(shards, route, pool)
    memo[route] = retriever
    return retriever


class ShardedDocStore:
    """The doc stores of the shards as one: each id is looked up in the shard its hash names."""

    def __init__(self, stores: Sequence[Any]):
        self.stores = list(stores)

    def _store(self, doc_id: str) -> Any:
        return self.stores[shard_of(doc_id, len(self.stores))]

    def _grouped(self, doc_ids: Sequence[str]) -> dict[int, list[str]]:
        groups: dict[int, list[str]] = {}
        for d in doc_ids:
            groups.setdefault(shard_of(d, len(self.stores)), []).append(d)
        return groups

    def get(self, doc_id: str) -> Doc | None:
        return self._store(doc_id).get(doc_id)

    def get_many(self, doc_ids: Sequence[str]) -> dict[str, Doc]:
        out: dict[str, Doc] = {}
        for i, ids in self._grouped(doc_ids).items():
            out.update(self.stores[i].get_many(ids))
        return out

    def fields_many(self, doc_ids: Sequence[str], names: Sequence[str] | None = None) -> dict[str, dict]:
        out: dict[str, dict] = {}
        for i, ids in self._grouped(doc_ids).items():
            out.update(self.stores[i].fields_many(ids, names))
        return out

    def languages_of(self, doc_ids: Sequence[str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for i, ids in self._grouped(doc_ids).items():
            out.update(self.stores[i].languages_of(ids))
        return out

    def translation(self, doc_id: str, lang: str) -> tuple[str, str] | None:
        return self._store(doc_id).translation(doc_id, lang)

    def translations(self, doc_ids: Sequence[str], lang: str) -> dict[str, tuple[str, str]]:
        out: dict[str, tuple[str, str]] = {}
        for i, ids in self._grouped(doc_ids).items():
            out.update(self.stores[i].translations(ids, lang))
        return out

    def ids(self) -> set[str]:
        return set().union(*(s.ids() for s in self.stores))

    def __iter__(self) -> Iterator[Doc]:
        for s in self.stores:
            yield from s

    def __len__(self) -> int:
        return sum(len(s) for s in self.stores)


def merged_manifest(top: Any, manifests: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One manifest-shaped dict for the whole collection (what the CLI and the server show)."""
    first = manifests[0]
    languages: dict[str, int] = {}
    routes: dict[str, Any] = {}
    for m in manifests:
        for lang, n in m["languages"].items():
            languages[lang] = languages.get(lang, 0) + n
        for name, r in m["routes"].items():
            routes.setdefault(name, r)
    translation = first.get("translation")
    if translation:
        translation = {**translation, "docs": sum((m.get("translation") or {}).get("docs", 0) for m in manifests)}
    return {**first, "format": top.format, "generation": sum(m["generation"] for m in manifests),
            "doc_count": sum(m["doc_count"] for m in manifests), "languages": dict(sorted(languages.items())),
            "routes": routes, "default_route": top.default_route, "translation": translation,
            "shard": {"count": top.count},
            "shards": [{"name": n, "generation": m["generation"], "doc_count": m["doc_count"]}
                       for n, m in zip(top.shards, manifests)],
            "build": top.build}


class ShardedView(IndexView):
    """Every shard pinned at its newest generation, for one request: IndexView's search, page (filters, facets),
    run and translation, over the merged route tree and the shards' doc stores."""

    def __init__(self, index: "ShardedIndex", views: Sequence[Any]):  # noqa: D107 - no IndexView.__init__
        self.index, self.views = index, list(views)
        self.path = index.path
        self.manifest = merged_manifest(index.top, [v.manifest for v in views])
        self.docstore = ShardedDocStore([v.docstore for v in views])   # type: ignore[assignment]
        self.generation = self.manifest["generation"]
        self.routes = list(self.manifest["routes"])
        self.default_route = index.top.default_route
        self.doc_count = self.manifest["doc_count"]
        self.query_translator = index.query_translator
        self._memo: dict[str, Any] = {}
        self._specs: dict[str, RouteEntry] | None = None

    def retriever(self, route: str) -> Any:
        if self._specs is None:   # parsed once per request, from the routes the merged manifest already unites
            self._specs = {n: RouteEntry.model_validate(r) for n, r in self.manifest["routes"].items()}
        return route_tree(self.views, self._specs, route, self.index.pool, self._memo)

    def generated_queries(self, doc_id: str, component: str | None = None) -> list[str] | None:
        return self.views[shard_of(doc_id, len(self.views))].generated_queries(doc_id, component)


class ShardedIndex:
    """A sharded index folder, searched as one index (the interface of xsearch.index.Index)."""

    def __init__(self, path: str | Path, models: Models | None = None, *, auto_refresh: bool = True,
                 threads: int | None = None, ray: str | None = None):
        """`ray`: hold each shard in a Ray actor on that cluster ("local", "auto" or an address) instead of in
        this process (xsearch.shard.remote)."""
        self.path = Path(path).resolve()
        self.ray = ray
        self.models = models or Models()
        self.translator = None
        self.auto_refresh = auto_refresh
        self._lock = threading.Lock()
        self.top = read_sharded(self.path)
        self.pool = ThreadPoolExecutor(max_workers=threads or min(self.top.count, 4 * (os.cpu_count() or 1)),
                                       thread_name_prefix="xsearch-shard")
        self._stamp = self._build_stamp()
        self.shards = self._open_shards()

    def _build_stamp(self) -> tuple[int, int]:
        st = (self.path / SHARDED_MANIFEST).stat()
        return st.st_ino, st.st_mtime_ns

    def _open_shards(self) -> list[Any]:
        if self.ray is not None:
            from .remote import open_remote_shards

            return open_remote_shards(self.path, self.top.shards, self.ray)
        shards = [Index(self.path / name, self.models, auto_refresh=self.auto_refresh) for name in self.top.shards]
        for s in shards:
            s.query_translator = self.query_translator   # type: ignore[method-assign]  # one translator for all
        return shards

    def query_translator(self) -> Any:
        if self.translator is None:
            from ..paths import cache_dir
            from ..translate import make_translator

            spec = (self.shards[0].manifest.get("translation") or {}).get("translator") or "apertium"
            self.translator = make_translator(spec, cache_path=cache_dir() / "translations.sqlite")
        return self.translator

    def route_specs(self, shards: Sequence[Any]) -> dict[str, RouteEntry]:
        """The routes of the collection: every route any shard has (a shard may lack a language's route)."""
        raw: dict[str, Any] = {}
        for s in shards:
            for name, spec in s.manifest["routes"].items():
                raw.setdefault(name, spec)
        return {name: RouteEntry.model_validate(spec) for name, spec in raw.items()}

    # ---- generations ------------------------------------------------------------------------------------
    def refresh(self) -> bool:
        """Every shard at its newest generation; a rebuilt folder (new sharded.json) is reopened whole."""
        try:
            stamp = self._build_stamp()
        except FileNotFoundError:
            stamp = self._stamp   # between a rebuild's renames: keep serving what is open
        if stamp != self._stamp:
            with self._lock:
                if stamp != self._stamp:
                    old, self.top = self.shards, read_sharded(self.path)
                    self.shards, self._stamp = self._open_shards(), stamp
                    for s in old:
                        s.close()
                    return True
        return any([s.refresh() for s in self.shards])

    @contextmanager
    def reading(self) -> Iterator[ShardedView]:
        if self.auto_refresh:
            self.refresh()
        with ExitStack() as stack:
            views = [stack.enter_context(s.reading()) for s in self.shards]
            yield ShardedView(self, views)

    # ---- what Index offers ----------------------------------------------------------------------------------
    @property
    def manifest(self) -> dict[str, Any]:
        return merged_manifest(self.top, [s.manifest for s in self.shards])

    @property
    def generation(self) -> int:
        return sum(s.generation for s in self.shards)

    @property
    def routes(self) -> list[str]:
        return list(self.route_specs(self.shards))

    @property
    def default_route(self) -> str:
        return self.top.default_route

    @property
    def doc_count(self) -> int:
        return sum(s.doc_count for s in self.shards)

    @property
    def docstore(self) -> ShardedDocStore:
        return ShardedDocStore([s.docstore for s in self.shards])

    def retriever(self, route: str) -> Any:
        """The retriever behind `route` over the shards' current generations."""
        return route_tree(self.shards, self.route_specs(self.shards), route, self.pool, {})

    def encoder(self, spec: str) -> Any:
        return self.models.encoder(spec)

    # the same request methods as Index: each reads one ShardedView
    run = Index.run
    search = Index.search
    translation = Index.translation
    generated_queries = Index.generated_queries

    def close(self) -> None:
        for s in self.shards:
            s.close()
        self.pool.shutdown(wait=False)
