"""The served index and its live updates, without torn reads and without stalling reads.

Every request reads through `LiveIndex.reading()`: a view of one whole generation (search, doc store, manifest).
A batch is one commit of the storage writer (xsearch.update.apply_batch); the new generation is then opened beside
the old one and swapped in (xsearch.index.Index.refresh), so searches never wait for a write; requests still on the
old generation finish there. The models (encoders, SPLADE, the query translator) are shared by the writer and every
generation, never reloaded per write. Writes by other processes (a CLI update, another worker) are seen the same way,
on the next request.
"""
from __future__ import annotations

import logging
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

from xsearch.index import Index, IndexView, open_index
from xsearch.records import Doc
from xsearch.update import apply_batch

log = logging.getLogger("xsearch.server")


class LiveIndex:
    """The index a server serves: requests read one generation each; batches commit new generations."""

    def __init__(self, path: str | Path, warm: bool = False, ray: str | None = None):
        self.path = Path(path).resolve()
        self._index = open_index(self.path, ray=ray)   # an Index, or a ShardedIndex for a sharded folder
        self._writing = threading.Lock()  # one batch at a time in this process (the writer lock spans processes)
        if warm:
            self.warm(self._index.routes)

    @property
    def index(self) -> Index:
        """The Index (for one-off reads; requests use reading())."""
        return self._index

    @contextmanager
    def reading(self) -> Iterator[IndexView]:
        with self._index.reading() as view:
            yield view

    def warm(self, routes: Sequence[str]) -> None:
        """Open each route and run one query through it, so models load (and warm up) before any request."""
        for route in routes:
            try:
                self._index.search("warm up", route=route, k=1)
            except Exception:  # noqa: BLE001 - a broken route stays broken, visibly, on use
                log.warning("could not warm route %s", route, exc_info=True)

    def apply(self, upserts: Sequence[Doc], deletes: Sequence[str]) -> int:
        """Apply one batch (all or nothing) as a new generation and switch to it; returns the new document count."""
        with self._writing:
            count = apply_batch(self.path, upserts, deletes, models=self._index.models, log=log.info)
            self._index.refresh()
            return count
