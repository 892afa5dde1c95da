"""The manifest of one generation, as one typed model, and the files that hold the generations.

`manifest-<N>.json` (N zero-padded) describes generation N completely: which files of each component belong to
it, the doc store file, counts, routes, the recipe. A commit writes it last, atomically; the highest N present is
the index. Older manifests stay while a reader may still need their files (see writer.py, grace period).
"""
from __future__ import annotations

import json
import os
import re
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import IndexFormatError
from .files import write_atomic

FORMAT = "xsearch-index/2"
OLD_MANIFEST = "manifest.json"
_NAME = re.compile(r"^manifest-(\d{8})\.json$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ComponentEntry(_Strict):
    """One component: its kind (xsearch.components registry), its typed spec, and its state in this generation
    (the files that belong to it, written by the kind's writer)."""

    kind: str
    spec: dict[str, Any]
    state: dict[str, Any] = Field(default_factory=dict)
    docs: int = 0


class RouteEntry(_Strict):
    """A route: components searched with the query as typed or translated, or a fusion of other routes."""

    components: list[str] = Field(default_factory=list)
    query_translation: bool = False
    fuse: Optional[list[str]] = None
    method: Literal["rrf", "wsum", "max"] = "rrf"
    weights: Optional[list[float]] = None
    norm: Literal["minmax", "max", "zscore", "none"] = "minmax"   # wsum / max only
    rrf_k: Optional[int] = None                                  # rrf only; unset = SearchDefaults.rrf_k
    rrf_fill: Optional[int] = None   # the first n of the fusion, then the RRF of the same routes (fusion.fuse)
    about: str = ""


class TranslationInfo(_Strict):
    translator: str
    target_lang: str
    docs: int = 0


class Manifest(_Strict):
    format: Literal["xsearch-index/2"] = FORMAT
    generation: int
    name: str
    created: str
    committed: str
    committed_at: float
    doc_count: int
    languages: dict[str, int]
    docstore: str
    translation: Optional[TranslationInfo] = None
    components: dict[str, ComponentEntry]
    routes: dict[str, RouteEntry]
    default_route: str
    config: dict[str, Any]
    shard: dict[str, Any] = Field(default_factory=lambda: {"index": 0, "count": 1})
    timings_s: dict[str, float] = Field(default_factory=dict)
    versions: dict[str, str] = Field(default_factory=dict)
    last_commit: dict[str, Any] = Field(default_factory=dict)


def manifest_name(generation: int) -> str:
    return f"manifest-{generation:08d}.json"


def generations(folder: str | Path) -> list[int]:
    """Generations present in `folder`, ascending (a cheap directory listing: readers call it per search)."""
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return []
    return sorted(int(m[1]) for m in map(_NAME.match, names) if m)


def latest_generation(folder: str | Path) -> int:
    folder = Path(folder)
    gens = generations(folder)
    if gens:
        return gens[-1]
    if (folder / OLD_MANIFEST).exists():
        raise IndexFormatError(f"{folder} was built by an older xsearch (one manifest.json, copied on every write); "
                               f"this version writes {FORMAT} with generations: rebuild it with 'xsearch index'")
    raise IndexFormatError(f"{folder} is not an xsearch index (no manifest-*.json); build one with 'xsearch index'")


_CACHE: "OrderedDict[tuple[str, int], tuple[tuple[int, int, int], Manifest]]" = OrderedDict()
_CACHE_MAX = 256
_cache_lock = threading.Lock()


def read_manifest(folder: str | Path, generation: int | None = None) -> Manifest:
    """The manifest of a generation (default: the newest). Manifests are written once, so parsed ones are kept
    (a writer's garbage collection reads every kept generation at each commit) and shared: treat as read-only."""
    folder = Path(folder)
    gen = latest_generation(folder) if generation is None else generation
    path = folder / manifest_name(gen)
    key = (str(folder.resolve()), gen)
    try:
        st = os.stat(path)
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)   # a folder removed and built again reuses numbers
    except FileNotFoundError:
        stamp = (0, 0, 0)
    with _cache_lock:
        hit = _CACHE.get(key)
        if hit is not None and hit[0] == stamp:
            _CACHE.move_to_end(key)
            return hit[1]
    manifest = _read(path, gen)
    with _cache_lock:
        _CACHE[key] = (stamp, manifest)
        while len(_CACHE) > _CACHE_MAX:
            _CACHE.popitem(last=False)
    return manifest


def _read(path: Path, gen: int) -> Manifest:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise IndexFormatError(f"{path}: generation {gen} is gone (superseded and removed)") from None
    except json.JSONDecodeError as exc:
        raise IndexFormatError(f"{path}: not valid JSON ({exc})") from None
    if raw.get("format") != FORMAT:
        raise IndexFormatError(f"{path}: format {raw.get('format')!r}, expected {FORMAT!r}; rebuild with "
                               "'xsearch index'")
    try:
        return Manifest.model_validate(raw)
    except ValidationError as exc:
        raise IndexFormatError(f"{path}: invalid manifest:\n{exc}") from None


def write_manifest(folder: str | Path, manifest: Manifest) -> Path:
    """Publish a generation: the manifest file is written last, atomically (temp file, fsync, rename)."""
    path = Path(folder) / manifest_name(manifest.generation)
    data = json.dumps(manifest.model_dump(mode="json"), indent=1, ensure_ascii=False).encode("utf-8")
    write_atomic(path, data)
    return path
