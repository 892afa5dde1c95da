import pytest

from xsearch.errors import InputError
from xsearch.fusion import fuse, normalise, rrf, wsum
from xsearch.records import Query, Run, as_queries


def test_run_ranked_breaks_ties_by_doc_id():
    run = Run({"q": {"b": 1.0, "a": 1.0, "c": 2.0}})
    assert run.ranked("q") == [("c", 2.0), ("a", 1.0), ("b", 1.0)]
    assert run.cut(1) == {"q": {"c": 2.0}}


def test_trec_roundtrip(tmp_path):
    run = Run({"q1": {"d1": 1.5, "d2": 0.5}, "q2": {"d3": 3.0}})
    for name in ("run.trec", "run.trec.gz"):
        run.write_trec(tmp_path / name)
        assert Run.read_trec(tmp_path / name) == run
    first = (tmp_path / "run.trec").read_text().splitlines()[0]
    assert first == "q1 Q0 d1 1 1.500000 xsearch"


def test_trec_bad_line_names_file_and_line(tmp_path):
    path = tmp_path / "bad.trec"
    path.write_text("q1 Q0 d1 1 1.0 x\nq1 Q0 d2 2\n")
    with pytest.raises(InputError, match=r"bad.trec:2"):
        Run.read_trec(path)


def test_rrf_hand_computed():
    a = Run({"q": {"x": 3.0, "y": 2.0}})
    b = Run({"q": {"y": 9.0, "z": 1.0}})
    fused = rrf([a, b], k=60)
    assert fused["q"]["y"] == pytest.approx(1 / 62 + 1 / 61)
    assert fused["q"]["x"] == pytest.approx(1 / 61)
    assert fused["q"]["z"] == pytest.approx(1 / 62)
    assert [d for d, _ in fused.ranked("q")] == ["y", "x", "z"]


def test_wsum_minmax_hand_computed():
    a = Run({"q": {"x": 10.0, "y": 5.0, "w": 0.0}})
    b = Run({"q": {"y": 0.9, "z": 0.1}})
    fused = wsum([a, b], weights=[1.0, 2.0])
    # a normalised: x=1, y=0.5, w=0; b normalised: y=1, z=0
    assert fused["q"] == pytest.approx({"x": 1.0, "y": 0.5 + 2.0, "w": 0.0, "z": 0.0})
    assert normalise(Run({"q": {"a": 2.0, "b": 2.0}}))["q"] == {"a": 1.0, "b": 1.0}


def test_fuse_rejects_bad_arguments():
    with pytest.raises(InputError):
        fuse([], method="rrf")
    with pytest.raises(InputError):
        fuse([Run()], method="borda")
    with pytest.raises(InputError):
        fuse([Run(), Run()], weights=[1.0])


def test_as_queries_shapes_and_empty():
    assert as_queries("chat") == [Query("q0", "chat", "en")]
    assert as_queries({"a": "x"}, lang="fr") == [Query("a", "x", "fr")]
    with pytest.raises(InputError, match="empty"):
        as_queries(["  "])


def test_query_caching_encoder_encodes_each_text_once():
    import numpy as np

    from xsearch.qcache import QueryCachingEncoder

    class Counting:
        name, dim = "count", 2
        seen: list = []

        def encode_queries(self, texts, batch_size=64):
            self.seen.extend(texts)
            return np.array([[len(t), 1.0] for t in texts], dtype=np.float32)

    inner = Counting()
    enc = QueryCachingEncoder(inner, max_entries=2)
    first = enc.encode_queries(["a", "bb", "a"])
    assert first.tolist() == [[1, 1], [2, 1], [1, 1]] and inner.seen == ["a", "bb"]
    assert enc.encode_queries(["bb"]).tolist() == [[2, 1]] and inner.seen == ["a", "bb"]
    enc.encode_queries(["ccc"])  # evicts the oldest entry ("a")
    enc.encode_queries(["a"])
    assert inner.seen == ["a", "bb", "ccc", "a"] and enc.encode_queries([]).shape == (0, 2)


def test_query_vectors_persist_across_encoders_by_name(tmp_path):
    """The evaluation's store: a second process (a new QueryCachingEncoder) reads the vectors, never re-encodes;
    another encoder name (or precision) does not see them."""
    import numpy as np

    from xsearch.qcache import QueryCachingEncoder
    from xsearch.qvstore import QueryVectorStore, encoder_key

    class Counting:
        dim = 2

        def __init__(self, name, precision=None):
            self.name, self.precision, self.seen = name, precision, []

        def encode_queries(self, texts, batch_size=64):
            self.seen.extend(texts)
            return np.array([[len(t), 1.0] for t in texts], dtype=np.float32)

    path = tmp_path / "qv.sqlite"
    first = Counting("e5")
    QueryCachingEncoder(first, store=QueryVectorStore(path)).encode_queries(["a", "bb"])
    again = Counting("e5")
    rerun = QueryCachingEncoder(again, store=QueryVectorStore(path))
    assert rerun.encode_queries(["bb", "a", "ccc"]).tolist() == [[2, 1], [1, 1], [3, 1]]
    assert again.seen == ["ccc"] and (rerun.stored_hits, rerun.encoded) == (2, 1)
    other = Counting("e5", precision="fp16")
    QueryCachingEncoder(other, store=QueryVectorStore(path)).encode_queries(["a"])
    assert other.seen == ["a"] and encoder_key(other) == "e5|fp16" and len(QueryVectorStore(path)) == 4
