"""FAISS inner-product indexes (flat by default; HNSW and IVF-PQ selectable), on the GPU when one is present.

Vectors are L2-normalised, so inner product is cosine. FAISS ids are int64 positions into `ids.json`; doc ids never
leave this module as ints. Flat and HNSW indexes cannot store ids, so they are wrapped in an IndexIDMap2; IVF-PQ
stores the ids in its inverted lists itself and is not wrapped: IndexIVF.remove_ids does not renumber the entries it
keeps, so an IndexIDMap2 around it maps every label after a delete to the wrong doc (or past the end of its map).
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
# IVF-PQ ranks by 48-byte codes, which on real e5 vectors put only 44% of the exact top 10 in its top 10
# (scripts/ann_recall, docs/performance.md). Its k x REFINE candidates are re-scored exactly against the plain
# vectors (vectors.npy beside the index, memory-mapped, so the RAM saving of the codes stays): recall@10 0.88 with
# nprobe 32, for ~0.07 ms more per query on 54k vectors.
IVF_REFINE = 10
IVF_NPROBE = 32
GPU_MAX_K = 2048  # FAISS GPU indexes return at most this many hits per query


def gpu_count() -> int:
    faiss = require("faiss")
    return int(faiss.get_num_gpus()) if hasattr(faiss, "get_num_gpus") else 0


def make_faiss_index(dim: int, n: int, kind: Kind = "flat", hnsw_m: int = 32, pq_m: int | None = None,
                     nlist: int | None = None, wrap_ids: bool = True):
    """An empty (untrained) index of `kind` for `n` vectors that takes ids: flat and HNSW in an IndexIDMap2, IVF-PQ
    as it is (see the module docstring). wrap_ids=False: no IndexIDMap2 (ids are the row positions)."""
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
        base.nprobe = max(1, min(nlist, IVF_NPROBE))
        return base
    else:
        raise InputError(f"unknown dense index kind {kind!r}: use flat, hnsw or ivfpq")
    return faiss.IndexIDMap2(base) if wrap_ids else base


def _divisor_near(dim: int, target: int) -> int:
    for m in sorted(range(1, dim + 1), key=lambda m: abs(m - target)):
        if dim % m == 0:
            return m
    return 1


class DenseIndex:
    """A FAISS index plus the doc ids its int64 ids stand for, and for IVF-PQ the plain vectors that re-score its
    candidates (row i = int64 id i; `refine` candidates per hit, 0 = rank by the index's own scores)."""

    def __init__(self, index, doc_ids: list[str], kind: str, plain: np.ndarray | None = None, refine: int = 0):
        self.index = index
        self.doc_ids = doc_ids
        self.kind = kind
        self.plain = plain
        self.refine = refine if plain is not None else 0
        self._on_gpu = False
        self._cpu_cache: tuple | None = None  # see _cpu_parts

    @classmethod
    def build(cls, vectors: np.ndarray, doc_ids: Sequence[str], kind: Kind = "flat", **options) -> "DenseIndex":
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or len(vectors) != len(doc_ids):
            raise InputError(f"{len(doc_ids)} doc ids for vectors of shape {vectors.shape}")
        index = make_faiss_index(vectors.shape[1], len(vectors), kind, **options)
        if kind == "ivfpq":
            _train_ivfpq(index, vectors)
        index.add_with_ids(vectors, np.arange(len(vectors), dtype=np.int64))
        if kind == "ivfpq":
            return cls(index, list(doc_ids), kind, plain=vectors, refine=IVF_REFINE)
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
        plain = None
        if kind == "ivfpq" and (folder / "vectors.npy").exists():
            plain = np.load(folder / "vectors.npy", mmap_mode="r")
            if plain.shape != (len(doc_ids), index.d):
                raise IndexFormatError(f"{folder}: vectors.npy has shape {plain.shape}, expected "
                                       f"({len(doc_ids)}, {index.d}) to match ids.json and the index")
        dense = cls(index, doc_ids, kind, plain=plain, refine=IVF_REFINE)
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
        if self._on_gpu and k > GPU_MAX_K:
            raise InputError(f"k={k}: a FAISS index on the GPU returns at most {GPU_MAX_K} hits per query")
        if self.refine > 1:
            return self._search_refined(vectors, qids, k)
        run = Run()
        if self._on_gpu:
            scores, ids = self.index.search(vectors, k)
            doc_ids = self.doc_ids
            for qid, row_s, row_i in zip(qids, scores.tolist(), ids.tolist()):
                run[qid] = {doc_ids[i]: s for s, i in zip(row_s, row_i) if i >= 0}
            return run
        sub, names = self._cpu_parts()
        scores, pos = _search_cpu(sub, vectors, k, one_thread=len(vectors) == 1)
        if (pos >= 0).all():
            for qid, row_s, row_n in zip(qids, scores.tolist(), names[pos].tolist()):
                run[qid] = dict(zip(row_n, row_s))
        else:  # fewer than k hits (HNSW, IVF with few probes): -1 marks the empty slots
            for qid, row_s, row_p in zip(qids, scores.tolist(), pos.tolist()):
                run[qid] = {names[p]: s for s, p in zip(row_s, row_p) if p >= 0}
        return run

    def _search_refined(self, vectors: np.ndarray, qids: Sequence[str], k: int) -> Run:
        """The index's top k x refine ids, re-scored exactly against the plain vectors; the best k by exact score."""
        plain, doc_ids, n = self.plain, self.doc_ids, min(self.ntotal, k * self.refine)
        assert plain is not None
        if self._on_gpu:
            _, ids = self.index.search(vectors, min(n, GPU_MAX_K))
        else:
            _, ids = _search_cpu(self.index, vectors, n, one_thread=len(vectors) == 1)
        run = Run()
        for qid, query, row in zip(qids, vectors, ids):
            rows = np.sort(row[row >= 0])  # ascending: sequential reads of a memory-mapped file
            exact = np.asarray(plain[rows], dtype=np.float32) @ query
            best = np.argsort(-exact, kind="stable")[:k]
            run[qid] = {doc_ids[i]: s for i, s in zip(rows[best].tolist(), exact[best].tolist())}
        return run

    def _cpu_parts(self) -> tuple[object, np.ndarray]:
        """(the index FAISS searches, position -> doc id): the sub-index of the IndexIDMap2 and an object array that
        folds its id map into the doc ids, rebuilt when the index, its size or the doc id list changes (O(n) once).
        Nothing changes a loaded DenseIndex in place."""
        faiss = require("faiss")
        index, ntotal, doc_ids = self.index, self.index.ntotal, self.doc_ids
        cache = self._cpu_cache
        if cache is None or cache[0] is not index or cache[1] != ntotal or cache[2] is not doc_ids \
                or cache[3] != len(doc_ids):
            ids = np.empty(len(doc_ids), dtype=object)
            ids[:] = doc_ids
            if isinstance(index, faiss.IndexIDMap):
                sub = index.index
                names = ids[faiss.rev_swig_ptr(index.id_map.data(), index.id_map.size())]
            else:
                sub, names = index, ids
            cache = self._cpu_cache = (index, ntotal, doc_ids, len(doc_ids), sub, names)
        return cache[4], cache[5]


# CPU search (docs/performance.md, section 2): two OpenMP parallel regions are avoided.
# - IndexIDMap2.search translates the k labels in an `omp parallel for`: the sub-index searches instead, and positions
#   map to doc ids through the cached array of DenseIndex._cpu_parts (identical results, less Python per hit).
# - A single query runs on one thread: FAISS searches one query on one thread for every index kind (flat scans split
#   the work by query), so the rest of the team only spins. Measured on 1M flat vectors, quiet 2-core machine: 109 ms
#   wall and 109 ms CPU on one thread, 120 ms wall and 239 ms CPU with two; on a loaded host a team also waits a
#   scheduler slice per region (12-36 ms instead of 0.05-1 ms). omp_set_num_threads sets the calling thread's own
#   setting (a per-thread OpenMP ICV), so searches running on other threads keep theirs.
def _search_cpu(index, vectors: np.ndarray, k: int, one_thread: bool, params=None) -> tuple[np.ndarray, np.ndarray]:
    extra = {"params": params} if params is not None else {}
    if not one_thread:
        return index.search(vectors, k, **extra)
    faiss = require("faiss")
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        return index.search(vectors, k, **extra)
    finally:
        faiss.omp_set_num_threads(before)


def _train_ivfpq(index, vectors: np.ndarray) -> None:
    faiss = require("faiss")
    ivf = faiss.extract_index_ivf(index)
    if len(vectors) < ivf.nlist * 39 // 10 or len(vectors) < 256:
        raise InputError(f"IVF-PQ needs more vectors to train ({len(vectors)} for nlist={ivf.nlist}); "
                         "use kind='flat' or 'hnsw' for small collections")
    ivf.train(vectors)
