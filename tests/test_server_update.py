"""Live updates through the storage writer: every part of the index changes, scores equal a fresh build's, a failed
or interrupted batch publishes nothing, writes cost the batch (no copy of the folder), other processes see each
commit on their next search, and searches running during updates see one generation, never a mix."""
from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from server_helpers import DOCS, EXACT_E5, TRANSLATOR, build_template, copy_index, install_translator
from xsearch.errors import InputError
from xsearch.index import open_index
from xsearch.records import Doc
from xsearch.storage.manifest import generations, read_manifest
from xsearch.update import UnknownDocumentError, apply_batch, compact

QUERIES = [("traduction automatique", "fr"), ("chats chiens", "fr"), ("analyse syntaxique", "fr"),
           ("parole", "fr"), ("castor barrage", "fr"), ("beaver dam", "en"), ("speech recognition", "en")]
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def mp():
    with pytest.MonkeyPatch.context() as m:
        install_translator(m)
        yield m


@pytest.fixture(scope="module")
def template(tmp_path_factory, mp):
    return build_template(tmp_path_factory.mktemp("templates"))


def _fresh(docs, out: Path, kind: str = "flat") -> Path:  # noqa: ANN001
    from xsearch.build import build_index
    from xsearch.config import CorpusSpec, IndexConfig

    cfg = IndexConfig(name="tiny", corpus=CorpusSpec(path="inline"), dense={"kind": kind, **EXACT_E5},
                      translate={"translator": TRANSLATOR})
    return build_index(cfg, out, docs=list(docs), show_progress=False, log=lambda _m: None)


def _scores(path: Path, routes) -> dict[tuple[str, str, str], list[tuple[str, float]]]:  # noqa: ANN001
    index = open_index(path)
    return {(route, q, lang): [(h.doc_id, round(h.score, 4)) for h in index.search(q, route=route, k=10, lang=lang)]
            for route in routes for q, lang in QUERIES}


def _state(path: Path) -> tuple[int, list[str]]:
    index = open_index(path)
    return index.generation, sorted(d.doc_id for d in index.docstore)


def test_updated_index_answers_like_a_fresh_build(template, tmp_path):
    from xsearch.storage.verify import verify

    path = copy_index(template, tmp_path / "live")
    beaver = Doc("d6", "fr", "Les castors", "Un castor construit un barrage sur la rivière.", {"year": 2020})
    english = Doc("e1", "en", "Beavers and dams", "A beaver builds a dam across the river.", {"year": 2021})
    cats = Doc("d3", "fr", "Les chats", "Les chats dorment beaucoup et chassent les souris.", {"year": 2009})
    assert apply_batch(path, [beaver, english], ["d4"]) == 6
    assert apply_batch(path, [cats]) == 6                         # replace d3
    final = [d for d in DOCS if d.doc_id not in ("d3", "d4")] + [beaver, english, cats]
    fresh = _fresh(final, tmp_path / "fresh")

    m = json.loads((path / "manifest-00000003.json").read_text())
    assert m["doc_count"] == 6 and m["languages"] == {"en": 1, "fr": 5} and m["generation"] == 3
    assert m["translation"]["docs"] == 6
    assert m["components"]["bm25-fr"]["docs"] == 5 and m["components"]["bm25-en"]["docs"] == 1
    assert m["routes"]["bm25"]["components"] == ["bm25-en", "bm25-fr"]   # a new language got its component
    assert m["components"]["dense"]["docs"] == 6 and m["components"]["bm25-dt"]["docs"] == 6
    segments = m["components"]["dense"]["state"]["segments"]
    assert [s["rows"] for s in segments] == [5, 2, 1]                   # appended, nothing rewritten
    assert len(m["components"]["dense"]["state"]["tombstones"]) == 2    # d4 and the old d3
    routes = ("bm25", "bm25-dt", "dense", "hybrid")
    assert _scores(path, routes) == _scores(fresh, routes)

    index = open_index(path)   # a fresh open = what a restarted server sees
    assert index.docstore.get("d4") is None and index.docstore.get("d3").title == "Les chats"
    assert index.translation("d6", "en") == ("[en] Les castors", "[en] Un castor construit un barrage sur la "
                                                                 "rivière.")
    assert index.translation("e1", "en") == ("Beavers and dams", "A beaver builds a dam across the river.")
    assert index.translation("d4", "en") is None
    report = verify(path)
    assert report.ok and report.generation == 3, report

    assert compact(path) == 4   # compaction: one segment, no tombstones, same answers
    m = read_manifest(path)
    assert [s["rows"] for s in m.components["dense"].state["segments"]] == [6]
    assert m.components["dense"].state["tombstones"] == []
    assert _scores(path, routes) == _scores(fresh, routes) and verify(path).ok


def test_hnsw_deletes_are_tombstones(mp, tmp_path):
    path = _fresh(DOCS, tmp_path / "hnsw", kind="hnsw")
    apply_batch(path, [Doc("d6", "fr", "Les castors", "Un castor construit un barrage.")], ["d1", "d2"])
    hits = open_index(path).search("castor", route="dense", k=10, lang="fr")
    assert hits[0].doc_id == "d6" and {h.doc_id for h in hits} == {"d3", "d4", "d5", "d6"}


