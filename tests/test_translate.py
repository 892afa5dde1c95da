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
    # two pipeline runs, so the batch boundary is exercised too; the persistent path is off (tested below)
    t = ApertiumTranslator(batch_size=7, persistent_max_words=0)
    texts = TRICKY + ["Le modèle de langue est évalué sur un corpus.", "Nous proposons une méthode."]
    batched = t.translate(texts, "fr", "en")
    assert len(batched) == len(texts) and all(isinstance(x, str) for x in batched)
    assert batched[0] == "" and batched[3].strip() == ""
    assert all("\n" not in x for x in batched)
    assert t.translate(texts[::-1], "fr", "en")[::-1] == batched  # position-independent, so aligned
    assert [t.translate([texts[i]], "fr", "en")[0] for i in (1, 2, 11)] == [batched[i] for i in (1, 2, 11)]


# --- Apertium: persistent pipelines ---------------------------------------------------------------------------

VARIED = TRICKY + [
    "L'étude mesure l'effet du changement climatique sur les rendements agricoles en Afrique de l'Ouest.",
    "Où ça ? Là-bas, près de l'hôpital ; ÉTÉ, NOËL, œuvre, garçon, naïf, façade.", "traduction automatique",
    "~ tilde ~~ ", "(parenthèses) [crochets] {accolades} $dollar$ ^chapeau^ \\ /barre/ @arobase",
    "a" + " " * 9000 + "b",  # a blank longer than apertium-destxt's 8,192-character block
    "Le modèle de langue est évalué sur un corpus annoté. " * 400,  # ~3,600 words in one text
    "Première ligne\n\nDeuxième paragraphe\x00avec NUL\u2028et séparateur", "\n\n\n", "\x00"]


@needs_apertium
def test_txt_format_in_python_matches_apertium_destxt_and_retxt() -> None:
    """The persistent path deformats and reformats in Python: it must do what apertium-destxt/-retxt do."""
    import random

    from xsearch.translate.apertium import _BREAKS
    from xsearch.translate.apertium_pipe import destxt, retxt

    rng = random.Random(15)
    alphabet = list("ab é.,;:!?'\"-\t\r\n[]\\/@<>^${}*#&~|()") + ["\n\n", "  ", "«", "…", "\u2028", "\x0b"]
    cases = [_BREAKS.sub(" ", t) + "\n\n" for t in VARIED]  # what the translator sends (no NUL: normalised)
    cases += ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40))) for _ in range(200)]
    env = {**os.environ, "LC_ALL": "C.UTF-8"}
    for text in cases:
        if " " * 8000 in text:
            continue  # destxt writes long blanks to a temporary file; the end-to-end tests cover that case
        des = subprocess.run(["apertium-destxt"], input=text.encode(), capture_output=True, env=env).stdout.decode()
        assert destxt(text) == des, text
        for stream in (des, text):
            re_ = subprocess.run(["apertium-retxt"], input=stream.encode(), capture_output=True, env=env).stdout
            assert retxt(stream) == re_.decode(), stream


@needs_apertium
@pytest.mark.parametrize(("src", "tgt"), [("fr", "en"), ("en", "fr")])
def test_persistent_equals_batch_on_varied_texts(src: str, tgt: str) -> None:
    # above the default word threshold too (the ~3,600-word text), so every call here takes the persistent path
    persistent, batch = ApertiumTranslator(persistent_max_words=10**6), ApertiumTranslator(persistent_max_words=0)
    expected = batch.translate(VARIED, src, tgt)
    assert len(expected) == len(VARIED) and all("\n" not in x for x in expected)
    assert persistent.translate(VARIED, src, tgt) == expected  # one request for the whole list
    assert [persistent.translate([x], src, tgt)[0] for x in VARIED] == expected  # one request per text
    assert persistent.translate([], src, tgt) == []


def test_path_is_chosen_by_words_and_texts() -> None:
    t = ApertiumTranslator.__new__(ApertiumTranslator)
    t.batch_size, t.persistent_max_words = 1000, 2000
    assert t._small(["un deux trois"]) and t._small(["mot"] * 1000) and t._small(["a b"] * 1000)
    assert not t._small([]) and not t._small([""] * 1001) and not t._small(["mot " * 2001])
    assert not t._small(["a b c d"] * 501)  # 2,004 words
    t.persistent_max_words = 0
    assert not t._small(["un"])


def _pipelines(t: ApertiumTranslator, route: list[str]) -> list:
    return t._pool(route).pipelines()


