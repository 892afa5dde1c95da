"""Live updates: add, replace and delete documents in every part of an index folder, atomically per batch.

Copy-on-write. The folder is copied to a temporary sibling and the batch applied to the copy:
  * doc store (SQLite): rows deleted / inserted or replaced;
  * translations (indexes built with document translation): the new documents translated by the index's own
    translator through the shared translation cache, exactly as `build.translate_docs` does at build time;
  * Lucene BM25 (and SPLADE impact) components: an IndexWriter deletes by the "id" term and adds documents made
    by Anserini's own generator with the same analyzer (xsearch.lucene_writer), so scores equal a fresh build's;
    a document in a language the index has no BM25 component for gets a new component;
  * FAISS components: ids removed (flat through the IndexIDMap2, IVF-PQ from its lists) and new vectors, encoded
    by the index's encoder, added under new int64 ids (HNSW cannot remove, so its graph is rebuilt from the kept
    plain vectors, never re-encoded). `ids.json` keeps one slot per int64 id, `null` for a deleted one, aligned
    with `vectors.npy`;
then the manifest is rewritten (doc_count, languages, per-component counts, generation), every file fsynced, and
the copy exchanged with the live folder in one atomic rename (renameat2 RENAME_EXCHANGE on Linux; elsewhere two
renames and a recovery step on the next update). A crash before the exchange leaves the old index as it was (the
next writer removes the stale copy); after it, the new index is complete and on disk, so it survives a restart.

Writers are serialised by a lock per folder, in-process (threading) and across processes (fcntl lock file
beside the folder). Readers are never blocked here: an open `Index` keeps its files; a server that must not
mix old and new files in one request passes `swap_guard` (see server/state.py).
"""
from __future__ import annotations

import contextlib
import json
import re
import shutil
import sqlite3
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, ContextManager, Iterable, Mapping, Sequence

import numpy as np

from .atomic import exchange as _exchange, fsync_tree as _fsync_tree, recover, writer_lock
from .build import FORMAT, MANIFEST
from .docstore import DocStore
from .errors import IndexFormatError, InputError, UnknownDocumentError
from .records import Doc

Log = Callable[[str], None]
_LANG = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$")


