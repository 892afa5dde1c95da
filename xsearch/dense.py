"""FAISS inner-product indexes (flat by default; HNSW and IVF-PQ selectable), on the GPU when one is present.

Vectors are L2-normalised, so inner product is cosine. FAISS ids are int64 positions into `ids.json`, wrapped in
an IDMap2 so the id map survives deletes and additions; doc ids never leave this module as ints.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Literal, Sequence

import numpy as np

from .errors import IndexFormatError, InputError
from .lazy import require
from .records import Run

Kind = Literal["flat", "hnsw", "ivfpq"]


def gpu_count() -> int:
    faiss = require("faiss")
    return int(faiss.get_num_gpus()) if hasattr(faiss, "get_num_gpus") else 0


def make_faiss_index(dim: int, n: int, kind: Kind = "flat", hnsw_m: int = 32, pq_m: int | None = None,
                     nlist: int | None = None):
    """An empty (untrained) index of `kind` for `n` vectors, wrapped in IndexIDMap2."""
    faiss = require("faiss")
    ip = faiss.METRIC_INNER_PRODUCT
    if kind == "flat":
        base = faiss.IndexFlatIP(dim)
    elif kind == "hnsw":
        base = faiss.IndexHNSWFlat(dim, hnsw_m, ip)
        base.hnsw.efConstruction = 80
        base.hnsw.efSearch = 128
    elif kind == "ivfpq":
        nlist = nlist or max(1, min(4096, int(4 * math.sqrt(max(n, 1)))))
        pq_m = pq_m or _divisor_near(dim, dim // 8)
        quantizer = faiss.IndexFlatIP(dim)
        base = faiss.IndexIVFPQ(quantizer, dim, nlist, pq_m, 8, ip)
        base.nprobe = max(1, min(nlist, 16))
    else:
        raise InputError(f"unknown dense index kind {kind!r}: use flat, hnsw or ivfpq")
    return faiss.IndexIDMap2(base)


def _divisor_near(dim: int, target: int) -> int:
    for m in sorted(range(1, dim + 1), key=lambda m: abs(m - target)):
        if dim % m == 0:
            return m
    return 1


class DenseIndex:
    """A FAISS index plus the doc ids its int64 ids stand for."""

    def __init__(self, index, doc_ids: list[str], kind: str):
        self.index = index
        self.doc_ids = doc_ids
        self.kind = kind
        self._on_gpu = False

    @classmethod
    def build(cls, vectors: np.ndarray, doc_ids: Sequence[str], kind: Kind = "flat", **options) -> "DenseIndex":
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or len(vectors) != len(doc_ids):
            raise InputError(f"{len(doc_ids)} doc ids for vectors of shape {vectors.shape}")
        index = make_faiss_index(vectors.shape[1], len(vectors), kind, **options)
        if kind == "ivfpq":
            _train_ivfpq(index, vectors)
        index.add_with_ids(vectors, np.arange(len(vectors), dtype=np.int64))
        return cls(index, list(doc_ids), kind)

    def save(self, folder: Path) -> None:
        faiss = require("faiss")
        folder.mkdir(parents=True, exist_ok=True)
        index = faiss.index_gpu_to_cpu(self.index) if self._on_gpu else self.index
        faiss.write_index(index, str(folder / "index.faiss"))
        (folder / "ids.json").write_text(json.dumps(self.doc_ids), encoding="utf-8")

    @classmethod
    def load(cls, folder: Path, kind: str, use_gpu: bool | None = None) -> "DenseIndex":
        faiss = require("faiss")
        if not (folder / "index.faiss").exists():
            raise IndexFormatError(f"missing {folder / 'index.faiss'}")
        index = faiss.read_index(str(folder / "index.faiss"))
        doc_ids = json.loads((folder / "ids.json").read_text(encoding="utf-8"))
        dense = cls(index, doc_ids, kind)
        if (gpu_count() > 0 if use_gpu is None else use_gpu) and kind != "hnsw":
            dense.to_gpu()
        return dense

    def to_gpu(self) -> None:
        """Move to all GPUs (flat and IVF-PQ; FAISS has no GPU HNSW, so that stays on the CPU)."""
        faiss = require("faiss")
        self.index = faiss.index_cpu_to_all_gpus(self.index)
        self._on_gpu = True

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    def search_vectors(self, vectors: np.ndarray, qids: Sequence[str], k: int) -> Run:
        if len(qids) == 0:
            return Run()
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        k = min(k, self.ntotal)
        if k <= 0:
            return Run({q: {} for q in qids})
        if self._on_gpu:
            scores, ids = self.index.search(vectors, k)
        else:
            one = len(vectors) == 1 and (self.kind != "flat" or self.ntotal <= _SMALL_FLAT)
            scores, ids = _search_cpu(self.index, vectors, k, one_thread=one)
        doc_ids = self.doc_ids
        run = Run()
        for qid, row_s, row_i in zip(qids, scores.tolist(), ids.tolist()):
            run[qid] = {doc_ids[i]: s for s, i in zip(row_s, row_i) if i >= 0}
        return run


# CPU search, measured on 2 busy cores (load 8; docs/performance.md): every OpenMP parallel region waits a scheduler
# slice (~12 ms) for its second thread, so a single query took 12-36 ms instead of 0.05-1 ms. Two regions are avoidable:
# - IndexIDMap2.search translates the k labels in an `omp parallel for`: the sub-index searches instead, and numpy maps
#   positions to ids through a view of the id map (no copy; identical results);
# - one query runs on one thread when that costs nothing: HNSW and IVF search a single query on one thread anyway, and
#   a flat scan of up to _SMALL_FLAT vectors is cheaper than waking a team. omp_set_num_threads sets the calling
#   thread's own setting (a per-thread OpenMP ICV), so searches running on other threads keep theirs.
_SMALL_FLAT = 20_000


def _search_cpu(index, vectors: np.ndarray, k: int, one_thread: bool) -> tuple[np.ndarray, np.ndarray]:
    faiss = require("faiss")
    before = faiss.omp_get_max_threads()
    if one_thread:
        faiss.omp_set_num_threads(1)
    try:
        if not isinstance(index, faiss.IndexIDMap):
            return index.search(vectors, k)
        scores, pos = index.index.search(vectors, k)
        id_map = faiss.rev_swig_ptr(index.id_map.data(), index.id_map.size())
        return scores, np.where(pos >= 0, id_map[np.maximum(pos, 0)], -1)
    finally:
        if one_thread:
            faiss.omp_set_num_threads(before)


def _train_ivfpq(index, vectors: np.ndarray) -> None:
    faiss = require("faiss")
    ivf = faiss.extract_index_ivf(index.index if hasattr(index, "index") else index)
    if len(vectors) < ivf.nlist * 39 // 10 or len(vectors) < 256:
        raise InputError(f"IVF-PQ needs more vectors to train ({len(vectors)} for nlist={ivf.nlist}); "
                         "use kind='flat' or 'hnsw' for small collections")
    ivf.train(vectors)
