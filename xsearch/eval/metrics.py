"""Scores with ir-measures (trec_eval semantics), per-article means, significance tests and confidence intervals.

Two traps handled here: ir-measures/trec_eval skip queries absent from the run (they must count 0, else a method
that answers fewer queries looks better), and trec_eval breaks score ties by doc id *descending* while Run.ranked
breaks them ascending (runs are scored in Run.ranked order so the displayed and scored rankings agree).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Iterable, Mapping, Sequence

import numpy as np

from ..errors import InputError
from ..lazy import require
from ..records import Run

if TYPE_CHECKING:
    import pandas as pd

Qrels = Mapping[str, Mapping[str, int]]
DEFAULT_MEASURES: tuple[str, ...] = ("nDCG@10", "R@100", "RR@10", "AP")
_ALIASES = {"MRR@10": "RR@10", "MRR": "RR", "MAP": "AP", "Recall@100": "R@100"}


def _measures(names: Iterable[str]) -> list:
    ir = require("ir_measures")
    out = []
    for name in names:
        try:
            out.append(ir.parse_measure(_ALIASES.get(name, name)))
        except (ValueError, NameError, TypeError, SyntaxError) as exc:
            raise InputError(f"unknown measure {name!r} (try nDCG@10, R@100, RR@10, AP): {exc}") from None
    return out


def judged_queries(qrels: Qrels) -> list[str]:
    """Queries with at least one relevant doc: the ones every condition is averaged over."""
    return sorted(q for q, d in qrels.items() if any(r > 0 for r in d.values()))


def _rank_scores(run: Mapping[str, Mapping[str, float]]) -> dict[str, dict[str, float]]:
    r = run if isinstance(run, Run) else Run({q: dict(d) for q, d in run.items()})
    return {q: {d: float(-i) for i, (d, _) in enumerate(r.ranked(q))} for q in r if r[q]}


def evaluate(run: Mapping[str, Mapping[str, float]], qrels: Qrels,
             measures: Sequence[str] = DEFAULT_MEASURES) -> "pd.DataFrame":
    """Per-query scores (index query_id, one column per measure) over every judged query; missing queries score 0."""
    pd = require("pandas")
    ir = require("ir_measures")
    parsed = _measures(measures)
    names = [str(m) for m in parsed]
    qids = judged_queries(qrels)
    wanted = set(qids)
    ranked = {q: d for q, d in _rank_scores(run).items() if q in wanted}
    judged = {q: {d: int(r) for d, r in qrels[q].items()} for q in qids}
    values: dict[str, dict[str, float]] = {n: {} for n in names}
    if ranked:
        for m in ir.iter_calc(parsed, judged, ranked):
            values[str(m.measure)][m.query_id] = float(m.value)
    index = pd.Index(qids, name="query_id")
    return pd.DataFrame({n: pd.Series(values[n], dtype=float).reindex(index, fill_value=0.0) for n in names},
                        index=index)


def summarise(per_query: "pd.DataFrame") -> dict[str, float]:
    """Mean of each measure over queries (the usual per-query macro average)."""
    return {c: float(per_query[c].mean()) for c in per_query.columns}


def per_article_scores(scores: "pd.Series | Mapping[str, float]", qrels: Qrels) -> "pd.Series":
    """Mean score of each relevant article's queries; a query with several relevant articles counts for each.

    Why: in keyword-triple collections a few keyword-rich articles own most queries, so the per-query mean mostly
    measures those; averaging per article first gives every article one vote.
    """
    pd = require("pandas")
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    for qid, value in dict(scores).items():
        for doc, rel in qrels.get(qid, {}).items():
            if rel > 0:
                sums[doc] = sums.get(doc, 0.0) + float(value)
                counts[doc] = counts.get(doc, 0) + 1
    return pd.Series({d: sums[d] / counts[d] for d in sorted(sums)}, name="per_article", dtype=float)


def per_article_mean(scores: "pd.Series | Mapping[str, float]", qrels: Qrels) -> float:
    """Average over articles of the per-article means (see per_article_scores)."""
    s = per_article_scores(scores, qrels)
    return float(s.mean()) if len(s) else 0.0


def recall_curve(run: Mapping[str, Mapping[str, float]], qrels: Qrels, k_max: int = 100) -> np.ndarray:
    """Mean recall@k for k = 1..k_max over judged queries (missing queries count 0); entry k-1 is recall@k."""
    r = run if isinstance(run, Run) else Run({q: dict(d) for q, d in run.items()})
    qids = judged_queries(qrels)
    total = np.zeros(k_max)
    for q in qids:
        rel = {d for d, v in qrels[q].items() if v > 0}
        hits = np.zeros(k_max)
        for i, (d, _) in enumerate(r.ranked(q, k_max)):
            hits[i] = d in rel
        total += np.cumsum(hits) / len(rel)
    return total / len(qids) if qids else total


# ---------------------------------------------------------------------------------------------------- significance
def _paired(a: Sequence[float], b: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise InputError(f"paired scores must be 1-D and the same length, got {x.shape} and {y.shape}")
    return x, y


def paired_t_test(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sided paired t-test p-value; 1.0 when the runs never differ (scipy would return NaN)."""
    x, y = _paired(a, b)
    d = x - y
    if len(d) < 2 or np.allclose(d, d[0]):
        return 1.0 if np.allclose(d, 0) else 0.0
    return float(require("scipy.stats").ttest_rel(x, y).pvalue)


