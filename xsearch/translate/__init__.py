"""Machine translation for the translate-then-search routes: Apertium, CTranslate2, identity, with a cache.

Importing this package loads no backend (no torch, no ctranslate2): each is imported when first built.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..paths import models_dir
from ..protocols import Translator
from .cache import CachedTranslator, TranslationCache, TranslationStats


class IdentityTranslator:
    """Returns texts unchanged: the no-translation route, and a stand-in backend for tests."""

    name = "none"
    model_id = ""

    def translate(self, texts: Sequence[str], src: str, tgt: str) -> list[str]:
        if isinstance(texts, str):
            raise InputError("translate() takes a sequence of texts, not one string")
        return list(texts)


def make_translator(spec: str = "apertium", *, cache_path: str | Path | None = None, cache_batch_size: int = 256,
                    show_progress: bool = False, query_cap: int | None = None, **options: Any) -> Translator:
    """Build a Translator from a spec: "apertium", "ct2:<folder>" (or a name under models_dir()), "none".

    `options` go to the backend's constructor; with `cache_path` the result is a CachedTranslator (`query_cap`: a
    query-time cache of at most that many rows, least recently used dropped; None: index-time, kept forever).
    """
    translator: Translator
    if spec == "none":
        if options:
            raise InputError(f"the 'none' translator takes no options, got {sorted(options)}")
        translator = IdentityTranslator()
    elif spec == "apertium":
        from .apertium import ApertiumTranslator

        translator = ApertiumTranslator(**options)
    elif spec.startswith("ct2:") and spec[4:]:
        from .ct2 import CTranslate2Translator

        folder = Path(spec[4:]).expanduser()
        if not folder.exists() and (models_dir() / spec[4:]).exists():
            folder = models_dir() / spec[4:]
        translator = CTranslate2Translator(folder, **options)
    else:
        raise InputError(f"unknown translator spec {spec!r}; expected 'apertium', 'ct2:<folder>' or 'none'")
    if cache_path is not None:
        return CachedTranslator(translator, cache_path, batch_size=cache_batch_size, show_progress=show_progress,
                                query_cap=query_cap)
    return translator


def __getattr__(name: str) -> Any:
    """Backend classes on first access, so `import xsearch.translate` stays light."""
    if name in ("ApertiumTranslator", "find_route"):
        from . import apertium

        return getattr(apertium, name)
    if name in ("CTranslate2Translator", "convert_model", "split_sentences"):
        from . import ct2

        return getattr(ct2, name)
    raise AttributeError(name)


__all__ = ["ApertiumTranslator", "CTranslate2Translator", "CachedTranslator", "IdentityTranslator", "TranslationCache",
           "TranslationStats", "convert_model", "find_route", "make_translator", "split_sentences"]
