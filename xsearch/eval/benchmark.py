"""Benchmark definitions (YAML in eval/): a collection, the indexes to build, and conditions as small entries.

A condition is either `{index, route}` (a route of one of the benchmark's indexes) or `{fuse: [conditions],
method, weights}` (a fusion of other conditions' runs). Adding a route to the table is adding three lines of YAML.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ..config import BM25Spec, DenseSpec, FusionSpec, SpladeSpec, TranslationSpec, XQGSpec
from ..errors import InputError
from .split import SplitSpec


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CollectionSpec(_Strict):
    kind: Literal["taln", "clirudit", "trec"] = "taln"
    path: Optional[str] = Field(None, description="data folder (taln: default ../shared/data), parquet folder "
                                                   "(clirudit) or corpus JSONL (trec)")
    topics: Optional[str] = None
    qrels: Optional[str] = None


class IndexSpec(_Strict):
    """How to build one index over the collection's documents; `docs: oracle` indexes the human translation."""

    docs: Literal["original", "oracle"] = "original"
    oracle_fallback: Optional[str] = Field("apertium", description="translator for docs with no human translation")
    bm25: BM25Spec = BM25Spec()
    dense: DenseSpec = DenseSpec(enabled=False)
    translate: TranslationSpec = TranslationSpec()
    splade: SpladeSpec = SpladeSpec()
    xqg: XQGSpec = XQGSpec()
    components: list[dict[str, Any]] = Field(default_factory=list, description="as the index recipe's")
    fusions: list[FusionSpec] = Field(default_factory=list, description="as the index recipe's")

    def cache_key(self) -> dict:
        """The spec as the index cache keys it: keys added after indexes were cached are left out while unused
        (xqg off, no components or fusions, SPLADE off or at its old 256 word pieces), so those indexes hold."""
        out = self.model_dump()
        if not self.xqg.enabled:
            out.pop("xqg")
        for key in ("components", "fusions"):
            if not out[key]:
                out.pop(key)
        if not self.splade.enabled or self.splade.max_length == 256:
            out["splade"].pop("max_length")
        return out


class Condition(_Strict):
    name: str
    about: str = ""
    index: Optional[str] = None
    route: Optional[str] = None
    fuse: Optional[list[str]] = None
    method: Literal["rrf", "wsum", "max"] = "rrf"
    weights: Optional[list[float]] = None
    norm: Literal["minmax", "max", "zscore", "none"] = "minmax"
    rrf_k: int = Field(60, ge=1)
    rrf_fill: Optional[int] = Field(None, ge=1, description="n: the fused ranking's first n, then the RRF of the same routes below them (recall@100)")
    fast: bool = Field(False, description="part of the quick subset (reproduction check in tests)")
    opt_in: bool = Field(False, description="skipped by `eval run` unless `--only` names it or `--all` is given "
                                           "(variants that lost on dev and feed no default condition)")

    @model_validator(mode="after")
    def _one_kind(self) -> "Condition":
        if bool(self.fuse) == bool(self.index and self.route):
            raise ValueError(f"condition {self.name!r}: give either index+route or fuse")
        return self


class Benchmark(_Strict):
    name: str
    collection: CollectionSpec = CollectionSpec()
    query_lang: str = "en"
    k: int = 100
    measures: list[str] = ["nDCG@10", "R@100", "RR@10", "AP"]
    main_measure: str = "nDCG@10"
    baseline: str
    wins_losses_vs: list[str] = Field(default_factory=list, description="conditions every other condition is also "
                                      "compared with query by query (wins / ties / losses on the main measure)")
    indexes: dict[str, IndexSpec]
    conditions: list[Condition]
    split: SplitSpec = SplitSpec()
    query_vector_cache: bool = Field(False, description="keep query vectors across runs in the cache "
                                     "(xsearch.qvstore): a rerun encodes no query it has seen; off where the "
                                     "search times are the measurement (eval/encoders.yaml)")
    ladder: list[str] = Field(default_factory=list, description="conditions in order of addition: each is tested "
                              "against the best of those before it (on test and on all queries)")

    @model_validator(mode="after")
    def _refs(self) -> "Benchmark":
        names = [c.name for c in self.conditions]
        by_name = {c.name: c for c in self.conditions}
        if len(set(names)) != len(names):
            raise ValueError("condition names must be unique")
        seen: set[str] = set()
        for c in self.conditions:
            if c.index and c.index not in self.indexes:
                raise ValueError(f"condition {c.name!r} uses unknown index {c.index!r}")
            for part in c.fuse or []:
                if part not in seen:
                    raise ValueError(f"condition {c.name!r} fuses {part!r}, which must be defined before it")
                if by_name[part].opt_in and not c.opt_in:
                    raise ValueError(f"condition {c.name!r} fuses the opt-in condition {part!r}: make it opt-in "
                                     "too, or run the part by default")
            seen.add(c.name)
        if self.baseline not in names:
            raise ValueError(f"baseline {self.baseline!r} is not a condition")
        if by_name[self.baseline].opt_in:
            raise ValueError(f"the baseline {self.baseline!r} cannot be opt-in")
        unknown = [n for n in [*self.wins_losses_vs, *self.ladder] if n not in names]
        if unknown:
            raise ValueError(f"wins_losses_vs / ladder name unknown conditions {unknown}")
        return self

    @classmethod
    def from_yaml(cls, path: str | Path) -> "Benchmark":
        path = Path(path)
        if not path.exists():
            raise InputError("benchmark file not found", source=str(path))
        try:
            return cls.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")) or {})
        except (yaml.YAMLError, ValidationError) as exc:
            raise InputError(f"invalid benchmark definition:\n{exc}", source=str(path)) from None
