"""Change an existing Lucene index in place: delete by the "id" term, add with Anserini's own document generator.

Used by the storage writer (xsearch.components._lucene) in a hard-link snapshot of the component. Documents are built by the same Anserini
classes `IndexCollection` uses (JsonCollection / JsonVectorCollection documents, DefaultLuceneDocumentGenerator
with positions and doc vectors, no raw copy), analysed by the same analyzer, so an updated index answers exactly
like one rebuilt from scratch over the same documents (tests/test_server_update.py checks scores are equal).
Deleted documents are merged away before the commit (forceMergeDeletes), so BM25 statistics hold no ghosts.
Nothing Java leaves this module. Every call into the JVM holds xsearch.jvm.JNI_LOCK (pyjnius is not safe for
concurrent calls, and a server searches while it updates), one document or one step at a time, so searches are
held back for milliseconds, not for a whole batch.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Mapping

from .errors import IndexFormatError
from .jvm import JNI_LOCK
from .jvm import autoclass, ensure_jvm
from .lucene import ANALYZER_LANGS, analyzer_for


def _analyzer(lang: str | None, pretokenized: bool):
    """The analyzer IndexCollection picks: whitespace for pretokenized indexes (impact, character n-grams),
    AnalyzerMap's for the languages it knows, else Anserini's default English analyzer (Porter, stopwords removed)."""
    if pretokenized:
        return autoclass("org.apache.lucene.analysis.core.WhitespaceAnalyzer")()
    code = analyzer_for(lang or "en")
    amap = autoclass("io.anserini.analysis.AnalyzerMap")
    if code != "en" and code in ANALYZER_LANGS and amap.analyzerMap.containsKey(code):
        return amap.getLanguageSpecificAnalyzer(code)
    return autoclass("io.anserini.analysis.DefaultEnglishAnalyzer").fromArguments("porter", False, None)


class LuceneWriter:
    """An IndexWriter opened in APPEND mode on `folder`. Use as a context manager: commit on success, rollback
    (nothing written) on error.

    BM25 records are `{"id", "contents"}`; impact records `{"id", "vector": {term: int}}` (impact=True).
    """

    def __init__(self, folder: str | Path, lang: str | None = None, *, impact: bool = False,
                 pretokenized: bool = False, positions: bool = True):
        ensure_jvm()
        self.folder = Path(folder)
        if not (self.folder.is_dir() and any(self.folder.glob("segments_*"))):
            raise IndexFormatError(f"{self.folder} is not a Lucene index (no segments file)")
        self.impact = impact
        self.added = 0
        self.skipped: list[str] = []
        with JNI_LOCK:
            self._open_writer(lang, impact, pretokenized or impact, positions)
        self._open = True

    def _open_writer(self, lang: str | None, impact: bool, pretokenized: bool, positions: bool) -> None:
        args = autoclass("io.anserini.index.IndexCollection$Args")()
        if impact:
            args.impact = True
            args.pretokenized = True
            args.collectionClass = "JsonVectorCollection"
        else:
            args.storePositions = positions
            args.storeDocvectors = positions
            args.storeRaw = False       # as lucene.build_bm25: the docstore holds the text
            args.pretokenized = pretokenized
            args.language = analyzer_for(lang or "en")
        self._generator = autoclass("io.anserini.index.generator.DefaultLuceneDocumentGenerator")(args)
        self._term = autoclass("org.apache.lucene.index.Term")
        self._empty = autoclass("java.util.ArrayList")()
        if impact:
            self._vector_doc = autoclass("io.anserini.collection.JsonVectorCollection$Document")
            self._mapper = autoclass("com.fasterxml.jackson.databind.ObjectMapper")()
        else:
            self._json_doc = autoclass("io.anserini.collection.JsonCollection$Document")

        config = autoclass("org.apache.lucene.index.IndexWriterConfig")(_analyzer(lang, pretokenized))
        config.setOpenMode(autoclass("org.apache.lucene.index.IndexWriterConfig$OpenMode").APPEND)
        if impact:
            config.setSimilarity(autoclass("io.anserini.search.similarity.ImpactSimilarity")())
        else:
            config.setSimilarity(autoclass("org.apache.lucene.search.similarities.BM25Similarity")())
        config.setUseCompoundFile(False)
        path = autoclass("java.io.File")(str(self.folder)).toPath()
        self._dir = autoclass("org.apache.lucene.store.FSDirectory").open(path)
        self._writer = autoclass("org.apache.lucene.index.IndexWriter")(self._dir, config)

    def delete(self, doc_ids: Iterable[str]) -> None:
        for doc_id in doc_ids:
            # updateDocuments(term, no documents) = delete by term; deleteDocuments(Term...) is varargs, which
            # pyjnius cannot tell apart from deleteDocuments(Query...)
            with JNI_LOCK:
                self._writer.updateDocuments(self._term("id", doc_id), self._empty)

    def upsert(self, records: Iterable[Mapping[str, object]]) -> None:
        """Add records, replacing any document with the same id. Records Anserini finds empty are skipped
        (as IndexCollection skips them) and listed in `self.skipped`."""
        for rec in records:
            doc_id = str(rec["id"])
            payload = json.dumps(dict(rec), ensure_ascii=False)
            with JNI_LOCK:
                if self.impact:
                    source = self._vector_doc(self._mapper.readTree(payload))
                else:
                    source = self._json_doc.fromString(payload)
                try:
                    lucene_doc = self._generator.createDocument(source)
                except Exception as exc:  # noqa: BLE001 - jnius raises JavaException for GeneratorException
                    if "mpty" not in str(exc):
                        raise
                    lucene_doc = None
                if lucene_doc is None:   # Anserini finds it empty: skipped, as IndexCollection skips it
                    self._writer.updateDocuments(self._term("id", doc_id), self._empty)
                    self.skipped.append(doc_id)
                    continue
                self._writer.updateDocument(self._term("id", doc_id), lucene_doc)
            self.added += 1

    def force_merge(self) -> None:
        """Merge the whole index into one segment (compaction: statistics then equal a fresh build's)."""
        with JNI_LOCK:
            self._writer.forceMerge(1)

    def num_docs(self) -> int:
        with JNI_LOCK:
            return int(self._writer.getDocStats().numDocs)

    def commit(self) -> int:
        """Merge deletions away, commit and close; returns the number of live documents."""
        with JNI_LOCK:
            self._writer.forceMergeDeletes()
        with JNI_LOCK:
            self._writer.commit()
        n = self.num_docs()
        with JNI_LOCK:
            self._writer.close()
            self._dir.close()
        self._open = False
        return n

    def rollback(self) -> None:
        if not self._open:
            return
        self._open = False
        with JNI_LOCK:
            try:
                self._writer.rollback()  # discards everything since opening and closes the writer
            finally:
                self._dir.close()

    def __enter__(self) -> "LuceneWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:  # noqa: ANN001
        if exc_type is not None:
            self.rollback()
        elif self._open:
            self.commit()


__all__ = ["LuceneWriter"]
