"""doc2query-style query generation with a T5/mT5 model through CTranslate2 (spec "ct2:<folder>").

The folder is a CTranslate2 conversion of a T5ForConditionalGeneration / MT5ForConditionalGeneration model
(`ct2-transformers-converter --model ... --copy_files spiece.model`) holding its SentencePiece model. Queries are
drawn by top-k random sampling, `num_hypotheses=n` samples per passage in one `translate_batch` call, as the xQG
authors' generator is used (ielab/xQG4xDR README: do_sample, top_k=10, max_length=64, 10 return sequences).
An optional `xsearch.json` in the folder may give {"prompt": ...}; ielab's mT5 xQG model expects
"Generate a {lang_name} question for this passage: {passage}".
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from ..errors import InputError
from ..lazy import require
from . import checked_passages

LANG_NAMES = {"en": "English", "fr": "French", "de": "German", "es": "Spanish", "it": "Italian", "pt": "Portuguese",
              "nl": "Dutch", "ar": "Arabic", "bn": "Bengali", "fi": "Finnish", "ja": "Japanese", "ko": "Korean",
              "ru": "Russian", "te": "Telugu", "zh": "Chinese"}


def _spm_file(folder: Path) -> Path:
    for name in ("spiece.model", "sentencepiece.model", "spm.model", "source.spm"):
        if (folder / name).is_file():
            return folder / name
    found = sorted(folder.glob("*.model"))
    if found:
        return found[0]
    raise InputError("no SentencePiece model (spiece.model) in the folder; convert with "
                     "ct2-transformers-converter --copy_files spiece.model", source=str(folder))


class Seq2SeqQueryGenerator:
    """QueryGenerator over a CTranslate2 T5/mT5 folder: n sampled queries per passage (int8 on CPU)."""

    name = "seq2seq"

    def __init__(self, model_dir: str | Path, *, prompt: str | None = None, sampling_topk: int = 10,
                 sampling_temperature: float = 1.0, max_input_tokens: int = 512, max_decoding_length: int = 64,
                 max_batch_size: int = 16, seed: int = 0, device: str = "auto", compute_type: str | None = None,
                 intra_threads: int = 0):
        folder = Path(model_dir).expanduser()
        if not (folder / "model.bin").is_file():
            raise InputError("not a CTranslate2 model folder (no model.bin)", source=str(folder))
        meta = folder / "xsearch.json"
        meta_prompt = json.loads(meta.read_text(encoding="utf-8")).get("prompt") if meta.is_file() else None
        self.prompt = prompt if prompt is not None else (meta_prompt or "{passage}")
        if "{passage}" not in self.prompt:
            raise InputError(f"the prompt must contain '{{passage}}', got {self.prompt!r}")
        ct2 = require("ctranslate2")
        spm = require("sentencepiece")
        if device == "auto":
            device = "cuda" if ct2.get_cuda_device_count() > 0 else "cpu"
        self.device = device
        self.compute_type = compute_type or ("float16" if device == "cuda" else "int8")
        # CTranslate2 seeds a translator's sampling generator when it first samples; seeding before the model is
        # built makes a fresh generator reproducible (same seed, same calls -> same queries). A later
        # set_random_seed does not reset it, hence no per-call seed; the generation cache keeps what was drawn.
        ct2.set_random_seed(seed)
        self._model = ct2.Translator(str(folder), device=device, compute_type=self.compute_type,
                                     intra_threads=intra_threads)
        self._sp = spm.SentencePieceProcessor(model_file=str(_spm_file(folder)))
        self.sampling_topk, self.sampling_temperature = sampling_topk, sampling_temperature
        self.max_input_tokens, self.max_decoding_length = max_input_tokens, max_decoding_length
        self.max_batch_size, self.seed = max_batch_size, seed
        self.model_id = (f"{folder.resolve().name}|topk{sampling_topk}|t{sampling_temperature:g}|"
                         f"in{max_input_tokens}|len{max_decoding_length}|seed{seed}|{self.prompt}")

    def generate(self, passages: Sequence[str], n: int, lang: str, *, src_lang: str | None = None,
                 passage_vectors: object = None) -> list[list[str]]:
        """n sampled queries per passage (duplicates kept: they weigh the mean as in the paper's sum; empty
        samples dropped, so a passage can get fewer)."""
        passages = checked_passages(passages, n)
        if not passages:
            return []
        lang_name = LANG_NAMES.get(lang, lang)
        texts = [self.prompt.format(passage=" ".join(p.split()), lang=lang, lang_name=lang_name) for p in passages]
        tokens = [toks[: self.max_input_tokens - 1] + ["</s>"] for toks in self._sp.encode(texts, out_type=str)]
        order = sorted(range(len(tokens)), key=lambda i: len(tokens[i]))  # less padding per batch
        results = self._model.translate_batch(
            [tokens[i] for i in order], max_batch_size=self.max_batch_size, beam_size=1,
            sampling_topk=self.sampling_topk, sampling_temperature=self.sampling_temperature, num_hypotheses=n,
            max_decoding_length=self.max_decoding_length)
        out: list[list[str]] = [[] for _ in passages]
        for i, res in zip(order, results):
            decoded = self._sp.decode([list(h) for h in res.hypotheses])
            out[i] = [q for q in (" ".join(d.split()) for d in decoded) if q]
        return out
