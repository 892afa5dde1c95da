"""CTranslate2 translator for converted Marian/opus-mt, NLLB and M2M100 folders, plus a converter wrapper.

Why CTranslate2: int8 decoding on CPU is several times faster than PyTorch and float16 on a GPU is faster
still; the same folder serves both. Texts are split into sentences (MT models are trained on sentences and
truncate long inputs), all sentences of a call are sorted by length to minimise padding, and re-joined per text.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import InputError, XsearchError
from ..lazy import require
from ..paths import models_dir

# Split after . ! ? … when the next sentence starts with an upper-case letter, a digit or an opening quote.
_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+(?=(?:[«\"“(\[¿¡]\s?)?[A-ZÀ-ÖØ-Þ0-9])")
_NLLB = {"en": "eng_Latn", "fr": "fra_Latn", "es": "spa_Latn", "de": "deu_Latn", "it": "ita_Latn",
         "pt": "por_Latn", "nl": "nld_Latn", "ca": "cat_Latn", "ar": "arb_Arab", "zh": "zho_Hans",
         "ja": "jpn_Jpan", "ru": "rus_Cyrl", "ko": "kor_Hang", "pl": "pol_Latn", "ro": "ron_Latn"}
FAMILIES = ("marian", "nllb", "m2m100")
# Source positions when the folder does not say (xsearch.json "max_positions", written by convert_model):
# opus-mt Marian models have 512, NLLB and M2M100 1024.
_DEFAULT_POSITIONS = {"marian": 512, "nllb": 1024, "m2m100": 1024}


def split_sentences(text: str, max_words: int = 200) -> list[str]:
    """Whitespace-normalised sentences of text; pieces over max_words words are cut so none gets truncated."""
    text = " ".join(text.split())
    out: list[str] = []
    for sent in _SENTENCE_END.split(text) if text else []:
        words = sent.split()
        out.extend(" ".join(words[i:i + max_words]) for i in range(0, len(words), max_words))
    return out


def cut_pieces(pieces: list[str], limit: int) -> list[list[str]]:
    """Pieces cut into runs of at most limit, at a word start ("▁...") when the run has one after its start."""
    if limit < 1:
        raise InputError(f"max input length must be at least 1 piece, got {limit}")
    out: list[list[str]] = []
    start = 0
    while len(pieces) - start > limit:
        end = start + limit
        cut = next((j for j in range(end, start, -1) if pieces[j].startswith("▁")), end)
        out.append(pieces[start:cut])
        start = cut
    out.append(pieces[start:])
    return out


def _read_meta(folder: Path) -> dict[str, Any]:
    meta = folder / "xsearch.json"
    return json.loads(meta.read_text(encoding="utf-8")) if meta.is_file() else {}


def lang_token(family: str, code: str) -> str:
    """The language token a multilingual model expects: fr -> fra_Latn (NLLB), __fr__ (M2M100)."""
    if family == "nllb":
        return code if "_" in code else _NLLB.get(code, code)
    return code if code.startswith("__") else f"__{code}__"


def _vocabulary(folder: Path) -> list[str]:
    for name in ("shared_vocabulary", "source_vocabulary"):
        if (folder / f"{name}.json").is_file():
            return list(json.loads((folder / f"{name}.json").read_text(encoding="utf-8")))
        if (folder / f"{name}.txt").is_file():
            return (folder / f"{name}.txt").read_text(encoding="utf-8").splitlines()
    return []


def detect_family(folder: Path) -> str:
    """xsearch.json's "family" if set, else guessed from the vocabulary's language tokens."""
    family = _read_meta(folder).get("family")
    if family:
        return str(family)
    vocab = set(_vocabulary(folder))
    if "eng_Latn" in vocab:
        return "nllb"
    if "__en__" in vocab:
        return "m2m100"
    return "marian"


def _spm_files(folder: Path) -> tuple[Path, Path]:
    if (folder / "source.spm").is_file():
        tgt = folder / "target.spm"
        return folder / "source.spm", tgt if tgt.is_file() else folder / "source.spm"
    for name in ("sentencepiece.bpe.model", "spm.model", "sentencepiece.model"):
        if (folder / name).is_file():
            return folder / name, folder / name
    found = sorted(folder.glob("*.model")) + sorted(folder.glob("*.spm"))
    if found:
        return found[0], found[0]
    raise InputError("no SentencePiece model (source.spm/target.spm or sentencepiece.bpe.model) in the folder; "
                     "convert with xsearch.translate.convert_model, which copies them", source=str(folder))


class CTranslate2Translator:
    """Translator over a CTranslate2 model folder; int8 on CPU, float16 on CUDA unless compute_type is given.

    A sentence is first cut at max_sentence_words words, then any run of SentencePiece pieces longer than the
    model's source positions (max_input_tokens; default: xsearch.json's "max_positions", else the family's usual
    size) is cut again, so no input is truncated by the model or overflows its position table.
    """

    name = "ct2"

    def __init__(self, model_dir: str | Path, *, device: str = "auto", compute_type: str | None = None,
                 beam_size: int = 4, max_decoding_length: int = 256, max_batch_size: int = 32,
                 batch_type: str = "examples", max_sentence_words: int = 200, family: str | None = None,
                 source_prefix: Sequence[str] = (), target_prefix: Sequence[str] | None = None,
                 intra_threads: int = 0, inter_threads: int = 1, model_id: str | None = None,
                 max_input_tokens: int | None = None):
        folder = Path(model_dir)
        if not (folder / "model.bin").is_file():
            raise InputError("not a CTranslate2 model folder (no model.bin)", source=str(folder))
        self.family = family or detect_family(folder)
        if self.family not in FAMILIES:
            raise InputError(f"unknown model family {self.family!r}; expected one of {FAMILIES}")
        ct2 = require("ctranslate2")
        spm = require("sentencepiece")
        if device == "auto":
            device = "cuda" if ct2.get_cuda_device_count() > 0 else "cpu"
        self.device = device
        self.compute_type = compute_type or ("float16" if device == "cuda" else "int8")
        self._model = ct2.Translator(str(folder), device=device, compute_type=self.compute_type,
                                     intra_threads=intra_threads, inter_threads=inter_threads)
        src_spm, tgt_spm = _spm_files(folder)
        self._src_sp = spm.SentencePieceProcessor(model_file=str(src_spm))
        self._tgt_sp = spm.SentencePieceProcessor(model_file=str(tgt_spm))
        config = json.loads((folder / "config.json").read_text(encoding="utf-8")) \
            if (folder / "config.json").is_file() else {}
        self._add_eos = not config.get("add_source_eos", False)  # the converter may already add it
        self.beam_size, self.max_decoding_length = beam_size, max_decoding_length
        self.max_batch_size, self.batch_type, self.max_sentence_words = max_batch_size, batch_type, max_sentence_words
        self.source_prefix, self.target_prefix = list(source_prefix), target_prefix
        self.max_input_tokens = int(max_input_tokens or _read_meta(folder).get("max_positions")
                                    or _DEFAULT_POSITIONS[self.family])
        # the target side shares the position table: a longer decode would fail the same way
        self.max_decoding_length = min(max_decoding_length, self.max_input_tokens - 2)
        self.model_id = model_id or (f"{folder.resolve().name}|{self.family}|beam{beam_size}"
                                     f"|len{self.max_decoding_length}")

    def _prefixes(self, src: str, tgt: str) -> tuple[list[str], list[str]]:
        if self.family == "marian":
            return self.source_prefix, list(self.target_prefix or [])
        src_prefix = self.source_prefix or [lang_token(self.family, src)]
        tgt_prefix = list(self.target_prefix) if self.target_prefix is not None else [lang_token(self.family, tgt)]
        return src_prefix, tgt_prefix

    def translate(self, texts: Sequence[str], src: str, tgt: str) -> list[str]:
        if isinstance(texts, str):
            raise InputError("translate() takes a sequence of texts, not one string")
        owners: list[int] = []
        sentences: list[str] = []
        for i, text in enumerate(texts):
            for sent in split_sentences(text, self.max_sentence_words):
                owners.append(i)
                sentences.append(sent)
        if not sentences:
            return ["" for _ in texts]
        src_prefix, tgt_prefix = self._prefixes(src, tgt)
        eos = ["</s>"] if self._add_eos else []
        limit = self.max_input_tokens - len(src_prefix) - len(eos)
        tokens: list[list[str]] = []
        chunk_owners: list[int] = []
        for owner, toks in zip(owners, self._src_sp.encode(sentences, out_type=str)):
            for run in cut_pieces(toks, limit):
                tokens.append(src_prefix + run + eos)
                chunk_owners.append(owner)
        owners = chunk_owners
        order = sorted(range(len(tokens)), key=lambda k: len(tokens[k]))
        results = self._model.translate_batch(
            [tokens[k] for k in order], target_prefix=[tgt_prefix] * len(order) if tgt_prefix else None,
            max_batch_size=self.max_batch_size, batch_type=self.batch_type, beam_size=self.beam_size,
            max_decoding_length=self.max_decoding_length)
        hyps: list[list[str]] = [[] for _ in order]
        for k, res in zip(order, results):
            hyp = res.hypotheses[0]
            hyps[k] = hyp[len(tgt_prefix):] if tgt_prefix and hyp[:len(tgt_prefix)] == tgt_prefix else hyp
        decoded = self._tgt_sp.decode(hyps)
        parts: list[list[str]] = [[] for _ in texts]
        for owner, sent in zip(owners, decoded):
            parts[owner].append(sent.strip())
        return [" ".join(p for p in ps if p) for ps in parts]


def convert_model(hf_id_or_path: str, out_dir: str | Path | None = None, quantization: str = "int8",
                  force: bool = False) -> Path:
    """Convert a Hugging Face MT model with ct2-transformers-converter and copy its SentencePiece files.

    Needs a network for a hub id (the converter downloads it); the default output is models_dir()/<name>-ct2.
    """
    for module in ("ctranslate2", "transformers", "torch", "sentencepiece"):
        require(module)
    out = Path(out_dir) if out_dir else models_dir() / (hf_id_or_path.rstrip("/").replace("/", "--") + "-ct2")
    cmd = [sys.executable, "-m", "ctranslate2.converters.transformers", "--model", hf_id_or_path,
           "--output_dir", str(out), "--quantization", quantization] + (["--force"] if force else [])
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True)
    if proc.returncode != 0:
        raise XsearchError(f"ct2-transformers-converter failed for {hf_id_or_path}: {proc.stderr.strip()[-1500:]}")
    src = Path(hf_id_or_path)
    if not src.is_dir():
        hub: Any = require("huggingface_hub")
        src = Path(hub.snapshot_download(hf_id_or_path, allow_patterns=["*.spm", "*.model", "config.json"]))
    copied = [shutil.copy2(f, out / f.name) for pattern in ("*.spm", "*.model") for f in src.glob(pattern)]
    if not copied:
        raise InputError("the model has no SentencePiece file (*.spm, *.model) to copy", source=hf_id_or_path)
    meta: dict[str, Any] = {"source": hf_id_or_path, "quantization": quantization, "family": detect_family(out)}
    hf_config = src / "config.json"
    if hf_config.is_file():
        positions = json.loads(hf_config.read_text(encoding="utf-8")).get("max_position_embeddings")
        if positions:
            meta["max_positions"] = int(positions)
    (out / "xsearch.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
    return out
