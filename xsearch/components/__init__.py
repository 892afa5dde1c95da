"""The registry of component kinds: each kind is one module with its typed spec, its writer and its opener.

A kind registers itself with `register(Kind(...))` when its module is imported. The built-in kinds are the
modules of this package (found by listing it, so a new kind is one new file); third-party kinds come from the
`xsearch.components` entry-point group (as PyTerrier resolves artifacts through entry points). Nothing here
imports a backend: kinds load Lucene, FAISS or models inside their writer and opener.

  writer(ctx, name, spec, state) -> ComponentWriter   state None = create; else append to that state
  opener(ctx, name, entry)       -> Retriever         search(queries, k) -> Run, on one generation
  routes(name, spec)             -> [(route name, RouteEntry)]   the routes this component serves
  missing(spec, components)      -> None, or what it lacks (a kind over another component: RM3 over bm25-dt in an
                                    index without translation); its routes are then not listed
"""
from __future__ import annotations

import importlib
import pkgutil
import threading
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Protocol

from pydantic import BaseModel, ConfigDict, ValidationError

from ..errors import IndexFormatError, InputError
from ..records import Doc

if TYPE_CHECKING:
    from ..storage.manifest import ComponentEntry, RouteEntry


class ComponentSpec(BaseModel):
    """Base of every kind's spec: unknown keys are refused (a recipe typo fails at load, not at search)."""

    model_config = ConfigDict(extra="forbid")
    kind: str


@dataclass
class Batch:
    """What one commit changes, as every component writer sees it.

    docs: documents added or replaced; removed: ids whose current version ends now (replaced or deleted) with
    their language; translations: doc id -> (title, text) in the index's target language."""

    docs: list[Doc]
    removed: dict[str, str] = field(default_factory=dict)
    translations: dict[str, tuple[str, str]] = field(default_factory=dict)

    def texts(self, text: str, lang: str | None = None) -> tuple[list[str], list[str]]:
        """(ids, texts) of the batch's docs for a component over `text`: "original", "translation" (falls back to
        the original where a doc has none) or "both" (the original, then its translation where it has one); only
        docs in `lang` when given."""
        ids, texts = [], []
        for d in self.docs:
            if lang is not None and d.lang != lang:
                continue
            ids.append(d.doc_id)
            if text != "original" and d.doc_id in self.translations:
                t_title, t_text = self.translations[d.doc_id]
                translated = f"{t_title}\n{t_text}".strip()
                texts.append(f"{d.contents}\n{translated}" if text == "both" else translated)
            else:
                texts.append(d.contents)
        return ids, texts


class ComponentWriter(Protocol):
    def apply(self, batch: Batch) -> None: ...
    def compact(self) -> None: ...
    def commit(self) -> tuple[dict[str, Any], int]: ...   # (new state, live documents); files durable
    def abort(self) -> None: ...


class Models:
    """Models shared by writers and readers of one process (never loaded twice, never reloaded per write)."""

    def __init__(self, dense: Callable[[str], Any] | None = None, sparse: Callable[[str], Any] | None = None):
        self._dense, self._sparse = dense, sparse
        self._cache: dict[tuple[str, str], Any] = {}
        self._loading = threading.RLock()   # threads (shards, server requests) asking at once load a model once

    def encoder(self, spec: str):
        """The dense encoder for `spec`, with a query-vector memo (xsearch.qcache)."""
        key = ("d", spec)
        if key in self._cache:
            return self._cache[key]
        with self._loading:
            return self._load_encoder(key, spec)

    def _load_encoder(self, key: tuple[str, str], spec: str):
        if key not in self._cache:
            from ..qcache import QueryCachingEncoder

            if self._dense is not None:
                enc = self._dense(spec)
            else:
                from ..encoders import make_encoder

                enc = make_encoder(spec)
            self._cache[key] = enc if isinstance(enc, QueryCachingEncoder) else QueryCachingEncoder(enc)
        return self._cache[key]

    def dense_encoders(self) -> list[Any]:
        """The dense encoders loaded so far (QueryCachingEncoder objects: their memo and counters)."""
        return [v for (kind, _), v in list(self._cache.items()) if kind == "d"]

    def sparse(self, spec: str, max_length: int = 256):
        key = ("s", f"{spec}|{max_length}")
        if key in self._cache:
            return self._cache[key]
        with self._loading:
            return self._load_sparse(key, spec, max_length)

    def _load_sparse(self, key: tuple[str, str], spec: str, max_length: int):
        if key not in self._cache:
            if self._sparse is not None:
                self._cache[key] = self._sparse(spec)
            else:
                from ..encoders import make_sparse_encoder

                self._cache[key] = make_sparse_encoder(spec, max_length=max_length)
        return self._cache[key]


