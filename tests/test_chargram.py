"""Character n-gram BM25: the terms (hand-computed), cognate matching end to end, live writes equal a fresh build."""
from __future__ import annotations

import math

import pytest

from xsearch.build import build_index
from xsearch.chargrams import char_ngrams, document_terms, fold, query_terms
from xsearch.components import Batch
from xsearch.config import CorpusSpec, IndexConfig
from xsearch.index import open_index
from xsearch.records import Doc
from xsearch.update import apply_batch

DOCS = [Doc("syn", "fr", "Analyse syntaxique", "Un analyseur syntaxique probabiliste pour le français."),
        Doc("mt", "fr", "Traduction automatique", "La traduction automatique statistique des textes."),
        Doc("cat", "fr", "Les chats", "Le chat dort sur le canapé."),
        Doc("asr", "fr", "Reconnaissance de la parole", "Un système de reconnaissance automatique.")]


def test_terms_are_the_padded_words_n_grams():
    assert fold("Étiquetage À") == "etiquetage a"
    assert char_ngrams("Élan", 4) == ["_ela", "elan", "lan_"]
    assert char_ngrams("le chat", 4) == ["_le_", "_cha", "chat", "hat_"]      # a short word is kept whole
    assert char_ngrams("ab", 3) == ["_ab", "ab_"]
    assert document_terms("chat chat", 5) == "_chat chat_ _chat chat_"           # repeats are term frequencies
    assert query_terms("chat chat", 5) == "_chat chat_"                          # a query term counts once
    with pytest.raises(ValueError):
        char_ngrams("x", 1)


def test_both_is_the_original_then_its_translation():
    batch = Batch([DOCS[2], DOCS[3]], translations={"cat": ("The cats", "The cat sleeps.")})
    assert batch.texts("both") == (["cat", "asr"], [f"{DOCS[2].contents}\nThe cats\nThe cat sleeps.",
                                                    DOCS[3].contents])
    assert batch.texts("translation")[1] == ["The cats\nThe cat sleeps.", DOCS[3].contents]


def _config(**chargram) -> IndexConfig:  # noqa: ANN003
    return IndexConfig(name="c", corpus=CorpusSpec(path="inline"), dense={"enabled": False},
                       components=[{"kind": "chargram", "name": "c4", **chargram}])


def _lucene_length(n: int) -> int:
    """A document length as Lucene's norms keep it (SmallFloat.intToByte4 then byte4ToInt): exact below 24, then
    rounded down to 4 significant bits."""
    if n < 24:
        return n
    shift = max(0, (n - 24).bit_length() - 4)
    return (((n - 24) >> shift) << shift) + 24


def _bm25(query: str, docs: list[Doc], doc_id: str, k1: float = 1.2, b: float = 0.75) -> float:
    """Lucene's BM25 (no (k1 + 1) factor) over the 4-gram terms, by hand."""
    terms = {d.doc_id: char_ngrams(d.contents) for d in docs}
    avg = sum(len(t) for t in terms.values()) / len(terms)
    dl = _lucene_length(len(terms[doc_id]))
    score = 0.0
    for g in dict.fromkeys(char_ngrams(query)):
        df = sum(g in t for t in terms.values())
        tf = terms[doc_id].count(g)
        if tf:
            idf = math.log(1 + (len(docs) - df + 0.5) / (df + 0.5))
            score += idf * tf / (tf + k1 * (1 - b + b * dl / avg))
    return score


def test_an_english_query_finds_the_french_cognates_as_typed(tmp_path):
    path = build_index(_config(text="original"), tmp_path / "i", docs=DOCS, show_progress=False,
                       log=lambda _m: None)
    index = open_index(path)
    assert "c4" in index.routes
    assert index.manifest["components"]["c4"]["state"]["analyzer"] == "char 4-grams"
    hits = index.search("syntactic analysis", route="c4", k=4)
    assert hits[0].doc_id == "syn"
    assert index.search("automatic translation", route="c4", k=1)[0].doc_id == "mt"
    # scores are BM25 over the n-grams, to float32 precision
    assert hits[0].score == pytest.approx(_bm25("syntactic analysis", DOCS, "syn"), rel=1e-5)
    # a pasted abstract has over Lucene's default 1,024 distinct n-grams (clauses): it is searched whole
    letters = "abcdefghijklmnopqrstuvwxyz"
    long = " ".join("syntax" + letters[i // 26 % 26] + letters[i % 26] + "q" for i in range(400))
    assert len(query_terms(long).split()) > 1024
    assert index.search(long, route="c4", k=1)[0].doc_id == "syn"
    index.close()


def test_live_adds_and_deletes_answer_as_a_fresh_build(tmp_path):
    path = build_index(_config(text="original"), tmp_path / "live", docs=DOCS[:2], show_progress=False,
                       log=lambda _m: None)
    apply_batch(path, DOCS[2:], ["mt"])
    fresh = build_index(_config(text="original"), tmp_path / "fresh", docs=[DOCS[0], *DOCS[2:]],
                        show_progress=False, log=lambda _m: None)
    queries = ["syntactic analysis", "cats sleeping", "speech recognition system", "statistical translation"]
    runs = []
    for p in (path, fresh):
        index = open_index(p)
        runs.append([[(h.doc_id, round(h.score, 5)) for h in index.search(q, route="c4", k=4)] for q in queries])
        index.close()
    assert runs[0] == runs[1]
    assert all(d != "mt" for hits in runs[0] for d, _ in hits) and runs[0][1][0][0] == "cat"
