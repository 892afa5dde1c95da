"""Open an index folder and search it by any of its routes, each search on one whole generation.

An `Index` pins the newest generation: its manifest, a doc store view at that generation, and retrievers over the
generation's files. Before each search it checks (one directory listing) whether a newer generation has been
committed, by this process or any other, and if so opens it beside the current one and swaps it in; a search that
already started finishes on the generation it began with. Models (encoders, SPLADE, the query translator) are shared
by all generations of an Index, never reloaded per write.
"""
from __future__ import annotations

import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import MutableMapping
from typing import TYPE_CHECKING, Any, Iterator, Sequence

from .components import Models, OpenContext, get_kind
from .config import SearchDefaults
from .docstore import DocStore
from .errors import IndexFormatError, InputError
from .filters import Filters, as_filters, facet_counts, matches
from .records import Hit, Query, Run, as_queries
from .retrievers import FusedRetriever
from .storage.manifest import Manifest, generations, latest_generation, read_manifest

if TYPE_CHECKING:
    from .shard.index import ShardedIndex

DEFAULTS = SearchDefaults()


class GenerationCache(MutableMapping):
    """One generation's view of its Index's cache of loaded write-once files (FAISS segments, tombstones...): the
    keys it reads or adds are recorded, so that what no open generation uses is dropped once the generations
    that used it close — else every write's segment would stay loaded for the life of the process."""

    def __init__(self, shared: dict[Any, Any]):
        self.shared, self.used = shared, set()

    def __getitem__(self, key: Any) -> Any:
        value = self.shared[key]
        self.used.add(key)
        return value

    def __setitem__(self, key: Any, value: Any) -> None:
        self.used.add(key)
        self.shared[key] = value

    def __delitem__(self, key: Any) -> None:
        del self.shared[key]

    def __iter__(self) -> Iterator[Any]:
        return iter(list(self.shared))

    def __len__(self) -> int:
        return len(self.shared)


class Generation:
    """One generation, opened: its manifest, doc store view and retrievers (created on first use)."""

    def __init__(self, root: Path, manifest: Manifest, models: Models, translator: Any, cache: dict):
        self.root, self.manifest_model = root, manifest
        self.manifest: dict[str, Any] = manifest.model_dump(mode="json")
        self.generation = manifest.generation
        self.docstore = DocStore(root / manifest.docstore, manifest.generation)
        self.cache = GenerationCache(cache)
        self._ctx = OpenContext(root, manifest.components, models, translator, self.cache)
        self._retrievers: dict[str, Any] = {}
        self._lock = threading.RLock()
        self.users = 0
        self.retired = False

    def retriever(self, route: str):
        routes = self.manifest_model.routes
        if route not in routes:
            from .routes import unserved_routes

            why = unserved_routes(dict(self.manifest_model.components)).get(route)
            if why:
                raise InputError(f"route {route!r} is not served by this index: {why}; it has: {', '.join(routes)}")
            raise InputError(f"unknown route {route!r}; this index has: {', '.join(routes)}")
        with self._lock:
            if route not in self._retrievers:
                self._retrievers[route] = self._make_route(route)
            return self._retrievers[route]

    def _make_route(self, route: str):
        spec = self.manifest_model.routes[route]
        if spec.fuse:
            parts = [self.retriever(r) for r in spec.fuse]
            return FusedRetriever(parts, name=route, method=spec.method, weights=spec.weights, norm=spec.norm,
                                  depth=DEFAULTS.fusion_depth, rrf_k=spec.rrf_k or DEFAULTS.rrf_k,
                                  rrf_fill=spec.rrf_fill)
        parts = []
        for name in spec.components:
            entry = self.manifest_model.components.get(name)
            if entry is None:
                raise IndexFormatError(f"route {route!r} names component {name!r}, which the manifest lacks")
            parts.append(get_kind(entry.kind).opener(self._ctx, name, entry, spec.query_translation))
        if len(parts) == 1:
            parts[0].name = route
            return parts[0]
        # one component per document language (mixed-language corpora): merge their runs by RRF
        return FusedRetriever(parts, name=route, method="rrf", depth=DEFAULTS.fusion_depth, rrf_k=DEFAULTS.rrf_k)

    def open_routes(self) -> list[str]:
        with self._lock:
            return list(self._retrievers)

    def close(self) -> None:
        seen: set[int] = set()

        def lucenes(r: Any) -> Iterator[Any]:
            if id(r) in seen:
                return
            seen.add(id(r))
            if getattr(r, "lucene", None) is not None:
                yield r.lucene
            for part in getattr(r, "retrievers", ()) or ():
                yield from lucenes(part)

        for retriever in list(self._retrievers.values()):
            for lucene in lucenes(retriever):
                try:
                    lucene.close()
                except Exception:  # noqa: BLE001 - closing is best effort
                    pass
        self.docstore.close()


