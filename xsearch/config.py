"""The one source of defaults: typed build settings, also read from YAML recipes (unknown keys are refused)."""
from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

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
    encoder: str = "e5-small"
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


class IndexConfig(_Strict):
    name: str = "index"
    corpus: CorpusSpec
    bm25: BM25Spec = BM25Spec()
    dense: DenseSpec = DenseSpec()
    translate: TranslationSpec = TranslationSpec()
    splade: SpladeSpec = SpladeSpec()

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
