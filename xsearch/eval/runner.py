"""Run a benchmark: build (or reuse) its indexes, search every query in one batch per condition, score, compare
against the baseline with significance tests, and write runs, plots and a Markdown report."""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from ..components import Models
from ..config import CorpusSpec, IndexConfig
from ..errors import InputError
from ..fusion import fuse
from ..paths import cache_dir
from ..records import Run
from .benchmark import Benchmark, CollectionSpec, IndexSpec
from .collection import Collection, clirudit_parquet, oracle_docs, taln_collection, trec_collection
from .split import query_split

Log = Callable[[str], None]


@dataclass
class BenchmarkResult:
    benchmark: Benchmark
    collection_stats: dict
    runs: dict[str, Run]
    per_query: dict  # condition -> per-query DataFrame
    timings: dict[str, float] = field(default_factory=dict)
    index_timings: dict[str, dict] = field(default_factory=dict)
    split: dict[str, str] = field(default_factory=dict)   # query id -> dev | test (xsearch.eval.split)
    query_vectors: dict[str, dict[str, int]] = field(default_factory=dict)  # encoder -> texts stored / encoded


def load_collection(spec: CollectionSpec) -> Collection:
    if spec.kind == "taln":
        return taln_collection(spec.path)
    if spec.kind == "clirudit":
        if not spec.path:
            raise InputError("a clirudit collection needs 'path' (the folder of parquet files)")
        return clirudit_parquet(spec.path)
    if not (spec.path and spec.topics and spec.qrels):
        raise InputError("a trec collection needs 'path' (corpus JSONL), 'topics' and 'qrels'")
    return trec_collection(spec.path, spec.topics, spec.qrels)


def index_folder(bench: Benchmark, name: str, spec: IndexSpec, collection: Collection) -> Path:
    """Indexes live in the cache, keyed by their spec and the collection, so a changed recipe rebuilds."""
    key = json.dumps({"spec": spec.cache_key(), "collection": collection.name, "docs": len(collection.docs),
                      "first": collection.docs[0].doc_id if collection.docs else ""}, sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:10]
    return cache_dir() / "eval-indexes" / f"{bench.name}-{name}-{digest}"


def ensure_index(bench: Benchmark, name: str, collection: Collection, log: Log, show_progress: bool,
                 rebuild: bool = False) -> Path:
    from ..build import build_index
    from ..translate import make_translator

    spec = bench.indexes[name]
    folder = index_folder(bench, name, spec, collection)
    from ..storage.manifest import generations

    if generations(folder) and not rebuild:
        return folder
    docs = collection.docs
    if spec.docs == "oracle":
        fallback = (make_translator(spec.oracle_fallback, cache_path=cache_dir() / "translations.sqlite")
                    if spec.oracle_fallback else None)
        docs = oracle_docs(collection, fallback)
    config = IndexConfig(name=f"{bench.name}-{name}", corpus=CorpusSpec(path=f"<{collection.name}:{spec.docs}>"),
                         bm25=spec.bm25, dense=spec.dense, translate=spec.translate, splade=spec.splade, xqg=spec.xqg,
                         components=spec.components, fusions=spec.fusions)
    log(f"building index {name!r} ({len(docs)} docs) in {folder}")
    build_index(config, folder, docs=docs, show_progress=show_progress, log=log)
    return folder


def run_benchmark(bench: Benchmark, out_dir: str | Path, only: Sequence[str] | None = None, log: Log = print,
                  show_progress: bool = True, rebuild: bool = False, everything: bool = False) -> BenchmarkResult:
    """Search and score the conditions: all but the opt-in ones (`everything`: those too); `only` restricts them,
    keeping what fusions need."""
    from ..index import open_index
    from .metrics import evaluate

    out_dir = Path(out_dir)
    conditions = _select(bench, only, everything)
    t0 = time.perf_counter()
    collection = load_collection(bench.collection)
    stats = collection.stats()
    timings = {"collection": round(time.perf_counter() - t0, 2)}
    log(f"collection {collection.name}: {stats}")

    indexes = {}
    index_timings = {}
    models = eval_models(bench.query_vector_cache)
    for name in dict.fromkeys(c.index for c in conditions if c.index):
        t = time.perf_counter()
        folder = ensure_index(bench, name, collection, log, show_progress, rebuild)
        indexes[name] = open_index(folder, models)
        index_timings[name] = indexes[name].manifest.get("timings_s", {})
        timings[f"index:{name}"] = round(time.perf_counter() - t, 2)

    queries = [q for q in collection.queries]
    runs: dict[str, Run] = {}
    per_query = {}
    run_dir = out_dir / "runs" / bench.name
    for cond in conditions:
        t = time.perf_counter()
        if cond.fuse:
            run = fuse([runs[p] for p in cond.fuse], method=cond.method, weights=cond.weights, norm=cond.norm,
                       rrf_k=cond.rrf_k, rrf_fill=cond.rrf_fill).cut(bench.k)
        else:
            index = indexes[cond.index]
            if cond.route not in index.routes:
                raise InputError(f"condition {cond.name!r}: index {cond.index!r} has no route {cond.route!r} "
                                 f"(it has {index.routes})")
            run = index.retriever(cond.route).search(queries, bench.k)
        timings[f"search:{cond.name}"] = round(time.perf_counter() - t, 2)
        runs[cond.name] = run
        run.write_trec(run_dir / f"{cond.name}.trec.gz", tag=cond.name)
        per_query[cond.name] = evaluate(run, collection.qrels, bench.measures)
        means = per_query[cond.name].mean()
        log(f"  {cond.name:24s} " + "  ".join(f"{m}={v:.3f}" for m, v in means.items())
            + f"  ({timings[f'search:{cond.name}']:.1f}s)")
    timings["total"] = round(time.perf_counter() - t0, 2)
    query_vectors = {enc.name: {"stored": enc.stored_hits, "encoded": enc.encoded} for enc in models.dense_encoders()}
    result = BenchmarkResult(bench, stats, runs, per_query, timings, index_timings,
                             split=query_split(collection.qrels, bench.split), query_vectors=query_vectors)
    result.qrels = collection.qrels  # type: ignore[attr-defined]
    return result


QUERY_VECTORS = "query-vectors.sqlite"   # in the cache folder: the evaluation's query vectors across runs


def eval_models(persist: bool = False) -> Models:
    """The models every index of a benchmark searches with: one query encoder per spec for all of them (each
    query text encoded once per run); with `persist`, its vectors are kept across runs in the cache's query-vector
    store (xsearch.qvstore; keyed by encoder name, so a rerun encodes only queries it has not seen)."""
    from ..encoders import make_encoder
    from ..qcache import QueryCachingEncoder
    from ..qvstore import QueryVectorStore

    store = QueryVectorStore(cache_dir() / QUERY_VECTORS) if persist else None
    return Models(dense=lambda spec: QueryCachingEncoder(make_encoder(spec), store=store))


def _select(bench: Benchmark, only: Sequence[str] | None, everything: bool = False):
    if not only:
        return [c for c in bench.conditions if everything or not c.opt_in]
    by_name = {c.name: c for c in bench.conditions}
    missing = [n for n in only if n not in by_name]
    if missing:
        raise InputError(f"unknown condition(s) {missing}; the benchmark has {list(by_name)}")
    wanted: set[str] = set()

    def add(n: str) -> None:
        wanted.add(n)
        for p in by_name[n].fuse or []:
            add(p)

    for n in [*only, bench.baseline]:
        add(n)
    return [c for c in bench.conditions if c.name in wanted]
