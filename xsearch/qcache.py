"""A bounded memo of query vectors in front of an Encoder: routes that share an encoder (dense, dense-dt, hybrids)
and repeated queries on a server encode each query text once. With a `store` (xsearch.qvstore, what the
evaluation passes), vectors also persist across processes: a rerun encodes only the texts the store lacks."""
from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Sequence

import numpy as np

from .qvstore import QueryVectorStore, encoder_key


class QueryCachingEncoder:
    def __init__(self, inner, max_entries: int = 200_000, store: QueryVectorStore | None = None):
        self.inner = inner
        self.store = store
        self.stored_hits = 0   # texts read from the store rather than encoded (reports, tests)
        self.encoded = 0       # texts encoded by the inner encoder
        self.name = inner.name
        self.dim = inner.dim
        self.family = getattr(inner, "family", inner.name)
        self.max_entries = max_entries
        self._memo: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def encode_queries(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        texts = list(texts)
        with self._lock:
            known = {t: self._memo[t] for t in texts if t in self._memo}
        missing = list(dict.fromkeys(t for t in texts if t not in known))
        if missing and self.store is not None:
            stored = self.store.get_many(encoder_key(self.inner), missing, int(self.dim))
            self.stored_hits += len(stored)
            known.update(stored)
            self._remember(stored.items())
            missing = [t for t in missing if t not in stored]
        if missing:
            vectors = self.inner.encode_queries(missing, batch_size=batch_size)
            self.encoded += len(missing)
            known.update(zip(missing, vectors))
            if self.store is not None:
                self.store.put_many(encoder_key(self.inner), zip(missing, vectors))
            self._remember(zip(missing, vectors))
        if not texts:
            return np.empty((0, self.dim), np.float32)
        return np.stack([known[t] for t in texts]).astype(np.float32, copy=False)

    def _remember(self, items) -> None:  # noqa: ANN001 - iterable of (text, vector)
        with self._lock:
            self._memo.update(items)
            while len(self._memo) > self.max_entries:
                self._memo.popitem(last=False)

    def encode_passages(self, texts: Sequence[str], batch_size: int | None = None, show_progress: bool = False):
        options = {"batch_size": batch_size} if batch_size else {}
        return self.inner.encode_passages(texts, show_progress=show_progress, **options)
