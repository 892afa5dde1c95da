"""The storage core: garbage collection after the grace period, writers serialised (a rebuild racing an update loses
nothing), the registry, and many random batches then compaction answering exactly like a fresh build."""
from __future__ import annotations

import os
import random
import threading
import time
from pathlib import Path

import pytest

from xsearch.build import build_index
from xsearch.config import CorpusSpec, IndexConfig
from xsearch.index import open_index
from xsearch.records import Doc
from xsearch.storage.manifest import generations, read_manifest
from xsearch.update import apply_batch, compact

WORDS = ("chat chien traduction analyse syntaxe parole corpus langue texte modèle réseau phrase mot lexique "
         "grammaire évaluation castor rivière barrage loutre").split()


def _doc(i: int | str, rng: random.Random) -> Doc:
    return Doc(str(i) if isinstance(i, str) else f"d{i}", "fr", " ".join(rng.choices(WORDS, k=3)),
               " ".join(rng.choices(WORDS, k=12)))


def _config(**extra) -> IndexConfig:  # noqa: ANN003
    return IndexConfig(name="s", corpus=CorpusSpec(path="inline"),
                       dense={"encoder": "hash", "query_encoder": "hash"}, **extra)


class HashEncoder:
    """Sums of per-word random vectors (seeded by the word): deterministic to the last bit whatever the batch,
    instant, and tie-free, so these tests measure the storage (the real encoders have their own tests)."""

    name = family = "hash-64"
    dim = 64
    _words: dict[str, "object"] = {}

    def _word(self, w: str):  # noqa: ANN202
        import hashlib

        import numpy as np

        if w not in self._words:
            seed = int.from_bytes(hashlib.blake2b(w.encode(), digest_size=8).digest(), "little")
            self._words[w] = np.random.default_rng(seed).standard_normal(self.dim).astype(np.float32)
        return self._words[w]

    def encode_passages(self, texts, show_progress=False, batch_size=None):  # noqa: ANN001, ANN201, ARG002
        import numpy as np

        out = np.zeros((len(texts), self.dim), np.float32)
        for i, t in enumerate(texts):
            for w in t.lower().split():
                out[i] += self._word(w)
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)

    def encode_queries(self, texts, batch_size=None):  # noqa: ANN001, ANN201, ARG002
        return self.encode_passages(texts)


@pytest.fixture(scope="module")
def models():
    from xsearch.components import Models

    return Models(dense=lambda spec: HashEncoder())


def _top10(path: Path, routes, models, queries) -> dict:  # noqa: ANN001
    index = open_index(path, models)
    out = {(r, q): [(h.doc_id, round(h.score, 4)) for h in index.search(q, route=r, k=10, lang="fr")]
           for r in routes for q in queries}
    index.close()
    return out


def test_superseded_generations_and_their_files_go_after_the_grace_period(tmp_path, models, monkeypatch):
    import xsearch.storage.writer as writer

    rng = random.Random(1)
    path = build_index(_config(), tmp_path / "idx", docs=[_doc(i, rng) for i in range(20)], show_progress=False,
                       log=lambda _m: None, models=models)
    reader = open_index(path, models)
    reader.search("chat", route="hybrid", k=3, lang="fr")
    apply_batch(path, [_doc(1, rng)], models=models)
    apply_batch(path, [], ["d2"], models=models)
    assert generations(path) == [1, 2, 3]               # within the grace period: kept for readers
    assert reader.search("chat", route="hybrid", k=3, lang="fr") and reader.generation == 3
    monkeypatch.setattr(writer, "GRACE_S", 0.0)
    apply_batch(path, [_doc(3, rng)], models=models)
    assert generations(path) == [4]
    m = read_manifest(path)
    bm25 = sorted(p.name for p in (path / "components" / "bm25-fr").iterdir())
    assert bm25 == [m.components["bm25-fr"].state["snapshot"]]
    named = {s["name"] for s in m.components["dense"].state["segments"]} | set(m.components["dense"].state["tombstones"])
    assert {p.name.split(".")[0] if not p.name.startswith("t") else p.name
            for p in (path / "components" / "dense").iterdir()} == named
    import sqlite3

    with sqlite3.connect(path / m.docstore) as con:   # versions no kept generation sees are purged
        assert con.execute("SELECT COUNT(*) FROM docs").fetchone()[0] == m.doc_count == 19
    assert reader.search("chat", route="hybrid", k=3, lang="fr") and reader.generation == 4


def _slow_models(models, delay: float, started: threading.Event):  # noqa: ANN001, ANN202
    from xsearch.components import Models

    class Slow:
        def __init__(self, inner):  # noqa: ANN001
            self.inner, self.name, self.dim = inner, inner.name, inner.dim
            self.family = getattr(inner, "family", inner.name)

        def encode_passages(self, texts, **kw):  # noqa: ANN001, ANN003, ANN201
            started.set()
            time.sleep(delay)
            return self.inner.encode_passages(texts, **kw)

        def encode_queries(self, texts, **kw):  # noqa: ANN001, ANN003, ANN201
            return self.inner.encode_queries(texts, **kw)

    return Models(dense=lambda spec: Slow(models.encoder(spec)))


