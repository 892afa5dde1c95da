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

Storage: the component kind "xqg" (xsearch.components.xqg) keeps, per document, the augmented vector, the plain
passage vector, the mean generated-query vector and the queries; `reaugment(index, alpha)` rewrites the vectors
from them (no encoding) through the index writer. Sweep components (dense-xqg@<formula><alpha>) share the
generation cache, so their queries are the same.
"""
from __future__ import annotations

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


def _encode_sorted(encoder: Any, texts: list[str], batch_size: int = 256) -> np.ndarray:
    dim = int(encoder.dim)
    if not texts:
        return np.zeros((0, dim), np.float32)
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = np.empty((len(texts), dim), np.float32)
    out[order] = encoder.encode_queries([texts[i] for i in order], batch_size=batch_size)
    return out


# ---------------------------------------------------------------------------------------------------- afterwards
def reaugment(index_path: str | Path, alpha: float, formula: str | None = None,
              component: str = "dense-xqg") -> dict:
    """A new alpha (and formula) for an xQG component, from its stored plain passage and query vectors: nothing is
    encoded. One commit of the index writer (a new generation every reader switches to); returns the component's
    manifest entry."""
    from ..storage.writer import IndexWriter

    with IndexWriter(index_path) as writer:
        writer.reaugment(component, alpha, formula)
        manifest = writer.commit()
    return manifest.components[component].model_dump(mode="json")


def generated_queries(index: Any, doc_id: str, component: str | None = None) -> list[str] | None:
    """The queries generated for `doc_id` (an Index or an index folder); None if the doc has none."""
    from ..index import Index

    if not isinstance(index, Index):
        index = Index(index)
    return index.generated_queries(doc_id, component)
