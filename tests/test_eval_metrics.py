"""Scoring: hand-computed nDCG/RR, zeros for unanswered queries, per-article means, significance, CIs."""
from __future__ import annotations

import math

import numpy as np
import pytest

from xsearch.errors import InputError
from xsearch.eval.metrics import (bootstrap_ci, compare, evaluate, holm, paired_t_test, per_article_mean,
                                  per_article_scores, randomisation_test, recall_curve, summarise)
from xsearch.records import Run

pytest.importorskip("ir_measures")

QRELS = {"q1": {"d1": 1, "d3": 1}, "q2": {"d2": 1}, "q3": {"d9": 1}, "q4": {"dx": 0}}
RUN = Run({"q1": {"d1": 3.0, "d2": 2.0, "d3": 1.0}, "q2": {"d1": 5.0, "d2": 4.0, "d3": 4.0}, "zz": {"d1": 1.0}})


def test_hand_computed_scores() -> None:
    pq = evaluate(RUN, QRELS, ["nDCG@10", "RR@10", "R@100", "AP"])
    assert list(pq.index) == ["q1", "q2", "q3"]  # q4 has no relevant doc; zz is not judged
    # q1: relevant at ranks 1 and 3 -> DCG = 1 + 1/log2(4); ideal = 1 + 1/log2(3)
    assert pq.at["q1", "nDCG@10"] == pytest.approx((1 + 0.5) / (1 + 1 / math.log2(3)))
    assert pq.at["q1", "AP"] == pytest.approx((1 + 2 / 3) / 2)
    # q2: d2 and d3 tie at 4.0; Run.ranked breaks ties by doc id ascending, so d2 is rank 2
    assert pq.at["q2", "RR@10"] == pytest.approx(0.5)
    assert pq.at["q2", "nDCG@10"] == pytest.approx(1 / math.log2(3))
    # q3 is missing from the run: it counts 0 instead of being dropped
    assert pq.loc["q3"].tolist() == [0.0, 0.0, 0.0, 0.0]
    means = summarise(pq)
    assert means["RR@10"] == pytest.approx((1 + 0.5 + 0) / 3)


def test_mrr_alias_and_unknown_measure() -> None:
    assert list(evaluate(RUN, QRELS, ["MRR@10"]).columns) == ["RR@10"]
    with pytest.raises(InputError, match="unknown measure"):
        evaluate(RUN, QRELS, ["nope@3"])


def test_empty_run_scores_all_zero() -> None:
    pq = evaluate(Run(), QRELS)
    assert pq.shape == (3, 4) and float(pq.values.sum()) == 0.0


def test_per_article_mean() -> None:
    qrels = {"a": {"A": 1}, "b": {"A": 1}, "c": {"A": 1}, "d": {"B": 1, "A": 0}, "e": {"A": 1, "B": 1}}
    scores = {"a": 1.0, "b": 1.0, "c": 1.0, "d": 0.0, "e": 0.5}
    per = per_article_scores(scores, qrels)
    assert per.to_dict() == {"A": pytest.approx(3.5 / 4), "B": pytest.approx(0.25)}
    assert per_article_mean(scores, qrels) == pytest.approx((3.5 / 4 + 0.25) / 2)
    assert np.mean(list(scores.values())) == pytest.approx(0.7)  # the per-query mean differs


def test_recall_curve_matches_ir_measures() -> None:
    curve = recall_curve(RUN, QRELS, k_max=3)
    assert curve.tolist() == pytest.approx([(0.5 + 0 + 0) / 3, (0.5 + 1 + 0) / 3, (1 + 1 + 0) / 3])
    for k in (1, 2, 3):
        assert curve[k - 1] == pytest.approx(evaluate(RUN, QRELS, [f"R@{k}"]).iloc[:, 0].mean())


def test_significance_identical_and_clearly_better() -> None:
    rng = np.random.default_rng(1)
    base = rng.uniform(0, 0.6, 200)
    assert randomisation_test(base, base, 2000) == 1.0
    assert paired_t_test(base, base) == 1.0
    better = np.clip(base + rng.uniform(0.1, 0.3, 200), 0, 1)
    assert randomisation_test(better, base, 2000) < 0.001
    assert paired_t_test(better, base) < 1e-10
    noise = base + rng.normal(0, 0.01, 200)
    assert randomisation_test(noise, base, 2000) > 0.01


def test_holm() -> None:
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    assert holm([]) == []


def test_bootstrap_ci() -> None:
    assert bootstrap_ci([0.3] * 10, 500) == pytest.approx((0.3, 0.3))
    x = np.random.default_rng(0).uniform(0, 1, 400)
    lo, hi = bootstrap_ci(x, 2000)
    assert lo < x.mean() < hi and 0.03 < hi - lo < 0.09  # ~ 2 * 1.96 * 0.289 / 20 = 0.057


def test_compare_table() -> None:
    pd = pytest.importorskip("pandas")
    idx = [f"q{i}" for i in range(50)]
    base = pd.Series(np.linspace(0, 0.5, 50), index=idx)
    frames = {"bm25": base, "same": base.copy(), "better": base + 0.3}
    table = compare(frames, baseline="bm25", n_resamples=1000)
    assert table.loc["better", "delta"] == pytest.approx(0.3)
    assert table.loc["same", "p_perm"] == 1.0 and table.loc["better", "p_perm"] < 0.01
    assert math.isnan(table.loc["bm25", "p_t_holm"])
    assert table.loc["better", "p_perm_holm"] == pytest.approx(min(1.0, 2 * table.loc["better", "p_perm"]))
    assert table.loc["bm25", "ci_low"] < table.loc["bm25", "mean"] < table.loc["bm25", "ci_high"]
    with pytest.raises(InputError, match="different set"):
        compare({"bm25": base, "short": base.iloc[:10]}, baseline="bm25")
    qrels = {q: {"A" if i < 25 else "B": 1} for i, q in enumerate(idx)}
    per_art = compare(frames, baseline="bm25", qrels=qrels, level="article", n_resamples=200)
    assert per_art.loc["bm25", "n"] == 2


def test_wins_losses_by_hand() -> None:
    import pandas as pd

    from xsearch.eval.metrics import wins_losses

    idx = pd.Index(["q1", "q2", "q3", "q4"], name="query_id")
    per_query = {"dense": pd.DataFrame({"nDCG@10": [0.5, 0.2, 0.0, 1.0]}, index=idx),
                 "xqg": pd.DataFrame({"nDCG@10": [0.6, 0.2, 0.0, 0.7]}, index=idx),
                 "other": pd.DataFrame({"nDCG@10": [1.0, 1.0, 1.0, 1.0]}, index=idx[::-1])}  # order does not matter
    table = wins_losses(per_query, "dense", "nDCG@10")
    assert list(table.index) == ["xqg", "other"]
    assert table.loc["xqg", ["wins", "ties", "losses"]].tolist() == [1, 2, 1]
    assert table.loc["xqg", "delta"] == pytest.approx((0.1 - 0.3) / 4)
    assert table.loc["other", ["wins", "ties", "losses"]].tolist() == [3, 1, 0]
    with pytest.raises(InputError):
        wins_losses(per_query, "bm25")
    tested = wins_losses(per_query, "dense", "nDCG@10", n_resamples=200)
    assert {"p_perm", "p_perm_holm"} <= set(tested.columns)
    assert (tested["p_perm_holm"] >= tested["p_perm"]).all() and tested.loc["xqg", "wins"] == 1
