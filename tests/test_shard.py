"""Sharded indexes: the hash layout, sharded vs single index (dense exact, BM25 close, every hit in a doc store),
live batches routed to their shard, clean failures, and the Ray build on a local Ray (a killed worker retried; a
worker that always dies fails the build and leaves the previous index as it was)."""
from __future__ import annotations

import random
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from xsearch.build import build_index
from xsearch.config import CorpusSpec, IndexConfig
from xsearch.errors import InputError, MissingBackendError, UnknownDocumentError
from xsearch.index import open_index
from xsearch.records import Doc
from xsearch.shard.build import build_sharded
from xsearch.shard.index import ShardedIndex
from xsearch.shard.layout import read_sharded, shard_of
from xsearch.storage.manifest import generations
from xsearch.storage.verify import verify_all
from xsearch.update import apply_batch, compact

from test_storage import WORDS, HashEncoder

QUERIES = ["chat chien", "traduction corpus", "analyse syntaxe phrase", "castor rivière", "modèle langue"]
QUIET = {"show_progress": False, "log": lambda _m: None}


def _docs(n: int, seed: int = 3) -> list[Doc]:
    rng = random.Random(seed)
    return [Doc(f"doc-{i}", "fr", " ".join(rng.choices(WORDS, k=3)), " ".join(rng.choices(WORDS, k=15)),
                {"year": 2000 + i % 7}) for i in range(n)]


def _config(**dense) -> IndexConfig:  # noqa: ANN003
    return IndexConfig(name="s", corpus=CorpusSpec(path="inline"),
                       dense={"encoder": "hash", "query_encoder": "hash", **dense})


@pytest.fixture(scope="module")
def models():
    from xsearch.components import Models

    return Models(dense=lambda spec: HashEncoder())


@pytest.fixture(scope="module")
def pair(tmp_path_factory, models):
    """The same 80 documents as one index and as 3 shards."""
    root = tmp_path_factory.mktemp("shards")
    docs = _docs(80)
    single = build_index(_config(), root / "single", docs, models=models, **QUIET)
    sharded = build_sharded(_config(), root / "sharded", docs, shards=3, models=models, **QUIET)
    return single, sharded


def test_the_shard_of_an_id_is_stable_and_uniform():
    assert [shard_of(f"doc-{i}", 4) for i in range(8)] == [0, 1, 2, 2, 3, 3, 2, 1]   # changing it orphans indexes
    assert shard_of("été/ü", 7) == shard_of("été/ü", 7) and shard_of("anything", 1) == 0
    counts = Counter(shard_of(f"id{i}", 4) for i in range(8000))
    assert all(1800 < c < 2200 for c in counts.values()), counts


def test_sharded_search_equals_one_index_for_dense_and_is_close_for_bm25(pair, models):
    single_path, sharded_path = pair
    single, sharded = open_index(single_path, models), open_index(sharded_path, models)
    assert isinstance(sharded, ShardedIndex)
    assert sharded.doc_count == single.doc_count == 80 and sharded.routes == single.routes
    assert sorted(read_sharded(sharded_path).doc_counts) != [0, 0, 80] and sum(read_sharded(sharded_path).doc_counts) == 80
    overlaps = []
    for q in QUERIES:
        one = [(h.doc_id, round(h.score, 5)) for h in single.search(q, route="dense", k=10, lang="fr")]
        many = [(h.doc_id, round(h.score, 5)) for h in sharded.search(q, route="dense", k=10, lang="fr")]
        assert many == one                                     # exact search: the same top-10, same scores
        a = {h.doc_id for h in single.search(q, route="bm25", k=10, lang="fr")}
        hits = sharded.search(q, route="bm25", k=10, lang="fr")
        assert all(h.doc is not None and h.doc.doc_id == h.doc_id for h in hits)   # every hit in a doc store
        per_shard = [(h.doc_id, h.score) for s in sharded.shards for h in s.search(q, route="bm25", k=10, lang="fr")]
        best = sorted(per_shard, key=lambda x: (-x[1], x[0]))[:10]
        assert [(h.doc_id, h.score) for h in hits] == best     # the merge: the shards' own scores, best first
        overlaps.append(len(a & {h.doc_id for h in hits}) / 10)
        fused = sharded.search(q, route="hybrid", k=5, lang="fr")
        assert len(fused) == 5 and set(fused[0].route_scores) <= {"bm25", "dense"}
    # per-shard BM25 statistics on ~27 documents a shard: close to one index, not equal (TALN: docs/scale-out.md)
    assert sum(overlaps) / len(overlaps) >= 0.5, overlaps
    one = single.search(QUERIES[0], route="dense", k=5, lang="fr", filters={"year": 2003})
    assert [h.doc_id for h in sharded.search(QUERIES[0], route="dense", k=5, lang="fr", filters={"year": 2003})] == \
        [h.doc_id for h in one] and {h.doc.fields["year"] for h in one} == {2003}
    with single.reading() as a, sharded.reading() as b:
        assert b.page(QUERIES[1], route="dense", k=5, lang="fr", facets=["year"]).facets == \
            a.page(QUERIES[1], route="dense", k=5, lang="fr", facets=["year"]).facets
    page = sharded.search(QUERIES[0], route="dense", k=3, lang="fr", offset=3)
    assert [h.rank for h in page] == [4, 5, 6]
    assert sharded.docstore.get("doc-5").fields["year"] == 2005
    single.close()
    sharded.close()


