"""Choose a fusion (method, normalisation, RRF k, weights per route) by nDCG@10 on the dev queries only.

Why vectorised: a coordinate search tries ~1,000 fusions; fusing 3,000 queries x 5 runs with dicts takes seconds
each, as NumPy arrays (query x candidate, candidates = the union of the runs' top k) milliseconds. The formulas are
xsearch.fusion's (`fuse` gives the same ranking; tests check it); ties are broken by doc id as Run.ranked does.
"""
from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from ..errors import InputError
from ..records import Run
from .metrics import judged_queries

Qrels = Mapping[str, Mapping[str, int]]
WEIGHT_GRID: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0)
RRF_KS: tuple[int, ...] = (10, 30, 60, 100)
NORMS: tuple[str, ...] = ("minmax", "zscore")


@dataclass
class Fusion:
    """One fusion setting and its dev score; `parts` keeps only routes with a weight > 0."""

    parts: list[str]
    weights: list[float]
    method: str = "rrf"
    norm: str = "minmax"
    rrf_k: int = 60
    dev: float = 0.0
    tried: int = 0
    history: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"fuse": self.parts, "weights": self.weights, "method": self.method, "norm": self.norm,
                "rrf_k": self.rrf_k, "dev_nDCG@10": round(self.dev, 4), "tried": self.tried}


class RunStack:
    """The runs of `names` over the judged queries of `qrels` as arrays: ranks and scores [run, query, candidate]."""

    def __init__(self, runs: Mapping[str, Run], names: Sequence[str], qrels: Qrels, depth: int = 100):
        missing = [n for n in names if n not in runs]
        if missing:
            raise InputError(f"no run for {missing}; have {sorted(runs)}")
        if len(names) < 2:
            raise InputError(f"a fusion needs at least two routes, got {list(names)}")
        self.names = list(names)
        self.qids = judged_queries(qrels)
        if not self.qids:
            raise InputError("no judged query to tune on")
        ranked = [{q: runs[n].ranked(q, depth) for q in self.qids} for n in names]
        cands = [sorted({d for r in ranked for d, _ in r[q]}) for q in self.qids]
        width = max(1, max(len(c) for c in cands))
        shape = (len(names), len(self.qids), width)
        self.rank = np.zeros(shape, dtype=np.float64)        # 0 = not retrieved by that run
        self.score = np.zeros(shape, dtype=np.float64)
        self.valid = np.zeros(shape[1:], dtype=bool)
        self.gain = np.zeros(shape[1:], dtype=np.float64)
        self.idcg = np.zeros(len(self.qids), dtype=np.float64)
        discount = 1.0 / np.log2(np.arange(2, 12))
        for j, (q, cs) in enumerate(zip(self.qids, cands)):
            col = {d: c for c, d in enumerate(cs)}
            self.valid[j, :len(cs)] = True
            rel = qrels[q]
            self.gain[j, :len(cs)] = [max(0, rel.get(d, 0)) for d in cs]
            ideal = sorted((r for r in rel.values() if r > 0), reverse=True)[:10]
            self.idcg[j] = float(np.dot(ideal, discount[:len(ideal)]))
            for i, r in enumerate(ranked):
                for pos, (d, s) in enumerate(r[q], start=1):
                    self.rank[i, j, col[d]] = pos
                    self.score[i, j, col[d]] = s
        self._discount = discount

    def features(self, method: str, norm: str = "minmax", rrf_k: int = 60) -> np.ndarray:
        """What each run adds per candidate before weighting (fusion.rrf / fusion.wsum's terms; 0 when absent)."""
        present = self.rank > 0
        if method == "rrf":
            return np.where(present, 1.0 / (rrf_k + self.rank), 0.0)
        if method != "wsum":
            raise InputError(f"unknown fusion method {method!r}: use rrf or wsum")
        s = np.where(present, self.score, np.nan)
        # a run with no hit for a query is an all-NaN row: its statistics are NaN and masked out below
        with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            if norm == "minmax":
                lo, hi = np.nanmin(s, axis=2, keepdims=True), np.nanmax(s, axis=2, keepdims=True)
                span = hi - lo
                out = np.where(span > 0, (s - lo) / np.where(span > 0, span, 1.0), 1.0)
            elif norm == "zscore":
                mean, sd = np.nanmean(s, axis=2, keepdims=True), np.nanstd(s, axis=2, keepdims=True)
                out = np.where(sd > 0, (s - mean) / np.where(sd > 0, sd, 1.0), 0.0)
            elif norm == "none":
                out = s
            else:
                raise InputError(f"unknown normalisation {norm!r}: use minmax, zscore or none")
        return np.where(present, out, 0.0)

    def ndcg10(self, feats: np.ndarray, weights: Sequence[float]) -> np.ndarray:
        """Per-query nDCG@10 of the weighted fusion (candidates ordered by score, then doc id)."""
        fused = np.tensordot(np.asarray(weights, dtype=np.float64), feats, axes=1)
        fused = np.where(self.valid & _any_present(self.rank, weights), fused, -np.inf)
        order = np.argsort(-fused, axis=1, kind="stable")[:, :10]
        gains = np.take_along_axis(self.gain, order, axis=1)
        alive = np.take_along_axis(np.isfinite(fused), order, axis=1)
        dcg = (np.where(alive, gains, 0.0) * self._discount[:order.shape[1]]).sum(axis=1)
        return np.divide(dcg, self.idcg, out=np.zeros_like(dcg), where=self.idcg > 0)


