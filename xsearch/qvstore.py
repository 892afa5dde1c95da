"""A persistent store of query vectors across runs: SQLite (encoder key, sha256(query text)) -> float32 vector.

Why: the TALN evaluation encodes 10,161 English queries and their 10,161 French translations with e5 on every run
(minutes on a CPU) although neither the queries nor the encoder change. Like the translation cache it is a cache,
never data: kept in ~/.cache/xsearch (XSEARCH_CACHE), keyed by the encoder's name (and precision, where it has one),
so another encoder or backend never reads these vectors; deleting the file only costs the encoding again.
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from .sqlite_cache import open_cache_db, text_key

_SCHEMA = """
CREATE TABLE IF NOT EXISTS query_vectors (
    encoder TEXT NOT NULL, text_sha256 TEXT NOT NULL, dim INTEGER NOT NULL, vector BLOB NOT NULL,
    PRIMARY KEY (encoder, text_sha256)
) WITHOUT ROWID;
"""
_CHUNK = 500  # below SQLite's bound-parameter limit


def encoder_key(encoder: Any) -> str:
    """What the store keys an encoder's vectors by: its name, and its precision where it has one (fp16 vectors
    of one model differ from its fp32 ones)."""
    precision = getattr(encoder, "precision", None)
    return f"{encoder.name}|{precision}" if precision else str(encoder.name)


class QueryVectorStore:
    """One SQLite file of query vectors; get_many / put_many by (encoder key, exact text)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._con = open_cache_db(self.path, _SCHEMA, "query-vector cache")

    def get_many(self, encoder: str, texts: Sequence[str], dim: int) -> dict[str, np.ndarray]:
        """The stored vectors of those `texts` the store holds for `encoder` (rows of another dim are ignored)."""
        by_key = {text_key(t): t for t in dict.fromkeys(texts)}
        keys = list(by_key)
        found: dict[str, np.ndarray] = {}
        with self._lock:
            for i in range(0, len(keys), _CHUNK):
                part = keys[i:i + _CHUNK]
                rows = self._con.execute(
                    f"SELECT text_sha256, dim, vector FROM query_vectors WHERE encoder=? AND text_sha256 IN "
                    f"({','.join('?' * len(part))})", (encoder, *part))
                for key, d, blob in rows:
                    if d == dim and len(blob) == 4 * dim:
                        found[by_key[key]] = np.frombuffer(blob, dtype=np.float32).copy()
        return found

    def put_many(self, encoder: str, items: Iterable[tuple[str, np.ndarray]]) -> None:
        """Store (text, vector) pairs and commit at once."""
        rows = []
        for text, vec in items:
            v = np.ascontiguousarray(vec, dtype=np.float32).ravel()
            rows.append((encoder, text_key(text), int(v.shape[0]), v.tobytes()))
        with self._lock, self._con:
            self._con.executemany("INSERT OR REPLACE INTO query_vectors VALUES (?, ?, ?, ?)", rows)

    def __len__(self) -> int:
        with self._lock:
            return int(self._con.execute("SELECT COUNT(*) FROM query_vectors").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._con.close()


__all__ = ["QueryVectorStore", "encoder_key"]
