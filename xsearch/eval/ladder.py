"""Dev / test / all tables and the ladder: each addition tested against the best condition before it.

Why a ladder: a table against one baseline says each route beats BM25, not what each addition buys over the
best one already there. The best before a step is chosen by its dev score (never by test), and the step's gain
is measured on test and on all queries, per query and per article, with paired randomisation tests
Holm-corrected over the steps.
"""
from __future__ import annotations

from typing import Mapping, Sequence

from .metrics import holm, per_article_scores, randomisation_test
from .split import side_qrels

SIDES = ("dev", "test", "all")


def _column(frame, measure: str):  # noqa: ANN001 - pandas
    return frame[next(c for c in frame.columns if c == measure or c.startswith(measure))]


def side_means(per_query: Mapping, qrels: Mapping, split: Mapping[str, str], measure: str = "nDCG@10"
               ) -> dict[str, dict[str, float]]:
    """condition -> {dev, test, all, dev/article, test/article, all/article}: means of `measure`."""
    out: dict[str, dict[str, float]] = {}
    for name, frame in per_query.items():
        s = _column(frame, measure)
        row: dict[str, float] = {}
        for side in SIDES:
            part = s if side == "all" else s[[split.get(q) == side for q in s.index]]
            row[side] = float(part.mean()) if len(part) else 0.0
            art = per_article_scores(part, side_qrels(qrels, split, side))
            row[f"{side}/article"] = float(art.mean()) if len(art) else 0.0
        out[name] = row
    return out


def ladder(per_query: Mapping, qrels: Mapping, split: Mapping[str, str], steps: Sequence[str],
           measure: str = "nDCG@10", n_resamples: int = 2000) -> list[dict]:
    """One row per step after the first: the reference (best on dev so far), Δ and p on test and all."""
    means = side_means({s: per_query[s] for s in steps}, qrels, split, measure)
    rows: list[dict] = []
    for i, step in enumerate(steps[1:], start=1):
        ref = max(steps[:i], key=lambda n: means[n]["dev"])
        row: dict = {"step": step, "vs": ref}
        a, b = _column(per_query[step], measure), _column(per_query[ref], measure)
        for side in ("test", "all"):
            mask = [side == "all" or split.get(q) == side for q in a.index]
            x, y = a[mask], b.reindex(a.index)[mask]
            d = x.values - y.values
            row[f"{side}_delta"] = float(d.mean()) if len(d) else 0.0
            row[f"{side}_wins"], row[f"{side}_ties"] = int((d > 1e-9).sum()), int((abs(d) <= 1e-9).sum())
            row[f"{side}_losses"] = int((d < -1e-9).sum())
            row[f"{side}_p"] = randomisation_test(x.values, y.values, n_resamples)
            sq = side_qrels(qrels, split, side)
            xa, ya = per_article_scores(x, sq), per_article_scores(y, sq).reindex(per_article_scores(x, sq).index)
            row[f"{side}_article_delta"] = float((xa - ya).mean()) if len(xa) else 0.0
            row[f"{side}_article_p"] = randomisation_test(xa.values, ya.values, n_resamples)
        rows.append(row)
    for key in ("test_p", "all_p", "test_article_p", "all_article_p"):
        for row, p in zip(rows, holm([r[key] for r in rows]) if rows else []):
            row[key + "_holm"] = p
    return rows


def _p(p: float) -> str:
    return f"{p:.3g}" + (" **" if p < 0.01 else " *" if p < 0.05 else "")


def markdown(per_query: Mapping, qrels: Mapping, split: Mapping[str, str], steps: Sequence[str],
             measure: str = "nDCG@10") -> tuple[list[str], dict]:
    """The report's split table and ladder section (Markdown lines) and their numbers (for the JSON)."""
    means = side_means(per_query, qrels, split, measure)
    recall = side_means(per_query, qrels, split, "R@100") if all(
        any(c.startswith("R@100") for c in f.columns) for f in per_query.values()) else {}
    n = {side: sum(1 for v in split.values() if v == side) for side in ("dev", "test")}
    lines = ["## Dev / test / all", "",
             f"Split by article (xsearch.eval.split): {n['dev']:,} dev and {n['test']:,} test queries. Settings "
             f"(fusion weights, PRF depth, ...) are chosen on dev only; test is the number to quote.", "",
             f"| condition | {measure} dev | test | all | per article dev | test | all |"
             + (" R@100 dev | test | all |" if recall else ""),
             "|---|---:|---:|---:|---:|---:|---:|" + ("---:|---:|---:|" if recall else "")]
    keys = ("dev", "test", "all", "dev/article", "test/article", "all/article")
    lines += [f"| {c} | " + " | ".join(f"{m[k]:.3f}" for k in keys) + " |"
              + ("".join(f" {recall[c][k]:.3f} |" for k in ("dev", "test", "all")) if recall else "")
              for c, m in means.items()]
    rows = ladder(per_query, qrels, split, steps, measure) if len(steps) > 1 else []
    if rows:
        lines += ["", "## Ladder", "",
                  f"Each step against the best step before it by dev {measure} (\"vs\"); Δ, wins/ties/losses and "
                  "p (paired randomisation, 2,000 resamples, Holm over the steps) on test and on all queries, "
                  "per query and per article.", "",
                  "| step | vs | test | Δ test | W/T/L test | p test | Δ test/article | p | all | Δ all | p all "
                  "| Δ all/article | p |", "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in rows:
            lines.append(
                f"| {r['step']} | {r['vs']} | {means[r['step']]['test']:.3f} | {r['test_delta']:+.3f} | "
                f"{r['test_wins']:,}/{r['test_ties']:,}/{r['test_losses']:,} | {_p(r['test_p_holm'])} | "
                f"{r['test_article_delta']:+.3f} | {_p(r['test_article_p_holm'])} | {means[r['step']]['all']:.3f} | "
                f"{r['all_delta']:+.3f} | {_p(r['all_p_holm'])} | {r['all_article_delta']:+.3f} | "
                f"{_p(r['all_article_p_holm'])} |")
    return lines, {"split_sizes": n, "side_means": means, "side_recall@100": recall, "ladder": rows}


__all__ = ["side_means", "ladder", "markdown", "SIDES"]
