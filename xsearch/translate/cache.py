"""A persistent translation cache, and a Translator wrapper that translates only what the cache lacks.

Why: translating a corpus takes minutes to hours. Every batch is committed as soon as it is translated (SQLite
in WAL mode), so a killed run keeps all finished batches and a rerun translates only the rest.

Index-time translations (documents) are kept forever; query-time ones (a server's query translation, where every
distinct query would otherwise add a row forever) go to their own table, bounded: past `query_cap` rows the least
recently used are dropped.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from ..errors import InputError, XsearchError
from ..protocols import Translator
from ..sqlite_cache import open_cache_db, text_key

_SCHEMA = """
CREATE TABLE IF NOT EXISTS translations (
    backend TEXT NOT NULL, model TEXT NOT NULL, src TEXT NOT NULL, tgt TEXT NOT NULL,
    text_sha256 TEXT NOT NULL, translation TEXT NOT NULL,
    PRIMARY KEY (backend, model, src, tgt, text_sha256)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS query_translations (
    backend TEXT NOT NULL, model TEXT NOT NULL, src TEXT NOT NULL, tgt TEXT NOT NULL,
    text_sha256 TEXT NOT NULL, translation TEXT NOT NULL, used INTEGER NOT NULL,
    PRIMARY KEY (backend, model, src, tgt, text_sha256)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS query_translations_used ON query_translations(used);
"""
_CHUNK = 500  # below SQLite's bound-parameter limit


class TranslationCache:
    """SQLite map (backend, model id, src, tgt, sha256(text)) -> translation. One writer; any number of readers."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._con = open_cache_db(self.path, _SCHEMA, "translation cache")

    def get_many(self, backend: str, model: str, src: str, tgt: str, keys: Sequence[str], *,
                 queries: bool = False) -> dict[str, str]:
        """Cached translations for the given text keys (sha256 hex), as {key: translation}; `queries`: also the
        query-time table (the rows found there become the most recently used)."""
        found: dict[str, str] = {}
        unique = list(dict.fromkeys(keys))
        with self._lock:
            for table in ("translations", "query_translations") if queries else ("translations",):
                todo = [k for k in unique if k not in found]
                for i in range(0, len(todo), _CHUNK):
                    part = todo[i:i + _CHUNK]
                    rows = dict(self._con.execute(
                        f"SELECT text_sha256, translation FROM {table} WHERE backend=? AND model=? AND src=? "
                        f"AND tgt=? AND text_sha256 IN ({','.join('?' * len(part))})", (backend, model, src, tgt, *part)))
                    if rows and table == "query_translations":
                        with self._con:
                            self._con.executemany(
                                "UPDATE query_translations SET used=? WHERE backend=? AND model=? AND src=? AND tgt=? "
                                "AND text_sha256=?", [(time.time_ns(), backend, model, src, tgt, k) for k in rows])
                    found.update(rows)
        return found

    def put_queries(self, backend: str, model: str, src: str, tgt: str, items: Iterable[tuple[str, str]],
                    cap: int) -> None:
        """Store query-time (key, translation) pairs, then keep only the `cap` most recently used of them."""
        if cap < 1:
            raise InputError(f"query_cap must be >= 1, got {cap}")
        now = time.time_ns()
        rows = [(backend, model, src, tgt, key, translation, now + i) for i, (key, translation) in enumerate(items)]
        with self._lock, self._con:
            self._con.executemany("INSERT OR REPLACE INTO query_translations VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
            over = int(self._con.execute("SELECT COUNT(*) FROM query_translations").fetchone()[0]) - cap
            if over > 0:
                self._con.execute("DELETE FROM query_translations WHERE used <= (SELECT used FROM query_translations "
                                  "ORDER BY used LIMIT 1 OFFSET ?)", (over - 1,))

    def query_rows(self) -> int:
        with self._lock:
            return int(self._con.execute("SELECT COUNT(*) FROM query_translations").fetchone()[0])

    def put_many(self, backend: str, model: str, src: str, tgt: str, items: Iterable[tuple[str, str]]) -> None:
        """Store (key, translation) pairs and commit at once."""
        rows = [(backend, model, src, tgt, key, translation) for key, translation in items]
        with self._lock, self._con:  # the connection context manager commits, or rolls back on error
            self._con.executemany("INSERT OR REPLACE INTO translations VALUES (?, ?, ?, ?, ?, ?)", rows)

    def __len__(self) -> int:
        with self._lock:
            return int(self._con.execute("SELECT COUNT(*) FROM translations").fetchone()[0])

    def integrity_check(self) -> bool:
        with self._lock:
            return self._con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"

    def close(self) -> None:
        with self._lock:
            self._con.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class TranslationStats:
    """hits: texts served from the cache; misses: distinct texts sent to the backend; words/s over misses."""

    hits: int = 0
    misses: int = 0
    words: int = 0
    seconds: float = 0.0

    @property
    def words_per_s(self) -> float:
        return self.words / self.seconds if self.seconds > 0 else 0.0

    def __str__(self) -> str:
        return (f"{self.hits} cached, {self.misses} translated ({self.words} words in {self.seconds:.1f} s, "
                f"{self.words_per_s:.0f} words/s)")


class CachedTranslator:
    """Translator protocol over `inner` + a TranslationCache: looks everything up, translates misses in batches."""

    def __init__(self, inner: Translator, cache: TranslationCache | str | Path, *, batch_size: int = 256,
                 show_progress: bool = False, progress: Callable[[int], Any] | None = None,
                 model_id: str | None = None, query_cap: int | None = None):
        """query_cap: this translator serves queries: its new translations go to the bounded query-time table
        (at most `query_cap` rows, least recently used dropped); None: index-time, kept forever."""
        if batch_size < 1:
            raise InputError(f"batch_size must be >= 1, got {batch_size}")
        self.inner = inner
        self.cache = cache if isinstance(cache, TranslationCache) else TranslationCache(cache)
        self.name = inner.name
        self.model_id = model_id if model_id is not None else str(getattr(inner, "model_id", ""))
        self.batch_size, self.show_progress, self.progress = batch_size, show_progress, progress
        self.query_cap = query_cap
        self.stats = TranslationStats()  # cumulative over calls
        self.last_stats = TranslationStats()  # the latest call only

    def translate(self, texts: Sequence[str], src: str, tgt: str) -> list[str]:
        if isinstance(texts, str):
            raise InputError("translate() takes a sequence of texts, not one string")
        keys = [text_key(t) for t in texts]
        found = self.cache.get_many(self.name, self.model_id, src, tgt, keys, queries=self.query_cap is not None)
        todo = {k: t for k, t in zip(keys, texts) if k not in found}  # distinct misses, in input order
        stats = TranslationStats(hits=sum(k in found for k in keys), misses=len(todo))
        bar = None
        if self.show_progress and todo:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(todo), unit="text", desc=f"{self.name} {src}->{tgt}")
        items = list(todo.items())
        try:
            for i in range(0, len(items), self.batch_size):
                batch = items[i:i + self.batch_size]
                start = time.perf_counter()
                out = self.inner.translate([t for _, t in batch], src, tgt)
                stats.seconds += time.perf_counter() - start
                if len(out) != len(batch):
                    raise XsearchError(f"{self.name} returned {len(out)} translations for {len(batch)} texts")
                pairs = zip((k for k, _ in batch), out)
                if self.query_cap is None:
                    self.cache.put_many(self.name, self.model_id, src, tgt, pairs)
                else:
                    self.cache.put_queries(self.name, self.model_id, src, tgt, pairs, self.query_cap)
                found.update(zip((k for k, _ in batch), out))
                stats.words += sum(len(t.split()) for _, t in batch)
                if bar is not None:
                    bar.update(len(batch))
                    bar.set_postfix_str(f"{stats.words_per_s:.0f} words/s")
                if self.progress is not None:
                    self.progress(len(batch))
        finally:
            if bar is not None:
                bar.close()
            self.last_stats = stats
            for field in ("hits", "misses", "words", "seconds"):
                setattr(self.stats, field, getattr(self.stats, field) + getattr(stats, field))
        return [found[k] for k in keys]
