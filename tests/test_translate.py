"""Translation backends: Apertium alignment, the resumable cache, and CTranslate2 on a tiny random Marian model."""
from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from xsearch.errors import InputError, MissingBackendError, XsearchError
from xsearch.translate import CachedTranslator, IdentityTranslator, TranslationCache, make_translator
from xsearch.translate.apertium import APT_HINT, ApertiumTranslator, find_route
from xsearch.translate.ct2 import cut_pieces, split_sentences

ROOT = Path(__file__).resolve().parents[1]
MODES = subprocess.run(["apertium", "-l"], check=False, capture_output=True, text=True).stdout.split() \
    if shutil.which("apertium") else []
needs_apertium = pytest.mark.skipif(
    not {"fr-es", "spa-eng", "eng-spa", "es-fr"} <= set(MODES),
    reason=f"Apertium or its fr-es / eng-spa pairs are not installed ({APT_HINT})")

TRICKY = ["", "Le chat [noir] ^est$ là \\ / @ * # < > & { } ~ |", "une ligne\navec un saut\r\net un autre",
          "   ", "Tab\tici", "\u2028séparateur\u2029Unicode\x85", "é", "<p>balise</p> &amp; entité",
          "3,5 % des 12 000 mots", "C'est-à-dire : « oui » — non…", "x\x00y", "Fin sans point"]


# --- Apertium ------------------------------------------------------------------------------------------------

def test_find_route_pivots_through_spanish() -> None:
    modes = ["eco-fr-es", "eng-spa", "es-fr", "fr-es", "spa-eng", "spa-eng_US"]
    assert find_route(modes, "fr", "en") == ["fr-es", "spa-eng"]
    assert find_route(modes, "en", "fr") == ["eng-spa", "es-fr"]
    assert find_route(modes, "fra", "spa") == ["fr-es"]
    assert find_route(["fr-es"], "fr", "en") is None


def test_missing_binary_names_debian_packages() -> None:
    with pytest.raises(MissingBackendError, match="apertium-fr-es apertium-eng-spa"):
        ApertiumTranslator(binary="no-such-apertium-binary")


@needs_apertium
def test_missing_pair_names_debian_packages() -> None:
    t = ApertiumTranslator()
    t.modes = ["fr-es"]
    with pytest.raises(MissingBackendError, match="apertium-eng-spa"):
        t.translate(["Bonjour"], "fr", "en")


@needs_apertium
def test_failing_stage_raises_with_its_message() -> None:
    with pytest.raises(XsearchError, match="xx-yy"):
        ApertiumTranslator()._pipeline("Bonjour\n", ["fr-es", "xx-yy"])


@needs_apertium
def test_timeout_kills_the_whole_pipeline() -> None:
    t = ApertiumTranslator(timeout_s=0.3)
    start = time.perf_counter()
    with pytest.raises(XsearchError, match="timed out"):
        t._pipeline("Le chat noir. " * 200_000, ["fr-es", "spa-eng"])
    assert time.perf_counter() - start < 5  # no orphaned stage kept the pipe open


def test_misaligned_batch_is_bisected(monkeypatch: pytest.MonkeyPatch) -> None:
    """A stage that merges two lines must not shift the translations of the other texts."""
    t = ApertiumTranslator.__new__(ApertiumTranslator)

    def fake(data: str, route: list[str]) -> str:
        return data.replace("A\n\nB", "A B").upper()  # "A" and "B" merge whenever they are adjacent

    monkeypatch.setattr(t, "_pipeline", fake)
    lines = ["x", "y", "A", "B", "z"]
    assert t._aligned(lines, ["fr-es"]) == ["X", "Y", "A", "B", "Z"]


@needs_apertium
def test_apertium_fr_en_and_en_fr() -> None:
    t = ApertiumTranslator()
    fr = "L'étude mesure l'effet du changement climatique sur les rendements agricoles en Afrique de l'Ouest."
    en = t.translate([fr], "fr", "en")[0]
    assert "climatic change" in en and "agricultural" in en
    back = t.translate(["The study measures the effect of climate change."], "en", "fr")[0]
    assert "étude" in back
    assert t.translate(["Même texte"], "fr", "fr") == ["Même texte"]
    assert "apertium=" in t.model_id or t.model_id == "apertium"


