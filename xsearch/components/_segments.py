"""Vectors in write-once segments, deletes as tombstones: the storage of dense and xQG components.

A commit appends one segment (the batch's vectors: FAISS index, plain vectors, doc ids, the generation of each
row) and, for replaced or deleted ids, one tombstone file (the ids and the generation that ended them). Nothing
written before is touched, so a write costs the batch. A row (id, g) is dead when a tombstone for id has a
generation > g. Searches skip dead rows (an IDSelector on the CPU; on a GPU, candidates beyond k filtered).

Merges keep the segment count small (tiered, as Lucene's TieredMergePolicy): when MERGE_FACTOR segments share
a size tier (powers of MERGE_FACTOR rows), they are rewritten as one, dead rows dropped. `compact` rewrites all
segments as one and drops every tombstone; it runs by itself when tombstones pass COMPACT_RATIO of the rows.
Small segments are always flat (exact, no training); large ones take the component's kind (HNSW, IVF-PQ).
"""
from __future__ import annotations

import json
import math
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from ..errors import IndexFormatError
from ..lazy import require
from ..records import Run
from ..storage.files import fsync_dir, fsync_file

MERGE_FACTOR = 10
COMPACT_RATIO = 0.25
SMALL_SEGMENT = 2048
IVFPQ_MIN_ROWS = 10_000  # FAISS wants 39 x 256 points to train the 8-bit PQ codebooks


# ---- writing ---------------------------------------------------------------------------------------------------
def _index_kind(kind: str, rows: int, dim: int) -> str:
    """The FAISS index a segment of `rows` rows gets: small segments flat (exact, no training)."""
    if kind == "flat" or rows < SMALL_SEGMENT:
        return "flat"
    if kind == "ivfpq" and rows < IVFPQ_MIN_ROWS:
        return "flat"
    return kind


def _build_faiss(vectors: np.ndarray, kind: str):
    from ..dense import _train_ivfpq, make_faiss_index

    index = make_faiss_index(vectors.shape[1], len(vectors), kind, wrap_ids=False)
    if kind == "ivfpq":
        _train_ivfpq(index, vectors)
    if len(vectors):
        index.add(vectors)
    return index


def _save_npy(path: Path, array: np.ndarray) -> None:
    np.save(path, array)
    fsync_file(path)


def _save_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, ensure_ascii=False), encoding="utf-8")
    fsync_file(path)


def write_segment(folder: Path, generation: int, kind: str, ids: Sequence[str], vectors: np.ndarray,
                  gens: np.ndarray | None = None, extras: dict[str, Any] | None = None) -> dict:
    """Write one segment's files (durable) and return its manifest entry. `extras`: per-row arrays (.npy) or
    lists (.json) kept beside the vectors (xQG keeps its plain passage vectors and generated queries)."""
    faiss = require("faiss")
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or len(vectors) != len(ids):
        raise IndexFormatError(f"{len(ids)} ids for vectors of shape {vectors.shape}")
    folder.mkdir(parents=True, exist_ok=True)
    name = f"s{generation:08d}-{uuid.uuid4().hex[:8]}"
    index_kind = _index_kind(kind, len(ids), vectors.shape[1])
    index = _build_faiss(vectors, index_kind)
    faiss.write_index(index, str(folder / f"{name}.faiss"))
    fsync_file(folder / f"{name}.faiss")
    _save_npy(folder / f"{name}.vectors.npy", vectors)
    _save_npy(folder / f"{name}.gens.npy", np.full(len(ids), generation, np.int64) if gens is None
              else np.asarray(gens, np.int64))
    _save_json(folder / f"{name}.ids.json", list(ids))
    for key, value in (extras or {}).items():
        if isinstance(value, np.ndarray):
            _save_npy(folder / f"{name}.{key}.npy", value)
        else:
            _save_json(folder / f"{name}.{key}.json", value)
    fsync_dir(folder)
    return {"name": name, "rows": len(ids), "index": index_kind}


def write_tombstones(folder: Path, generation: int, ids: Sequence[str] = (),
                     entries: Iterable[tuple[str, int]] | None = None) -> str:
    """One tombstone file: `ids` ended at `generation`, or (id, generation) `entries` (folding older files)."""
    name = f"t{generation:08d}-{uuid.uuid4().hex[:8]}.json"
    rows = [[i, g] for i, g in entries] if entries is not None else [[i, generation] for i in ids]
    folder.mkdir(parents=True, exist_ok=True)
    _save_json(folder / name, rows)
    fsync_dir(folder)
    return name