def test_verify_checks_each_shard_and_where_its_documents_belong(pair):
    reports = verify_all(pair[1])
    assert len(reports) == 3 and all(r.ok for r in reports)
    assert sum(r.doc_count for r in reports) == 80


def test_live_batches_go_to_the_shard_of_each_id(tmp_path, models):
    path = build_sharded(_config(), tmp_path / "idx", _docs(30), shards=3, models=models, **QUIET)
    reader = open_index(path, models)
    before = [generations(path / f"shard-{i:03d}") for i in range(3)]
    with pytest.raises(UnknownDocumentError):
        apply_batch(path, [Doc("new-1", "fr", "castor", "castor barrage")], ["doc-1", "no-such-id"], models=models)
    assert [generations(path / f"shard-{i:03d}") for i in range(3)] == before   # a bad batch changes no shard
    count = apply_batch(path, [Doc("new-1", "fr", "ornithorynque", "un ornithorynque nage")], ["doc-1", "doc-2"],
                        models=models)
    assert count == 29
    assert reader.search("ornithorynque", route="bm25", k=1, lang="fr")[0].doc_id == "new-1"   # seen on the next search
    assert reader.doc_count == 29
    assert reader.docstore.get("doc-1") is None and reader.docstore.get("new-1").title == "ornithorynque"
    assert all(r.ok for r in verify_all(path))
    compact(path, models=models)
    assert all(r.ok for r in verify_all(path)) and open_index(path, models).doc_count == 29
    reader.close()


def test_bad_shard_counts_and_a_failed_build_leave_the_previous_index(tmp_path, models, monkeypatch):
    import xsearch.shard.build as sb

    with pytest.raises(InputError, match="empty"):
        build_sharded(_config(), tmp_path / "x", _docs(2), shards=5, models=models, **QUIET)
    with pytest.raises(InputError, match="positive"):
        build_sharded(_config(), tmp_path / "x", _docs(2), shards=0, models=models, **QUIET)
    path = build_sharded(_config(), tmp_path / "idx", _docs(20), shards=2, models=models, **QUIET)
    real = sb.build_shard

    def failing(config, root, i, *a, **kw):  # noqa: ANN001, ANN002, ANN003, ANN202
        if i == 1:
            raise RuntimeError("disk full")
        return real(config, root, i, *a, **kw)

    monkeypatch.setattr(sb, "build_shard", failing)
    with pytest.raises(RuntimeError, match="disk full"):
        build_sharded(_config(), path, _docs(40), shards=2, models=models, **QUIET)
    assert open_index(path, models).doc_count == 20                       # the previous build, untouched
    assert not list(tmp_path.glob(".idx.tmp-shards-*"))
    single = build_index(_config(), tmp_path / "single", _docs(5), models=models, **QUIET)
    with pytest.raises(InputError, match="not a sharded"):
        build_sharded(_config(), single, _docs(5), shards=2, models=models, **QUIET)


def test_ray_is_optional_and_named_when_missing(monkeypatch):
    out = subprocess.run([sys.executable, "-c", "import sys, xsearch, xsearch.index, xsearch.shard.build, "
                          "xsearch.shard.index; print('ray' in sys.modules)"], capture_output=True, text=True)
    assert out.stdout.strip() == "False", out.stderr
    from xsearch.shard import ray_build

    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(MissingBackendError, match=r"xsearch\[ray\]"):
        ray_build.import_ray()


