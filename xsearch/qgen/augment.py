"""xQG: passage vectors augmented with the vectors of queries generated from the passage.

Zhuang, Shou and Zuccon (2023), "Augmenting Passage Representations with Query Generation for Enhanced
Cross-Lingual Dense Retrieval", SIGIR '23, arXiv:2305.03950; code github.com/ielab/xQG4xDR. The authors' code
(fuse_embeds.py) computes, for a passage p with generated queries q_1..q_m (5 sampled queries in each of 7
languages there, m = 35, each encoded by the same dense retriever):

    formula "xqg":   p' = (1 - α) · E(p) + α · Σ_i E(q_i)          (no re-normalisation; α = 0.01 in the README,
                                                                     0.02 by default in fuse_embeds.py)

and indexes p' for inner-product search. The paper itself is not quoted here (its method section was not
available to check); the formula above is read from the released code that produced its results. Ours, kept as
an option, is scale-free in the number of queries and keeps vectors unit-length (cosine stays cosine):

    formula "mean":  p' = normalise(E(p) + α · mean_i E(q_i))

A passage with no generated query gets (1 - α)·E(p) ("xqg": the sum is empty) or E(p) ("mean"). For m queries
the two weigh the query centroid against the passage alike when α_mean = α_xqg · m / (1 - α_xqg) (up to the
per-passage norm): α_xqg 0.01 with m = 35 is α_mean ≈ 0.35; with m = 10, α_mean 0.1/0.3/0.5 ≈ α_xqg 0.01/0.03/0.05.

Layout in the index folder (component "dense-xqg", path dense/xqg):
  qgen.json      {"generator", "model_id", "n", "lang", "docs": [{"id", "lang", "queries": [...]}, ...]}
  qvectors.npy   (docs, dim) float32: the mean generated-query vector of each doc (zero row for none), row i
                 aligned with docs[i] and with row i of the plain passage vectors (dense/original/vectors.npy)
  index.faiss, ids.json, vectors.npy   the augmented vectors and their FAISS index (as every dense component)
`reaugment(index, alpha)` rewrites index.faiss from the stored plain passage vectors and qvectors.npy: a new α
costs no encoding. Sweep components (dense/xqg-<formula><alpha>) read the same qgen.json / qvectors.npy.
Documents added later by live updates (xsearch.update) enter un-augmented, as their plain vectors.
"""
from __future__ import annotations

import json
import os
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from ..errors import IndexFormatError, InputError

if TYPE_CHECKING:
    from ..config import XQGSpec
    from ..records import Doc

Log = Callable[[str], None]
FORMULAS = {
    "xqg": "(1-α)·p + α·Σ q  (ielab/xQG4xDR fuse_embeds.py; not re-normalised)",
    "mean": "normalise(p + α·mean q)",
}
QUERIES_FILE, QVECTORS_FILE = "qgen.json", "qvectors.npy"


def augment_vectors(passages: np.ndarray, query_means: np.ndarray, counts: Sequence[int] | np.ndarray,
                    alpha: float, formula: str = "xqg") -> np.ndarray:
    """Augmented passage vectors (see the module docstring). `query_means[i]` is the mean of passage i's
    generated-query vectors and `counts[i]` their number (the paper's sum is counts[i] · query_means[i])."""
    p = np.asarray(passages, dtype=np.float32)
    q = np.asarray(query_means, dtype=np.float32)
    c = np.asarray(counts, dtype=np.float32).reshape(-1, 1)
    if p.shape != q.shape or p.ndim != 2 or len(c) != len(p):
        raise InputError(f"passage vectors {p.shape}, query means {q.shape} and {len(c)} counts do not match")
    if alpha < 0:
        raise InputError(f"alpha must be >= 0, got {alpha}")
    if formula == "xqg":
        return ((1.0 - alpha) * p + alpha * c * q).astype(np.float32)
    if formula == "mean":
        v = p + alpha * np.where(c > 0, q, 0.0)
        return (v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)).astype(np.float32)
    raise InputError(f"unknown xQG formula {formula!r}; expected one of {sorted(FORMULAS)}")