class Index:
    """A built index, always at its newest generation (`refresh()`), searched one whole generation at a time."""

    def __init__(self, path: str | Path, models: Models | None = None, *, auto_refresh: bool = True):
        self.path = Path(path).resolve()
        if not generations(self.path) and (self.path / "sharded.json").exists():
            raise IndexFormatError(f"{self.path} is a sharded index: open it with xsearch.open_index")
        latest_generation(self.path)   # clear errors for a missing, foreign or old-format folder
        self.models = models or Models()
        self.translator = None  # set by the caller (or lazily from the manifest) for query translation
        self.auto_refresh = auto_refresh
        self._cache: dict[Any, Any] = {}
        self._open_gens: set[Generation] = set()
        self._lock = threading.Lock()
        self._components: dict[str, Any] = {}   # memo for helpers (generated queries)
        self._current = self._open(read_manifest(self.path))

    def _open(self, manifest: Manifest) -> Generation:
        # late-bound, so an owner (a ShardedIndex) can give all its shards one translator
        gen = Generation(self.path, manifest, self.models, lambda: self.query_translator(), self._cache)
        self._open_gens.add(gen)
        return gen

    # ---- generations ------------------------------------------------------------------------------------
    def refresh(self) -> bool:
        """Open the newest generation if there is a newer one (routes in use are opened before the swap, so no
        search pays for them); returns whether it changed."""
        gens = generations(self.path)
        if not gens or gens[-1] <= self._current.generation:
            return False
        with self._lock:
            current = self._current
            if gens[-1] <= current.generation:
                return False
            try:
                new = self._open(read_manifest(self.path, gens[-1]))
            except IndexFormatError:
                return False   # superseded and collected meanwhile: the next refresh takes the newer one
            for route in current.open_routes():
                if route in new.manifest_model.routes:
                    new.retriever(route)
            self._current = new
            self._retire(current)
        return True

    def _retire(self, gen: Generation) -> None:
        gen.retired = True
        if gen.users == 0:
            self._close(gen)

    def _close(self, gen: Generation) -> None:
        """Close a generation no search holds, and drop the loaded files no open generation uses (lock held)."""
        gen.close()
        self._open_gens.discard(gen)
        keep = set().union(*(g.cache.used for g in self._open_gens))
        for key in [k for k in self._cache if k not in keep]:
            del self._cache[key]

    @contextmanager
    def pinned(self) -> Iterator[Generation]:
        """The newest generation, held for one search (closed once retired and no search holds it)."""
        if self.auto_refresh:
            self.refresh()
        with self._lock:
            gen = self._current
            gen.users += 1
        try:
            yield gen
        finally:
            with self._lock:
                gen.users -= 1
                if gen.retired and gen.users == 0:
                    self._close(gen)

    @property
    def generation(self) -> int:
        return self._current.generation

    @property
    def manifest(self) -> dict[str, Any]:
        return self._current.manifest

    @property
    def docstore(self) -> DocStore:
        return self._current.docstore

    @property
    def routes(self) -> list[str]:
        return list(self._current.manifest_model.routes)

    @property
    def default_route(self) -> str:
        return self._current.manifest_model.default_route

    @property
    def doc_count(self) -> int:
        return self._current.manifest_model.doc_count

    def retriever(self, route: str):
        """The retriever behind `route` in the current generation (protocol: search(queries, k) -> Run)."""
        return self._current.retriever(route)

    def encoder(self, spec: str):
        return self.models.encoder(spec)

    def query_translator(self):
        """The translator used for query translation: the caller's, else the index's DT translator, else apertium."""
        if self.translator is None:
            from .paths import cache_dir
            from .translate import make_translator

            spec = (self.manifest.get("translation") or {}).get("translator") or "apertium"
            self.translator = make_translator(spec, cache_path=cache_dir() / "translations.sqlite",
                                              query_cap=DEFAULTS.query_translation_cache_rows)
        return self.translator

    # ---- search -------------------------------------------------------------------------------------------
    @contextmanager
    def reading(self) -> Iterator["IndexView"]:
        """The newest generation as one read-only view for a whole request (search, doc store, manifest)."""
        with self.pinned() as gen:
            yield IndexView(self, gen)

    def run(self, queries, route: str | None = None, k: int = DEFAULTS.k, lang: str = DEFAULTS.query_lang,
            filters: Filters | None = None, filter_depth: int | None = None) -> Run:
        """Batch search: a Run for many queries (what evaluation uses); `filters` as in IndexView.page."""
        with self.reading() as view:
            return view.run(queries, route, k, lang, filters, filter_depth)

    def search(self, query: str, route: str | None = None, k: int = DEFAULTS.k, lang: str = DEFAULTS.query_lang,
               offset: int = 0, filters: Filters | None = None, filter_depth: int | None = None) -> list[Hit]:
        """One query -> ranked Hits with their stored documents and, for fused routes, per-route scores;
        `filters` ({"year": "2005"}) keep the candidates whose stored fields match (IndexView.page)."""
        with self.reading() as view:
            return view.search(query, route, k, lang, offset, filters, filter_depth)

    def translation(self, doc_id: str, lang: str = "en") -> tuple[str, str] | None:
        return self.docstore.translation(doc_id, lang)

    def generated_queries(self, doc_id: str, component: str | None = None) -> list[str] | None:
        """The xQG queries generated for `doc_id` (None if it has none); InputError if the index has no xQG."""
        with self.reading() as view:
            return view.generated_queries(doc_id, component)

    def close(self) -> None:
        with self._lock:
            self._retire(self._current)