def _any_present(rank: np.ndarray, weights: Sequence[float]) -> np.ndarray:
    """Candidates retrieved by at least one run of non-zero weight (the others are not in the fused run)."""
    w = np.asarray(weights) != 0
    return (rank[w] > 0).any(axis=0) if w.any() else np.zeros(rank.shape[1:], dtype=bool)


def _ascend(stack: RunStack, feats: np.ndarray, weights: list[float], weight_grid: Sequence[float],
            passes: int) -> tuple[list[float], float, int]:
    """Coordinate ascent from `weights`: each route's weight over the grid in turn, while dev nDCG@10 improves."""
    score = float(stack.ndcg10(feats, weights).mean())
    tried = 1
    for _ in range(passes):
        improved = False
        for i in range(len(weights)):
            for w in weight_grid:
                if w == weights[i]:
                    continue
                trial = weights[:i] + [w] + weights[i + 1:]
                if not any(trial):
                    continue
                s = float(stack.ndcg10(feats, trial).mean())
                tried += 1
                # a route dropped at no loss is taken: fewer routes, cheaper queries
                if s > score + 1e-9 or (w == 0 and s >= score - 1e-9):
                    score, weights, improved = s, trial, True
        if not improved:
            break
    return weights, score, tried


def _setting(f: Fusion) -> tuple[str, str, int]:
    """(method, norm, rrf_k) as the search's settings spell them: a norm only for wsum, an RRF k only for rrf (a
    filled wsum condition such as `best` carries the k of its fill, which the head does not use)."""
    return (f.method, f.norm if f.method == "wsum" else "minmax", f.rrf_k if f.method == "rrf" else 60)


