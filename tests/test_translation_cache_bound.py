"""The query-time translation cache is bounded (least recently used dropped); index-time translations never are."""
from __future__ import annotations

from xsearch.translate.cache import CachedTranslator, TranslationCache


class Counting:
    name, model_id = "upper", "1"

    def __init__(self) -> None:
        self.seen: list[str] = []

    def translate(self, texts, src, tgt):  # noqa: ANN001, ANN201
        self.seen.extend(texts)
        return [t.upper() for t in texts]


def test_query_translations_are_bounded_and_documents_kept(tmp_path):
    path = tmp_path / "translations.sqlite"
    inner = Counting()
    docs = CachedTranslator(inner, path)                       # index time: kept forever
    queries = CachedTranslator(inner, path, query_cap=2)       # query time: at most 2 rows
    assert docs.translate([f"doc {i}" for i in range(5)], "fr", "en") == [f"DOC {i}" for i in range(5)]
    assert queries.translate(["q1"], "fr", "en") == ["Q1"] and queries.translate(["q2"], "fr", "en") == ["Q2"]
    queries.translate(["q1"], "fr", "en")                      # a hit: q1 is now the most recently used
    queries.translate(["q3"], "fr", "en")                      # over the cap: q2 (least recently used) goes
    cache = TranslationCache(path)
    assert cache.query_rows() == 2 and len(cache) == 5         # document rows untouched
    inner.seen.clear()
    assert queries.translate(["q1", "q3", "doc 0"], "fr", "en") == ["Q1", "Q3", "DOC 0"]
    assert inner.seen == []                                    # q1, q3 cached; a document's translation serves too
    queries.translate(["q2"], "fr", "en")
    assert inner.seen == ["q2"] and cache.query_rows() == 2
    for i in range(50):
        queries.translate([f"many {i}"], "fr", "en")
    assert cache.query_rows() == 2 and len(cache) == 5
    docs.translate(["doc 0", "q1"], "fr", "en")                # the index-time side never reads query rows
    assert inner.seen[-1] == "q1"
