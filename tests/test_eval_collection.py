"""Collections: the CLIRudit keyword-triple rule on toy articles, the oracle gap rule, TREC and parquet loaders."""
from __future__ import annotations

import itertools
import subprocess
import sys
from pathlib import Path

import pytest

from xsearch.errors import InputError
from xsearch.eval.collection import (Collection, clirudit_parquet, keyword_queries, oracle_docs, taln_collection,
                                     trec_collection, triple_query_id)
from xsearch.records import Doc


def test_triples_deduplicated_across_articles() -> None:
    queries, qrels = keyword_queries({
        "A": ["x", "y", "z", "w"],  # 4 triples
        "B": ["z", "y", "x"],       # xyz again -> same query, second relevant doc
        "C": ["a", "b"],            # fewer than 3 keywords: no query
        "D": ["x", "x", "y", "z"],  # duplicate keyword collapses: xyz again
    })
    assert len(queries) == 4
    assert sum(len(d) for d in qrels.values()) == 6
    xyz = triple_query_id(["z", "x", "y"])
    assert qrels[xyz] == {"A": 1, "B": 1, "D": 1}
    assert {q.query_id: q.text for q in queries}[xyz] == "x y z"
    assert all(q.lang == "en" for q in queries)


def test_query_ids_do_not_depend_on_article_order() -> None:
    q1, _ = keyword_queries({"A": ["b", "a", "c"], "B": ["d", "a", "b"]})
    q2, _ = keyword_queries({"B": ["d", "a", "b"], "A": ["c", "b", "a"]})
    assert {(q.query_id, q.text) for q in q1} == {(q.query_id, q.text) for q in q2}


def test_separator_is_configurable() -> None:
    queries, _ = keyword_queries({"A": ["c", "a", "b"]}, sep=", ")
    assert queries[0].text == "a, b, c"


def _toy_collection() -> Collection:
    f = {"keywords_en": []}
    docs = [Doc("full", "fr", "Titre", "Résumé", {**f, "title_en": "Title", "abstract_en": "Abstract"}),
            Doc("noti", "fr", "Titre2", "Résumé2", {**f, "title_en": "", "abstract_en": "Abstract2"}),
            Doc("noab", "fr", "Titre3", "Résumé3", {**f, "title_en": "", "abstract_en": ""}),
            Doc("tiab", "fr", "Titre4", "Résumé4", {**f, "title_en": "Title4", "abstract_en": ""})]
    return Collection("toy", docs, [], {})


class _Upper:
    name = "upper"

    def translate(self, texts: list[str], src: str, tgt: str) -> list[str]:
        assert (src, tgt) == ("fr", "en")
        return [t.upper() for t in texts]


def test_oracle_gap_rule_without_translator() -> None:
    out = {d.doc_id: d for d in oracle_docs(_toy_collection())}
    assert (out["full"].title, out["full"].text, out["full"].lang) == ("Title", "Abstract", "en")
    assert out["full"].fields["oracle_source"] == "human"
    assert (out["noti"].title, out["noti"].text) == ("", "Abstract2")
    assert out["noti"].fields["oracle_source"] == "human-abstract-only"
    assert (out["noab"].title, out["noab"].text, out["noab"].lang) == ("Titre3", "Résumé3", "fr")
    assert out["noab"].fields["oracle_source"] == "french"


def test_oracle_gap_rule_with_translator() -> None:
    out = {d.doc_id: d for d in oracle_docs(_toy_collection(), translator_fallback=_Upper())}
    assert (out["noab"].title, out["noab"].text, out["noab"].lang) == ("TITRE3", "RÉSUMÉ3", "en")
    assert out["noab"].fields["oracle_source"] == "mt:upper"
    assert (out["tiab"].title, out["tiab"].text) == ("Title4", "RÉSUMÉ4")  # the human title is kept
    assert out["full"].fields["oracle_source"] == "human"


