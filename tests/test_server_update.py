"""Live updates (xsearch.update.apply_batch): every part of the index changes, scores equal a fresh build's, a
failed batch changes nothing, the result survives a restart, and searches running during updates see either the
old or the new state, never a mix."""
from __future__ import annotations

import hashlib
import json
import threading
import time
from pathlib import Path

import pytest

from server_helpers import DOCS, TRANSLATOR, build_template, copy_index, install_translator
from xsearch.errors import InputError
from xsearch.index import open_index
from xsearch.records import Doc
from xsearch.update import UnknownDocumentError, apply_batch, recover

QUERIES = [("traduction automatique", "fr"), ("chats chiens", "fr"), ("analyse syntaxique", "fr"),
           ("parole", "fr"), ("castor barrage", "fr"), ("beaver dam", "en"), ("speech recognition", "en")]


@pytest.fixture(scope="module")
def mp():
    with pytest.MonkeyPatch.context() as m:
        install_translator(m)
        yield m


@pytest.fixture(scope="module")
def template(tmp_path_factory, mp):
    return build_template(tmp_path_factory.mktemp("templates"))


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _siblings(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.parent.iterdir() if p.name != folder.name and not p.name.endswith(".lock"))


def _fresh(docs, out: Path, kind: str = "flat") -> Path:  # noqa: ANN001
    from xsearch.build import build_index
    from xsearch.config import CorpusSpec, IndexConfig

    cfg = IndexConfig(name="tiny", corpus=CorpusSpec(path="inline"), dense={"kind": kind},
                      translate={"translator": TRANSLATOR})
    return build_index(cfg, out, docs=list(docs), show_progress=False, log=lambda _m: None)


def _scores(path: Path, routes) -> dict[tuple[str, str, str], list[tuple[str, float]]]:  # noqa: ANN001
    index = open_index(path)
    return {(route, q, lang): [(h.doc_id, round(h.score, 4)) for h in index.search(q, route=route, k=10, lang=lang)]
            for route in routes for q, lang in QUERIES}


def test_updated_index_answers_like_a_fresh_build(template, tmp_path):
    path = copy_index(template, tmp_path / "live")
    beaver = Doc("d6", "fr", "Les castors", "Un castor construit un barrage sur la rivière.", {"year": 2020})
    english = Doc("e1", "en", "Beavers and dams", "A beaver builds a dam across the river.", {"year": 2021})
    cats = Doc("d3", "fr", "Les chats", "Les chats dorment beaucoup et chassent les souris.", {"year": 2009})
    assert apply_batch(path, [beaver, english], ["d4"]) == 6
    assert apply_batch(path, [cats]) == 6                         # replace d3
    final = [d for d in DOCS if d.doc_id not in ("d3", "d4")] + [beaver, english, cats]
    fresh = _fresh(final, tmp_path / "fresh")

    m = json.loads((path / "manifest.json").read_text())
    assert m["doc_count"] == 6 and m["languages"] == {"en": 1, "fr": 5} and m["generation"] == 2
    assert m["translation"]["docs"] == 6
    assert m["components"]["bm25-fr"]["docs"] == 5 and m["components"]["bm25-en"]["docs"] == 1
    assert m["routes"]["bm25"]["components"] == ["bm25-fr", "bm25-en"]   # a new language got its component
    assert m["components"]["dense"]["docs"] == 6 and m["components"]["bm25-dt"]["docs"] == 6
    routes = ("bm25", "bm25-dt", "dense", "hybrid")
    assert _scores(path, routes) == _scores(fresh, routes)

    index = open_index(path)   # a fresh open = what a restarted server sees
    assert index.docstore.get("d4") is None and index.docstore.get("d3").title == "Les chats"
    assert index.translation("d6", "en") == ("[en] Les castors", "[en] Un castor construit un barrage sur la "
                                                                 "rivière.")
    assert index.translation("e1", "en") == ("Beavers and dams", "A beaver builds a dam across the river.")
    assert index.translation("d4", "en") is None
    ids = json.loads((path / "dense" / "original" / "ids.json").read_text())
    assert len(ids) == 8 and ids.count(None) == 2   # 5 built + 3 added; d4 and the old d3 slots emptied
    assert _siblings(path) == ["fresh"]             # no temporary or old copies left behind


def test_hnsw_deletes_rebuild_the_graph_from_kept_vectors(mp, tmp_path):
    path = _fresh(DOCS, tmp_path / "hnsw", kind="hnsw")
    apply_batch(path, [Doc("d6", "fr", "Les castors", "Un castor construit un barrage.")], ["d1", "d2"])
    hits = open_index(path).search("castor", route="dense", k=10, lang="fr")
    assert hits[0].doc_id == "d6" and {h.doc_id for h in hits} == {"d3", "d4", "d5", "d6"}


