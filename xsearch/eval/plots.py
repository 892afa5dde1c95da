"""PNG figures for reports (matplotlib, Agg backend: no display needed on servers or CI)."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Mapping

from ..lazy import require
from .metrics import recall_curve

if TYPE_CHECKING:
    import pandas as pd


def _pyplot():  # noqa: ANN202 - the pyplot module
    mpl = require("matplotlib")
    mpl.use("Agg")
    return require("matplotlib.pyplot")


def plot_means(summary: "pd.DataFrame", path: str | Path, title: str = "", ylabel: str = "nDCG@10") -> Path:
    """Bar per condition (compare()'s frame: index condition, columns mean, ci_low, ci_high) with 95% CI whiskers."""
    plt = _pyplot()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    names = [str(c) for c in summary.index]
    means = summary["mean"].to_numpy()
    err = [means - summary["ci_low"].to_numpy(), summary["ci_high"].to_numpy() - means]
    fig, ax = plt.subplots(figsize=(max(4.0, 0.9 * len(names) + 2), 3.6))
    ax.bar(range(len(names)), means, yerr=err, capsize=4, color="#4c78a8")
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    for i, m in enumerate(means):
        ax.text(i, m / 2, f"{m:.3f}", ha="center", va="center", color="white", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_recall_curves(runs: Mapping[str, Mapping[str, Mapping[str, float]]], qrels: Mapping[str, Mapping[str, int]],
                       path: str | Path, k_max: int = 100, title: str = "") -> Path:
    """Recall@k for k = 1..k_max, one line per condition (shows where a method's misses sit in the ranking)."""
    plt = _pyplot()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    ks = range(1, k_max + 1)
    for name, run in runs.items():
        ax.plot(ks, recall_curve(run, qrels, k_max), label=name)
    ax.set_xscale("log")
    ax.set_xlabel("k")
    ax.set_ylabel("recall@k")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


__all__ = ["plot_means", "plot_recall_curves"]