def test_trec_collection(tmp_path: Path) -> None:
    (tmp_path / "c.jsonl").write_text('{"id": "d1", "text": "chat noir", "lang": "fr"}\n'
                                      '{"id": "d2", "text": "chien", "lang": "fr"}\n', encoding="utf-8")
    (tmp_path / "t.tsv").write_text("q1\tblack cat\nq2\tdog\n", encoding="utf-8")
    (tmp_path / "t.jsonl").write_text('{"qid": "q1", "query": "black cat"}\n', encoding="utf-8")
    (tmp_path / "q.txt").write_text("q1 0 d1 1\nq2 0 d2 2\nq2 0 d1 0\n", encoding="utf-8")
    c = trec_collection(tmp_path / "c.jsonl", tmp_path / "t.tsv", tmp_path / "q.txt")
    assert [q.text for q in c.queries] == ["black cat", "dog"]
    assert c.qrels == {"q1": {"d1": 1}, "q2": {"d2": 2, "d1": 0}}
    assert c.stats()["judgements"] == 2
    c2 = trec_collection(tmp_path / "c.jsonl", tmp_path / "t.jsonl", tmp_path / "q.txt")
    assert c2.queries[0].query_id == "q1"
    (tmp_path / "bad.txt").write_text("q1 d1 1\n", encoding="utf-8")
    with pytest.raises(InputError, match="bad.txt:1"):
        trec_collection(tmp_path / "c.jsonl", tmp_path / "t.tsv", tmp_path / "bad.txt")


def test_clirudit_parquet(tmp_path: Path) -> None:
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    for sub in ("docs", "queries", "qrels"):
        (tmp_path / sub).mkdir()
    pd.DataFrame({"docid": ["d1", "d2"], "title": ["T1", "T2"], "subtitle": ["S1", ""],
                  "abstract": ["A1", "A2"]}).to_parquet(tmp_path / "docs" / "fr.test-00000-of-00001.parquet")
    pd.DataFrame({"qid": [7, 8], "query": ["a, b, c", "d, e, f"]}).to_parquet(tmp_path / "queries" / "en.test.parquet")
    pd.DataFrame({"qid": [7, 8], "docid": ["d1", "d2"], "rel": [1, 1]}).to_parquet(
        tmp_path / "qrels" / "en_fr.test-00000-of-00001.parquet")
    c = clirudit_parquet(tmp_path)
    assert [(d.doc_id, d.title, d.text) for d in c.docs] == [("d1", "T1 : S1", "A1"), ("d2", "T2", "A2")]
    assert c.qrels == {"7": {"d1": 1}, "8": {"d2": 1}}
    pd.DataFrame({"qid": [7], "docid": ["d1"]}).to_parquet(tmp_path / "qrels" / "en_fr.test-00000-of-00001.parquet")
    with pytest.raises(InputError, match=r"relevance column.*'rel'"):
        clirudit_parquet(tmp_path)
    with pytest.raises(InputError, match="no parquet file"):
        clirudit_parquet(tmp_path, doc_lang="de")


@pytest.mark.slow
def test_taln_counts_match_the_readme() -> None:
    c = taln_collection()
    assert (len(c.docs), len(c.queries)) == (1386, 10161)
    stats = c.stats()
    assert stats["judgements"] == 10241 and stats["max_rel_per_query"] == 3
    assert sum(1 for d in c.qrels.values() if len(d) > 1) == 78
    # the rule restated independently: relevant iff the doc's English keyword set holds all three keywords
    by_kw: dict[str, set[str]] = {}
    for d in c.docs:
        for k in set(d.fields["keywords_en"]):
            by_kw.setdefault(k, set()).add(d.doc_id)
    for d in c.docs:
        for combo in itertools.combinations(sorted(set(d.fields["keywords_en"])), 3):
            assert set(c.qrels[triple_query_id(combo)]) == set.intersection(*(by_kw[k] for k in combo))
    sources = [d.fields["oracle_source"] for d in oracle_docs(c)]
    assert (sources.count("human"), sources.count("human-abstract-only"), sources.count("french")) == (542, 727, 117)


def test_import_is_light() -> None:
    code = ("import sys, xsearch.eval, xsearch.eval.transfer, xsearch.eval.plots; "
            "print([m for m in ('pandas', 'ir_measures', 'scipy', 'sklearn', 'matplotlib') if m in sys.modules])")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "[]"
