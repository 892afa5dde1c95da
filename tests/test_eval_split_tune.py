"""The dev/test protocol (split by article), fusion tuning on dev only, the ladder, and the `best` route."""
import math

import pytest

from xsearch.config import CorpusSpec, FusionSpec, IndexConfig
from xsearch.errors import InputError
from xsearch.eval.metrics import evaluate
from xsearch.eval.split import SplitSpec, article_is_dev, query_split, side_qrels
from xsearch.eval.tune import RunStack, tune_fusion
from xsearch.fusion import fuse, wmax
from xsearch.records import Run


# ---- split ----------------------------------------------------------------------------------------------------
def test_split_is_by_article_and_fixed():
    qrels = {f"q{a}-{i}": {f"art{a}": 1} for a in range(300) for i in range(3)}
    split = query_split(qrels)
    assert split == query_split(dict(reversed(list(qrels.items()))))          # order does not matter
    for a in range(300):                                                     # an article's queries stay together
        assert len({split[f"q{a}-{i}"] for i in range(3)}) == 1
        assert split[f"q{a}-0"] == ("dev" if article_is_dev(f"art{a}", SplitSpec()) else "test")
    dev = sum(1 for v in split.values() if v == "dev") / len(split)
    assert 0.27 < dev < 0.40                                                 # about one third
    assert query_split(qrels, SplitSpec(seed=13)) != split                   # the seed is what fixes it


def test_split_query_with_two_articles_follows_the_smallest_id():
    spec = SplitSpec()
    a = next(f"a{i}" for i in range(100) if article_is_dev(f"a{i}", spec))
    b = next(f"b{i}" for i in range(100) if not article_is_dev(f"b{i}", spec))
    split = query_split({"q": {b: 1, a: 1}, "none": {a: 0}}, spec)
    assert split == {"q": "dev"}                                              # "a…" < "b…"; unjudged left out
    assert side_qrels({"q": {a: 1}, "r": {b: 1}}, {"q": "dev", "r": "test"}, "test") == {"r": {b: 1}}
    with pytest.raises(InputError, match="side"):
        side_qrels({}, {}, "train")


# ---- fusion: max (multi-view) -----------------------------------------------------------------------------------
def test_wmax_hand_computed():
    a = Run({"q": {"x": 0.9, "y": 0.5}})
    b = Run({"q": {"y": 0.8, "z": 0.7}})
    fused = wmax([a, b])                                                     # norm none: raw cosines
    assert fused["q"] == pytest.approx({"x": 0.9, "y": 0.8, "z": 0.7})
    assert fuse([a, b], method="max", norm="none", weights=[1.0, 0.5])["q"] == pytest.approx(
        {"x": 0.9, "y": 0.5, "z": 0.35})


# ---- tuning -------------------------------------------------------------------------------------------------------
def _ndcg(ranked, rel):
    dcg = sum(1 / math.log2(i + 2) for i, d in enumerate(ranked[:10]) if d in rel)
    idcg = sum(1 / math.log2(i + 2) for i in range(min(len(rel), 10)))
    return dcg / idcg


@pytest.mark.parametrize("method,norm,k", [("rrf", "minmax", 60), ("rrf", "minmax", 1), ("wsum", "minmax", 60),
                                          ("wsum", "zscore", 60)])
def test_run_stack_scores_what_fuse_and_evaluate_score(method, norm, k):
    a = Run({"q1": {"d1": 3.0, "d2": 2.0, "d3": 1.0}, "q2": {"d4": 2.0, "d5": 1.5}})
    b = Run({"q1": {"d3": 9.0, "d4": 8.0, "d1": 1.0}, "q2": {"d5": 0.9, "d6": 0.1}})
    qrels = {"q1": {"d3": 1}, "q2": {"d5": 1, "d9": 1}}
    stack = RunStack({"a": a, "b": b}, ["a", "b"], qrels)
    for weights in ([1.0, 1.0], [1.0, 0.3], [0.2, 1.0], [0.0, 1.0]):
        parts, w = ([a, b], weights) if weights[0] else ([b], [1.0])
        expected = evaluate(fuse(parts, method=method, weights=w, norm=norm, rrf_k=k), qrels, ["nDCG@10"])
        got = stack.ndcg10(stack.features(method, norm, k), weights)
        assert got.tolist() == pytest.approx(expected["nDCG@10"].tolist())


