"""Plots are written as PNG files without a display."""
from __future__ import annotations

from pathlib import Path

import pytest

from xsearch.eval.plots import plot_means, plot_recall_curves
from xsearch.records import Run

pytest.importorskip("matplotlib")


def test_plots_write_png(tmp_path: Path) -> None:
    pd = pytest.importorskip("pandas")
    summary = pd.DataFrame({"mean": [0.3, 0.5], "ci_low": [0.25, 0.44], "ci_high": [0.35, 0.55]},
                           index=pd.Index(["bm25", "dense"], name="condition"))
    p1 = plot_means(summary, tmp_path / "means.png", title="toy")
    qrels = {"q1": {"d1": 1}, "q2": {"d2": 1}}
    runs = {"a": Run({"q1": {"d1": 1.0}}), "b": Run({"q1": {"d0": 2.0, "d1": 1.0}, "q2": {"d2": 1.0}})}
    p2 = plot_recall_curves(runs, qrels, tmp_path / "sub" / "recall.png", k_max=10)
    for p in (p1, p2):
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
