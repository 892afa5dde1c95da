"""Evaluation: collections (TALN/CLIRudit, TREC), ir-measures scoring with significance, transfer tasks, plots.

Importing this package is cheap: pandas, ir-measures, scipy, scikit-learn and matplotlib load on first use.
"""
from __future__ import annotations

from .collection import (Collection, clirudit_parquet, keyword_queries, oracle_docs, read_qrels, read_topics,
                         taln_collection, trec_collection)
from .metrics import (DEFAULT_MEASURES, bootstrap_ci, compare, evaluate, holm, paired_t_test, per_article_mean,
                      per_article_scores, randomisation_test, recall_curve, summarise)

__all__ = ["Collection", "taln_collection", "oracle_docs", "keyword_queries", "clirudit_parquet", "trec_collection",
           "read_topics", "read_qrels", "DEFAULT_MEASURES", "evaluate", "summarise", "per_article_scores",
           "per_article_mean", "recall_curve", "paired_t_test", "randomisation_test", "holm", "bootstrap_ci",
           "compare"]