def test_run_stack_hand_computed():
    a = Run({"q": {"x": 2.0, "y": 1.0}})
    b = Run({"q": {"y": 5.0, "z": 4.0}})
    stack = RunStack({"a": a, "b": b}, ["a", "b"], {"q": {"z": 1}})
    # RRF k=60: y = 1/62 + 1/61, x = 1/61, z = 1/62 -> y, x, z: z third
    assert stack.ndcg10(stack.features("rrf"), [1, 1])[0] == pytest.approx(_ndcg(["y", "x", "z"], {"z"}))
    # b alone: y, z -> z second
    assert stack.ndcg10(stack.features("rrf"), [0, 1])[0] == pytest.approx(_ndcg(["y", "z"], {"z"}))


def test_tune_drops_a_useless_route_and_reads_only_dev():
    docs = [f"d{i}" for i in range(20)]
    good = Run({f"q{i}": {d: 20.0 - j for j, d in enumerate(docs[i:] + docs[:i])} for i in range(6)})
    bad = Run({f"q{i}": {d: float(j) for j, d in enumerate(docs[i:] + docs[:i])} for i in range(6)})
    dev = {f"q{i}": {docs[i]: 1} for i in range(6)}                # good ranks the relevant doc first
    best = tune_fusion({"good": good, "bad": bad}, ["good", "bad"], dev)
    assert best.parts == ["good"] and best.dev == pytest.approx(1.0)
    with pytest.raises(InputError, match="no run"):
        tune_fusion({"good": good}, ["good", "bad"], dev)


def test_tune_ascends_from_a_given_start_too():
    from xsearch.eval.tune import Fusion

    docs = [f"d{i}" for i in range(20)]
    good = Run({f"q{i}": {d: 20.0 - j for j, d in enumerate(docs[i:] + docs[:i])} for i in range(6)})
    bad = Run({f"q{i}": {d: float(j) for j, d in enumerate(docs[i:] + docs[:i])} for i in range(6)})
    dev = {f"q{i}": {docs[i]: 1} for i in range(6)}
    runs, names = {"good": good, "bad": bad}, ["good", "bad"]
    # a grid without 0 cannot drop `bad` from equal weights; the start (bad absent = weight 0) is kept
    stuck = tune_fusion(runs, names, dev, weight_grid=(1.0,), rrf_ks=(), norms=("zscore",))
    assert stuck.dev < 1.0
    start = Fusion(["good"], [1.0], "wsum", "zscore")
    best = tune_fusion(runs, names, dev, weight_grid=(1.0,), rrf_ks=(), norms=("zscore",), start=start)
    assert best.parts == ["good"] and best.dev == pytest.approx(1.0)
    assert [h["from"] for h in best.history if h["method"] == "wsum"] == ["equal", "start"]
    # a filled wsum condition (the default `best`) carries its fill's RRF k: the head's setting is still wsum
    filled = Fusion(["good"], [1.0], "wsum", "zscore", rrf_k=10)
    assert tune_fusion(runs, names, dev, weight_grid=(1.0,), rrf_ks=(), norms=("zscore",), start=filled).dev == \
        pytest.approx(1.0)
    with pytest.raises(InputError, match="not among those tuned"):
        tune_fusion(runs, names, dev, start=Fusion(["other"], [1.0], "wsum", "zscore"))


# ---- ladder -------------------------------------------------------------------------------------------------------
def test_ladder_compares_each_step_with_the_best_on_dev_before_it():
    from xsearch.eval.ladder import ladder

    qrels = {f"q{i}": {"d": 1} for i in range(6)}
    split = {f"q{i}": ("dev" if i < 2 else "test") for i in range(6)}
    runs = {"a": Run({q: {"d": 1.0} for q in qrels}),                          # d first everywhere
            "b": Run({q: {"x": 2.0, "d": 1.0} for q in qrels}),                # d second
            "c": Run({q: {"d": 1.0} if q in ("q0", "q1") else {"x": 1.0} for q in qrels})}
    per_query = {n: evaluate(r, qrels, ["nDCG@10"]) for n, r in runs.items()}
    rows = ladder(per_query, qrels, split, ["b", "a", "c"], n_resamples=50)
    assert [(r["step"], r["vs"]) for r in rows] == [("a", "b"), ("c", "a")]   # a: best on dev among b, a
    assert rows[1]["test_delta"] == pytest.approx(-1.0) and rows[1]["test_losses"] == 4
    assert rows[0]["test_delta"] == pytest.approx(1 - 1 / math.log2(3))


