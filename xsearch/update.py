"""Live updates: add, replace and delete documents, a batch at a time, through the one writer.

Each batch is one commit of xsearch.storage.writer.IndexWriter: it costs the batch (new Lucene segments in a
hard-link snapshot, a FAISS segment and a tombstone file, one SQLite transaction), never a copy of the index, and
it is all or nothing: generation N+1 appears whole, or the index stays at N. Every open Index, in any process,
sees it on its next search.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from .components import Models
from .errors import InputError, UnknownDocumentError
from .records import Doc
from .shard.layout import is_sharded
from .stages import as_doc, check_batch
from .storage.lock import writer_lock

Log = Callable[[str], None]


def apply_batch(index_path: str | Path, upserts: Iterable[Doc | Mapping[str, Any]] = (),
                deletes: Iterable[str] = (), *, models: Models | None = None,
                encoder_for: Callable[[str], Any] | None = None, log: Log | None = None,
                lock_timeout_s: float | None = None) -> int:
    """Add or replace `upserts` and remove `deletes` in the index at `index_path`, all or nothing; returns the
    new document count. `models` (or `encoder_for`: spec -> encoder) lets a caller that already holds the index's
    models share them. Raises UnknownDocumentError (an InputError) when a delete names an id the index lacks."""
    from .storage.writer import IndexWriter

    docs = [as_doc(r) for r in upserts]
    dels = list(dict.fromkeys(deletes))
    if not docs and not dels:
        raise InputError("empty batch: give documents to add or replace, or ids to delete")
    check_batch(docs, dels)
    models = models or Models(dense=encoder_for)
    if is_sharded(index_path):
        from .shard.update import apply_sharded

        return apply_sharded(index_path, docs, dels, models=models, log=log, lock_timeout_s=lock_timeout_s)
    with IndexWriter(index_path, models=models, log=log, lock_timeout_s=lock_timeout_s) as writer:
        writer.add(docs)
        writer.delete(dels)
        return writer.commit().doc_count


def compact(index_path: str | Path, *, models: Models | None = None, log: Log | None = None) -> int:
    """Rewrite every component without deleted rows (BM25 statistics then equal a fresh build's); returns the
    new generation (of a sharded index: the sum of its shards')."""
    from .storage.writer import IndexWriter

    if is_sharded(index_path):
        from .shard.update import compact_sharded

        return compact_sharded(index_path, models=models, log=log)
    with IndexWriter(index_path, models=models, log=log) as writer:
        writer.compact()
        return writer.commit().generation


__all__ = ["apply_batch", "as_doc", "compact", "writer_lock", "UnknownDocumentError"]