@needs_apertium
def test_apertium_batch_aligns_with_one_by_one() -> None:
    """A batch gives each text what it gives alone, in any order: one pipeline per batch never shifts outputs."""
    t = ApertiumTranslator(batch_size=7)  # two pipeline runs, so the batch boundary is exercised too
    texts = TRICKY + ["Le modèle de langue est évalué sur un corpus.", "Nous proposons une méthode."]
    batched = t.translate(texts, "fr", "en")
    assert len(batched) == len(texts) and all(isinstance(x, str) for x in batched)
    assert batched[0] == "" and batched[3].strip() == ""
    assert all("\n" not in x for x in batched)
    assert t.translate(texts[::-1], "fr", "en")[::-1] == batched  # position-independent, so aligned
    assert [t.translate([texts[i]], "fr", "en")[0] for i in (1, 2, 11)] == [batched[i] for i in (1, 2, 11)]


@needs_apertium
def test_apertium_through_make_translator_with_cache(tmp_path: Path) -> None:
    t = make_translator("apertium", cache_path=tmp_path / "tr.sqlite")
    assert isinstance(t, CachedTranslator)
    first = t.translate(["Le chat noir.", "Le chat noir.", ""], "fr", "en")
    assert first[0] == first[1] and first[2] == ""
    assert (t.last_stats.hits, t.last_stats.misses) == (0, 2)
    assert t.translate(["Le chat noir."], "fr", "en") == first[:1]
    assert (t.last_stats.hits, t.last_stats.misses) == (1, 0)


# --- cache ---------------------------------------------------------------------------------------------------

class Recording:
    name = "recording"
    model_id = "v1"

    def __init__(self) -> None:
        self.seen: list[str] = []

    def translate(self, texts: Sequence[str], src: str, tgt: str) -> list[str]:
        self.seen.extend(texts)
        return [f"{tgt}:{t}" for t in texts]


_KILLED_RUN = """
import os, signal, sys
from xsearch.translate import CachedTranslator
class Killer:
    name, model_id, calls = "recording", "v1", 0
    def translate(self, texts, src, tgt):
        self.calls += 1
        if self.calls == 4:
            os.kill(os.getpid(), signal.SIGKILL)  # dies in the middle of the 4th batch
        return [f"{tgt}:{t}" for t in texts]
texts = [f"texte {i}" for i in range(100)]
CachedTranslator(Killer(), sys.argv[1], batch_size=10).translate(texts, "fr", "en")
"""


def test_killed_run_resumes_without_redoing(tmp_path: Path) -> None:
    db = tmp_path / "cache.sqlite"
    proc = subprocess.run([sys.executable, "-c", _KILLED_RUN, str(db)], check=False, cwd=ROOT,
                          capture_output=True, text=True)
    assert proc.returncode == -9, proc.stderr
    rows = sqlite3.connect(db).execute("SELECT * FROM translations").fetchall()  # readable by a fresh client
    assert len(rows) == 30
    texts = [f"texte {i}" for i in range(100)]
    inner = Recording()
    cached = CachedTranslator(inner, db, batch_size=10)
    out = cached.translate(texts, "fr", "en")
    assert out == [f"en:{t}" for t in texts]
    assert inner.seen == texts[30:]
    assert (cached.last_stats.hits, cached.last_stats.misses) == (30, 70)
    assert cached.cache.integrity_check() and len(cached.cache) == 100


def test_cache_keys_separate_backend_model_and_direction(tmp_path: Path) -> None:
    inner = Recording()
    cache = TranslationCache(tmp_path / "c.sqlite")
    ticks: list[int] = []
    a = CachedTranslator(inner, cache, batch_size=2, progress=ticks.append)
    assert a.translate(["a", "b", "a", "c"], "fr", "en") == ["en:a", "en:b", "en:a", "en:c"]
    assert inner.seen == ["a", "b", "c"] and ticks == [2, 1]
    assert a.translate(["a"], "en", "fr") == ["fr:a"]  # another direction is another key
    assert CachedTranslator(inner, cache, model_id="v2").translate(["a"], "fr", "en") == ["en:a"]
    assert inner.seen == ["a", "b", "c", "a", "a"]
    assert a.stats.misses == 4 and a.stats.words == 4 and "words/s" in str(a.stats)


