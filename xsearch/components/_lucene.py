"""A Lucene component's generations: one snapshot folder per commit, made of hard links.

Lucene never changes a file it wrote, and a commit (segments_N) is atomic and durable. A writer works in a fresh
hard-link copy of the current snapshot (no data copied), Lucene's IndexWriter appends there (new segments, .liv
deletion files, a new segments_N, merges by its TieredMergePolicy) and commits; the copy is then renamed into the
next snapshot `g<N>`. Each snapshot holds exactly one commit, so a reader (Pyserini's searcher opens the newest
commit of a folder) opening generation N's snapshot sees exactly generation N, while a writer prepares N+1.
A new component is built in bulk by Anserini's IndexCollection (multi-threaded), the same documents either way.
"""
from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any, Mapping

from ..storage.files import fsync_dir, link_tree, remove


def snapshot_name(generation: int) -> str:
    return f"g{generation:08d}"


class LuceneSnapshotWriter:
    """Writer of one Lucene component: BM25 in the analyzer of `lang`, BM25 over terms split on whitespace
    (pretokenized=True: character n-grams), or impact (impact=True); BM25 without positions and doc vectors when
    nothing reads them (positions=False)."""

    def __init__(self, folder: Path, generation: int, state: dict | None, *, lang: str | None = None,
                 impact: bool = False, pretokenized: bool = False, positions: bool = True):
        self.folder, self.generation, self.state = folder, generation, state
        self.lang, self.impact, self.pretokenized, self.positions = lang, impact, pretokenized, positions
        self._records: list[Mapping[str, Any]] = []
        self._deletes: list[str] = []
        self._compact = False

    def add(self, records: list[Mapping[str, Any]]) -> None:
        self._records.extend(records)

    def delete(self, ids: list[str]) -> None:
        self._deletes.extend(ids)

    def compact(self) -> None:
        self._compact = True

    def commit(self) -> tuple[dict, int]:
        if self.state is not None and not (self._records or self._deletes or self._compact):
            return self.state, int(self.state.get("live", 0))
        self.folder.mkdir(parents=True, exist_ok=True)
        work = self.folder / f".work-{uuid.uuid4().hex[:12]}"
        try:
            if self.state is None:
                live = self._create(work)
            else:
                live = self._append(work)
            fsync_dir(work)   # Lucene's commit fsyncs the files it wrote; the links need their folder durable
            target = self.folder / snapshot_name(self.generation)
            remove(target)  # left by a commit of this generation that crashed before its manifest
            os.rename(work, target)
            fsync_dir(self.folder)
        except BaseException:
            remove(work)
            raise
        return {"snapshot": target.name, "live": live}, live

    def _create(self, work: Path) -> int:
        from ..lucene import build_bm25, build_impact

        records = [r for r in self._records if r["id"] not in set(self._deletes)]
        if self.impact:
            build_impact(records, work)
        else:
            build_bm25(records, work, self.lang or "en", pretokenized=self.pretokenized, positions=self.positions)
        remove(work / "write.lock")
        return _num_docs(work)

    def _append(self, work: Path) -> int:
        from ..lucene_writer import LuceneWriter

        link_tree(self.folder / self.state["snapshot"], work)
        with LuceneWriter(work, self.lang, impact=self.impact, pretokenized=self.pretokenized,
                          positions=self.positions) as writer:
            writer.delete(self._deletes)
            writer.upsert(self._records)
            if self._compact:
                writer.force_merge()
            live = writer.commit()
        remove(work / "write.lock")
        return live

    def abort(self) -> None:
        self._records, self._deletes = [], []


def _num_docs(folder: Path) -> int:
    from ..jvm import JNI_LOCK, autoclass

    with JNI_LOCK:
        directory = autoclass("org.apache.lucene.store.FSDirectory").open(
            autoclass("java.io.File")(str(folder)).toPath())
        try:
            reader = autoclass("org.apache.lucene.index.DirectoryReader").open(directory)
            try:
                return int(reader.numDocs())
            finally:
                reader.close()
        finally:
            directory.close()


def component_ids(ctx: Any, name: str, entry: Any) -> set[str]:
    """Kind.ids of every Lucene kind (BM25, character n-grams, impact): the ids live in its current snapshot."""
    return snapshot_ids(ctx.folder(name) / entry.state["snapshot"])


def snapshot_ids(folder: Path) -> set[str]:
    """Every live document id in a snapshot (for `xsearch verify`)."""
    from ..jvm import JNI_LOCK, autoclass

    with JNI_LOCK:
        directory = autoclass("org.apache.lucene.store.FSDirectory").open(
            autoclass("java.io.File")(str(folder)).toPath())
        reader = autoclass("org.apache.lucene.index.DirectoryReader").open(directory)
        try:
            ids: set[str] = set()
            live_docs = autoclass("org.apache.lucene.index.MultiBits").getLiveDocs(reader)
            stored = reader.storedFields()
            for i in range(reader.maxDoc()):
                if live_docs is None or live_docs.get(i):
                    ids.add(str(stored.document(i).get("id")))
            return ids
        finally:
            reader.close()
            directory.close()
