"""A persistent cache of generated queries: the translation cache's SQLite table, keyed by
(qgen:<generator>, model id + n, passage language, query language, sha256(passage)) -> JSON list of queries.

Why: generation is the costly step of xQG (minutes to hours); α sweeps, rebuilds and several indexes over the same
documents then reuse it. Every batch is committed at once, so a killed build keeps what it generated.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import InputError, XsearchError
from ..translate.cache import TranslationCache, text_key


class CachedQueryGenerator:
    """QueryGenerator protocol over `inner` + a cache: looks every passage up, generates the misses in batches."""

    def __init__(self, inner: Any, cache: TranslationCache | str | Path, *, batch_size: int = 256,
                 show_progress: bool = False):
        if batch_size < 1:
            raise InputError(f"batch_size must be >= 1, got {batch_size}")
        self.inner = inner
        self.cache = cache if isinstance(cache, TranslationCache) else TranslationCache(cache)
        self.name = inner.name
        self.model_id = str(getattr(inner, "model_id", ""))
        self.batch_size, self.show_progress = batch_size, show_progress
        self.hits = self.misses = 0
        self.seconds = 0.0  # time spent in the inner generator (misses only)

    def generate(self, passages: Sequence[str], n: int, lang: str, *, src_lang: str | None = None,
                 passage_vectors: np.ndarray | None = None) -> list[list[str]]:
        if isinstance(passages, str):
            raise InputError("generate() takes a sequence of passages, not one string")
        passages = list(passages)
        backend, model = f"qgen:{self.name}", f"{self.model_id}|n{n}"
        src = src_lang or ""
        tgt = lang if getattr(self.inner, "uses_lang", True) else ""
        keys = [text_key(p) for p in passages]
        found = {k: json.loads(v) for k, v in self.cache.get_many(backend, model, src, tgt, keys).items()}
        first: dict[str, int] = {}  # distinct misses, in input order
        for i, k in enumerate(keys):
            if k not in found and k not in first:
                first[k] = i
        todo = list(first.values())
        self.hits += sum(k in found for k in keys)
        self.misses += len(todo)
        bar = None
        if self.show_progress and todo:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(todo), unit="passage", desc=f"qgen {self.name}")
        try:
            for start in range(0, len(todo), self.batch_size):
                idx = todo[start:start + self.batch_size]
                options: dict[str, Any] = {"src_lang": src_lang}
                if passage_vectors is not None:
                    options["passage_vectors"] = np.asarray(passage_vectors)[idx]
                t = time.perf_counter()
                out = self.inner.generate([passages[i] for i in idx], n, lang, **options)
                self.seconds += time.perf_counter() - t
                if len(out) != len(idx):
                    raise XsearchError(f"{self.name} returned {len(out)} query lists for {len(idx)} passages")
                batch = {keys[i]: list(qs) for i, qs in zip(idx, out)}
                self.cache.put_many(backend, model, src, tgt,
                                    ((k, json.dumps(v, ensure_ascii=False)) for k, v in batch.items()))
                found.update(batch)
                if bar is not None:
                    bar.update(len(idx))
        finally:
            if bar is not None:
                bar.close()
        return [list(found[k]) for k in keys]