def test_split_table_has_recall_on_each_side():
    from xsearch.eval.ladder import markdown

    qrels = {f"q{i}": {"d": 1} for i in range(4)}
    split = {f"q{i}": ("dev" if i < 1 else "test") for i in range(4)}
    run = Run({q: {"d": 1.0} if q in ("q0", "q1") else {"x": 1.0} for q in qrels})   # finds d for q0, q1 only
    lines, numbers = markdown({"r": evaluate(run, qrels, ["nDCG@10", "R@100"])}, qrels, split, ["r"])
    assert "R@100 dev | test | all |" in lines[4]
    assert lines[6] == "| r | 1.000 | 0.333 | 0.500 | 1.000 | 0.333 | 0.500 | 1.000 | 0.333 | 0.500 |"
    assert numbers["side_recall@100"]["r"]["test"] == pytest.approx(1 / 3)


# ---- the best route -------------------------------------------------------------------------------------------------
def _routes(config: IndexConfig, components: dict[str, dict]):
    from xsearch.routes import expand_routes
    from xsearch.storage.manifest import ComponentEntry

    return expand_routes({n: ComponentEntry(kind=s["kind"], spec=s) for n, s in components.items()}, config)


COMPONENTS = {"bm25-fr": {"kind": "bm25", "lang": "fr"},
              "bm25-dt": {"kind": "bm25", "lang": "en", "text": "translation", "route": "bm25-dt"},
              "dense": {"kind": "dense", "encoder": "e5-small"}}


def test_best_route_is_the_default_and_fuses_the_strong_routes():
    config = IndexConfig(corpus=CorpusSpec(path="inline"))
    routes, default = _routes(config, COMPONENTS)
    assert default == "best" and routes["best"].fuse == ["bm25-qt", "bm25-dt", "dense"]
    assert "hybrid" in routes and "hybrid-dt" in routes


def test_a_recipe_best_replaces_the_template_and_is_validated():
    tuned = FusionSpec(name="best", fuse=["bm25-dt", "dense"], method="wsum", norm="zscore", weights=[1.0, 0.5])
    routes, default = _routes(IndexConfig(corpus=CorpusSpec(path="inline"), fusions=[tuned]), COMPONENTS)
    best = routes["best"]
    assert default == "best" and (best.method, best.norm, best.weights) == ("wsum", "zscore", [1.0, 0.5])
    assert "zscore" in best.about and "dense x0.5" in best.about
    bad = FusionSpec(name="best", fuse=["bm25-dt", "splade"])
    with pytest.raises(InputError, match="splade"):
        _routes(IndexConfig(corpus=CorpusSpec(path="inline"), fusions=[bad]), COMPONENTS)


def test_no_best_route_from_a_single_route():
    routes, default = _routes(IndexConfig(corpus=CorpusSpec(path="inline")),
                              {"dense": {"kind": "dense", "encoder": "e5-small"}})
    assert "best" not in routes and default == "dense"


def test_the_demo_recipe_default_is_its_tuned_best_fusion():
    """indexes/taln.yaml stores the dev-tuned fusion as `best`: it parses, its parts are routes of the index the
    recipe builds (demo route names, e.g. `splade` for the eval's splade-dt), and it is the default route."""
    from pathlib import Path

    from xsearch.routes import component_specs

    recipe = Path(__file__).resolve().parents[1] / "indexes" / "taln.yaml"
    config = IndexConfig.from_yaml(recipe)
    tuned = [f for f in config.fusions if f.name == "best"]
    assert len(tuned) == 1 and tuned[0].weights and len(tuned[0].weights) == len(tuned[0].fuse)
    specs = component_specs(config, ["fr"])
    routes, default = _routes(config, {n: s.model_dump() for n, s in specs.items()})
    assert default == "best" and routes["best"].fuse == tuned[0].fuse
    assert (routes["best"].method, routes["best"].weights) == (tuned[0].method, tuned[0].weights)


