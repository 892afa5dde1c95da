"""The SQLite files of the user cache (translations, query vectors): opened one way, keyed one way.

WAL with synchronous=NORMAL: readers never wait for the writer, and a killed process loses no commit (a power cut
may lose the last ones, which a cache can afford: the texts are translated or encoded again)."""
from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

from .errors import InputError


def text_key(text: str) -> str:
    """What a cache row is keyed by: sha256 of the exact text (UTF-8), hex."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def open_cache_db(path: Path, schema: str, what: str) -> sqlite3.Connection:
    """A connection to the cache file at `path` (created with `schema` if new), shareable across threads (callers
    hold their own lock); a file SQLite cannot use is an InputError naming `what` it was meant to be."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        con = sqlite3.connect(str(path), timeout=60.0, check_same_thread=False)
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=NORMAL")
        con.executescript(schema)
    except sqlite3.DatabaseError as exc:
        raise InputError(f"not a usable {what}: {exc}", source=str(path)) from exc
    return con
