"""DenseIndex.search_vectors against plain FAISS: same ids and scores for every kind, batch size, and after deletes."""
from __future__ import annotations

import numpy as np
import pytest

faiss = pytest.importorskip("faiss")

from xsearch.dense import DenseIndex  # noqa: E402
from xsearch.errors import IndexFormatError  # noqa: E402


def _unit(rng: np.random.Generator, n: int, dim: int = 32) -> np.ndarray:
    x = rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _reference(dense: DenseIndex, queries: np.ndarray, k: int) -> list[dict[str, float]]:
    """What a FAISS user gets from the index itself (IndexIDMap2 or IVF), labels mapped to doc ids by hand; for a
    refined IVF-PQ, its k x refine candidates re-scored by hand against the plain vectors."""
    if not dense.refine:
        scores, labels = dense.index.search(queries, k)
        return [{dense.doc_ids[i]: s for s, i in zip(row_s, row_i) if i >= 0}
                for row_s, row_i in zip(scores.tolist(), labels.tolist())]
    _, labels = dense.index.search(queries, min(dense.ntotal, k * dense.refine))
    out = []
    for q, row in zip(queries, labels):
        exact = sorted(((float(dense.plain[i] @ q), int(i)) for i in row if i >= 0), key=lambda t: (-t[0], t[1]))
        out.append({dense.doc_ids[i]: s for s, i in exact[:k]})
    return out


def _assert_same(got: dict[str, float], want: dict[str, float]) -> None:
    assert list(got) == list(want)  # same ids in the same order
    assert np.allclose(list(got.values()), list(want.values()), atol=1e-5)


@pytest.mark.parametrize("kind, options", [("flat", {}), ("hnsw", {}), ("ivfpq", {"nlist": 8, "pq_m": 8})])
def test_search_vectors_equals_the_faiss_index(kind: str, options: dict) -> None:
    rng = np.random.default_rng(0)
    vectors = _unit(rng, 600)
    dense = DenseIndex.build(vectors, [f"d{i}" for i in range(600)], kind, **options)
    queries = _unit(rng, 5)
    qids = [f"q{i}" for i in range(5)]
    want = _reference(dense, queries, 10)
    batch = dense.search_vectors(queries, qids, 10)
    for i, qid in enumerate(qids):
        _assert_same(batch[qid], want[i])
        single = dense.search_vectors(queries[i:i + 1], [qid], 10)  # the one-thread path
        _assert_same(single[qid], want[i])
        assert len(single[qid]) == 10


def test_search_vectors_after_deletes_and_with_empty_slots() -> None:
    rng = np.random.default_rng(1)
    vectors = _unit(rng, 400)
    dense = DenseIndex.build(vectors, [f"d{i}" for i in range(400)], "ivfpq", nlist=8, pq_m=8)
    dense.index.remove_ids(np.arange(0, 400, 2, dtype=np.int64))  # what xsearch.update does on deletes
    dense.index.add_with_ids(vectors[:3], np.array([400, 401, 402], dtype=np.int64))
    dense.doc_ids = dense.doc_ids + ["new0", "new1", "new2"]
    dense.plain = np.concatenate([vectors, vectors[:3]])  # as xsearch.update appends to vectors.npy
    faiss.extract_index_ivf(dense.index).nprobe = 1  # few probes: fewer than k hits, -1 slots
    queries = _unit(rng, 4)
    qids = [f"q{i}" for i in range(4)]
    want = _reference(dense, queries, 150)
    got = dense.search_vectors(queries, qids, 150)
    assert any(len(w) < 150 for w in want)  # the -1 case is exercised
    for i, qid in enumerate(qids):
        _assert_same(got[qid], want[i])
        assert not any(int(d[1:]) % 2 == 0 for d in got[qid] if d.startswith("d"))  # deleted ids never come back
    hit = dense.search_vectors(vectors[:1], ["self"], 1)["self"]
    assert list(hit) == ["new0"]  # d0 was deleted; its vector came back as new0
    dense.refine = 0  # the index's own ranking: same ids and -1 handling
    want = _reference(dense, queries, 150)
    got = dense.search_vectors(queries, qids, 150)
    for i, qid in enumerate(qids):
        _assert_same(got[qid], want[i])


