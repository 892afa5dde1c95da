"""Dev / test split by article: tune on dev, report test, so no setting is chosen on the queries it is judged on.

Queries of one article are correlated (every 3-keyword combination of the same keywords), so a split by query
would put near-duplicates on both sides. An article goes to dev when the hash of (seed, doc id) falls below
`dev_fraction`; a query goes where its first relevant article (smallest doc id) goes, so every article's own
queries stay together (a query shared by articles of both sides follows the smallest id; 1% of TALN's queries have
more than one relevant article). The hash makes the split independent of the order and count of the other docs.
"""
from __future__ import annotations

import hashlib
from typing import Literal, Mapping

from pydantic import BaseModel, ConfigDict, Field

from ..errors import InputError

Side = Literal["dev", "test"]


class SplitSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    seed: int = 12
    dev_fraction: float = Field(1 / 3, gt=0.0, lt=1.0)


def article_is_dev(doc_id: str, spec: SplitSpec) -> bool:
    digest = hashlib.sha256(f"{spec.seed}:{doc_id}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2 ** 64 < spec.dev_fraction


def query_split(qrels: Mapping[str, Mapping[str, int]], spec: SplitSpec = SplitSpec()) -> dict[str, Side]:
    """query id -> "dev" | "test" for every query with a relevant doc (the queries that are scored)."""
    out: dict[str, Side] = {}
    for qid, docs in qrels.items():
        relevant = sorted(d for d, r in docs.items() if r > 0)
        if relevant:
            out[qid] = "dev" if article_is_dev(relevant[0], spec) else "test"
    if not out:
        raise InputError("the qrels have no relevant document: nothing to split")
    return out


def side_qrels(qrels: Mapping[str, Mapping[str, int]], split: Mapping[str, Side], side: str
               ) -> dict[str, dict[str, int]]:
    """The qrels of one side ("dev", "test"; "all" = every query)."""
    if side not in ("dev", "test", "all"):
        raise InputError(f"split side must be dev, test or all, got {side!r}")
    return {q: dict(d) for q, d in qrels.items() if side == "all" or split.get(q) == side}


__all__ = ["SplitSpec", "Side", "article_is_dev", "query_split", "side_qrels"]