def query_means(query_vectors: np.ndarray, counts: Sequence[int]) -> np.ndarray:
    """Mean of consecutive groups of `query_vectors` (group i has counts[i] rows; an empty group gives zeros)."""
    counts = list(counts)
    dim = query_vectors.shape[1] if query_vectors.ndim == 2 else 0
    out = np.zeros((len(counts), dim), np.float32)
    start = 0
    for i, c in enumerate(counts):
        if c:
            out[i] = query_vectors[start:start + c].mean(axis=0)
        start += c
    if start != len(query_vectors):
        raise InputError(f"{len(query_vectors)} query vectors for {start} queries")
    return out


def variant_name(formula: str, alpha: float) -> str:
    return f"{formula}{alpha:g}"


# ---------------------------------------------------------------------------------------------------- build stage
def build_xqg(spec: "XQGSpec", docs: Sequence["Doc"], encoder: Any, folder: Path, dense: dict, *,
              show_progress: bool = False, log: Log = print) -> tuple[dict[str, dict], dict[str, dict]]:
    """Build stage (called by xsearch.build when IndexConfig.xqg.enabled): generate spec.n queries per document
    (cached in cache_dir()/qgen.sqlite), encode them with encode_queries, write dense/xqg and one component per
    sweep variant, return (components, routes) for the manifest. `dense` is the plain dense component, whose
    vectors.npy (the passage vectors, in `docs` order) is reused: no passage is encoded again."""
    from ..dense import DenseIndex
    from ..paths import cache_dir
    from ..qcache import QueryCachingEncoder
    from . import make_query_generator

    source = folder / dense["path"]
    plain = np.load(source / "vectors.npy")
    ids = json.loads((source / "ids.json").read_text(encoding="utf-8"))
    if ids != [d.doc_id for d in docs]:
        raise IndexFormatError(f"{source}: ids.json is not in document order")
    enc = encoder if isinstance(encoder, QueryCachingEncoder) else QueryCachingEncoder(encoder)
    options: dict[str, Any] = {}
    if spec.generator == "keyphrase":
        options.update(encoder=enc, translator=spec.translate)
    elif spec.translate:
        raise InputError(f"xqg.translate applies to the keyphrase generator, not to {spec.generator!r}")
    generator = make_query_generator(spec.generator, cache_path=cache_dir() / "qgen.sqlite",
                                     show_progress=show_progress, **options)

    t = time.perf_counter()
    queries: list[list[str]] = [[] for _ in docs]
    by_lang: dict[str, list[int]] = {}
    for i, d in enumerate(docs):
        by_lang.setdefault(d.lang, []).append(i)
    for lang, idx in by_lang.items():
        out = generator.generate([docs[i].contents for i in idx], spec.n, spec.lang, src_lang=lang,
                                 passage_vectors=plain[idx])
        for i, qs in zip(idx, out):
            queries[i] = qs
    generation_s = time.perf_counter() - t
    hits, misses = getattr(generator, "hits", 0), getattr(generator, "misses", len(docs))
    log(f"  xqg: {spec.generator} generated queries for {misses} documents ({hits} from the cache) in "
        f"{generation_s:.1f}s")

    t = time.perf_counter()
    flat = [q for qs in queries for q in qs]
    counts = [len(qs) for qs in queries]
    qvecs = _encode_sorted(enc, flat)
    means = query_means(qvecs, counts)
    encode_s = time.perf_counter() - t
    log(f"  xqg: encoded {len(flat)} generated queries in {encode_s:.1f}s")

    out_dir = folder / "dense" / "xqg"
    out_dir.mkdir(parents=True, exist_ok=True)
    translated = spec.generator == "keyphrase" and spec.translate not in (None, "none")
    record = {"generator": spec.generator, "model_id": getattr(generator, "model_id", ""), "n": spec.n,
              "lang": spec.lang, "translate": spec.translate if spec.generator == "keyphrase" else None,
              "docs": [{"id": d.doc_id, "lang": d.lang, "queries": qs} for d, qs in zip(docs, queries)]}
    (out_dir / QUERIES_FILE).write_text(json.dumps(record, ensure_ascii=False), encoding="utf-8")
    np.save(out_dir / QVECTORS_FILE, means)

    common = {"generator": spec.generator, "model_id": record["model_id"], "n": spec.n, "lang": spec.lang,
              "query_lang": spec.lang if (translated or spec.generator != "keyphrase") else
              "/".join(sorted(by_lang)), "translate": record["translate"], "queries_path": "dense/xqg",
              "source": dense["path"], "docs_with_queries": int(sum(c > 0 for c in counts)),
              "queries": len(flat), "generation_s": round(generation_s, 3), "encode_s": round(encode_s, 3),
              "generated": misses, "cached": hits}
    components: dict[str, dict] = {}
    routes: dict[str, dict] = {}
    variants = [(spec.alpha, spec.formula, "dense-xqg", "dense/xqg")]
    variants += [(v.alpha, v.formula, f"dense-xqg@{variant_name(v.formula, v.alpha)}",
                  f"dense/xqg-{variant_name(v.formula, v.alpha)}") for v in spec.sweep]
    for alpha, formula, name, path in variants:
        vectors = augment_vectors(plain, means, counts, alpha, formula)
        target = folder / path
        target.mkdir(parents=True, exist_ok=True)
        np.save(target / "vectors.npy", vectors)
        DenseIndex.build(vectors, ids, dense["kind"]).save(target)
        components[name] = {**dense, "path": path,  # text stays "original": live updates add new docs (plain)
                            "xqg": {**common, "alpha": alpha, "formula": formula}}
        routes[name] = {"components": [name], "about": f"dense retrieval on passage vectors augmented with "
                        f"{spec.n} {spec.generator} queries each ({formula}, alpha={alpha:g})"}
    return components, routes