@needs_apertium
def test_earlier_requests_do_not_change_a_translation() -> None:
    """apertium-tagger changes its own model after some words ("call center" -> es "Centro", an ambiguity class
    its es-fr model lacks); a tagger that did so is replaced, so the next request is tagged as in a fresh run."""
    later = "dimensions : lexical disambiguisation quantifiers"
    alone = ApertiumTranslator(persistent_max_words=0).translate([later], "en", "fr")
    t = ApertiumTranslator(pool_size=1)
    t.translate(["call center"], "en", "fr")
    assert t.translate([later], "en", "fr") == alone  # "lexique" here when the tagger was reused
    (pipeline,) = _pipelines(t, ["eng-spa", "es-fr"])
    assert sum(seg.retired for seg in pipeline.pipes[1].segments if hasattr(seg, "retired")) >= 1


@needs_apertium
def test_killed_pipeline_is_restarted_transparently() -> None:
    t = ApertiumTranslator(pool_size=1)
    texts = ["Le chat noir dort.", "Nous proposons une méthode d'analyse syntaxique."]
    first = t.translate(texts, "fr", "en")
    (pipeline,) = _pipelines(t, ["fr-es", "spa-eng"])
    # first, middle and last stages, the tagger in use and its spare
    for mode, stage in ((0, 0), (0, 5), (1, -1), (1, 2), (0, 3)):
        pipe = pipeline.pipes[mode]
        victim = pipe.procs[stage].pid
        os.kill(victim, 9)
        _wait_dead(victim)
        assert t.translate(texts, "fr", "en") == first
        assert victim not in pipe.pids and not Path(f"/proc/{victim}").exists()  # replaced and reaped


def _wait_dead(pid: int) -> None:
    """Until the kernel has made `pid` a zombie (or it is gone): SIGKILL is asynchronous."""
    for _ in range(500):
        try:
            if Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] in "ZX":
                return
        except (OSError, IndexError):
            return
        time.sleep(0.01)


@needs_apertium
def test_concurrent_calls_from_8_threads_stay_aligned() -> None:
    from concurrent.futures import ThreadPoolExecutor

    words = ["chat", "chien", "modèle", "corpus", "analyse", "traduction", "phrase", "langue"]
    jobs = [[f"Le {w} numéro {i} et la {words[(i + j) % 8]}." for j in range(1 + i % 3)] for i, w in
            enumerate(words * 5)]
    expected = ApertiumTranslator(persistent_max_words=0).translate([x for job in jobs for x in job], "fr", "en")
    t = ApertiumTranslator(pool_size=2)
    with ThreadPoolExecutor(8) as ex:
        got = list(ex.map(lambda job: t.translate(job, "fr", "en"), jobs))
    assert [x for out in got for x in out] == expected
    assert len(_pipelines(t, ["fr-es", "spa-eng"])) <= 2


@needs_apertium
def test_hung_pipeline_times_out_then_recovers() -> None:
    t = ApertiumTranslator(pool_size=1, pipe_timeout_s=1.0)
    ok = t.translate(["Bonjour"], "fr", "en")
    (pipeline,) = _pipelines(t, ["fr-es", "spa-eng"])
    stopped = pipeline.pipes[0].procs[2].pid
    os.kill(stopped, 19)  # SIGSTOP: the stage hangs without dying
    with pytest.raises(XsearchError, match="timed out"):
        t.translate(["Le chat"], "fr", "en")
    assert pipeline.pids == [] and not Path(f"/proc/{stopped}").exists()  # killed and reaped
    assert t.translate(["Bonjour"], "fr", "en") == ok


@needs_apertium
def test_failing_mode_in_persistent_path_raises_with_its_name() -> None:
    t = ApertiumTranslator()
    with pytest.raises(XsearchError, match="xx-yy"):
        t._persistent("Bonjour\n\n", ["fr-es", "xx-yy"])


@needs_apertium
def test_a_mode_that_cannot_run_persistently_takes_the_batch_path(monkeypatch: pytest.MonkeyPatch) -> None:
    from xsearch.translate import apertium_pipe

    def unsupported(binary: str, mode: str, env: dict[str, str]) -> list[list[str]]:
        raise apertium_pipe.Unsupported(f"mode {mode}: cannot run it without a shell")

    expected = ApertiumTranslator(persistent_max_words=0).translate(["Le chat noir."], "fr", "en")
    monkeypatch.setattr(apertium_pipe, "mode_commands", unsupported)
    monkeypatch.setattr(apertium_pipe, "_POOLS", {})
    t = ApertiumTranslator()
    with pytest.warns(RuntimeWarning, match="no persistent pipeline"):
        assert t.translate(["Le chat noir."], "fr", "en") == expected
    assert t.translate(["Le chat noir."], "fr", "en") == expected  # warned once, then the batch path directly


_EXIT_WITHOUT_CLOSE = """
from xsearch.translate.apertium import ApertiumTranslator
t = ApertiumTranslator()
t.translate(["Bonjour"], "fr", "en")
print(" ".join(str(pid) for p in t._pool(["fr-es", "spa-eng"]).pipelines() for pid in p.pids))
"""


