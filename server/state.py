"""The served index and its live updates, without torn reads.

Every request reads through `LiveIndex.reading()`, a shared lock around one `Index` object. A batch is prepared
by xsearch.update.apply_batch on a copy of the folder while searches go on; only the atomic exchange of the
folders and the opening of the new `Index` happen under the exclusive lock, which waits for in-flight requests
on the old `Index` to finish (so no request ever mixes the old Lucene/FAISS files with the new doc store) and
holds new ones back for those few milliseconds. The old `Index`'s Lucene searchers are then closed.
Models (encoders, the query translator) are handed from the old `Index` to the new one, never reloaded.
"""
from __future__ import annotations

import logging
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

from xsearch.index import Index
from xsearch.records import Doc
from xsearch.update import apply_batch, recover, writer_lock

log = logging.getLogger("xsearch.server")


class RWLock:
    """Many readers or one writer; a waiting writer holds back new readers (no writer starvation)."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._readers = 0
        self._writer = False
        self._waiting_writers = 0

    @contextmanager
    def read(self) -> Iterator[None]:
        with self._cond:
            while self._writer or self._waiting_writers:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if not self._readers:
                    self._cond.notify_all()

    @contextmanager
    def write(self) -> Iterator[None]:
        with self._cond:
            self._waiting_writers += 1
            try:
                while self._writer or self._readers:
                    self._cond.wait()
            finally:
                self._waiting_writers -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()


class ServedIndex(Index):
    """The server's Index (Lucene calls are serialised by xsearch.jvm.JNI_LOCK inside xsearch.lucene)."""


def open_index(path: str | Path) -> ServedIndex:
    return ServedIndex(path)


def _lucene_handles(retriever: Any, seen: set[int]) -> Iterator[Any]:
    if id(retriever) in seen:
        return
    seen.add(id(retriever))
    lucene = getattr(retriever, "lucene", None)
    if lucene is not None and hasattr(lucene, "close"):
        yield lucene
    for part in getattr(retriever, "retrievers", ()) or ():
        yield from _lucene_handles(part, seen)


def close_index(index: Index) -> None:
    """Release an Index's Lucene searchers (their files may already be unlinked) and its doc store connection.
    (A core `Index.close()` would be the cleaner home for this.)"""
    seen: set[int] = set()
    for retriever in list(getattr(index, "_retrievers", {}).values()):
        for lucene in _lucene_handles(retriever, seen):
            try:
                lucene.close()
            except Exception:  # noqa: BLE001 - closing is best effort
                log.debug("closing a Lucene searcher failed", exc_info=True)
    index.docstore.close()


class LiveIndex:
    """The index a server serves: reads under a shared lock, batches applied copy-on-write and swapped in."""

    def __init__(self, path: str | Path, warm: bool = False):
        self.path = Path(path).resolve()
        try:
            with writer_lock(self.path):
                recover(self.path)  # a crash mid-exchange in an earlier run: put the index back first
        except OSError as exc:  # a read-only parent folder: nothing to recover, and no live updates either
            log.warning("cannot lock %s for recovery (%s); serving it as it is", self.path, exc)
        self._index = open_index(self.path)
        self._rw = RWLock()
        self._writing = threading.Lock()  # one batch at a time in this process (apply_batch also locks the folder)
        if warm:
            self.warm(self._index.routes)

    @property
    def index(self) -> Index:
        """The current Index (for one-off reads; requests use reading())."""
        return self._index

    @contextmanager
    def reading(self) -> Iterator[Index]:
        with self._rw.read():
            yield self._index

    def warm(self, routes: Sequence[str]) -> None:
        """Open each route and run one query through it, so models load (and warm up) before any request."""
        for route in routes:
            try:
                self._index.search("warm up", route=route, k=1)
            except Exception:  # noqa: BLE001 - a broken route stays broken, visibly, on use
                log.warning("could not warm route %s", route, exc_info=True)

    def apply(self, upserts: Sequence[Doc], deletes: Sequence[str]) -> int:
        """Apply one batch (all or nothing) and swap it in; returns the new document count."""
        with self._writing:
            old = self._index

            def on_swapped() -> None:
                new = open_index(self.path)
                # hand the loaded models over (a core Index(path, share_models_with=old) would be cleaner)
                new._components.update(old._components)  # noqa: SLF001
                new.translator = old.translator
                for route in list(old._retrievers):  # noqa: SLF001 - reopen what was open: no request pays
                    try:
                        new.retriever(route)
                    except Exception:  # noqa: BLE001 - a route that fails now fails again, visibly, on use
                        log.warning("could not reopen route %s after an update", route, exc_info=True)
                self._index = new

            count = apply_batch(self.path, upserts, deletes, encoder_for=old.encoder, swap_guard=self._rw.write,
                                on_swapped=on_swapped, log=log.info)
            if self._index is not old:
                close_index(old)  # no request holds it: the swap waited for them all
            return count