def _encode_sorted(encoder: Any, texts: list[str], batch_size: int = 256) -> np.ndarray:
    dim = int(encoder.dim)
    if not texts:
        return np.zeros((0, dim), np.float32)
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = np.empty((len(texts), dim), np.float32)
    out[order] = encoder.encode_queries([texts[i] for i in order], batch_size=batch_size)
    return out


# ---------------------------------------------------------------------------------------------------- afterwards
def _manifest(index_path: Path) -> dict:
    from ..build import MANIFEST

    path = index_path / MANIFEST
    if not path.exists():
        raise IndexFormatError(f"{index_path} is not an xsearch index (no {MANIFEST})")
    return json.loads(path.read_text(encoding="utf-8"))


def _xqg_component(manifest: dict, component: str | None) -> tuple[str, dict]:
    comps = {n: c for n, c in manifest["components"].items() if "xqg" in c}
    if not comps:
        raise InputError("this index has no xQG component: build it with xqg.enabled")
    name = component or ("dense-xqg" if "dense-xqg" in comps else next(iter(comps)))
    if name not in comps:
        raise InputError(f"no xQG component {name!r}; this index has {sorted(comps)}")
    return name, comps[name]


def load_generated(index_path: str | Path, component: str | None = None) -> dict:
    """qgen.json of the index's xQG component (generator, n, lang and, per doc, its queries)."""
    index_path = Path(index_path)
    _, comp = _xqg_component(_manifest(index_path), component)
    return json.loads((index_path / comp["xqg"]["queries_path"] / QUERIES_FILE).read_text(encoding="utf-8"))