@needs_apertium
def test_close_and_exit_leave_no_process() -> None:
    t = ApertiumTranslator()
    t.translate(["Bonjour"], "fr", "en")
    pids = [pid for p in _pipelines(t, ["fr-es", "spa-eng"]) for pid in p.pids]
    assert len(pids) > 10
    t.close()
    assert not any(Path(f"/proc/{pid}").exists() for pid in pids)  # neither running nor zombie
    assert t.translate(["Bonjour"], "fr", "en")  # a closed translator starts new pipelines on demand
    t.close()
    out = subprocess.run([sys.executable, "-c", _EXIT_WITHOUT_CLOSE], cwd=ROOT, capture_output=True, text=True,
                         check=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    pids = [int(x) for x in out.stdout.split()]
    assert len(pids) > 10 and not any(Path(f"/proc/{pid}").exists() for pid in pids)  # closed at exit


def taln_phrases(n: int) -> list[tuple[str, str]]:
    """n short (2-6 word) (text, language) phrases from the TALN keywords and titles, French and English."""
    import random

    from xsearch.corpus.taln import read_taln
    from xsearch.paths import default_data_dir

    folder = default_data_dir() / "taln-archives" / "xml"
    if not folder.is_dir():
        pytest.skip(f"TALN data not found at {folder}")
    rng = random.Random(10_000)
    pools: dict[str, list[str]] = {"fr": [], "en": []}
    for d in read_taln(folder):
        for lang, kws, title in (("fr", d.fields["keywords_fr"], d.title), ("en", d.fields["keywords_en"],
                                                                             d.fields["title_en"])):
            pools[lang].extend(kws)
            words = title.split()
            for i in range(0, max(0, len(words) - 1), 3):
                pools[lang].append(" ".join(words[i:i + rng.randint(2, 6)]))
    out: list[tuple[str, str]] = []
    while len(out) < n:
        lang = "fr" if len(out) % 2 == 0 else "en"
        words: list[str] = []
        target = rng.randint(2, 6)
        while len(words) < target:
            words += rng.choice(pools[lang]).split()
        out.append((" ".join(words[:target]), lang))
    return out


@needs_apertium
@pytest.mark.slow
def test_10000_queries_persistent_equals_batch() -> None:
    """10,000 TALN phrases (5,000 fr->en, 5,000 en->fr) through both paths.

    The same input gives the same output: each 1,000-text run of the batch path equals one persistent request.
    One query per call (what QT sends) equals the query translated alone; where that differs from the query's
    translation inside the batch run, its neighbours there are the cause (a text ending in an abbreviation, e.g.
    "... vs", gets a "." that does not end the sentence, so the next text is its context; Apertium's transfer keeps
    variables across paragraph breaks, e.g. "sens d'usage" -> "Senses of use" after a plural noun; a NUL flush
    resets them, so each persistent request stands alone; apertium-tagger changes its model after some words, and
    a tagger that did is replaced): checked by rerunning the batch path on the text alone, and with the texts
    before it in its run.
    """
    queries = taln_phrases(10_000)
    batch, persistent = ApertiumTranslator(persistent_max_words=0), ApertiumTranslator()
    for lang, tgt in (("fr", "en"), ("en", "fr")):
        texts = [q for q, lg in queries if lg == lang]
        route = persistent.route(lang, tgt)
        expected = batch.translate(texts, lang, tgt)
        n = batch.batch_size  # the batch path runs 1,000 texts per pipeline: the same requests here
        assert [x for i in range(0, len(texts), n)
                for x in persistent._aligned(texts[i:i + n], route, persistent._persistent)] == expected
        got = [persistent.translate([q], lang, tgt)[0] for q in texts]  # one query per call, as QT sends them
        diff = [i for i, (a, b) in enumerate(zip(got, expected)) if a != b]
        print(f"{lang}->{tgt}: {len(texts)} queries, 1,000-text runs equal; one per call: {len(diff)} differ "
              "from their translation inside a batch run")
        assert len(diff) < len(texts) // 100, f"{len(diff)} of {len(texts)} differ"
        for i in diff:
            assert batch.translate([texts[i]], lang, tgt) == [got[i]]  # alone, the batch path agrees
            run_start, k = i - i % n, 1  # the cause is a neighbour in the same batch run
            while True:
                lo, hi = max(run_start, i - k), min(len(texts), i + 2)
                if batch.translate(texts[lo:hi], lang, tgt)[i - lo] == expected[i]:
                    break
                assert lo > run_start, f"{texts[i]!r}: {expected[i]!r} in the batch, {got[i]!r} alone"
                k *= 8
    persistent.close()


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