@pytest.mark.parametrize("first", ["update", "rebuild"])
def test_a_rebuild_racing_an_update_loses_neither(tmp_path, models, first):
    rng = random.Random(2)
    corpus = [_doc(i, rng) for i in range(10)]
    path = build_index(_config(), tmp_path / "idx", docs=corpus, show_progress=False, log=lambda _m: None,
                       models=models)
    new = Doc("late", "fr", "Les loutres", "Une loutre nage dans la rivière.")
    started = threading.Event()
    errors: list[BaseException] = []

    def update(m) -> None:  # noqa: ANN001
        try:
            apply_batch(path, [new], models=m)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    def rebuild(m) -> None:  # noqa: ANN001
        try:
            build_index(_config(), path, docs=corpus, show_progress=False, log=lambda _m: None, models=m)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    slow = _slow_models(models, 1.5, started)
    jobs = {"update": update, "rebuild": rebuild}
    second = "rebuild" if first == "update" else "update"
    a = threading.Thread(target=jobs[first], args=(slow,))
    a.start()
    assert started.wait(60)                       # the first writer is mid-way, holding the lock
    b = threading.Thread(target=jobs[second], args=(models,))
    b.start()
    a.join(120)
    b.join(120)
    assert not errors, errors
    assert generations(path) == [1, 2, 3]
    g2, g3 = read_manifest(path, 2), read_manifest(path, 3)
    ids = {d.doc_id for d in open_index(path, models).docstore}
    if first == "update":   # the update landed (generation 2), then the rebuild replaced the corpus whole
        assert g2.doc_count == 11 and g3.doc_count == 10 and "late" not in ids
    else:                   # the rebuild landed, then the update went on top of it
        assert g2.doc_count == 10 and g3.doc_count == 11 and "late" in ids
    from xsearch.storage.verify import verify

    assert verify(path).ok


def test_registry_knows_every_kind_and_refuses_bad_specs():
    from xsearch.components import KINDS, get_kind, parse_spec
    from xsearch.errors import IndexFormatError, InputError

    get_kind("bm25")
    assert {"bm25", "impact", "dense", "xqg", "rm3"} <= set(KINDS)
    assert parse_spec({"kind": "rm3", "over": "bm25-dt"}).over == "bm25-dt"
    with pytest.raises(InputError, match="invalid 'rm3'"):
        parse_spec({"kind": "rm3", "fb_term": 3})
    with pytest.raises(InputError, match="unknown component kind"):
        parse_spec({"kind": "nope"})
    with pytest.raises(IndexFormatError):
        get_kind("nope")
    with pytest.raises(InputError, match="needs a name"):
        from xsearch.routes import component_specs

        component_specs(_config(components=[{"kind": "rm3"}]), ["fr"])


def test_rm3_route_through_one_recipe_line(tmp_path, models):
    rng = random.Random(3)
    docs = [_doc(i, rng) for i in range(30)]
    path = build_index(_config(components=[{"kind": "rm3", "name": "bm25-rm3", "over": "bm25"}]), tmp_path / "i",
                       docs=docs, show_progress=False, log=lambda _m: None, models=models)
    index = open_index(path, models)
    assert "bm25-rm3" in index.routes
    plain = index.run({"q": "castor barrage"}, route="bm25", k=10, lang="fr")["q"]
    expanded = index.run({"q": "castor barrage"}, route="bm25-rm3", k=10, lang="fr")["q"]
    assert expanded and (set(expanded) != set(plain) or list(expanded.values()) != list(plain.values()))  # expanded
    apply_batch(path, [Doc("new", "fr", "castor barrage castor", "Le castor construit un barrage.")], models=models)
    assert index.run({"q": "castor barrage"}, route="bm25-rm3", k=1, lang="fr").ranked("q")[0][0] == "new"


def test_rm3_with_qt_is_a_query_translation_route():
    from xsearch.components.rm3 import RM3Spec, routes

    ((name, entry),) = routes("bm25-qt-rm3", RM3Spec(over="bm25", qt=True))
    assert name == "bm25-qt-rm3" and entry.query_translation and "translated" in entry.about
    ((_, plain),) = routes("bm25-rm3", RM3Spec(over="bm25"))
    assert not plain.query_translation


