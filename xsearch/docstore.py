"""The doc store: every document's stored fields and translation in one SQLite file, versioned by generation.

Why versions: a batch must cost the batch, and readers in other processes must see whole generations. Each row is
one version of a document, alive from generation `added` until `deleted` (exclusive). A writer adds the rows of
generation N+1 and marks the rows it replaces or deletes, in one transaction, before the manifest of N+1 exists;
a reader pinned at generation G sees `added <= G < deleted`, so it never sees half a batch. Rows no kept generation
can see are purged by the writer (`purge`); rows of a generation whose manifest never appeared (a crash) are rolled
back by the next writer (`rollback_after`).
"""
from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import Iterable, Iterator, Mapping, Sequence

from .records import Doc

_SCHEMA = """
CREATE TABLE IF NOT EXISTS docs (
    doc_id TEXT NOT NULL,
    added INTEGER NOT NULL,
    deleted INTEGER,
    lang TEXT NOT NULL,
    title TEXT NOT NULL,
    text TEXT NOT NULL,
    fields TEXT NOT NULL,
    tr_lang TEXT,
    tr_title TEXT,
    tr_text TEXT,
    tr_model TEXT,
    PRIMARY KEY (doc_id, added)
);
CREATE INDEX IF NOT EXISTS docs_deleted ON docs(deleted) WHERE deleted IS NOT NULL;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
_CHUNK = 500  # below SQLite's bound-parameter limit
_LIVE = "added <= ? AND (deleted IS NULL OR deleted > ?)"
Translation = tuple[str, str, str, str]  # (lang, title, text, model)


def _doc(row: Sequence) -> Doc:
    return Doc(row[0], row[1], row[2], row[3], json.loads(row[4]))


class DocStore:
    """A view of the doc store at one generation (`generation=None`: the newest rows, for the writer)."""

    def __init__(self, path: str | Path, generation: int | None = None, *, writable: bool = False):
        self.path = Path(path)
        self.generation = generation
        self.writable = writable
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []   # every thread's, so close() closes them all
        self._conns_lock = threading.Lock()
        if writable:
            with self._conn() as c:
                c.executescript(_SCHEMA)

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            uri = f"file:{self.path}" + ("" if self.writable else "?mode=ro")
            conn = sqlite3.connect(uri, uri=True, check_same_thread=False, timeout=60)
            if self.writable:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=FULL")  # the commit is durable before the manifest names it
            self._local.conn = conn
            with self._conns_lock:
                self._conns.append(conn)
        return conn

    def _where(self) -> tuple[str, list[int]]:
        if self.generation is None:
            return "deleted IS NULL", []
        return _LIVE, [self.generation, self.generation]

    # ---- reads ---------------------------------------------------------------------------------------------
    def _select(self, columns: str, ids: Sequence[str], extra: str = "", extra_args: Sequence = ()) -> Iterator:
        where, args = self._where()
        unique = list(dict.fromkeys(ids))
        for start in range(0, len(unique), _CHUNK):
            chunk = unique[start:start + _CHUNK]
            q = f"SELECT {columns} FROM docs WHERE {where} {extra} AND doc_id IN ({','.join('?' * len(chunk))})"
            yield from self._conn().execute(q, [*args, *extra_args, *chunk])

    def get(self, doc_id: str) -> Doc | None:
        return self.get_many([doc_id]).get(doc_id)

    def get_many(self, doc_ids: Sequence[str]) -> dict[str, Doc]:
        return {row[0]: _doc(row) for row in self._select("doc_id, lang, title, text, fields", doc_ids)}

    def fields_many(self, doc_ids: Sequence[str], names: Sequence[str] | None = None) -> dict[str, dict]:
        """{doc id: stored fields}, only `names` of them when given (SQLite's JSON functions pick them, so filters and
        facets over hundreds of candidates never read titles, texts nor long fields such as abstracts)."""
        if names is None:
            return {row[0]: json.loads(row[1]) for row in self._select("doc_id, fields", doc_ids)}
        wanted = list(dict.fromkeys(names))
        if not wanted:
            return {row[0]: {} for row in self._select("doc_id", doc_ids)}
        if any('"' in n or "\\" in n or any(ord(c) < 32 for c in n) for n in wanted):
            # a JSON path label cannot hold a quote, a backslash or a control character: pick them in Python
            return {d: {n: f[n] for n in wanted if f.get(n) is not None} for d, f in self.fields_many(doc_ids).items()}
        picks = ", ".join(f"'{i}', json_extract(fields, ?)" for i in range(len(wanted)))
        where, args = self._where()
        out: dict[str, dict] = {}
        unique = list(dict.fromkeys(doc_ids))
        paths = [f'$."{n}"' for n in wanted]
        for start in range(0, len(unique), _CHUNK):
            chunk = unique[start:start + _CHUNK]
            q = (f"SELECT doc_id, json_object({picks}) FROM docs WHERE {where} "
                 f"AND doc_id IN ({','.join('?' * len(chunk))})")
            for doc_id, picked in self._conn().execute(q, [*paths, *args, *chunk]):
                values = json.loads(picked)
                out[doc_id] = {n: values[str(i)] for i, n in enumerate(wanted) if values.get(str(i)) is not None}
        return out

    def languages_of(self, doc_ids: Sequence[str]) -> dict[str, str]:
        """{doc id: language} for the ids this view holds."""
        return dict(self._select("doc_id, lang", doc_ids))

    def translation(self, doc_id: str, lang: str) -> tuple[str, str] | None:
        return self.translations([doc_id], lang).get(doc_id)

    def translations(self, doc_ids: Sequence[str], lang: str) -> dict[str, tuple[str, str]]:
        rows = self._select("doc_id, tr_title, tr_text", doc_ids, "AND tr_lang = ?", [lang])
        return {row[0]: (row[1], row[2]) for row in rows}

    def __iter__(self) -> Iterator[Doc]:
        where, args = self._where()
        for row in self._conn().execute(f"SELECT doc_id, lang, title, text, fields FROM docs WHERE {where} "
                                        "ORDER BY rowid", args):
            yield _doc(row)

    def ids(self) -> set[str]:
        where, args = self._where()
        return {r[0] for r in self._conn().execute(f"SELECT doc_id FROM docs WHERE {where}", args)}

    def counts(self) -> tuple[int, dict[str, int], dict[str, int]]:
        """(documents, documents per language, translations per language) in this view."""
        where, args = self._where()
        c = self._conn()
        n = int(c.execute(f"SELECT COUNT(*) FROM docs WHERE {where}", args).fetchone()[0])
        langs = dict(c.execute(f"SELECT lang, COUNT(*) FROM docs WHERE {where} GROUP BY lang ORDER BY lang", args))
        trs = dict(c.execute(f"SELECT tr_lang, COUNT(*) FROM docs WHERE {where} AND tr_lang IS NOT NULL "
                             "GROUP BY tr_lang", args))
        return n, langs, trs

    def __len__(self) -> int:
        return self.counts()[0]

    # ---- writes (writer only, under the index's writer lock) ---------------------------------------------
    def write(self, generation: int, docs: Iterable[Doc], translations: Mapping[str, Translation],
              remove: Sequence[str]) -> None:
        """One transaction: rows of `remove` (replaced or deleted ids) end at `generation`, `docs` begin there."""
        rows = [(d.doc_id, generation, d.lang, d.title, d.text, json.dumps(dict(d.fields), ensure_ascii=False),
                 *(translations.get(d.doc_id) or (None, None, None, None))) for d in docs]
        c = self._conn()
        with c:
            c.execute("INSERT OR REPLACE INTO meta VALUES ('written', ?)", (str(generation),))
            unique = list(dict.fromkeys(remove))
            for start in range(0, len(unique), _CHUNK):
                chunk = unique[start:start + _CHUNK]
                c.execute(f"UPDATE docs SET deleted = ? WHERE deleted IS NULL AND doc_id IN "
                          f"({','.join('?' * len(chunk))})", [generation, *chunk])
            c.executemany("INSERT INTO docs (doc_id, added, lang, title, text, fields, tr_lang, tr_title, tr_text, "
                          "tr_model) VALUES (?,?,?,?,?,?,?,?,?,?)", rows)

    def rollback_after(self, generation: int) -> bool:
        """Undo rows written for generations after `generation` (a commit that never published its manifest)."""
        c = self._conn()
        row = c.execute("SELECT value FROM meta WHERE key='written'").fetchone()
        if row is None or int(row[0]) <= generation:
            return False
        with c:
            c.execute("DELETE FROM docs WHERE added > ?", (generation,))
            c.execute("UPDATE docs SET deleted = NULL WHERE deleted > ?", (generation,))
            c.execute("INSERT OR REPLACE INTO meta VALUES ('written', ?)", (str(generation),))
        return True

    def purge(self, oldest_kept: int) -> int:
        """Remove versions no kept generation can see (ended at or before `oldest_kept`)."""
        c = self._conn()
        with c:
            return c.execute("DELETE FROM docs WHERE deleted IS NOT NULL AND deleted <= ?", (oldest_kept,)).rowcount

    def close(self) -> None:
        """Close the connections of every thread that read through this view (a server's pool threads each
        opened one; left open, each generation's would keep its page cache for the life of the thread). Callers
        close a view only when no read is in flight on it (a generation with no users)."""
        with self._conns_lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            conn.close()
        self._local = threading.local()
