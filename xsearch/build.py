"""Build an index: create + add every document + commit, through the one writer (xsearch.storage.writer).

A first build is written in a temporary sibling folder and renamed into place when its manifest is written, so a
killed build leaves no half index (and any previous folder untouched); a rebuild of an existing index is a new
generation of it, so its readers switch over on their next search.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Iterable

from .config import IndexConfig
from .corpus import read_corpus
from .errors import InputError
from .records import Doc
from .storage.files import tree_bytes

Log = Callable[[str], None]


def read_docs(config: IndexConfig, docs: Iterable[Doc] | None, log: Log) -> list[Doc]:
    """The documents to build from (the given ones, else the recipe's corpus), refused when empty or when an id
    repeats."""
    t = time.perf_counter()
    docs = list(docs) if docs is not None else list(read_corpus(config.corpus.path, config.corpus.format,
                                                                 config.corpus.lang))
    if not docs:
        raise InputError("the corpus has no documents", source=config.corpus.path)
    seen: set[str] = set()
    for d in docs:
        if d.doc_id in seen:
            raise InputError(f"duplicate document id {d.doc_id!r}")
        seen.add(d.doc_id)
    log(f"read {len(docs)} documents in {time.perf_counter() - t:.1f}s")
    return docs


def build_index(config: IndexConfig, out: str | Path, docs: Iterable[Doc] | None = None, *,
                show_progress: bool = True, log: Log = print, shard: tuple[int, int] = (0, 1),
                models=None) -> Path:  # noqa: ANN001
    """Build the index `config` describes into folder `out` (a new generation if it already holds one)."""
    from .storage.writer import IndexWriter

    out = Path(out).resolve()
    t = time.perf_counter()
    docs = read_docs(config, docs, log)
    with IndexWriter(out, config=config, models=models, log=log, show_progress=show_progress,
                     shard=shard) as writer:
        writer.timings["read"] = round(time.perf_counter() - t, 3)
        writer.add(docs)
        manifest = writer.commit()
    log(f"index written to {out} (generation {manifest.generation}, {tree_bytes(out) / 1e6:.1f} MB)")
    return out