def read_tombstones(folder: Path, files: Sequence[str]) -> dict[str, int]:
    """doc id -> the latest generation that ended one of its versions."""
    out: dict[str, int] = {}
    for f in files:
        for doc_id, gen in json.loads((folder / f).read_text(encoding="utf-8")):
            if gen > out.get(doc_id, -1):
                out[doc_id] = gen
    return out


@dataclass
class SegmentRows:
    """The live rows of some segments, read back for a merge or a compaction."""

    ids: list[str]
    vectors: np.ndarray
    gens: np.ndarray
    extras: dict[str, Any]


def read_rows(folder: Path, segments: Sequence[dict], tomb: dict[str, int], extra_keys: Sequence[str] = ()
              ) -> SegmentRows:
    ids: list[str] = []
    vecs, gens = [], []
    extras: dict[str, list] = {k: [] for k in extra_keys}
    for seg in segments:
        name = seg["name"]
        seg_ids = json.loads((folder / f"{name}.ids.json").read_text(encoding="utf-8"))
        seg_gens = np.load(folder / f"{name}.gens.npy")
        keep = np.array([tomb.get(i, -1) <= g for i, g in zip(seg_ids, seg_gens.tolist())], dtype=bool)
        ids.extend(i for i, k in zip(seg_ids, keep) if k)
        vecs.append(np.load(folder / f"{name}.vectors.npy")[keep])
        gens.append(seg_gens[keep])
        for key in extra_keys:
            npy, js = folder / f"{name}.{key}.npy", folder / f"{name}.{key}.json"
            if npy.exists():
                extras[key].append(np.load(npy)[keep])
            else:
                values = json.loads(js.read_text(encoding="utf-8"))
                extras[key].append([v for v, k in zip(values, keep) if k])
    dim = vecs[0].shape[1] if vecs else 0
    joined: dict[str, Any] = {}
    for key, parts in extras.items():
        if parts and isinstance(parts[0], np.ndarray):
            joined[key] = np.concatenate(parts) if parts else np.zeros((0,))
        else:
            joined[key] = [v for p in parts for v in p]
    return SegmentRows(ids, np.concatenate(vecs) if vecs else np.zeros((0, dim), np.float32),
                       np.concatenate(gens) if gens else np.zeros(0, np.int64), joined)


def merge_plan(segments: Sequence[dict]) -> list[list[int]]:
    """Groups of segment positions to merge: MERGE_FACTOR segments of one size tier (the tier of a merged
    segment is higher, so merges cascade as a counter carries)."""
    tiers: dict[int, list[int]] = {}
    for i, seg in enumerate(segments):
        tiers.setdefault(int(math.log(max(seg["rows"], 1), MERGE_FACTOR)), []).append(i)
    return [group[:MERGE_FACTOR] for _tier, group in sorted(tiers.items()) if len(group) >= MERGE_FACTOR]


# ---- reading ---------------------------------------------------------------------------------------------------
class LoadedSegment:
    """One segment in memory (FAISS index, doc ids, row generations); shared by the generations that list it."""

    def __init__(self, folder: Path, entry: dict, use_gpu: bool):
        faiss = require("faiss")
        name = entry["name"]
        self.name, self.kind = name, entry["index"]
        self.index = faiss.read_index(str(folder / f"{name}.faiss"))
        ids = json.loads((folder / f"{name}.ids.json").read_text(encoding="utf-8"))
        self.ids = np.empty(len(ids), dtype=object)
        self.ids[:] = ids
        self.gens = np.load(folder / f"{name}.gens.npy")
        self.plain = np.load(folder / f"{name}.vectors.npy", mmap_mode="r") if self.kind == "ivfpq" else None
        self.on_gpu = False
        if use_gpu and self.kind != "hnsw":
            self.index = faiss.index_cpu_to_all_gpus(self.index)
            self.on_gpu = True
        # FAISS GPU indexes must not be searched from two threads at once (server threads, shard threads)
        self.gpu_lock = threading.Lock()
        self._rows: dict[str, list[int]] | None = None

    def rows_of(self, doc_id: str) -> list[int]:
        if self._rows is None:
            rows: dict[str, list[int]] = {}
            for i, d in enumerate(self.ids.tolist()):
                rows.setdefault(d, []).append(i)
            self._rows = rows
        return self._rows.get(doc_id, [])

    def dead_rows(self, tomb: dict[str, int]) -> np.ndarray:
        dead = [r for doc_id, g in tomb.items() for r in self.rows_of(doc_id) if self.gens[r] < g]
        return np.array(sorted(dead), dtype=np.int64)


