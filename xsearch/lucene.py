"""Lucene through Pyserini/Anserini: BM25 indexes with a per-language analyzer, and impact (SPLADE) indexes.

Nothing Java leaves this module: searches return Runs of string ids and float scores.
"""
from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator, Mapping, Sequence

from .errors import BackendError, IndexFormatError, InputError
from .jvm import JNI_LOCK, LUCENE_MAX_CLAUSES, autoclass, ensure_jvm
from .records import Query, Run

# Languages with an Anserini analyzer (io.anserini.analysis.AnalyzerMap); others fall back to the whitespace-free
# default English analyzer, which the manifest records so the choice is never silent.
ANALYZER_LANGS = {"ar", "bn", "cs", "da", "de", "en", "es", "fa", "fi", "fr", "hi", "hu", "id", "it", "ja", "ko",
                  "nl", "no", "pl", "pt", "ru", "sv", "te", "th", "tr", "uk", "zh"}


def analyzer_for(lang: str) -> str:
    return lang if lang in ANALYZER_LANGS else "en"


def _threads() -> int:
    return max(1, min(os.cpu_count() or 1, 8))


BM25_INDEX_ARGS = ("-collection", "JsonCollection", "-generator", "DefaultLuceneDocumentGenerator")
POSITION_ARGS = ("-storePositions", "-storeDocvectors")


def build_bm25(records: Iterable[Mapping[str, str]], out_dir: str | Path, lang: str, pretokenized: bool = False,
               positions: bool = True) -> int:
    """Index `{"id", "contents"}` records with the analyzer of `lang` (with `pretokenized`: contents are terms
    already, split on whitespace); with `positions`, positions and doc vectors (RM3 reads them; without, TALN's character
    4-gram index is 7x smaller, built 5x and searched 1.5x faster, same hits).

    No raw copy (`-storeRaw`): the docstore holds the documents, and Anserini reads every hit's stored fields to
    get its id, so a stored raw text made each search decompress it: 1.8x slower for the same hits
    (docs/performance.md section 9)."""
    analysis = ["-pretokenized"] if pretokenized else ["-language", analyzer_for(lang)]
    return _index_collection(records, out_dir, [*BM25_INDEX_ARGS, *(POSITION_ARGS if positions else ()), *analysis])


def build_impact(records: Iterable[Mapping[str, object]], out_dir: str | Path) -> int:
    """Index `{"id", "vector": {term: int}}` records as a pretokenized impact index (SPLADE)."""
    return _index_collection(records, out_dir, ["-collection", "JsonVectorCollection",
                                                "-generator", "DefaultLuceneDocumentGenerator",
                                                "-impact", "-pretokenized"])


def _index_collection(records: Iterable[Mapping[str, object]], out_dir: str | Path, args: list[str]) -> int:
    ensure_jvm()
    out_dir = Path(out_dir)
    with tempfile.TemporaryDirectory(prefix="xsearch-lucene-in-") as tmp:
        n = 0
        with open(Path(tmp) / "docs.jsonl", "w", encoding="utf-8") as f:
            for rec in records:
                f.write(json.dumps(rec, ensure_ascii=False) + "\n")
                n += 1
        jargs = ["-input", tmp, "-index", str(out_dir), "-threads", str(_threads()), "-quiet", *args]
        with JNI_LOCK:
            autoclass("io.anserini.index.IndexCollection").main(jargs)
    if not (out_dir.exists() and any(out_dir.iterdir())):
        raise IndexFormatError(f"Anserini wrote no index into {out_dir}")
    return n


class LuceneBM25:
    """BM25 over one Lucene index (Anserini defaults k1=0.9, b=0.4), queries analysed in the index's language."""

    def __init__(self, index_dir: str | Path, lang: str, k1: float = 0.9, b: float = 0.4,
                 rm3: tuple[int, int, float] | None = None, pretokenized: bool = False):
        """rm3: (feedback terms, feedback docs, original query weight) for RM3 query expansion (Anserini's
        Rm3Reranker over the stored document vectors; its English-only term filter is on for English only).
        pretokenized: queries are terms already, split on whitespace (as the index was built)."""
        ensure_jvm()
        from pyserini.search.lucene import LuceneSearcher

        self.index_dir = str(index_dir)
        with JNI_LOCK:
            self._searcher = LuceneSearcher(self.index_dir)
            if pretokenized:
                self._searcher.set_analyzer(autoclass("org.apache.lucene.analysis.core.WhitespaceAnalyzer")())
            else:
                self._searcher.set_language(analyzer_for(lang))
            self._searcher.set_bm25(k1, b)
            if rm3 is not None:
                fb_terms, fb_docs, weight = rm3
                self._searcher.object.set_rm3(None, int(fb_terms), int(fb_docs), float(weight), False,
                                              analyzer_for(lang) == "en")
        self.lang = lang

    def search_texts(self, texts: Sequence[str], qids: Sequence[str], k: int) -> Run:
        if not texts:
            return Run()
        with JNI_LOCK, java_errors("BM25 search", texts):
            hits = self._searcher.batch_search(list(texts), list(qids), k=k, threads=_threads())
            return _to_run(hits, qids)

    def num_docs(self) -> int:
        with JNI_LOCK:
            return int(self._searcher.num_docs)

    def close(self) -> None:
        with JNI_LOCK:
            self._searcher.close()
            # Pyserini's LuceneSearcher opens a second reader (index_reader) that its close() leaves open: its
            # files stay mapped after they are deleted (a server that follows live updates grew ~5 MB a write)
            self._searcher.index_reader.reader.close()


