"""The one source of defaults: typed build settings, also read from YAML recipes (unknown keys are refused)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .errors import InputError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CorpusSpec(_Strict):
    path: str
    format: Literal["auto", "jsonl", "taln"] = "auto"
    lang: Optional[str] = Field(None, description="default language for records that carry none")


class BM25Spec(_Strict):
    enabled: bool = True
    k1: float = 0.9
    b: float = 0.4


class DenseSpec(_Strict):
    enabled: bool = True
    # e5-small-auto is resolved at build, per role, to the fastest multilingual-e5-small backend that kept fp32's
    # nDCG@10 on this kind of CPU (OpenVINO bf16 on AMX: 3.2x passages, ~5 ms a query; float32 elsewhere:
    # sentence-transformers for passages, ONNX Runtime for queries); the index records what it resolved to.
    encoder: str = "e5-small-auto"
    query_encoder: Optional[str] = Field("e5-small-auto",
                                         description="encoder for queries (same family); unset = encoder")
    kind: Literal["flat", "hnsw", "ivfpq"] = "flat"
    batch_size: Optional[int] = Field(None, description="passages per encoder call; unset = the encoder's own default")


class TranslationSpec(_Strict):
    """Document translation at index time (DT); the same translator serves query translation (QT)."""

    translator: Optional[str] = Field(None, description="apertium | ct2:<folder> | none; unset = no DT")
    target_lang: str = "en"
    dense: bool = Field(False, description="also encode the translated text (dense-dt route)")


class SpladeSpec(_Strict):
    enabled: bool = False
    encoder: str = "splade-tiny"
    on: Literal["translation", "original"] = "translation"
    # 512 = the model's limit: TALN's translated title + abstract often run past 256 word pieces (cut before)
    max_length: int = Field(512, ge=16, le=512, description="word pieces per passage (queries are short)")


class XQGVariant(_Strict):
    alpha: float = Field(ge=0.0)
    formula: Literal["xqg", "mean"] = "xqg"


class XQGSpec(_Strict):
    """Passage vectors augmented with generated-query vectors (xQG, Zhuang et al. 2023): route dense-xqg.

    See xsearch.qgen.augment for the two formulas; `sweep` adds routes dense-xqg@<formula><alpha> that share the
    generated queries and their vectors (only a FAISS index each)."""

    enabled: bool = False
    generator: str = Field("keyphrase", description="keyphrase | ct2:<folder> (a doc2query T5/mT5 model)")
    n: int = Field(10, ge=1, description="generated queries per passage")
    alpha: float = Field(0.02, ge=0.0)
    formula: Literal["xqg", "mean"] = Field("xqg", description="xqg: (1-a)p + a*sum(q) (the paper's code); "
                                                                "mean: normalise(p + a*mean(q))")
    lang: str = Field("en", description="language of the generated queries")
    translate: Optional[str] = Field(None, description="keyphrase only: translator into `lang` (apertium | "
                                                       "ct2:<folder>); unset = phrases kept in the passage language")
    sweep: list[XQGVariant] = Field(default_factory=list)


class FusionSpec(_Strict):
    """An extra fused route: `fuse` names routes of the index (RRF, a normalised weighted sum, or the maximum);
    `xsearch eval tune` prints one chosen on dev queries. Named `best`, it replaces the index's default `best`."""

    name: str
    fuse: list[str] = Field(min_length=2)
    method: Literal["rrf", "wsum", "max"] = "rrf"
    weights: Optional[list[float]] = None
    norm: Literal["minmax", "max", "zscore", "none"] = "minmax"
    rrf_k: Optional[int] = Field(None, ge=1, description="rrf, and the RRF of rrf_fill; unset = 60")
    rrf_fill: Optional[int] = Field(None, ge=1, description="n: the fused ranking's first n, then the RRF of the same routes below them (recall@100)")
    about: str = ""


class IndexConfig(_Strict):
    name: str = "index"
    corpus: CorpusSpec
    bm25: BM25Spec = BM25Spec()
    dense: DenseSpec = DenseSpec()
    translate: TranslationSpec = TranslationSpec()
    splade: SpladeSpec = SpladeSpec()
    xqg: XQGSpec = XQGSpec()
    components: list[dict[str, Any]] = Field(
        default_factory=list, description="more components, each {kind, name, ...} of a registered kind "
                                          "(xsearch.components), e.g. {kind: rm3, name: bm25-rm3, over: bm25}")
    fusions: list[FusionSpec] = Field(default_factory=list, description="more fused routes")
    default_route: Optional[str] = Field(None, description="unset: best, else hybrid, else the first route")
    facets: Optional[list[str]] = Field(None, description="stored fields counted over each search's candidates "
                                                          "(the API's facets, the page's filters); unset = year "
                                                          "and venue, those the documents hold")

    @model_validator(mode="after")
    def _xqg_needs_dense(self) -> "IndexConfig":
        if self.xqg.enabled and not self.dense.enabled:
            raise ValueError("xqg augments the dense vectors: it needs dense.enabled")
        return self

    @classmethod
    def from_yaml(cls, path: str | Path) -> "IndexConfig":
        path = Path(path)
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise InputError(f"invalid YAML: {exc}", source=str(path)) from None
        corpus = raw.get("corpus", {})
        if isinstance(corpus, dict) and "path" in corpus and not Path(corpus["path"]).is_absolute():
            # recipe paths are relative to the recipe's folder, so a recipe works from any working directory
            corpus["path"] = str((path.parent / corpus["path"]).resolve())
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            raise InputError(f"invalid index recipe:\n{exc}", source=str(path)) from None


class SearchDefaults(_Strict):
    k: int = 10
    max_k: int = 1000
    rrf_k: int = 60
    fusion_depth: int = 100
    query_lang: str = "en"
    # A filtered (or faceted) search ranks this many candidates, then keeps those whose stored fields pass: its
    # cost is bounded (one retrieval this deep, one read of the candidates' fields, whole documents for the page
    # only); a filter that few of them pass returns fewer hits, and `candidates` says how many were looked at.
    filter_depth: int = Field(300, ge=1, le=1000)
    facets: tuple[str, ...] = ("year", "venue")   # counted when the recipe names none (config.IndexConfig.facets)
    facet_values: int = Field(10, ge=1, description="most values shown per facet (the most frequent)")
    # query translations kept (least recently used dropped beyond): every distinct query of a QT route used to add a
    # row to translations.sqlite forever; document translations are never dropped
    query_translation_cache_rows: int = Field(100_000, ge=1)