# ---- on a local Ray -------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def local_ray():
    pytest.importorskip("ray")
    from xsearch.shard.ray_build import import_ray

    ray = import_ray()   # as xsearch imports it: no failure signal handler over the JVM's
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


def _e5_config() -> IndexConfig:
    return IndexConfig(name="r", corpus=CorpusSpec(path="inline"), dense={"encoder": "e5-small", "query_encoder": None})


@pytest.mark.slow
def test_a_ray_build_equals_the_in_process_build(local_ray, tmp_path):
    docs = _docs(24)
    ray_path = build_sharded(_e5_config(), tmp_path / "ray", docs, shards=3, ray="local", workers=2, **QUIET)
    local_path = build_sharded(_e5_config(), tmp_path / "local", docs, shards=3, **QUIET)
    top = read_sharded(ray_path)
    assert top.build["mode"] == "ray" and top.build["workers"] == 2 and top.doc_counts == read_sharded(local_path).doc_counts
    assert len({s["pid"] for s in top.build["shards"]}) <= 2          # each worker built its shards with one model load
    a, b = open_index(ray_path), open_index(local_path)
    for q in QUERIES:
        assert [h.doc_id for h in a.search(q, route="dense", k=10, lang="fr")] == \
            [h.doc_id for h in b.search(q, route="dense", k=10, lang="fr")]
    a.close()
    b.close()


@pytest.mark.slow
def test_a_killed_ray_worker_is_retried_and_one_that_always_dies_fails_cleanly(local_ray, tmp_path, monkeypatch):
    from xsearch.shard.ray_build import FAULT_ENV

    docs = _docs(16)
    marker = tmp_path / "killed-once"
    monkeypatch.setenv(FAULT_ENV, f"1:once:{marker}")
    path = build_sharded(_e5_config(), tmp_path / "idx", docs, shards=2, ray="local", workers=2, **QUIET)
    assert marker.exists()                                             # shard 1's worker died once...
    assert open_index(path).doc_count == 16 and all(r.ok for r in verify_all(path))   # ...and was rebuilt
    monkeypatch.setenv(FAULT_ENV, "0:always")
    with pytest.raises(Exception):  # noqa: B017 - Ray's error type for a task out of retries
        build_sharded(_e5_config(), path, _docs(20), shards=2, ray="local", workers=2, retries=1, **QUIET)
    assert open_index(path).doc_count == 16                            # the previous build, untouched
    assert not list(tmp_path.glob(".idx.tmp-shards-*"))


def test_the_cli_builds_searches_verifies_and_refuses_ray_without_shards(tmp_path, tiny_corpus, capsys):
    from xsearch.cli import main

    out = tmp_path / "cli-idx"
    assert main(["index", str(tiny_corpus), str(out), "--shards", "2", "--no-dense", "--quiet"]) == 0
    assert read_sharded(out).count == 2
    capsys.readouterr()
    assert main(["search", str(out), "chats", "--route", "bm25", "--lang", "fr", "-k", "1", "--json"]) == 0
    assert '"doc_id": "d3"' in capsys.readouterr().out
    assert main(["verify", str(out)]) == 0 and "verify: OK" in capsys.readouterr().out
    assert main(["index", str(tiny_corpus), str(tmp_path / "x"), "--ray", "local"]) == 2
    assert "--shards" in capsys.readouterr().err


@pytest.mark.slow
def test_shards_held_by_ray_actors_answer_as_local_shards_and_see_writes(local_ray, tmp_path):
    path = build_sharded(_e5_config(), tmp_path / "idx", _docs(24), shards=2, **QUIET)
    local, remote = open_index(path), open_index(path, ray="local")
    for q in QUERIES[:3]:
        for route in ("bm25", "dense", "hybrid"):
            assert [(h.doc_id, round(h.score, 4)) for h in remote.search(q, route=route, k=8, lang="fr")] == \
                [(h.doc_id, round(h.score, 4)) for h in local.search(q, route=route, k=8, lang="fr")]
    hit = remote.search("chat", route="bm25", k=1, lang="fr")[0]
    assert hit.doc is not None and hit.doc.doc_id == hit.doc_id and remote.doc_count == 24
    apply_batch(path, [Doc("new-1", "fr", "ornithorynque", "un ornithorynque nage")])
    assert remote.search("ornithorynque", route="bm25", k=1, lang="fr")[0].doc_id == "new-1"
    remote.close()
    local.close()
