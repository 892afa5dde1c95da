"""The benchmark report: a Markdown table as a CLIR paper prints it, significance vs the baseline, plots, timings,
and a JSON of the numbers (what the reproduction checker reads)."""
from __future__ import annotations

import json
import os
import platform
from datetime import datetime, timezone
from pathlib import Path

from . import ladder
from .metrics import compare, per_article_mean, wins_losses
from .plots import plot_means, plot_recall_curves
from .runner import BenchmarkResult

LABELS = {"nDCG@10": "nDCG@10", "R@100": "R@100", "RR@10": "MRR@10", "AP": "MAP"}


def _stars(p: float) -> str:
    if p != p:  # NaN: the baseline row
        return "—"
    return f"{p:.3g}" + (" **" if p < 0.01 else " *" if p < 0.05 else "")


def _held(bench, result: BenchmarkResult) -> str:  # noqa: ANN001 - Benchmark
    """Which of the benchmark's conditions this report holds, and which it left out (opt-in or not asked for)."""
    left = [c for c in bench.conditions if c.name not in result.per_query]
    line = f"Conditions: {len(result.per_query)} of the benchmark's {len(bench.conditions)}"
    if not left:
        return line + " (all)."
    opt = [c.name for c in left if c.opt_in]
    other = [c.name for c in left if not c.opt_in]
    parts = ([f"opt-in, not run: {', '.join(opt)} (`--all` or `--only` runs them)"] if opt else []) + (
        [f"not asked for: {', '.join(other)}"] if other else [])
    return line + "; " + "; ".join(parts) + "."


def write_report(result: BenchmarkResult, out_dir: str | Path, command: str) -> Path:
    bench = result.benchmark
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    plots = out_dir / "plots"
    qrels = result.qrels  # type: ignore[attr-defined]
    main = bench.main_measure
    by_query = compare(result.per_query, bench.baseline, main, n_resamples=2000)
    by_article = compare(result.per_query, bench.baseline, main, qrels=qrels, level="article", n_resamples=2000)
    means = {name: {m: float(v) for m, v in df.mean().items()} for name, df in result.per_query.items()}
    col = next(c for c in next(iter(result.per_query.values())).columns if c == main or c.startswith(main))
    article = {name: per_article_mean(df[col], qrels) for name, df in result.per_query.items()}
    about = {c.name: c.about for c in bench.conditions}

    plot_means(by_query, plots / f"{bench.name}-{main}.png", title=f"{bench.name}: {main} (95% bootstrap CI)",
               ylabel=main)
    plot_means(by_article, plots / f"{bench.name}-{main}-per-article.png",
               title=f"{bench.name}: per-article {main} (95% CI)", ylabel=main)
    plot_recall_curves(result.runs, qrels, plots / f"{bench.name}-recall.png", k_max=bench.k,
                       title=f"{bench.name}: recall@k")

    cols = list(next(iter(means.values())).keys())
    lines = [f"# {bench.name}: cross-lingual retrieval report", "",
             f"Generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC by `{command}` on {platform.node() or 'host'}"
             f" ({os.cpu_count()} CPU cores, {platform.platform()}).", "",
             "Collection: " + ", ".join(f"{k} {v:,.2f}" if isinstance(v, float) else f"{k} {v:,}"
                                        for k, v in result.collection_stats.items()) + ".", "",
             _held(bench, result), "",
             f"Every query is scored (a query with no hit counts 0); runs (top {bench.k}) are in "
             f"`runs/{bench.name}/*.trec.gz` beside this report. Significance: paired randomisation test "
             f"(2,000 resamples) of {main} against the baseline **{bench.baseline}**, Holm-corrected over the "
             "conditions; * p<0.05, ** p<0.01. The per-article mean averages each relevant article's queries "
             "first, so articles with many keywords do not dominate.", "",
             "| condition | " + " | ".join(LABELS.get(c.split("(")[0], c) for c in cols)
             + f" | {main} per article | Δ {main} | p (query, Holm) | p (article, Holm) | search s |",
             "|---|" + "---:|" * (len(cols) + 5)]
    for name in result.per_query:
        row = [f"**{name}**" if name == bench.baseline else name]
        row += [f"{means[name][c]:.3f}" for c in cols]
        row += [f"{article[name]:.3f}", f"{by_query.loc[name, 'delta']:+.3f}",
                _stars(by_query.loc[name, "p_perm_holm"]), _stars(by_article.loc[name, "p_perm_holm"]),
                f"{result.timings.get('search:' + name, 0):.1f}"]
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", "What each condition is:", ""]
    lines += [f"- **{n}**: {about.get(n) or ''}" for n in result.per_query]
    split_lines, split_json = ladder.markdown(result.per_query, qrels, result.split,
                                              [s for s in bench.ladder if s in result.per_query], main)
    lines += [""] + split_lines
    versus = {ref: wins_losses(result.per_query, ref, main, n_resamples=2000) for ref in bench.wins_losses_vs
              if ref in result.per_query}
    for ref, table in versus.items():
        lines += ["", f"## Per-query wins / ties / losses against {ref} ({main})", "",
                  f"A win is a query the condition scores higher than **{ref}** on {main}; Δ is the mean difference; "
                  f"p: paired randomisation test against {ref} (2,000 resamples), Holm-corrected over these rows.",
                  "", "| condition | wins | ties | losses | Δ | p (Holm) |", "|---|---:|---:|---:|---:|---:|"]
        lines += [f"| {name} | {int(r.wins):,} | {int(r.ties):,} | {int(r.losses):,} | {r.delta:+.3f} | "
                  f"{_stars(r.p_perm_holm)} |" for name, r in table.iterrows()]
    lines += ["", f"![{main}](plots/{bench.name}-{main}.png)",
              f"![per-article](plots/{bench.name}-{main}-per-article.png)",
              f"![recall](plots/{bench.name}-recall.png)", "", "## Timings (seconds, this run)", "",
              "| stage | s |", "|---|---:|"]
    lines += [f"| {k} | {v:.1f} |" for k, v in result.timings.items()]
    if result.query_vectors:
        store = "on" if bench.query_vector_cache else "off"
        lines += ["", f"Query vectors (query-vector store {store}, xsearch.qvstore): " + "; ".join(
            f"{name}: {c['encoded']:,} encoded, {c['stored']:,} read from the store"
            for name, c in result.query_vectors.items()) + "."]
    for name, t in result.index_timings.items():
        lines += ["", f"Index `{name}` build stages (s, when it was built): "
                  + ", ".join(f"{k} {v:.1f}" for k, v in t.items())]
    path = out_dir / f"{bench.name}.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    (out_dir / f"{bench.name}.json").write_text(json.dumps({
        "benchmark": bench.name, "command": command, "collection": result.collection_stats,
        "conditions": list(result.per_query),
        "left_out": [c.name for c in bench.conditions if c.name not in result.per_query],
        "means": means, "per_article": article, "timings": result.timings, "query_vectors": result.query_vectors, "split": split_json,
        "wins_losses": {ref: json.loads(t.to_json(orient="index")) for ref, t in versus.items()},
        "significance_query": json.loads(by_query.to_json(orient="index")),
        "significance_article": json.loads(by_article.to_json(orient="index"))}, indent=2), encoding="utf-8")
    return path
