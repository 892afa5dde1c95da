"""The doc store: every document's stored fields (and translations) in one SQLite file inside the index folder.

SQLite gives atomic batches (one transaction per write) and concurrent readers for free, which the server's live
updates rely on.
"""
from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import Iterable, Iterator, Sequence

from .records import Doc

_SCHEMA = """
CREATE TABLE IF NOT EXISTS docs (
    doc_id TEXT PRIMARY KEY,
    lang TEXT NOT NULL,
    title TEXT NOT NULL,
    text TEXT NOT NULL,
    fields TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS translations (
    doc_id TEXT NOT NULL,
    lang TEXT NOT NULL,
    title TEXT NOT NULL,
    text TEXT NOT NULL,
    model TEXT NOT NULL,
    PRIMARY KEY (doc_id, lang)
);
"""


class DocStore:
    def __init__(self, path: str | Path, readonly: bool = False):
        self.path = Path(path)
        self._local = threading.local()
        self.readonly = readonly
        if not readonly:
            with self._conn() as c:
                c.executescript(_SCHEMA)

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            # immutable: a published index folder never changes in place (updates swap in a new copy), so readers
            # need no -wal/-shm files inside it
            uri = f"file:{self.path}?mode=ro&immutable=1" if self.readonly else f"file:{self.path}"
            conn = sqlite3.connect(uri, uri=True, check_same_thread=False, timeout=30)
            if not self.readonly:
                conn.execute("PRAGMA journal_mode=WAL")
            self._local.conn = conn
        return conn

    def put(self, docs: Iterable[Doc]) -> int:
        rows = [(d.doc_id, d.lang, d.title, d.text, json.dumps(dict(d.fields), ensure_ascii=False)) for d in docs]
        with self._conn() as c:
            c.executemany("INSERT OR REPLACE INTO docs VALUES (?,?,?,?,?)", rows)
        return len(rows)

    def put_translations(self, rows: Iterable[tuple[str, str, str, str, str]]) -> None:
        """Rows of (doc_id, lang, title, text, model)."""
        with self._conn() as c:
            c.executemany("INSERT OR REPLACE INTO translations VALUES (?,?,?,?,?)", list(rows))

    def get(self, doc_id: str) -> Doc | None:
        got = self.get_many([doc_id])
        return got.get(doc_id)

    def get_many(self, doc_ids: Sequence[str]) -> dict[str, Doc]:
        out: dict[str, Doc] = {}
        ids = list(dict.fromkeys(doc_ids))
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            marks = ",".join("?" * len(chunk))
            for row in self._conn().execute(f"SELECT * FROM docs WHERE doc_id IN ({marks})", chunk):
                out[row[0]] = Doc(row[0], row[1], row[2], row[3], json.loads(row[4]))
        return out

    def translation(self, doc_id: str, lang: str) -> tuple[str, str] | None:
        row = self._conn().execute("SELECT title, text FROM translations WHERE doc_id=? AND lang=?",
                                   (doc_id, lang)).fetchone()
        return (row[0], row[1]) if row else None

    def translations(self, doc_ids: Sequence[str], lang: str) -> dict[str, tuple[str, str]]:
        out: dict[str, tuple[str, str]] = {}
        ids = list(dict.fromkeys(doc_ids))
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            marks = ",".join("?" * len(chunk))
            q = f"SELECT doc_id, title, text FROM translations WHERE lang=? AND doc_id IN ({marks})"
            for row in self._conn().execute(q, [lang, *chunk]):
                out[row[0]] = (row[1], row[2])
        return out

    def __iter__(self) -> Iterator[Doc]:
        for row in self._conn().execute("SELECT * FROM docs ORDER BY rowid"):
            yield Doc(row[0], row[1], row[2], row[3], json.loads(row[4]))

    def __len__(self) -> int:
        return int(self._conn().execute("SELECT COUNT(*) FROM docs").fetchone()[0])

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