@dataclass
class Page:
    """One page of a search: its hits; the candidates the route ranked, how many of them passed the filters (and
    whether more follow this page); facet counts over those that passed ({field: {value: documents}})."""

    hits: list[Hit]
    candidates: int
    matched: int
    more: bool
    facets: dict[str, dict[str, int]] = field(default_factory=dict)


class IndexView:
    """One generation of an Index, for one request: every read goes to the same generation."""

    def __init__(self, index: Index, gen: Generation):
        self.index, self.gen = index, gen
        self.path = index.path
        self.manifest = gen.manifest
        self.docstore = gen.docstore
        self.generation = gen.generation
        self.routes = list(gen.manifest_model.routes)
        self.default_route = gen.manifest_model.default_route
        self.doc_count = gen.manifest_model.doc_count
        self.query_translator = index.query_translator

    def retriever(self, route: str):
        return self.gen.retriever(route)

    def run(self, queries, route: str | None = None, k: int = DEFAULTS.k, lang: str = DEFAULTS.query_lang,
            filters: Filters | None = None, filter_depth: int | None = None) -> Run:
        """Batch search; with `filters`, each query's top `filter_depth` candidates are filtered, then cut to k."""
        retriever = self.retriever(route or self.default_route)
        qs, wanted = as_queries(queries, lang), as_filters(filters)
        if not wanted:
            return retriever.search(qs, _check_k(k))
        run = retriever.search(qs, _check_k(max(_check_k(k), filter_depth or DEFAULTS.filter_depth)))
        fields = self.docstore.fields_many(sorted({d for scores in run.values() for d in scores}), list(wanted))
        return Run({q: dict([(d, s) for d, s in run.ranked(q) if matches(fields.get(d), wanted)][:k]) for q in run})

    def search(self, query: str, route: str | None = None, k: int = DEFAULTS.k, lang: str = DEFAULTS.query_lang,
               offset: int = 0, filters: Filters | None = None, filter_depth: int | None = None) -> list[Hit]:
        """One query -> ranked Hits (see `page` for filters)."""
        return self.page(query, route, k, lang, offset, filters=filters, filter_depth=filter_depth).hits

    def page(self, query: str, route: str | None = None, k: int = DEFAULTS.k, lang: str = DEFAULTS.query_lang,
             offset: int = 0, *, filters: Filters | None = None, facets: bool | Sequence[str] = False,
             filter_depth: int | None = None) -> "Page":
        """One page of a search: hits offset+1 .. offset+k of the ranking, whole documents for those only.

        With `filters` (stored-field equality, xsearch.filters) or `facets` (True: the recipe's facet fields), the
        route ranks `filter_depth` candidates (SearchDefaults.filter_depth), the filters keep those whose fields
        pass, and the facets count the kept candidates' values: the cost is bounded whatever the filter."""
        retriever = self.retriever(route or self.default_route)
        wanted = as_filters(filters)
        names = list(self.facet_fields() if facets is True else (facets or []))
        if not isinstance(offset, int) or offset < 0 or offset + _check_k(k) > DEFAULTS.max_k:
            raise InputError(f"offset must be >= 0 and offset + k at most {DEFAULTS.max_k}, got {offset!r} + {k}")
        depth = min(DEFAULTS.max_k, offset + k + 1)   # one more than the page: whether another page follows
        if wanted or names:
            depth = min(DEFAULTS.max_k, max(filter_depth or DEFAULTS.filter_depth, depth))
        q = as_queries([Query("q", query, lang)])
        parts: dict[str, Run] = {}
        if isinstance(retriever, FusedRetriever):
            run, parts = retriever.search_with_components(q, depth)
        else:
            run = retriever.search(q, depth)
        ranked = run.ranked("q", depth)
        candidates, counts = len(ranked), {}
        if wanted or names:
            fields = self.docstore.fields_many([d for d, _ in ranked], [*wanted, *names])
            ranked = [(d, s) for d, s in ranked if matches(fields.get(d), wanted)]
            counts = facet_counts([fields[d] for d, _ in ranked if d in fields], names, DEFAULTS.facet_values)
        shown = ranked[offset:offset + k]
        docs = self.docstore.get_many([d for d, _ in shown])
        hits = [Hit(doc_id=d, score=s, rank=offset + i + 1, doc=docs.get(d),
                    route_scores={name: r["q"][d] for name, r in parts.items() if d in r.get("q", {})})
                for i, (d, s) in enumerate(shown)]
        return Page(hits=hits, candidates=candidates, matched=len(ranked), more=len(ranked) > offset + k,
                    facets={name: c for name, c in counts.items() if c})

    def facet_fields(self) -> list[str]:
        """The stored fields the recipe counts as facets (IndexConfig.facets; unset: SearchDefaults.facets)."""
        named = (self.manifest.get("config") or {}).get("facets")
        return list(DEFAULTS.facets if named is None else named)

    def translation(self, doc_id: str, lang: str = "en") -> tuple[str, str] | None:
        return self.docstore.translation(doc_id, lang)

    def generated_queries(self, doc_id: str, component: str | None = None) -> list[str] | None:
        from .components.xqg import generated_queries

        comps = {n: e for n, e in self.gen.manifest_model.components.items() if e.kind == "xqg"}
        if not comps:
            raise InputError("this index has no xQG component: build it with xqg.enabled")
        name = component or ("dense-xqg" if "dense-xqg" in comps else next(iter(comps)))
        if name not in comps:
            raise InputError(f"no xQG component {name!r}; this index has {sorted(comps)}")
        return generated_queries(self.gen._ctx, name, comps[name], doc_id)  # noqa: SLF001


def _check_k(k: int) -> int:
    if not isinstance(k, int) or k < 1 or k > DEFAULTS.max_k:
        raise InputError(f"k must be an integer between 1 and {DEFAULTS.max_k}, got {k!r}")
    return k


def open_index(path: str | Path, models: Models | None = None, *, ray: str | None = None) -> "Index | ShardedIndex":
    """The index in folder `path`: an Index, or a ShardedIndex (same interface) for a sharded build, its shards
    held in this process or, with `ray` ("local", "auto" or an address), by Ray actors on that cluster."""
    from .shard.layout import is_sharded

    if is_sharded(path):
        from .shard.index import ShardedIndex

        return ShardedIndex(path, models, ray=ray)
    if ray is not None:
        raise InputError(f"{path} is not sharded: only a sharded index (xsearch index --shards N) is served on Ray")
    return Index(path, models)


def build_index(*args: Any, **kwargs: Any) -> Path:
    from .build import build_index as _build

    return _build(*args, **kwargs)


__all__ = ["Index", "IndexView", "Page", "Generation", "open_index", "build_index"]
