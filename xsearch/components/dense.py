"""Dense retrieval: passages encoded by a multilingual encoder into FAISS segments (flat, HNSW or IVF-PQ), on the
original text or the document translation. Any number of dense components may exist, each with its own encoder;
queries are encoded by a compatible encoder (same family, checked at build)."""
from __future__ import annotations

from copy import deepcopy
from typing import Any, Literal, Optional, Sequence

import numpy as np

from ..storage.manifest import ComponentEntry, RouteEntry
from . import Batch, ComponentSpec, Kind, OpenContext, WriteContext, register
from ._segments import (COMPACT_RATIO, LoadedSegment, SegmentedSearcher, merge_plan, read_rows, read_tombstones,
                        write_segment, write_tombstones)

TOMBSTONE_FILES_MAX = 32


class DenseSpec(ComponentSpec):
    kind: Literal["dense"] = "dense"
    encoder: str = "e5-small-st"
    query_encoder: Optional[str] = None
    index: Literal["flat", "hnsw", "ivfpq"] = "flat"
    text: Literal["original", "translation"] = "original"
    batch_size: Optional[int] = None
    route: Optional[str] = None


def passage_vectors(ctx: WriteContext, encoder_spec: str, text: str, ids: Sequence[str], texts: Sequence[str],
                    batch_size: int | None = None) -> np.ndarray:
    """The batch's passage vectors for (encoder, text), encoded once per batch however many components use them."""
    memo = ctx.memo.setdefault(("passages", encoder_spec, text), {})
    todo = [(i, t) for i, t in zip(ids, texts) if i not in memo]
    if todo:
        encoder = ctx.models.encoder(encoder_spec)
        options = {"batch_size": batch_size} if batch_size else {}
        vecs = encoder.encode_passages([t for _, t in todo], show_progress=ctx.show_progress, **options)
        memo.update(zip([i for i, _ in todo], np.asarray(vecs, dtype=np.float32)))
    if not ids:
        return np.zeros((0, int(ctx.models.encoder(encoder_spec).dim)), np.float32)
    return np.stack([memo[i] for i in ids]).astype(np.float32)