@pytest.mark.slow
def test_a_thousand_random_batches_then_compaction_equal_a_fresh_build(tmp_path, models):
    rng = random.Random(4)
    live = {f"d{i}": _doc(i, rng) for i in range(60)}
    path = build_index(_config(), tmp_path / "live", docs=list(live.values()), show_progress=False,
                       log=lambda _m: None, models=models)
    next_id = 60
    for _ in range(int(os.environ.get("XSEARCH_TEST_BATCHES", "1000"))):
        ups = []
        for _ in range(rng.randint(0, 2)):       # replaces
            doc_id = rng.choice(sorted(live))
            ups.append(_doc(doc_id, rng))
        for _ in range(rng.randint(0, 2)):       # adds
            ups.append(_doc(next_id, rng))
            next_id += 1
        ups = list({d.doc_id: d for d in ups}.values())
        up_ids = {d.doc_id for d in ups}
        dels = [d for d in rng.sample(sorted(live), k=min(len(live) - 5, rng.randint(0, 2))) if d not in up_ids]
        if not ups and not dels:
            continue
        apply_batch(path, ups, dels, models=models)
        for d in dels:
            del live[d]
        live.update({d.doc_id: d for d in ups})
    compact(path, models=models)
    fresh = build_index(_config(), tmp_path / "fresh", docs=list(live.values()), show_progress=False,
                        log=lambda _m: None, models=models)
    queries = [" ".join(random.Random(i).choices(WORDS, k=2)) for i in range(12)]
    routes = ("bm25", "dense", "hybrid")
    assert _top10(path, routes, models, queries) == _top10(fresh, routes, models, queries)
    from xsearch.storage.verify import verify

    report = verify(path)
    assert report.ok and report.doc_count == len(live)


def test_an_auto_encoder_is_recorded_resolved_and_kept_by_later_batches(tmp_path, monkeypatch):
    """e5-small-auto is machine-dependent: the manifest records the backend the index was built with, and a later
    batch (or another machine, where the choice would differ) keeps encoding with that one."""
    import xsearch.encoders.e5_fast as e5_fast
    from xsearch.components import Models

    asked: list[str] = []
    models = Models(dense=lambda spec: (asked.append(spec), HashEncoder())[1])
    monkeypatch.setattr(e5_fast, "choose_backend", lambda device=None, **_kw: "ort-int8")
    rng = random.Random(3)
    config = IndexConfig(name="s", corpus=CorpusSpec(path="inline"),
                         dense={"encoder": "e5-small-auto", "query_encoder": "e5-small-auto"})
    path = build_index(config, tmp_path / "idx", docs=[_doc(i, rng) for i in range(6)], show_progress=False,
                       log=lambda _m: None, models=models)
    spec = read_manifest(path).components["dense"].spec
    assert (spec["encoder"], spec["query_encoder"]) == ("e5-small-ort-int8", "e5-small-ort-int8")
    assert read_manifest(path).components["dense"].state["encoder_name"] == HashEncoder.name
    monkeypatch.setattr(e5_fast, "choose_backend", lambda device=None, **_kw: "st")
    apply_batch(path, [_doc(9, rng)], models=models)
    assert read_manifest(path).components["dense"].spec["encoder"] == "e5-small-ort-int8"
    index = open_index(path, models)
    assert index.search("chat", route="dense", k=3, lang="fr")
    index.close()
    assert set(asked) == {"e5-small-ort-int8"}


def test_a_long_lived_reader_keeps_only_the_files_of_open_generations_loaded(tmp_path, models):
    """Each batch adds a FAISS segment and a tombstone file; a reader that follows 30 batches must hold exactly the
    current generation's (the soak test's RSS grew by ~5 MB a write before: every segment stayed loaded)."""
    rng = random.Random(7)
    path = build_index(_config(), tmp_path / "idx", docs=[_doc(i, rng) for i in range(10)], show_progress=False,
                       log=lambda _m: None, models=models)
    reader = open_index(path, models)
    for n in range(30):
        apply_batch(path, [_doc(100 + n, rng)], [f"d{n % 10}"] if n < 10 else [], models=models)
        assert reader.search("chat chien", route="dense", k=3, lang="fr")
    state = read_manifest(path).components["dense"].state
    cached = {k[2] for k in reader._cache if isinstance(k, tuple) and k[0] == "segment"}  # noqa: SLF001
    assert cached == {s["name"] for s in state["segments"]}
    tombs = {k[2] for k in reader._cache if isinstance(k, tuple) and k[0] == "tombstones"}  # noqa: SLF001
    assert tombs == set(state["tombstones"])
    reader.close()


def test_closing_a_doc_store_view_closes_every_threads_connection(tmp_path, models):
    import sqlite3
    from concurrent.futures import ThreadPoolExecutor

    from xsearch.docstore import DocStore

    rng = random.Random(3)
    path = build_index(_config(), tmp_path / "idx", docs=[_doc(i, rng) for i in range(5)], show_progress=False,
                       log=lambda _m: None, models=models)
    store = DocStore(path / read_manifest(path).docstore, 1)
    barrier = threading.Barrier(4)

    def read(_i: int) -> sqlite3.Connection:
        barrier.wait()               # four live threads at once: four connections
        assert store.get("d1") is not None
        return store._conn()  # noqa: SLF001

    with ThreadPoolExecutor(4) as pool:
        conns = list(pool.map(read, range(4)))
    assert len({id(c) for c in conns}) == 4
    store.close()
    for conn in conns:
        with pytest.raises(sqlite3.ProgrammingError):
            conn.execute("SELECT 1")