def test_cache_rejects_a_non_database(tmp_path: Path) -> None:
    bad = tmp_path / "bad.sqlite"
    bad.write_text("not sqlite" * 100)
    with pytest.raises(InputError):
        TranslationCache(bad)


# --- factory and imports -------------------------------------------------------------------------------------

def test_make_translator_specs() -> None:
    t = make_translator("none")
    assert isinstance(t, IdentityTranslator) and t.translate(["a", ""], "fr", "en") == ["a", ""]
    with pytest.raises(InputError):
        make_translator("google")
    with pytest.raises(InputError):
        make_translator("ct2:")
    with pytest.raises(InputError):
        t.translate("a string", "fr", "en")  # type: ignore[arg-type]


def test_import_loads_no_heavy_backend() -> None:
    code = ("import sys, xsearch.translate, xsearch.translate.ct2, xsearch.translate.apertium; "
            "print(sorted({'torch', 'ctranslate2', 'transformers'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --- CTranslate2 ---------------------------------------------------------------------------------------------

def test_split_sentences() -> None:
    assert split_sentences("") == [] and split_sentences("  \n ") == []
    assert split_sentences("Une phrase. Deux ! Trois ? « Quatre » 5 fois.") == [
        "Une phrase.", "Deux !", "Trois ?", "« Quatre » 5 fois."]
    assert split_sentences("cf. la section\nsuivante, p. ex. ici") == ["cf. la section suivante, p. ex. ici"]
    assert [len(s.split()) for s in split_sentences("mot " * 450, max_words=200)] == [200, 200, 50]


@pytest.mark.slow
def test_ct2_tiny_marian_translates_one_output_per_input(tiny_marian: Path) -> None:
    from xsearch.translate.ct2 import CTranslate2Translator

    t = make_translator(f"ct2:{tiny_marian}", beam_size=2, max_decoding_length=12, max_batch_size=4)
    assert isinstance(t, CTranslate2Translator)
    assert t.family == "marian" and t.device == "cpu" and t.compute_type == "int8"
    calls: list[list[list[str]]] = []
    real = t._model.translate_batch

    def spy(source: list[list[str]], **kw: object) -> object:
        calls.append(source)
        return real(source, **kw)

    t._model = type("Spy", (), {"translate_batch": staticmethod(spy)})()
    texts = ["", "Le modèle. Nous proposons une méthode ! Et la suite ?", "un mot", "   ",
             "la traduction du texte " * 100, "Une question ?"]
    out = t.translate(texts, "fr", "en")
    assert len(out) == len(texts) and all(isinstance(x, str) for x in out)
    assert out[0] == "" and out[3] == ""
    assert all(out[i] for i in (1, 2, 4, 5))
    assert len(calls) == 1  # one call for every sentence of the batch
    n_sentences = sum(len(split_sentences(x)) for x in texts)
    assert n_sentences == 3 + 1 + 2 + 1
    lengths = [len(s) for s in calls[0]]
    assert lengths == sorted(lengths) and all(s[-1] == "</s>" for s in calls[0])
    assert len(calls[0]) == n_sentences
    assert t.translate([], "fr", "en") == [] and t.translate(["", " "], "fr", "en") == ["", ""]


@pytest.mark.slow
def test_ct2_cuts_sentences_longer_than_the_position_table(tiny_marian: Path) -> None:
    from xsearch.translate.ct2 import CTranslate2Translator

    # 320 words without a sentence end: ~2,500 pieces with the tiny 128-piece vocabulary, 256 positions
    text = "Les modèles neuronaux multilingues apprennent des représentations partagées " * 40
    unbounded = CTranslate2Translator(tiny_marian, max_sentence_words=1000, max_decoding_length=8,
                                      max_input_tokens=10_000)
    with pytest.raises(RuntimeError, match="position"):  # what the model does with the whole sentence
        unbounded.translate([text], "fr", "en")
    t = CTranslate2Translator(tiny_marian, max_sentence_words=1000, max_decoding_length=8)
    assert t.max_input_tokens == 256  # from xsearch.json
    calls: list[list[list[str]]] = []
    real = t._model.translate_batch
    t._model = type("Spy", (), {"translate_batch": staticmethod(
        lambda source, **kw: calls.append(source) or real(source, **kw))})()
    out = t.translate([text, "Court."], "fr", "en")
    assert len(out) == 2 and out[0] and out[1]
    pieces = t._src_sp.encode(text.strip(), out_type=str)
    runs = cut_pieces(pieces, 255)
    assert len(runs) >= 10 and len(calls[0]) == len(runs) + 1
    assert max(map(len, calls[0])) <= 256
    assert sorted(p for src in calls[0] for p in src if p != "</s>") == sorted(
        pieces + t._src_sp.encode("Court.", out_type=str))  # nothing dropped


def test_ct2_rejects_a_folder_without_model(tmp_path: Path) -> None:
    from xsearch.translate.ct2 import CTranslate2Translator

    with pytest.raises(InputError, match="model.bin"):
        CTranslate2Translator(tmp_path)


def test_ct2_language_prefixes_for_multilingual_models() -> None:
    from xsearch.translate.ct2 import CTranslate2Translator, lang_token

    assert (lang_token("nllb", "fr"), lang_token("nllb", "fra_Latn"), lang_token("m2m100", "en")) == (
        "fra_Latn", "fra_Latn", "__en__")
    t = CTranslate2Translator.__new__(CTranslate2Translator)
    t.source_prefix, t.target_prefix = [], None
    for family, expected in [("nllb", (["fra_Latn"], ["eng_Latn"])), ("m2m100", (["__fr__"], ["__en__"])),
                             ("marian", ([], []))]:
        t.family = family
        assert t._prefixes("fr", "en") == expected
    t.family, t.source_prefix = "marian", [">>fra<<"]  # multi-target opus-mt
    assert t._prefixes("en", "fr") == ([">>fra<<"], [])


@pytest.mark.slow
def test_convert_model_from_a_local_folder(tiny_marian: Path, tmp_path: Path) -> None:
    from xsearch.translate.ct2 import CTranslate2Translator, convert_model

    out = convert_model(str(tiny_marian.parent / "hf"), tmp_path / "converted")
    assert {"model.bin", "source.spm", "target.spm", "xsearch.json"} <= {p.name for p in out.iterdir()}
    t = CTranslate2Translator(out, beam_size=1, max_decoding_length=8)
    assert len(t.translate(["Une phrase. Une autre.", ""], "fr", "en")) == 2
    assert json.loads((out / "xsearch.json").read_text())["max_positions"] == 256 == t.max_input_tokens


def test_cut_pieces_prefers_word_starts_and_never_exceeds_the_limit() -> None:
    w = "\u2581"
    pieces = [w + "a", "b", "c", w + "d", "e", w + "f", "g", "h", "i", "j"]
    assert cut_pieces(pieces, 4) == [[w + "a", "b", "c"], [w + "d", "e"], [w + "f", "g", "h", "i"], ["j"]]
    assert cut_pieces(pieces, 10) == [pieces] and cut_pieces([], 3) == [[]]
    assert cut_pieces(["x"] * 7, 3) == [["x"] * 3, ["x"] * 3, ["x"]]  # no word start: hard cut
    with pytest.raises(InputError):
        cut_pieces(pieces, 0)


@pytest.mark.skipif(os.environ.get("XSEARCH_TEST_CONVERT") != "1", reason="needs a network: set XSEARCH_TEST_CONVERT=1")
def test_convert_model_from_hub(tmp_path: Path) -> None:  # pragma: no cover - not runnable offline
    from xsearch.translate.ct2 import convert_model

    out = convert_model("Helsinki-NLP/opus-mt-fr-en", tmp_path / "m")
    assert (out / "model.bin").is_file() and (out / "source.spm").is_file()