@dataclass
class WriteContext:
    root: Path
    generation: int
    models: Models
    log: Callable[[str], None] = lambda _m: None
    show_progress: bool = False
    memo: dict[Any, Any] = field(default_factory=dict)   # stage outputs shared by the components of one batch

    def folder(self, name: str) -> Path:
        return self.root / "components" / name


@dataclass
class OpenContext:
    """What an opener gets: the folder, the generation's components, shared models and the query translator."""

    root: Path
    components: Mapping[str, "ComponentEntry"]
    models: Models
    query_translator: Callable[[], Any]
    cache: dict[Any, Any] = field(default_factory=dict)   # loaded write-once files, shared across generations

    def folder(self, name: str) -> Path:
        return self.root / "components" / name


@dataclass(frozen=True)
class Kind:
    name: str
    spec: type[ComponentSpec]
    opener: Callable[[OpenContext, str, "ComponentEntry"], Any]
    routes: Callable[[str, Any], list[tuple[str, "RouteEntry"]]]
    writer: Callable[[WriteContext, str, Any, dict | None], ComponentWriter] | None = None
    ids: Callable[[OpenContext, str, "ComponentEntry"], set[str]] | None = None   # for `xsearch verify`
    holds: Callable[[Any, Doc], bool] | None = None   # which docs the component indexes (default: all)
    # what a writer-less kind over another component lacks in this index (None: nothing; it serves its routes)
    missing: Callable[[Any, Mapping[str, "ComponentEntry"]], str | None] | None = None


KINDS: dict[str, Kind] = {}
_loaded = False
_load_lock = threading.RLock()


def register(kind: Kind) -> Kind:
    if kind.name in KINDS and KINDS[kind.name] is not kind:
        raise InputError(f"component kind {kind.name!r} is registered twice")
    KINDS[kind.name] = kind
    return kind


def _load() -> None:
    """Import every kind once; other threads wait until the registry is complete (searches over shards open
    their routes from several threads at once)."""
    global _loaded
    if _loaded:
        return
    with _load_lock:
        if _loaded:
            return
        for info in pkgutil.iter_modules([str(Path(__file__).parent)]):
            if not info.name.startswith("_"):
                importlib.import_module(f"{__name__}.{info.name}")
        for ep in metadata.entry_points(group="xsearch.components"):
            ep.load()
        _loaded = True


def get_kind(name: str) -> Kind:
    _load()
    if name not in KINDS:
        raise IndexFormatError(f"unknown component kind {name!r}; known kinds: {', '.join(sorted(KINDS))}")
    return KINDS[name]


def parse_spec(raw: Mapping[str, Any]) -> ComponentSpec:
    """A kind's typed spec from a recipe or manifest mapping (which must name its kind)."""
    kind = raw.get("kind")
    if not isinstance(kind, str):
        raise InputError(f"a component needs a kind, got {dict(raw)!r}")
    try:
        return get_kind(kind).spec.model_validate(dict(raw))
    except IndexFormatError as exc:
        raise InputError(str(exc)) from None
    except ValidationError as exc:
        raise InputError(f"invalid {kind!r} component:\n{exc}") from None


def holds(spec: ComponentSpec, doc: Doc) -> bool:
    kind = get_kind(spec.kind)
    return True if kind.holds is None else kind.holds(spec, doc)


__all__ = ["Batch", "ComponentSpec", "ComponentWriter", "Kind", "KINDS", "Models", "OpenContext", "WriteContext",
           "get_kind", "holds", "parse_spec", "register"]