def randomisation_test(a: Sequence[float], b: Sequence[float], n_resamples: int = 10_000, seed: int = 0) -> float:
    """Two-sided paired randomisation (sign-flip permutation) test of the mean difference (Smucker et al., 2007).

    p = (1 + #{|mean of randomly sign-flipped differences| >= |observed|}) / (1 + n_resamples).
    """
    x, y = _paired(a, b)
    d = x - y
    observed = abs(d.mean()) if len(d) else 0.0
    rng = np.random.default_rng(seed)
    hits, done = 0, 0
    while done < n_resamples:
        n = min(500, n_resamples - done)
        signs = rng.integers(0, 2, size=(n, len(d)), dtype=np.int8).astype(np.float64) * 2 - 1
        hits += int(np.sum(np.abs(signs @ d) / max(len(d), 1) >= observed - 1e-12))
        done += n
    return (hits + 1) / (n_resamples + 1)


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-Bonferroni step-down adjusted p-values (controls family-wise error over the compared conditions)."""
    p = np.asarray(pvalues, dtype=float)
    m = len(p)
    order = np.argsort(p, kind="stable")
    adjusted = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adjusted[i] = running
    return adjusted.tolist()


def bootstrap_ci(x: Sequence[float], n_resamples: int = 10_000, level: float = 0.95,
                 seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the mean."""
    v = np.asarray(x, dtype=float)
    if len(v) == 0:
        raise InputError("bootstrap_ci needs at least one score")
    rng = np.random.default_rng(seed)
    means = []
    for start in range(0, n_resamples, 500):
        n = min(500, n_resamples - start)
        means.append(v[rng.integers(0, len(v), size=(n, len(v)))].mean(axis=1))
    m = np.concatenate(means)
    alpha = (1 - level) / 2
    return float(np.quantile(m, alpha)), float(np.quantile(m, 1 - alpha))