class SegmentWriter:
    """Appends the batch as one segment and its removals as one tombstone file; merges and compacts."""

    extra_keys: tuple[str, ...] = ()

    def __init__(self, ctx: WriteContext, name: str, spec: Any, state: dict | None):
        self.ctx, self.name, self.spec = ctx, name, spec
        self.folder = ctx.folder(name)
        self.state = deepcopy(state) if state is not None else {"segments": [], "tombstones": [], "live": 0}
        self._ids: list[str] = []
        self._vectors: list[np.ndarray] = []
        self._extras: dict[str, list] = {k: [] for k in self.extra_keys}
        self._removed: list[str] = []
        self._compact = False

    def apply(self, batch: Batch) -> None:
        self._removed.extend(batch.removed)
        ids, texts = batch.texts(self.spec.text)
        if ids:
            vectors, extras = self.vectors(ids, texts, batch)
            self._ids.extend(ids)
            self._vectors.append(vectors)
            for key, value in extras.items():
                self._extras[key].append(value)

    def vectors(self, ids: list[str], texts: list[str], batch: Batch) -> tuple[np.ndarray, dict[str, Any]]:
        return passage_vectors(self.ctx, self.spec.encoder, self.spec.text, ids, texts, self.spec.batch_size), {}

    def compact(self) -> None:
        self._compact = True

    def abort(self) -> None:
        self._ids, self._vectors, self._removed = [], [], []

    def _joined_extras(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, parts in self._extras.items():
            if parts and isinstance(parts[0], np.ndarray):
                out[key] = np.concatenate(parts)
            else:
                out[key] = [v for p in parts for v in p]
        return out

    def commit(self) -> tuple[dict, int]:
        gen, state = self.ctx.generation, self.state
        if self._ids:
            state["segments"].append(write_segment(self.folder, gen, self.spec.index, self._ids,
                                                   np.concatenate(self._vectors), extras=self._joined_extras()))
            state["dim"] = int(self._vectors[0].shape[1])
            # what actually ran (backend and precision: "intfloat/multilingual-e5-small@ort-int8"), for the record
            state["encoder_name"] = self.ctx.models.encoder(self.spec.encoder).name
        if self._removed:
            state["tombstones"].append(write_tombstones(self.folder, gen, self._removed))
        state["live"] = int(state["live"]) + len(self._ids) - len(self._removed)
        rows = sum(s["rows"] for s in state["segments"])
        if self._compact or (rows - state["live"] > COMPACT_RATIO * max(rows, 1)):
            self._rewrite_all(state)
        else:
            self._merge(state)
        return state, int(state["live"])

    def _merge(self, state: dict) -> None:
        plan = merge_plan(state["segments"])
        if not plan and len(state["tombstones"]) <= TOMBSTONE_FILES_MAX:
            return
        tomb = read_tombstones(self.folder, state["tombstones"])
        while plan:
            group = plan[0]
            segs = [state["segments"][i] for i in group]
            merged = self._write_rows(read_rows(self.folder, segs, tomb, self.extra_keys))
            keep = [s for i, s in enumerate(state["segments"]) if i not in group]
            state["segments"] = keep + ([merged] if merged else [])
            plan = merge_plan(state["segments"])
        if len(state["tombstones"]) > TOMBSTONE_FILES_MAX:   # fold the files into one (the same entries)
            state["tombstones"] = [write_tombstones(self.folder, self.ctx.generation, entries=tomb.items())]

    def _write_rows(self, rows: Any) -> dict | None:
        if not rows.ids:
            return None
        return write_segment(self.folder, self.ctx.generation, self.spec.index, rows.ids, rows.vectors,
                             gens=rows.gens, extras=rows.extras)

    def _rewrite_all(self, state: dict) -> None:
        """Compaction: every live row into one segment, every tombstone dropped."""
        tomb = read_tombstones(self.folder, state["tombstones"])
        merged = self._write_rows(self.transform(read_rows(self.folder, state["segments"], tomb, self.extra_keys)))
        state["segments"] = [merged] if merged else []
        state["tombstones"] = []
        state["live"] = merged["rows"] if merged else 0

    def transform(self, rows: Any) -> Any:
        """Hook for kinds that recompute vectors on compaction (xQG: a new alpha)."""
        return rows


def load_searcher(ctx: OpenContext, name: str, entry: ComponentEntry) -> SegmentedSearcher:
    """The generation's segments (each loaded once per process and shared by generations) and tombstones."""
    from ..dense import gpu_count

    folder = ctx.folder(name)
    use_gpu = ctx.cache.setdefault("gpu", None)
    if use_gpu is None:
        use_gpu = ctx.cache["gpu"] = gpu_count() > 0
    segments = []
    for seg in entry.state.get("segments", []):
        key = ("segment", str(folder), seg["name"])
        if key not in ctx.cache:
            ctx.cache[key] = LoadedSegment(folder, seg, use_gpu)
        segments.append(ctx.cache[key])
    tomb: dict[str, int] = {}
    for name_ in entry.state.get("tombstones", []):   # write-once files: each read once per process
        key = ("tombstones", str(folder), name_)
        if key not in ctx.cache:
            ctx.cache[key] = read_tombstones(folder, [name_])
        for doc_id, gen in ctx.cache[key].items():
            if gen > tomb.get(doc_id, -1):
                tomb[doc_id] = gen
    return SegmentedSearcher(segments, tomb)


def open_dense(ctx: OpenContext, name: str, entry: ComponentEntry, query_translation: bool = False) -> Any:
    from ..retrievers import DenseRetriever

    query_spec = entry.spec.get("query_encoder") or entry.spec["encoder"]
    return DenseRetriever(load_searcher(ctx, name, entry), ctx.models.encoder(query_spec), name=name)


def live_ids(ctx: OpenContext, name: str, entry: ComponentEntry) -> set[str]:
    searcher = load_searcher(ctx, name, entry)
    out: set[str] = set()
    for seg in searcher.segments:
        dead = set(seg.dead_rows(searcher.tomb).tolist()) if searcher.tomb else set()
        out.update(d for i, d in enumerate(seg.ids.tolist()) if i not in dead)
    return out


def routes(name: str, spec: DenseSpec) -> list[tuple[str, RouteEntry]]:
    on = "the document translation" if spec.text == "translation" else "the original text"
    return [(spec.route or name, RouteEntry(components=[name], about=f"dense retrieval ({spec.encoder}, "
                                            f"{spec.index}) on {on}"))]


KIND = register(Kind("dense", DenseSpec, opener=open_dense, routes=routes, writer=SegmentWriter, ids=live_ids))