def generated_queries(index: Any, doc_id: str, component: str | None = None) -> list[str] | None:
    """The queries generated for `doc_id` (an Index, read once per Index, or an index folder); None if the doc
    has no entry."""
    memo = getattr(index, "_components", None)
    key = f"qgen:{component}"
    if isinstance(memo, dict) and key in memo:
        by_id = memo[key]
    else:
        record = load_generated(Path(getattr(index, "path", index)), component)
        by_id = {entry["id"]: entry["queries"] for entry in record["docs"]}
        if isinstance(memo, dict):
            memo[key] = by_id
    queries = by_id.get(doc_id)
    return list(queries) if queries is not None else None


def reaugment(index_path: str | Path, alpha: float, formula: str | None = None,
              component: str = "dense-xqg") -> dict:
    """Rewrite `component`'s FAISS index for a new α (and formula) from the stored plain passage vectors and
    mean generated-query vectors; nothing is encoded. Updates the manifest; returns the component entry.
    Holds the index's writer lock (xsearch.update), and replaces each file atomically; reopen the index after."""
    from ..build import MANIFEST
    from ..dense import DenseIndex
    from ..update import writer_lock

    index_path = Path(index_path).resolve()
    with writer_lock(index_path):
        manifest = _manifest(index_path)
        name, comp = _xqg_component(manifest, component)
        x = comp["xqg"]
        formula = formula or x["formula"]
        if formula not in FORMULAS:
            raise InputError(f"unknown xQG formula {formula!r}; expected one of {sorted(FORMULAS)}")
        source = index_path / x["source"]
        plain = np.load(source / "vectors.npy")
        src_ids: list[str | None] = json.loads((source / "ids.json").read_text(encoding="utf-8"))
        qdir = index_path / x["queries_path"]
        qdocs = json.loads((qdir / QUERIES_FILE).read_text(encoding="utf-8"))["docs"]
        qmeans = np.load(qdir / QVECTORS_FILE)
        live = [i for i, d in enumerate(src_ids) if d is not None]
        means = np.zeros((len(live), plain.shape[1]), np.float32)
        counts = np.zeros(len(live), np.int64)
        for row, i in enumerate(live):  # a slot keeps its queries only while it holds the same document version
            if i < len(qdocs) and qdocs[i]["id"] == src_ids[i]:
                means[row], counts[row] = qmeans[i], len(qdocs[i]["queries"])
        vectors = augment_vectors(plain[live], means, counts, alpha, formula)
        folder = index_path / comp["path"]
        with tempfile.TemporaryDirectory(dir=folder) as tmp:
            tmp_path = Path(tmp)
            DenseIndex.build(vectors, [src_ids[i] for i in live], comp["kind"]).save(tmp_path)
            np.save(tmp_path / "vectors.npy", vectors)
            for f in ("vectors.npy", "ids.json", "index.faiss"):
                os.replace(tmp_path / f, folder / f)
        comp["xqg"] = {**x, "alpha": alpha, "formula": formula}
        comp["docs"] = len(live)
        route = manifest["routes"].get(name)
        if route is not None and "about" in route:
            route["about"] = (f"dense retrieval on passage vectors augmented with {x['n']} {x['generator']} queries "
                              f"each ({formula}, alpha={alpha:g})")
        tmp_manifest = index_path / (MANIFEST + ".part")
        tmp_manifest.write_text(json.dumps(manifest, indent=2, ensure_ascii=False), encoding="utf-8")
        os.replace(tmp_manifest, index_path / MANIFEST)
        return comp


def summary(index_path: str | Path, component: str | None = None) -> dict:
    """Counts for a report: docs, docs with queries, mean queries per doc, most frequent queries."""
    record = load_generated(index_path, component)
    lengths = [len(e["queries"]) for e in record["docs"]]
    freq = Counter(q for e in record["docs"] for q in e["queries"])
    return {"docs": len(lengths), "with_queries": sum(1 for n in lengths if n),
            "mean_queries": float(np.mean(lengths)) if lengths else 0.0, "top": freq.most_common(10)}