def as_doc(record: Doc | Mapping[str, Any]) -> Doc:
    """A Doc from a Doc or a mapping with id (or doc_id), lang, title, text and fields."""
    if isinstance(record, Doc):
        doc = record
    elif isinstance(record, Mapping):
        doc_id = record.get("id", record.get("doc_id"))
        doc = Doc(doc_id=doc_id, lang=record.get("lang"), title=record.get("title") or "",  # type: ignore[arg-type]
                  text=record.get("text") or "", fields=dict(record.get("fields") or {}))
    else:
        raise InputError(f"a document must be a Doc or a mapping, got {type(record).__name__}")
    if not isinstance(doc.doc_id, str) or not doc.doc_id.strip():
        raise InputError(f"document id must be a non-empty string, got {doc.doc_id!r}")
    if not isinstance(doc.lang, str) or not _LANG.match(doc.lang):
        raise InputError(f"document {doc.doc_id!r}: lang must be a language code like 'fr', got {doc.lang!r}")
    if not isinstance(doc.title, str) or not isinstance(doc.text, str):
        raise InputError(f"document {doc.doc_id!r}: title and text must be strings")
    if not doc.contents:
        raise InputError(f"document {doc.doc_id!r} has neither title nor text")
    try:
        json.dumps(dict(doc.fields), ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise InputError(f"document {doc.doc_id!r}: fields must be JSON values ({exc})") from None
    return doc


def apply_batch(index_path: str | Path, upserts: Iterable[Doc | Mapping[str, Any]] = (),
                deletes: Iterable[str] = (), *, encoder_for: Callable[[str], Any] | None = None,
                sparse_encoder_for: Callable[[str], Any] | None = None,
                swap_guard: Callable[[], ContextManager[Any]] | None = None,
                on_swapped: Callable[[], None] | None = None, log: Log | None = None) -> int:
    """Add or replace `upserts` and remove `deletes` in the index at `index_path`, all or nothing; returns the
    new document count.

    encoder_for / sparse_encoder_for: spec -> encoder (default: xsearch.encoders.make_encoder /
    make_sparse_encoder), so a caller that already holds the index's encoder does not load it twice.
    swap_guard: a context manager held around the atomic exchange and `on_swapped` (a server's write lock).
    on_swapped: called right after the exchange, inside swap_guard (a server reopens its Index there).
    Raises UnknownDocumentError (an InputError) when a delete names an id the index does not hold.
    """
    log = log or (lambda _m: None)
    docs = [as_doc(r) for r in upserts]
    dels = list(dict.fromkeys(deletes))
    _check_batch(docs, dels)
    path = Path(index_path).resolve()
    with writer_lock(path):
        recover(path)
        manifest = _read_manifest(path)
        if dels:
            held = _existing_ids(path / "docstore.sqlite", dels)
            missing = [d for d in dels if d not in held]
            if missing:
                raise UnknownDocumentError(missing)
        t = time.perf_counter()
        work = path.with_name(f".{path.name}.tmp-update-{uuid.uuid4().hex[:12]}")
        try:
            shutil.copytree(path, work, symlinks=True)
            count = _apply(work, manifest, docs, dels, _Encoders(encoder_for, sparse_encoder_for), log)
            _fsync_tree(work)
            with (swap_guard() if swap_guard else contextlib.nullcontext()):
                old = _exchange(work, path)
                work = old
                if on_swapped is not None:
                    on_swapped()
        finally:
            shutil.rmtree(work, ignore_errors=True)
        log(f"batch applied to {path}: {len(docs)} added or replaced, {len(dels)} deleted, {count} documents "
            f"({time.perf_counter() - t:.2f}s)")
        return count


def _check_batch(docs: Sequence[Doc], dels: Sequence[str]) -> None:
    if not docs and not dels:
        raise InputError("empty batch: give documents to add or replace, or ids to delete")
    seen: set[str] = set()
    for d in docs:
        if d.doc_id in seen:
            raise InputError(f"document id {d.doc_id!r} appears twice in the batch")
        seen.add(d.doc_id)
    for d in dels:
        if not isinstance(d, str) or not d:
            raise InputError(f"ids to delete must be non-empty strings, got {d!r}")
    both = seen.intersection(dels)
    if both:
        raise InputError(f"ids both added and deleted in one batch: {sorted(both)}")


# ---- applying a batch to the copy -------------------------------------------------------------------------------
class _Encoders:
    def __init__(self, dense: Callable[[str], Any] | None, sparse: Callable[[str], Any] | None):
        self._dense, self._sparse = dense, sparse
        self._cache: dict[tuple[str, str], Any] = {}

    def dense(self, spec: str):
        if ("d", spec) not in self._cache:
            if self._dense is None:
                from .encoders import make_encoder

                self._cache["d", spec] = make_encoder(spec)
            else:
                self._cache["d", spec] = self._dense(spec)
        return self._cache["d", spec]

    def sparse(self, spec: str):
        if ("s", spec) not in self._cache:
            if self._sparse is None:
                from .encoders import make_sparse_encoder

                self._cache["s", spec] = make_sparse_encoder(spec)
            else:
                self._cache["s", spec] = self._sparse(spec)
        return self._cache["s", spec]


def _read_manifest(path: Path) -> dict:
    mpath = path / MANIFEST
    if not mpath.exists():
        raise IndexFormatError(f"{path} is not an xsearch index (no {MANIFEST})")
    manifest = json.loads(mpath.read_text(encoding="utf-8"))
    if manifest.get("format") != FORMAT:
        raise IndexFormatError(f"{mpath}: format {manifest.get('format')!r}, expected {FORMAT!r}")
    return manifest


def _existing_ids(db: Path, ids: Sequence[str]) -> set[str]:
    found: set[str] = set()
    # immutable: the live folder is never written in place, and a read-only open must not add -wal/-shm files to it
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro&immutable=1", uri=True)) as con:
        for start in range(0, len(ids), 500):
            chunk = list(ids[start:start + 500])
            q = f"SELECT doc_id FROM docs WHERE doc_id IN ({','.join('?' * len(chunk))})"
            found.update(r[0] for r in con.execute(q, chunk))
    return found


def _apply(work: Path, manifest: dict, docs: list[Doc], dels: list[str], encoders: _Encoders, log: Log) -> int:
    touched = list(dict.fromkeys([*dels, *(d.doc_id for d in docs)]))
    db = work / "docstore.sqlite"
    with contextlib.closing(sqlite3.connect(db)) as con, con:
        for start in range(0, len(touched), 500):
            chunk = touched[start:start + 500]
            marks = ",".join("?" * len(chunk))
            con.execute(f"DELETE FROM docs WHERE doc_id IN ({marks})", chunk)
            con.execute(f"DELETE FROM translations WHERE doc_id IN ({marks})", chunk)
    store = DocStore(db)
    store.put(docs)

    translations: dict[str, tuple[str, str]] = {}
    tr = manifest.get("translation")
    if tr and docs:
        from .build import translate_docs

        translations = translate_docs(docs, tr["translator"], tr["target_lang"], False, log)
        store.put_translations((did, tr["target_lang"], t, x, tr["translator"])
                               for did, (t, x) in translations.items())
    store.close()

    components: dict[str, dict] = manifest["components"]
    for name, comp in list(components.items()):
        folder = work / comp["path"]
        if comp["type"] == "bm25":
            _update_bm25(folder, comp, docs, touched, translations)
        elif comp["type"] == "dense":
            _update_dense(folder, comp, docs, touched, translations, encoders)
        elif comp["type"] == "impact":
            _update_impact(folder, comp, docs, touched, translations, encoders)
        else:
            raise IndexFormatError(f"component {name!r} has type {comp['type']!r}, which live updates do not know")
    _add_language_components(work, manifest, docs)
    return _write_manifest(work, manifest, len(docs), len(dels))


def _original_bm25(components: Mapping[str, dict]) -> dict[str, dict]:
    return {n: c for n, c in components.items() if c["type"] == "bm25" and c.get("text", "original") == "original"}


def _update_bm25(folder: Path, comp: dict, docs: list[Doc], touched: list[str],
                 translations: Mapping[str, tuple[str, str]]) -> None:
    from .lucene_writer import LuceneWriter

    text = comp.get("text", "original")
    if text == "original":
        records = [{"id": d.doc_id, "contents": d.contents} for d in docs if d.lang == comp["lang"]]
    else:  # translation:<lang>, as build.py: the translation, or the original where there is none
        records = [{"id": d.doc_id, "contents": (f"{translations[d.doc_id][0]}\n{translations[d.doc_id][1]}".strip()
                                                 if d.doc_id in translations else d.contents)} for d in docs]
    with LuceneWriter(folder, comp["lang"]) as writer:
        writer.delete(touched)
        writer.upsert(records)
        comp["docs"] = writer.commit()


def _add_language_components(work: Path, manifest: dict, docs: list[Doc]) -> None:
    """A document in a language the index has no BM25 component for: build one, add it to the BM25 routes."""
    originals = _original_bm25(manifest["components"])
    if not originals:
        return
    have = {c["lang"] for c in originals.values()}
    from .jvm import JNI_LOCK
    from .lucene import analyzer_for, build_bm25

    template = next(iter(originals.values()))
    for lang in sorted({d.lang for d in docs} - have):
        records = [{"id": d.doc_id, "contents": d.contents} for d in docs if d.lang == lang]
        with JNI_LOCK:  # a whole (small) Anserini run: searches wait for it, but this happens once per language
            build_bm25(records, work / "bm25" / lang, lang)
        name = f"bm25-{lang}"
        manifest["components"][name] = {**template, "path": f"bm25/{lang}", "lang": lang,
                                        "analyzer": analyzer_for(lang), "docs": len(records)}
        for route in manifest["routes"].values():
            comps = route.get("components") or []
            if comps and all(c in originals for c in comps):
                comps.append(name)


def _update_dense(folder: Path, comp: dict, docs: list[Doc], touched: list[str],
                  translations: Mapping[str, tuple[str, str]], encoders: _Encoders) -> None:
    from .dense import make_faiss_index
    from .lazy import require

    faiss = require("faiss")
    index = faiss.read_index(str(folder / "index.faiss"))
    ids: list[str | None] = json.loads((folder / "ids.json").read_text(encoding="utf-8"))
    vec_path = folder / "vectors.npy"
    vectors = np.load(vec_path) if vec_path.exists() else None

    if comp.get("text", "original") == "original":
        new_ids, texts = [d.doc_id for d in docs], [d.contents for d in docs]
    else:
        new_ids = [d.doc_id for d in docs if d.doc_id in translations]
        texts = [f"{translations[i][0]}\n{translations[i][1]}".strip() for i in new_ids]

    slot = {d: i for i, d in enumerate(ids) if d is not None}
    gone = [slot[d] for d in touched if d in slot]
    for i in gone:
        ids[i] = None
    new_vecs = np.zeros((0, int(comp["dim"])), dtype=np.float32)
    if texts:
        encoder = encoders.dense(comp["encoder_spec"])
        new_vecs = np.ascontiguousarray(encoder.encode_passages(texts, batch_size=32, show_progress=False),
                                        dtype=np.float32)
        if new_vecs.ndim != 2 or new_vecs.shape != (len(texts), int(comp["dim"])):
            raise IndexFormatError(f"encoder {comp['encoder_spec']!r} returned vectors of shape {new_vecs.shape}; "
                                   f"the index holds {comp['dim']}-d vectors")
    first = len(ids)
    positions = np.arange(first, first + len(new_ids), dtype=np.int64)
    ids.extend(new_ids)
    if vectors is not None:
        vectors = np.concatenate([vectors.astype(np.float32, copy=False), new_vecs])
    if comp.get("kind") == "hnsw" and gone:
        # HNSW graphs cannot drop nodes: rebuild the graph from the kept plain vectors (no re-encoding)
        if vectors is None:
            raise IndexFormatError(f"{folder}: an HNSW index needs vectors.npy to delete documents")
        live = np.array([i for i, d in enumerate(ids) if d is not None], dtype=np.int64)
        index = make_faiss_index(int(comp["dim"]), len(live), "hnsw")
        if len(live):
            index.add_with_ids(np.ascontiguousarray(vectors[live]), live)
    else:
        if gone and isinstance(index, faiss.IndexIDMap) and faiss.try_extract_index_ivf(index.index) is not None:
            # written by xsearch 0.1.0 before this fix: IndexIVF.remove_ids does not renumber, so this wrapper
            # would mislabel hits
            raise IndexFormatError(f"{folder}: an IVF index wrapped in IndexIDMap2 cannot delete documents safely; "
                                   "rebuild the index (xsearch index ...) and apply the update again")
        if gone:
            index.remove_ids(np.array(sorted(gone), dtype=np.int64))
        if len(new_vecs):
            index.add_with_ids(new_vecs, positions)
    faiss.write_index(index, str(folder / "index.faiss"))
    (folder / "ids.json").write_text(json.dumps(ids), encoding="utf-8")
    if vectors is not None:
        np.save(vec_path, vectors)
    comp["docs"] = int(index.ntotal)


def _update_impact(folder: Path, comp: dict, docs: list[Doc], touched: list[str],
                   translations: Mapping[str, tuple[str, str]], encoders: _Encoders) -> None:
    from .encoders.splade import quantise
    from .lucene_writer import LuceneWriter

    use_tr = str(comp.get("text", "original")).startswith("translation:")
    texts = [("\n".join(translations[d.doc_id]) if use_tr and d.doc_id in translations else d.contents)
             for d in docs]
    records = []
    if texts:
        encoder = encoders.sparse(comp["encoder_spec"])
        for start in range(0, len(texts), 32):
            for d, vec in zip(docs[start:start + 32], encoder.encode_passages(texts[start:start + 32])):
                records.append({"id": d.doc_id, "contents": "", "vector": quantise(vec)})
    with LuceneWriter(folder, impact=True) as writer:
        writer.delete(touched)
        writer.upsert(records)
        comp["docs"] = writer.commit()


def _write_manifest(work: Path, manifest: dict, n_upserted: int, n_deleted: int) -> int:
    with contextlib.closing(sqlite3.connect(f"file:{work / 'docstore.sqlite'}?mode=ro&immutable=1", uri=True)) as con:
        count = int(con.execute("SELECT COUNT(*) FROM docs").fetchone()[0])
        languages = dict(con.execute("SELECT lang, COUNT(*) FROM docs GROUP BY lang ORDER BY lang").fetchall())
        if manifest.get("translation"):
            manifest["translation"]["docs"] = int(con.execute(
                "SELECT COUNT(*) FROM translations WHERE lang=?",
                (manifest["translation"]["target_lang"],)).fetchone()[0])
    manifest["doc_count"] = count
    manifest["languages"] = languages
    manifest["generation"] = int(manifest.get("generation", 0)) + 1
    manifest["updated"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    manifest["last_update"] = {"upserted": n_upserted, "deleted": n_deleted}
    tmp = work / (MANIFEST + ".part")
    tmp.write_text(json.dumps(manifest, indent=2, ensure_ascii=False), encoding="utf-8")
    tmp.replace(work / MANIFEST)
    return count


__all__ = ["apply_batch", "as_doc", "recover", "writer_lock", "UnknownDocumentError"]