def test_routes_over_a_missing_base_are_not_listed():
    """Without translation there is no bm25-dt or dense-dt: RM3 / vector PRF over them serve no route."""
    from xsearch.routes import unserved, unserved_routes
    from xsearch.storage.manifest import ComponentEntry

    components = {"bm25-fr": {"kind": "bm25", "lang": "fr"}, "dense": {"kind": "dense", "encoder": "e5-small"},
                  "bm25-rm3": {"kind": "rm3", "over": "bm25"},
                  "bm25-dt-rm3-d5": {"kind": "rm3", "over": "bm25-dt", "fb_docs": 5},
                  "dense-vprf": {"kind": "vprf", "over": "dense"},
                  "dense-dt-vprf": {"kind": "vprf", "over": "dense-dt"},
                  "dense-qt": {"kind": "dense-qt", "over": "dense-dt", "lang": "fr"},
                  "prf-dt": {"kind": "vprf", "over": "dense-dt", "route": "my-prf"}}
    routes, _ = _routes(IndexConfig(corpus=CorpusSpec(path="inline")), components)
    assert {"bm25-rm3", "dense-vprf"} <= set(routes)
    assert not {"bm25-dt-rm3-d5", "dense-dt-vprf", "dense-qt", "my-prf"} & set(routes)
    entries = {n: ComponentEntry(kind=s["kind"], spec=s) for n, s in components.items()}
    assert sorted(unserved(entries)) == ["bm25-dt-rm3-d5", "dense-dt-vprf", "dense-qt", "prf-dt"]
    # asked for at query time, a route is found by its own name, which a `route:` key may set
    assert unserved_routes(entries)["my-prf"] == "no dense component 'dense-dt' in this index"


def test_rrf_fill_keeps_the_head_and_fills_below_from_rrf():
    from xsearch.fusion import head_then_fill

    a = Run({"q": {"x": 3.0, "y": 2.0, "z": 1.0}})
    b = Run({"q": {"w": 5.0, "z": 4.0}})
    # wsum (minmax, b x0.5): x 1, w 0.5, y 0.5, z 0; RRF k=60 (unweighted): z 1/63+1/62 > x = w 1/61 > y 1/62
    w = [1.0, 0.5]
    assert [d for d, _ in fuse([a, b], method="wsum", weights=w).ranked("q")] == ["x", "w", "y", "z"]
    assert [d for d, _ in fuse([a, b], method="wsum", weights=w, rrf_fill=1).ranked("q")] == ["x", "z", "w", "y"]
    assert [d for d, _ in fuse([a, b], method="wsum", weights=w, rrf_fill=3).ranked("q")] == ["x", "w", "y", "z"]
    # a zero-weight run is no part of the fill's RRF
    assert [d for d, _ in fuse([a, b], method="wsum", weights=[1, 0], rrf_fill=1).ranked("q")] == ["x", "y", "z", "w"]
    filled = head_then_fill(a, Run({"q": {"w": 1.0}}), 2)
    assert [d for d, _ in filled.ranked("q")] == ["x", "y", "w", "z"]
    assert [s for _, s in filled.ranked("q")] == [1.0, 0.5, 1 / 3, 0.25]  # reciprocal ranks
    with pytest.raises(InputError, match=">= 1"):
        head_then_fill(a, b, 0)


def test_a_recipe_fusion_carries_its_rrf_fill_into_the_route():
    f = FusionSpec(name="best", fuse=["bm25-dt", "dense"], method="wsum", norm="zscore", rrf_fill=10)
    routes, _ = _routes(IndexConfig(corpus=CorpusSpec(path="inline"), fusions=[f]), COMPONENTS)
    assert routes["best"].rrf_fill == 10 and "below the first 10, reciprocal rank fusion (k=60)" in routes["best"].about


def test_an_english_only_encoder_over_french_text_is_named_at_build(tmp_path):
    from xsearch.build import build_index
    from xsearch.records import Doc

    config = IndexConfig(name="w", corpus=CorpusSpec(path="inline"), bm25={"enabled": False},
                         dense={"enabled": False},
                         components=[{"kind": "dense", "name": "fr-minilm", "encoder": "minilm"},
                                     {"kind": "dense", "name": "dt-minilm", "encoder": "minilm", "text": "translation"}])
    logged: list[str] = []
    build_index(config, tmp_path / "i", docs=[Doc("a", "fr", "Les chats", "Le chat dort.")], show_progress=False,
                log=logged.append)
    warnings = [m for m in logged if m.startswith("warning:")]
    # nothing is translated, so both read French
    assert len(warnings) == 2 and all("'minilm' knows English only, and it reads text in fr" in m for m in warnings)
    translated = IndexConfig(name="w", corpus=CorpusSpec(path="inline"),
                             translate={"translator": "apertium", "target_lang": "en"})
    from xsearch.routes import language_mismatches
    from xsearch.storage.manifest import ComponentEntry

    entries = {n: ComponentEntry(kind="dense", spec=s) for n, s in
               (("fr-minilm", {"encoder": "minilm"}), ("dt-minilm", {"encoder": "minilm", "text": "translation"}),
                ("e5", {"encoder": "e5-small"}))}
    assert sorted(language_mismatches(entries, ["fr"], translated)) == ["fr-minilm"]   # the translation is English
    assert language_mismatches(entries, ["en"], config) == {}