class LuceneImpact:
    """Impact search with queries already encoded as {term: weight} (SPLADE), scored by Lucene's sum of impacts."""

    def __init__(self, index_dir: str | Path):
        ensure_jvm()
        self.index_dir = str(index_dir)
        with JNI_LOCK:
            self._searcher = _impact_searcher_class()(self.index_dir, query_encoder=_PassThrough())

    def search_vectors(self, vectors: Sequence[Mapping[str, float]], qids: Sequence[str], k: int) -> Run:
        if not vectors:
            return Run()
        with JNI_LOCK, java_errors("impact search", [" ".join(v) for v in vectors]):
            hits = self._searcher.batch_search([dict(v) for v in vectors], list(qids), k=k, threads=_threads())
            return _to_run(hits, qids)

    def close(self) -> None:
        with JNI_LOCK:
            self._searcher.close()


def _impact_searcher_class():  # noqa: ANN202
    """Pyserini's LuceneImpactSearcher whose idf table is read through a reader that is closed afterwards
    (Pyserini's own `_compute_idf` leaves it open, its files mapped for the life of the JVM)."""
    from pyserini.index.lucene import LuceneIndexReader
    from pyserini.search.lucene import LuceneImpactSearcher

    class ClosingImpactSearcher(LuceneImpactSearcher):
        @staticmethod
        def _compute_idf(index_path: str) -> dict[str, float]:
            import numpy as np

            index_reader = LuceneIndexReader(index_path)
            try:
                tokens, dfs = [], []
                for term in index_reader.terms():
                    dfs.append(term.df)
                    tokens.append(term.term)
                idfs = np.log(index_reader.stats()["documents"] / np.array(dfs))
                return dict(zip(tokens, idfs))
            finally:
                index_reader.reader.close()

    return ClosingImpactSearcher


class _PassThrough:
    """A pyserini query encoder that returns a query already encoded as {term: weight}."""

    def encode(self, query, **_kwargs):  # noqa: ANN001, ANN201
        return query


MAX_CLAUSES = LUCENE_MAX_CLAUSES  # IndexSearcher.getMaxClauseCount(), set at JVM start: one clause per query term


def _shown(texts: Sequence[str]) -> str:
    first = texts[0] if len(texts[0]) <= 80 else texts[0][:80] + "…"
    return repr(first) + (f" and {len(texts) - 1} more" if len(texts) > 1 else "")


@contextmanager
def java_errors(what: str, texts: Sequence[str]) -> Iterator[None]:
    """Nothing Java leaves this module: a Java exception becomes an InputError (a query over Lucene's clause limit:
    Anserini's batch search then fails with no useful message) or a BackendError naming the queries."""
    try:
        yield
    except Exception as exc:
        if type(exc).__module__.partition(".")[0] != "jnius":
            raise
        long = [t for t in texts if len(t.split()) > MAX_CLAUSES]
        if long:
            raise InputError(f"query {_shown(long)} has {len(long[0].split())} terms; Lucene takes at most "
                             f"{MAX_CLAUSES}") from None
        java = str(getattr(exc, "classname", "") or "java").rpartition(".")[2]
        reason = (str(getattr(exc, "innermessage", None) or "no message").splitlines() or ["no message"])[0][:200]
        raise BackendError(f"{what} for {_shown(texts)} failed in Lucene ({java}: {reason})") from None


def _to_run(hits: Mapping[str, Sequence[object]], qids: Sequence[str]) -> Run:
    run = Run()
    for qid in qids:
        run[qid] = {h.docid: float(h.score) for h in hits.get(qid, [])}
    return run


__all__ = ["build_bm25", "build_impact", "LuceneBM25", "LuceneImpact", "analyzer_for", "Query"]