def tune_fusion(runs: Mapping[str, Run], names: Sequence[str], dev_qrels: Qrels, *,
                weight_grid: Sequence[float] = WEIGHT_GRID, rrf_ks: Sequence[int] = RRF_KS,
                norms: Sequence[str] = NORMS, passes: int = 3, start: "Fusion | None" = None) -> Fusion:
    """Coordinate ascent over each route's weight, for each method setting; the best on dev wins (ties: the
    earlier setting, RRF k=60 first; a route whose weight can go to 0 at no loss is dropped). Only `dev_qrels`
    are read: pass the dev side of the split.

    `start`: an earlier choice (say the current default) whose weights seed a second ascent for its own method
    setting, its routes at their weights and new ones at 0. Why: the ascent is local, and from equal weights it
    can end below where the last tuning was (TALN, twelve routes: 0.616 from 1s, 0.620 from the last choice)."""
    stack = RunStack(runs, names, dev_qrels)
    settings = [("rrf", "minmax", 60)] + [("rrf", "minmax", k) for k in rrf_ks if k != 60]
    settings += [("wsum", n, 60) for n in norms]
    start_setting = _setting(start) if start is not None else None
    if start is not None:
        unknown = [p for p in start.parts if p not in names]
        if unknown:
            raise InputError(f"the starting fusion has routes {unknown} that are not among those tuned {list(names)}")
        if start_setting not in settings:
            raise InputError(f"the starting fusion's setting {start_setting} is not one the search tries {settings}")
    best = Fusion(list(names), [1.0] * len(names), dev=-1.0)
    tried = 0
    history = []
    for method, norm, k in settings:
        feats = stack.features(method, norm, k)
        seeds = [("equal", [1.0] * len(names))]
        if start is not None and start_setting == (method, norm, k):
            given = dict(zip(start.parts, start.weights))
            seeds.append(("start", [float(given.get(n, 0.0)) for n in names]))
        for seed, initial in seeds:
            weights, score, n = _ascend(stack, feats, initial, weight_grid, passes)
            tried += n
            history.append({"method": method, "norm": norm, "rrf_k": k, "from": seed, "weights": weights,
                            "dev": round(score, 4)})
            if score > best.dev + 1e-9:
                best = Fusion(list(names), weights, method, norm, k, score)
    keep = [i for i, w in enumerate(best.weights) if w > 0]
    best.parts, best.weights = [names[i] for i in keep], [best.weights[i] for i in keep]
    best.tried, best.history = tried, history
    return best


def tune_from_runs(benchmark: str | Path, run_dir: str | Path, names: Sequence[str], name: str = "best",
                   json_path: str | Path | None = None, start: str | None = None) -> str:
    """`xsearch eval tune`: the benchmark's dev queries, its saved runs, the chosen fusion as YAML lines (a
    condition for the benchmark, a fusion for an index recipe whose routes bear these names). `start`: a fused
    condition of the benchmark whose weights seed the search too (tune_fusion's `start`)."""
    from .benchmark import Benchmark
    from .runner import load_collection
    from .split import query_split, side_qrels

    bench = Benchmark.from_yaml(benchmark)
    seed = None
    if start is not None:
        cond = next((c for c in bench.conditions if c.name == start), None)
        if cond is None or not cond.fuse:
            raise InputError(f"--start {start!r} is not a fused condition of {bench.name}")
        seed = Fusion(list(cond.fuse), list(cond.weights or [1.0] * len(cond.fuse)), cond.method, cond.norm,
                      cond.rrf_k)
    qrels = load_collection(bench.collection).qrels
    dev = side_qrels(qrels, query_split(qrels, bench.split), "dev")
    folder = Path(run_dir) / bench.name
    runs = {}
    for n in names:
        path = folder / f"{n}.trec.gz"
        if not path.exists():
            raise InputError(f"no saved run for condition {n!r} (run `xsearch eval run` first)", source=str(path))
        runs[n] = Run.read_trec(path)
    best = tune_fusion(runs, names, dev, start=seed)
    if json_path:
        Path(json_path).write_text(json.dumps(best.as_dict() | {"history": best.history}, indent=2) + "\n",
                                   encoding="utf-8")
    opts = f"method: {best.method}, " + (f"rrf_k: {best.rrf_k}" if best.method == "rrf" else f"norm: {best.norm}")
    weights = ", ".join(f"{w:g}" for w in best.weights)
    return (f"# chosen on {len(dev):,} dev queries of {bench.name} (seed {bench.split.seed}), "
            f"dev nDCG@10 {best.dev:.4f}, {best.tried} settings tried\n"
            f"- {{name: {name}, fuse: [{', '.join(best.parts)}], {opts}, weights: [{weights}]}}")


__all__ = ["Fusion", "RunStack", "tune_fusion", "tune_from_runs", "WEIGHT_GRID", "RRF_KS", "NORMS"]