def test_failed_batch_leaves_the_index_as_it_was(template, tmp_path, monkeypatch):
    path = copy_index(template, tmp_path / "live")
    before = _digest(path)
    import xsearch.update as update

    def boom(*_a, **_k):  # noqa: ANN002, ANN003, ANN202
        raise RuntimeError("simulated crash while encoding")

    monkeypatch.setattr(update, "_update_dense", boom)
    with pytest.raises(RuntimeError, match="simulated crash"):
        apply_batch(path, [Doc("d6", "fr", "Les castors", "Un castor.")], ["d1"])
    assert _digest(path) == before and _siblings(path) == []
    assert open_index(path).search("chats", route="bm25", k=1, lang="fr")[0].doc_id == "d3"


def test_a_crash_mid_exchange_is_recovered(template, tmp_path):
    path = copy_index(template, tmp_path / "live")
    before = _digest(path)
    path.rename(path.with_name(".live.old-123"))                          # moved aside, new one never arrived
    (tmp_path / ".live.tmp-update-abc").mkdir()                           # and a half-written copy
    recover(path)
    assert _digest(path) == before and _siblings(path) == []


def test_bad_batches(template, tmp_path):
    path = copy_index(template, tmp_path / "live")
    before = _digest(path)
    with pytest.raises(UnknownDocumentError, match="'nope'"):
        apply_batch(path, [Doc("d6", "fr", "t", "x")], ["d1", "nope"])
    cases = [
        (([], []), "empty batch"),
        (([Doc("a", "fr", "", "")], []), "neither title nor text"),
        (([Doc("a", "French", "t")], []), "language code"),
        (([Doc("a", "fr", "t"), Doc("a", "fr", "u")], []), "twice"),
        (([Doc("a", "fr", "t")], ["a"]), "both added and deleted"),
        (([{"id": "", "lang": "fr", "title": "t"}], []), "non-empty string"),
        (([Doc("a", "fr", "t", fields={"x": object()})], []), "JSON values"),
    ]
    for (ups, dels), message in cases:
        with pytest.raises(InputError, match=message):
            apply_batch(path, ups, dels)
    assert _digest(path) == before


def test_searches_during_updates_see_old_or_new_state_never_a_mix(template, tmp_path):
    """Batch g rewrites docs a and b with fields {"gen": g}, adds v<g> and deletes v<g-1>. A response from
    generation g must hold exactly a, b and v<g> (bm25), all three with gen == g: a torn read (Lucene of one
    generation, doc store of another) would show a missing doc, a stale gen or the wrong v."""
    from fastapi.testclient import TestClient
    import httpx

    from server.app import create_app
    from server.settings import ServerSettings
    from server_helpers import API_KEY, running_server

    path = copy_index(template, tmp_path / "live")
    app = create_app(ServerSettings(index=path, api_key=API_KEY))

    def batch(g: int) -> dict:
        docs = [{"id": x, "lang": "fr", "title": f"Zorglub {x}", "text": f"Le zorglub {x} version {g}.",
                 "fields": {"gen": g}} for x in ("a", "b")]
        docs.append({"id": f"v{g}", "lang": "fr", "title": "Zorglub nouveau", "text": f"zorglub {g}",
                     "fields": {"gen": g}})
        return {"docs": docs, "delete": [f"v{g - 1}"] if g > 1 else []}

    with TestClient(app) as c:
        assert c.post("/docs", json=batch(1), headers={"X-API-Key": API_KEY}).status_code == 200

    errors: list[str] = []
    seen: dict[str, list[int]] = {}
    stop = threading.Event()

    def reader(name: str, route: str, base: str) -> None:
        gens = seen.setdefault(name, [])
        with httpx.Client(base_url=base, timeout=60) as client:
            while not stop.is_set():
                r = client.get("/search", params={"q": "zorglub", "route": route, "lang": "fr", "k": 20})
                if r.status_code != 200:
                    errors.append(f"{name}: HTTP {r.status_code} {r.text[:200]}")
                    continue
                body = r.json()
                g = body["index"]["generation"]
                hits = {h["id"]: h["fields"].get("gen") for h in body["hits"] if h["id"] in ("a", "b")
                        or h["id"].startswith("v")}
                want = {"a": g, "b": g, f"v{g}": g}
                if hits != want:
                    errors.append(f"{name}: generation {g} answered {hits}, expected {want}")
                if gens and g < gens[-1]:
                    errors.append(f"{name}: generation went back from {gens[-1]} to {g}")
                gens.append(g)

    with running_server(app) as base:
        threads = [threading.Thread(target=reader, args=(f"{route}-{i}", route, base))
                   for i, route in enumerate(["bm25", "bm25", "hybrid", "bm25-dt"])]
        for t in threads:
            t.start()
        with httpx.Client(base_url=base, timeout=120) as writer:
            for g in range(2, 7):
                time.sleep(0.15)
                r = writer.post("/docs", json=batch(g), headers={"X-API-Key": API_KEY})
                assert r.status_code == 200, r.text
                assert r.json()["generation"] == g
        time.sleep(0.3)
        stop.set()
        for t in threads:
            t.join(timeout=60)

    assert not errors, errors[:5]
    for name, gens in seen.items():
        assert len(gens) >= 5, (name, len(gens))
    assert max(g for gens in seen.values() for g in gens) == 6
    assert sum(len(set(gens)) for gens in seen.values()) > len(seen)   # readers did live through updates
