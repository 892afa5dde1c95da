"""One protocol per concept. Backends are adapters behind these; none of their objects leak out."""
from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, Sequence, runtime_checkable

if TYPE_CHECKING:
    import numpy as np

    from .records import Query, Run


@runtime_checkable
class Encoder(Protocol):
    """Text -> L2-normalised float32 vectors. Queries and passages may be encoded differently (e5 prompts)."""

    name: str
    dim: int

    def encode_queries(self, texts: Sequence[str], batch_size: int = 64) -> "np.ndarray": ...

    def encode_passages(self, texts: Sequence[str], batch_size: int = 32) -> "np.ndarray": ...


@runtime_checkable
class SparseEncoder(Protocol):
    """Text -> {term: weight} (SPLADE-style learned sparse vectors)."""

    name: str

    def encode_queries(self, texts: Sequence[str]) -> list[dict[str, float]]: ...

    def encode_passages(self, texts: Sequence[str]) -> list[dict[str, float]]: ...


@runtime_checkable
class Translator(Protocol):
    """Batched machine translation from `src` to `tgt` (ISO 639-1 codes)."""

    name: str

    def translate(self, texts: Sequence[str], src: str, tgt: str) -> list[str]: ...


@runtime_checkable
class QueryGenerator(Protocol):
    """Passage -> n pseudo-queries in the target language (doc2query, keyphrases)."""

    name: str

    def generate(self, passages: Sequence[str], n: int, lang: str) -> list[list[str]]: ...


@runtime_checkable
class Retriever(Protocol):
    """Batch first: every retriever (BM25, dense, impact, fused) answers a list of queries with one Run."""

    name: str

    def search(self, queries: "Sequence[Query]", k: int = 10) -> "Run": ...