def test_refined_ivfpq_finds_what_the_codes_alone_miss(tmp_path) -> None:  # noqa: ANN001
    rng = np.random.default_rng(4)
    centres = _unit(rng, 20, 64)  # clustered data: the neighbours of a query are close to each other, as with e5
    vectors = centres[rng.integers(0, 20, 3000)] + 0.15 * rng.standard_normal((3000, 64)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    queries = vectors[:50] + 0.05 * rng.standard_normal((50, 64)).astype(np.float32)
    qids = [f"q{i}" for i in range(50)]
    dense = DenseIndex.build(vectors, [f"d{i}" for i in range(3000)], "ivfpq", nlist=16, pq_m=4)
    assert dense.refine == 10 and np.shares_memory(dense.plain, vectors)
    exact = DenseIndex.build(vectors, dense.doc_ids, "flat").search_vectors(queries, qids, 10)

    def recall(run) -> float:  # noqa: ANN001
        return float(np.mean([len(set(run[q]) & set(exact[q])) / 10 for q in qids]))

    refined = recall(dense.search_vectors(queries, qids, 10))
    dense.refine = 0
    codes_only = recall(dense.search_vectors(queries, qids, 10))
    print(f"recall@10 refined {refined:.3f}, codes only {codes_only:.3f}")
    assert refined >= codes_only + 0.2 and refined >= 0.9, (refined, codes_only)
    # saved and loaded: vectors.npy is memory-mapped and used the same way
    dense.refine = 10
    dense.save(tmp_path)
    np.save(tmp_path / "vectors.npy", vectors)
    loaded = DenseIndex.load(tmp_path, "ivfpq", use_gpu=False)
    assert isinstance(loaded.plain, np.memmap) and loaded.refine == 10
    assert loaded.search_vectors(queries, qids, 10) == dense.search_vectors(queries, qids, 10)
    np.save(tmp_path / "vectors.npy", vectors[:-1])
    with pytest.raises(IndexFormatError, match="vectors.npy"):
        DenseIndex.load(tmp_path, "ivfpq", use_gpu=False)
    (tmp_path / "vectors.npy").unlink()
    assert DenseIndex.load(tmp_path, "ivfpq", use_gpu=False).refine == 0  # older folders: the codes alone


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivfpq"])
def test_segments_with_tombstones_answer_like_an_index_of_the_live_rows(tmp_path, kind, monkeypatch) -> None:
    """Three segments, a third of the rows tombstoned (one id re-added in a later segment): the live rows' exact
    top 10 (flat) or nearly (HNSW, IVF-PQ re-scored), never a dead row."""
    import xsearch.components._segments as seg

    monkeypatch.setattr(seg, "SMALL_SEGMENT", 100)   # segments this small take the component's kind
    rng = np.random.default_rng(7)
    n = 12_000 if kind == "ivfpq" else 3000
    vectors = _unit(rng, n)
    ids = [f"d{i}" for i in range(n)]
    entries = [seg.write_segment(tmp_path, g + 1, kind, ids[a:b], vectors[a:b])
               for g, (a, b) in enumerate([(0, n - 1000), (n - 1000, n - 400), (n - 400, n)])]
    assert [e["index"] for e in entries] == ([kind] * 3 if kind != "ivfpq" else ["ivfpq", "flat", "flat"])
    gone = [f"d{i}" for i in range(0, n, 3)]
    tombs = [seg.write_tombstones(tmp_path, 4, gone)]
    readd = seg.write_segment(tmp_path, 5, kind, ["d0"], vectors[:1])   # d0 deleted at 4, added again at 5
    tomb = seg.read_tombstones(tmp_path, tombs)
    loaded = [seg.LoadedSegment(tmp_path, e, use_gpu=False) for e in [*entries, readd]]
    searcher = seg.SegmentedSearcher(loaded, tomb)
    live = [i for i in range(n) if i % 3] + [0]
    assert searcher.ntotal == len(live)
    queries = vectors[live[:200]]
    run = searcher.search_vectors(queries, [f"q{i}" for i in range(200)], 10)
    exact = DenseIndex.build(vectors[live], [ids[i] for i in live], "flat").search_vectors(
        queries, [f"q{i}" for i in range(200)], 10)
    dead = set(gone) - {"d0"}
    assert not {d for hits in run.values() for d in hits} & dead
    agree = np.mean([len(set(run[q]) & set(exact[q])) / 10 for q in exact])
    # flat is exact; HNSW and IVF-PQ (nprobe 32 of 438 lists, random 32-d vectors: the hard case) approximate
    assert agree == 1.0 if kind == "flat" else agree > {"hnsw": 0.8, "ivfpq": 0.6}[kind], agree
    assert all(next(iter(run[f"q{i}"])) == ids[live[i]] for i in range(200)) or kind != "flat"
    rows = seg.read_rows(tmp_path, [*entries, readd], tomb)   # what a merge keeps: the live rows, once each
    assert sorted(rows.ids) == sorted(ids[i] for i in live)


def test_merge_plan_merges_ten_segments_of_one_tier() -> None:
    from xsearch.components._segments import merge_plan

    assert merge_plan([{"rows": 5}] * 9) == []
    assert merge_plan([{"rows": 5000}] + [{"rows": 1}] * 10) == [list(range(1, 11))]


def test_a_gpu_index_refuses_more_hits_than_faiss_gpu_returns() -> None:
    from xsearch.dense import GPU_MAX_K
    from xsearch.errors import InputError

    rng = np.random.default_rng(5)
    dense = DenseIndex.build(_unit(rng, GPU_MAX_K + 10), [f"d{i}" for i in range(GPU_MAX_K + 10)], "flat")
    dense._on_gpu = True  # the check comes before any FAISS call, so a CPU index stands in for a GPU one
    with pytest.raises(InputError, match="at most 2048"):
        dense.search_vectors(_unit(rng, 1), ["q"], GPU_MAX_K + 1)


def test_gpu_segments_are_searched_one_thread_at_a_time():
    """FAISS GPU indexes are not thread-safe: LoadedSegment.gpu_lock serialises searches of an on-GPU segment (a
    stand-in index records how many searches overlap; scripts/device_check runs the real GPU)."""
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    from xsearch.components._segments import LoadedSegment, SegmentedSearcher

    class Recording:
        ntotal = 3
        inside = peak = 0
        guard = threading.Lock()

        def search(self, vectors, k):  # noqa: ANN001, ANN201
            with self.guard:
                self.inside += 1
                self.peak = max(self.peak, self.inside)
            time.sleep(0.01)
            with self.guard:
                self.inside -= 1
            return np.tile(np.array([[0.9, 0.5, 0.1]], np.float32)[:, :k], (len(vectors), 1)), \
                np.tile(np.arange(k), (len(vectors), 1))

    seg = object.__new__(LoadedSegment)
    seg.name, seg.kind, seg.index, seg.plain, seg.on_gpu = "s", "flat", Recording(), None, True
    seg.ids = np.array(["a", "b", "c"], dtype=object)
    seg.gens, seg._rows, seg.gpu_lock = np.ones(3, np.int64), None, threading.Lock()
    searcher = SegmentedSearcher([seg], {})
    with ThreadPoolExecutor(8) as pool:
        runs = list(pool.map(lambda i: searcher.search_vectors(np.ones((1, 4), np.float32), ["q"], 3), range(16)))
    assert seg.index.peak == 1
    assert all(r == {"q": {"a": pytest.approx(0.9), "b": pytest.approx(0.5), "c": pytest.approx(0.1)}} for r in runs)
