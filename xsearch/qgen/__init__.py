"""Query generation (QueryGenerator backends) and xQG: passage vectors augmented with generated-query vectors.

Backends: "keyphrase" (default, offline: KeyBERT-style phrases, optionally translated into the query language) and
"ct2:<folder>" (a doc2query T5/mT5 model through CTranslate2, sampled). xQG (Zhuang, Shou and Zuccon, SIGIR 2023)
is in `augment` (formulas, `reaugment(index, alpha)`, `generated_queries(index, doc_id)`) and its storage in
xsearch.components.xqg.
Importing this package loads no backend (no encoder, no ctranslate2).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import InputError
from ..paths import models_dir
from .cache import CachedQueryGenerator


def checked_passages(passages: Any, n: int) -> list[str]:
    """The passages as a list, after the argument checks every QueryGenerator.generate makes."""
    if isinstance(passages, str):
        raise InputError("generate() takes a sequence of passages, not one string")
    if n < 1:
        raise InputError(f"n must be >= 1, got {n}")
    return list(passages)


SPECS = {
    "keyphrase": "KeyBERT-style keyphrases scored by the multilingual encoder, MMR-diversified, optionally translated",
    "ct2:<folder>": "a doc2query T5/mT5 model converted to CTranslate2 (top-k sampling)",
}


def make_query_generator(spec: str = "keyphrase", *, encoder: Any = None, translator: Any = None,
                         cache_path: str | Path | None = None, show_progress: bool = False, **options: Any):
    """Build a QueryGenerator from a spec ("keyphrase" or "ct2:<folder>", a folder or a name under models_dir()).

    "keyphrase" takes `encoder` (an Encoder, or an encoder spec string; default "e5-small") and `translator`
    (a Translator, a translator spec such as "apertium" - cached in translations.sqlite - or None to keep the
    phrases as they are; passages are taken to be in `src_lang=` of generate(), default "fr"). `options` go to
    the backend's constructor; with `cache_path` the generation is wrapped in a CachedQueryGenerator (for
    keyphrases, the selection before translation, so translated and untranslated indexes share it).
    """
    if spec == "keyphrase":
        from .keyphrase import KeyphraseGenerator, TranslatedQueries

        if encoder is None or isinstance(encoder, str):
            from ..encoders import make_encoder

            encoder = make_encoder(encoder or "e5-small")
        if isinstance(translator, str):
            translator = _translator(translator)
        generator: Any = KeyphraseGenerator(encoder, **options)
        if cache_path is not None:  # the cache keeps the selection; translations live in the translation cache
            generator = CachedQueryGenerator(generator, cache_path, show_progress=show_progress)
        return TranslatedQueries(generator, translator) if translator is not None else generator
    elif spec.startswith("ct2:") and spec[4:]:
        from .seq2seq import Seq2SeqQueryGenerator

        if translator is not None:
            raise InputError("a seq2seq generator writes queries in the query language itself: give no translator")
        folder = Path(spec[4:]).expanduser()
        if not folder.exists() and (models_dir() / spec[4:]).exists():
            folder = models_dir() / spec[4:]
        generator = Seq2SeqQueryGenerator(folder, **options)
    else:
        valid = "; ".join(f"{k} ({v})" for k, v in SPECS.items())
        raise InputError(f"unknown query generator spec {spec!r}; valid specs: {valid}")
    if cache_path is not None:
        return CachedQueryGenerator(generator, cache_path, show_progress=show_progress)
    return generator


def _translator(spec: str):
    if spec == "none":
        return None
    from ..paths import cache_dir
    from ..translate import make_translator

    return make_translator(spec, cache_path=cache_dir() / "translations.sqlite")


def __getattr__(name: str) -> Any:
    """Backends and xQG functions on first access, so `import xsearch.qgen` stays light."""
    if name in ("KeyphraseGenerator", "TranslatedQueries", "candidate_phrases", "mmr", "STOPWORDS_FR",
                "STOPWORDS_EN"):
        from . import keyphrase

        return getattr(keyphrase, name)
    if name == "Seq2SeqQueryGenerator":
        from .seq2seq import Seq2SeqQueryGenerator

        return Seq2SeqQueryGenerator
    if name in ("augment_vectors", "reaugment", "generated_queries", "FORMULAS"):
        from . import augment

        return getattr(augment, name)
    raise AttributeError(name)


__all__ = ["SPECS", "CachedQueryGenerator", "KeyphraseGenerator", "TranslatedQueries", "Seq2SeqQueryGenerator", "make_query_generator",
           "augment_vectors", "reaugment", "generated_queries", "FORMULAS"]