def test_a_failed_batch_publishes_nothing_and_the_next_writer_cleans_up(template, tmp_path, monkeypatch):
    path = copy_index(template, tmp_path / "live")
    before = _state(path)
    import xsearch.components.dense as dense

    def boom(*_a, **_k):  # noqa: ANN002, ANN003, ANN202
        raise RuntimeError("simulated crash while writing the dense segment")

    with monkeypatch.context() as m:
        m.setattr(dense.SegmentWriter, "commit", boom)
        with pytest.raises(RuntimeError, match="simulated crash"):
            apply_batch(path, [Doc("d6", "fr", "Les castors", "Un castor.")], ["d1"])
    assert _state(path) == before and generations(path) == [1]
    assert open_index(path).search("chats", route="bm25", k=1, lang="fr")[0].doc_id == "d3"
    assert apply_batch(path, [Doc("d7", "fr", "Les loutres", "Une loutre nage.")]) == 6
    index = open_index(path)
    assert index.docstore.get("d6") is None and index.docstore.get("d1") is not None   # the failed rows rolled back
    # the Lucene snapshot the failed batch committed (bm25 ran before dense) is gone; only named files remain
    m = read_manifest(path)
    assert sorted(p.name for p in (path / "components" / "bm25-fr").iterdir()) == sorted(
        {m.components["bm25-fr"].state["snapshot"], read_manifest(path, 1).components["bm25-fr"].state["snapshot"]})


def test_a_crash_before_the_manifest_leaves_the_old_generation(template, tmp_path, monkeypatch):
    path = copy_index(template, tmp_path / "live")
    before = _state(path)
    import xsearch.storage.writer as writer

    def crash(*_a, **_k):  # noqa: ANN002, ANN003, ANN202
        raise KeyboardInterrupt("killed just before the commit point")

    with monkeypatch.context() as m:
        m.setattr(writer, "write_manifest", crash)
        with pytest.raises(KeyboardInterrupt):
            apply_batch(path, [Doc("d6", "fr", "Les castors", "Un castor.")], ["d1"])
    assert _state(path) == before
    assert apply_batch(path, [], ["d2"]) == 4
    assert _state(path) == (2, ["d1", "d3", "d4", "d5"])


def test_bad_batches(template, tmp_path):
    path = copy_index(template, tmp_path / "live")
    before = _state(path)
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
        (([], ["\udc80"]), "not valid Unicode"),
    ]
    for (ups, dels), message in cases:
        with pytest.raises(InputError, match=message):
            apply_batch(path, ups, dels)
    assert _state(path) == before and generations(path) == [1]


def test_old_format_index_is_refused_with_a_rebuild_hint(tmp_path):
    from xsearch.errors import IndexFormatError

    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "manifest.json").write_text('{"format": "xsearch-index/1"}')
    with pytest.raises(IndexFormatError, match="rebuild it with 'xsearch index'"):
        open_index(tmp_path / "old")
    with pytest.raises(IndexFormatError, match="rebuild"):
        apply_batch(tmp_path / "old", [Doc("a", "fr", "t")])


_CHILD = """
import sys
sys.path.insert(0, {tests!r})
from server_helpers import install_translator
import pytest
mp = pytest.MonkeyPatch(); install_translator(mp)
from xsearch.update import apply_batch
from xsearch.records import Doc
n = apply_batch({path!r}, [Doc({doc_id!r}, "fr", "Zorglub", "Le zorglub {doc_id}.")])
print(n)
"""


def _child(path: Path, doc_id: str) -> subprocess.Popen:
    code = _CHILD.format(tests=str(ROOT / "tests"), path=str(path), doc_id=doc_id)
    return subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def test_other_processes_commits_are_seen_and_concurrent_writers_serialise(template, tmp_path):
    path = copy_index(template, tmp_path / "live")
    index = open_index(path)
    assert index.search("zorglub", route="bm25", k=5, lang="fr") == []
    children = [_child(path, "z1"), _child(path, "z2")]   # two processes write at once
    outs = [c.communicate(timeout=300) for c in children]
    assert all(c.returncode == 0 for c in children), [o[1][-2000:] for o in outs]
    assert sorted(int(o[0].strip().splitlines()[-1]) for o in outs) == [6, 7]   # serialised: 5 -> 6 -> 7
    hits = index.search("zorglub", route="bm25", k=5, lang="fr")   # process 1, opened before: next search sees both
    assert index.generation == 3 and {h.doc_id for h in hits} == {"z1", "z2"}
    assert {h.doc.title for h in hits} == {"Zorglub"}
    assert {h.doc_id for h in index.search("zorglub", route="dense", k=2, lang="fr")} == {"z1", "z2"}


def test_a_one_doc_write_costs_the_batch_not_the_index(template, tmp_path):
    from xsearch.storage.files import tree_bytes

    path = copy_index(template, tmp_path / "live")
    size = tree_bytes(path)
    before = {p: p.stat().st_mtime_ns for p in path.rglob("*") if p.is_file()}
    apply_batch(path, [Doc("d9", "fr", "Les loutres", "Une loutre nage.")])
    changed = [p for p, t in before.items() if p.exists() and p.stat().st_mtime_ns != t]
    assert all(p.name.startswith("docstore") for p in changed), changed   # no written file is rewritten
    new = [p for p in path.rglob("*") if p.is_file() and p not in before]
    new_bytes = sum(p.stat().st_size for p in new if p.stat().st_nlink == 1)  # hard links are not copies
    assert new_bytes < size / 2, (new_bytes, size)


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
        return {"docs": docs, "delete": [f"v{g - 1}"] if g > 2 else []}

    with TestClient(app) as c:
        assert c.post("/docs", json=batch(2), headers={"X-API-Key": API_KEY}).status_code == 200

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
            for g in range(3, 8):
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
    assert max(g for gens in seen.values() for g in gens) == 7
    assert sum(len(set(gens)) for gens in seen.values()) > len(seen)   # readers did live through updates