def compare(per_query: Mapping[str, "pd.DataFrame | pd.Series"], baseline: str, measure: str = "nDCG@10",
            qrels: Qrels | None = None, level: str = "query", n_resamples: int = 10_000,
            seed: int = 0) -> "pd.DataFrame":
    """One row per condition: mean, bootstrap 95% CI, delta vs `baseline`, t-test and randomisation p (raw + Holm).

    `per_query` maps a condition name to evaluate()'s frame (or a Series of one measure). level="article" first
    turns each condition into per-article means (needs `qrels`), so the tests and CIs are over articles.
    """
    pd = require("pandas")
    if baseline not in per_query:
        raise InputError(f"baseline {baseline!r} is not among the conditions {list(per_query)}")
    if level not in ("query", "article"):
        raise InputError(f"level must be 'query' or 'article', got {level!r}")
    if level == "article" and qrels is None:
        raise InputError("level='article' needs the qrels")
    series: dict[str, pd.Series] = {}
    for name, frame in per_query.items():
        s = frame if isinstance(frame, pd.Series) else frame[str(_measures([measure])[0])]
        series[name] = per_article_scores(s, qrels) if level == "article" else s
    base = series[baseline].sort_index()
    rows = []
    for name, s in series.items():
        s = s.sort_index()
        if not s.index.equals(base.index):
            raise InputError(f"condition {name!r} was scored on a different set of {level}s than {baseline!r}")
        lo, hi = bootstrap_ci(s.values, n_resamples, seed=seed)
        row = {"condition": name, "n": len(s), "mean": float(s.mean()), "ci_low": lo, "ci_high": hi,
               "delta": float(s.mean() - base.mean()), "p_t": np.nan, "p_perm": np.nan}
        if name != baseline:
            row["p_t"] = paired_t_test(s.values, base.values)
            row["p_perm"] = randomisation_test(s.values, base.values, n_resamples, seed)
        rows.append(row)
    out = pd.DataFrame(rows).set_index("condition")
    others = [c for c in out.index if c != baseline]
    for col in ("p_t", "p_perm"):
        out[col + "_holm"] = np.nan
        if others:
            out.loc[others, col + "_holm"] = holm(out.loc[others, col].tolist())
    return out


def wins_losses(per_query: Mapping[str, "pd.DataFrame | pd.Series"], reference: str, measure: str = "nDCG@10",
                tolerance: float = 1e-9, n_resamples: int = 0, seed: int = 0) -> "pd.DataFrame":
    """Per-query comparison with `reference`: how many queries each other condition scores higher (wins), lower
    (losses) or the same (ties, within `tolerance`) on `measure`, and the mean difference; with n_resamples > 0
    also the paired randomisation test against `reference` (p_perm, and Holm-corrected over the conditions)."""
    pd = require("pandas")
    if reference not in per_query:
        raise InputError(f"reference {reference!r} is not among the conditions {list(per_query)}")

    def column(frame: "pd.DataFrame | pd.Series") -> "pd.Series":
        return frame if isinstance(frame, pd.Series) else frame[str(_measures([measure])[0])]

    ref = column(per_query[reference]).sort_index()
    rows = []
    for name, frame in per_query.items():
        if name == reference:
            continue
        s = column(frame).sort_index()
        if not s.index.equals(ref.index):
            raise InputError(f"condition {name!r} was scored on other queries than {reference!r}")
        d = s.values - ref.values
        row = {"condition": name, "wins": int((d > tolerance).sum()), "ties": int((abs(d) <= tolerance).sum()),
               "losses": int((d < -tolerance).sum()), "delta": float(d.mean()) if len(d) else 0.0}
        if n_resamples > 0:
            row["p_perm"] = randomisation_test(s.values, ref.values, n_resamples, seed)
        rows.append(row)
    columns = ["condition", "wins", "ties", "losses", "delta"] + (["p_perm"] if n_resamples > 0 else [])
    out = pd.DataFrame(rows, columns=columns).set_index("condition")
    if n_resamples > 0:
        out["p_perm_holm"] = holm(out["p_perm"].tolist()) if len(out) else []
    return out


__all__ = ["DEFAULT_MEASURES", "evaluate", "summarise", "judged_queries", "per_article_scores", "per_article_mean",
           "recall_curve", "paired_t_test", "randomisation_test", "holm", "bootstrap_ci", "compare", "wins_losses"]