def _params(seg: LoadedSegment, alive: np.ndarray):
    faiss = require("faiss")
    bitmap = np.packbits(alive, bitorder="little")
    sel = faiss.IDSelectorBitmap(len(alive), faiss.swig_ptr(bitmap))
    if seg.kind == "hnsw":
        params = faiss.SearchParametersHNSW()
        params.efSearch = int(seg.index.hnsw.efSearch)
    elif seg.kind == "ivfpq":
        params = faiss.SearchParametersIVF()
        params.nprobe = int(faiss.extract_index_ivf(seg.index).nprobe)
    else:
        params = faiss.SearchParameters()
    params.sel = sel
    return params, (bitmap, sel)  # the bitmap and selector must outlive the parameters


class SegmentedSearcher:
    """Search over a generation's segments, dead rows skipped; per query, the best k over all segments."""

    def __init__(self, segments: Sequence[LoadedSegment], tomb: dict[str, int]):
        self.segments = list(segments)
        self.tomb = tomb
        self._filters: list[Any] = []
        self.live = 0
        for seg in self.segments:
            dead = seg.dead_rows(tomb) if tomb else np.zeros(0, np.int64)
            n = int(seg.index.ntotal)
            self.live += n - len(dead)
            if len(dead) == 0:
                self._filters.append(None)
            elif seg.on_gpu:
                mask = np.ones(n, dtype=bool)
                mask[dead] = False
                self._filters.append(("mask", mask, len(dead)))
            else:
                alive = np.ones(n, dtype=bool)
                alive[dead] = False
                self._filters.append(("params", *_params(seg, alive), alive))

    @property
    def ntotal(self) -> int:
        return self.live

    def search_vectors(self, vectors: np.ndarray, qids: Sequence[str], k: int) -> Run:
        from ..dense import GPU_MAX_K, IVF_REFINE, _search_cpu

        if len(qids) == 0:
            return Run()
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        one = len(vectors) == 1
        all_scores, all_names = [], []
        for seg, filt in zip(self.segments, self._filters):
            n = int(seg.index.ntotal)
            if n == 0:
                continue
            kk = min(k, n)
            depth = min(n, kk * IVF_REFINE) if seg.plain is not None else kk
            params = None
            if filt is not None and filt[0] == "mask":
                depth = min(n, depth + filt[2], GPU_MAX_K)
            elif filt is not None:
                params = filt[1]
            if seg.on_gpu:
                with seg.gpu_lock:
                    scores, rows = seg.index.search(vectors, min(depth, GPU_MAX_K))
            elif params is not None:
                scores, rows = _search_cpu(seg.index, vectors, depth, one_thread=one, params=params)
            else:
                scores, rows = _search_cpu(seg.index, vectors, depth, one_thread=one)
            if filt is not None and filt[0] == "mask":
                rows = np.where((rows >= 0) & filt[1][np.maximum(rows, 0)], rows, -1)
            if seg.plain is not None:  # IVF-PQ: re-score the candidates exactly against the plain vectors
                scores = np.where(rows >= 0, np.einsum("qd,qkd->qk", vectors,
                                                       np.asarray(seg.plain[np.maximum(rows, 0)], np.float32)),
                                  -np.inf)
            scores = np.where(rows >= 0, scores, -np.inf).astype(np.float32)
            names = seg.ids[np.maximum(rows, 0)]
            all_scores.append(scores)
            all_names.append(names)
        run = Run()
        if not all_scores:
            return Run({q: {} for q in qids})
        scores = np.concatenate(all_scores, axis=1)
        names = np.concatenate(all_names, axis=1)
        k = min(k, scores.shape[1])
        top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        for qid, row_s, row_n in zip(qids, np.take_along_axis(scores, top, 1).tolist(),
                                     np.take_along_axis(names, top, 1).tolist()):
            run[qid] = {n: s for n, s in zip(row_n, row_s) if s != -math.inf}
        return run
