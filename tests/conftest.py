from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest

from xsearch.records import Doc

# A tiny French corpus whose answers can be checked by hand.
TINY_FR = [
    Doc("d1", "fr", "Traduction automatique statistique", "Nous présentons un système de traduction automatique "
        "statistique à base de segments pour le français et l'anglais.", {"year": 2010}),
    Doc("d2", "fr", "Analyse syntaxique en dépendances", "Un analyseur syntaxique probabiliste produit des arbres de "
        "dépendances pour des phrases françaises.", {"year": 2012}),
    Doc("d3", "fr", "Les chats et les chiens", "Cet article décrit les chats domestiques, leurs habitudes et leurs "
        "relations avec les chiens.", {"year": 2008}),
    Doc("d4", "fr", "Reconnaissance de la parole", "La reconnaissance automatique de la parole transcrit des "
        "enregistrements audio en texte écrit.", {"year": 2015}),
]


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "tiny.jsonl"
    with open(path, "w", encoding="utf-8") as f:
        for d in TINY_FR:
            f.write(json.dumps({"id": d.doc_id, "lang": d.lang, "title": d.title, "text": d.text, **d.fields},
                               ensure_ascii=False) + "\n")
    return path


@pytest.fixture(scope="session")
def tiny_index(tmp_path_factory, tiny_corpus):
    """BM25 (French analyzer) + dense (embedded e5) over the tiny corpus, built once per session."""
    from xsearch.build import build_index
    from xsearch.config import CorpusSpec, IndexConfig
    from xsearch.index import open_index

    out = tmp_path_factory.mktemp("idx") / "tiny"
    build_index(IndexConfig(name="tiny", corpus=CorpusSpec(path=str(tiny_corpus))), out, show_progress=False,
                log=lambda _m: None)
    return open_index(out)


def _tiny_models() -> ModuleType:
    """scripts/tiny_models.py (a script, not a package module) loaded by path."""
    path = Path(__file__).resolve().parents[1] / "scripts" / "tiny_models.py"
    spec = importlib.util.spec_from_file_location("tiny_models", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def tiny_marian(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weight Marian converted to CTranslate2 (scripts/tiny_models.py): the ct2 folder."""
    for module in ("ctranslate2", "transformers", "sentencepiece", "torch"):
        pytest.importorskip(module)
    return _tiny_models().build_tiny_marian(tmp_path_factory.mktemp("tiny-marian"))


@pytest.fixture(scope="session")
def tiny_t5(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weight T5 converted to CTranslate2 (scripts/tiny_models.py): the ct2 folder."""
    for module in ("ctranslate2", "transformers", "sentencepiece", "torch"):
        pytest.importorskip(module)
    return _tiny_models().build_tiny_t5(tmp_path_factory.mktemp("tiny-t5"))
