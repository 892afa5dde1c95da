"""vprf (Rocchio over the top passage vectors) and dense-qt (query translation before encoding): one recipe
line each, over a dense component's stored vectors (a hash encoder stands in for e5: storage and formula tested)."""
import numpy as np
import pytest

from test_storage import HashEncoder, _config
from xsearch.index import open_index
from xsearch.build import build_index
from xsearch.components import Models
from xsearch.errors import InputError
from xsearch.records import Doc

DOCS = [Doc("a", "fr", "chat", "chat noir"), Doc("b", "fr", "chien", "chien blanc"),
        Doc("c", "fr", "castor", "castor barrage"), Doc("d", "fr", "chat", "chat chien")]


class Words:
    name, model_id = "words", ""

    def translate(self, texts, src, tgt):  # noqa: ANN001, ANN201
        return [{"cat": "chat", "dog": "chien"}.get(t, t) for t in texts]


@pytest.fixture()
def index(tmp_path):
    models = Models(dense=lambda spec: HashEncoder())
    recipe = _config(bm25={"enabled": False}, components=[
        {"kind": "vprf", "name": "dense-vprf", "over": "dense", "fb_docs": 2, "alpha": 1.0, "beta": 0.5},
        {"kind": "dense-qt", "name": "dense-qt", "over": "dense", "lang": "fr"}])
    path = build_index(recipe, tmp_path / "i", docs=DOCS, show_progress=False, log=lambda _m: None, models=models)
    idx = open_index(path, models)
    idx.translator = Words()
    yield idx
    idx.close()


def test_vprf_is_rocchio_over_the_top_vectors(index):
    enc = HashEncoder()
    q = enc.encode_queries(["chat"])[0]
    passages = enc.encode_passages([d.contents for d in DOCS])
    first = [d for d, _ in index.run({"q": "chat"}, route="dense", k=2, lang="fr").ranked("q")]
    fb = np.mean([passages["abcd".index(d)] for d in first], axis=0)
    new = q + 0.5 * fb
    new /= np.linalg.norm(new)
    expected = {d.doc_id: float(new @ passages[i]) for i, d in enumerate(DOCS)}
    got = index.run({"q": "chat"}, route="dense-vprf", k=4, lang="fr")["q"]
    assert got == pytest.approx(expected, abs=1e-5)


def test_dense_qt_translates_before_encoding(index):
    got = index.run({"q": "cat"}, route="dense-qt", k=4, lang="en")["q"]
    same = index.run({"q": "chat"}, route="dense", k=4, lang="fr")["q"]
    assert got == pytest.approx(same) and index.manifest["routes"]["dense-qt"]["query_translation"]


def test_vprf_over_a_missing_component_is_refused(tmp_path):
    models = Models(dense=lambda spec: HashEncoder())
    recipe = _config(components=[{"kind": "vprf", "name": "p", "over": "nope"}])
    path = build_index(recipe, tmp_path / "i", docs=DOCS, show_progress=False, log=lambda _m: None, models=models)
    idx = open_index(path, models)
    with pytest.raises(Exception, match="nope"):
        idx.run({"q": "chat"}, route="p", k=2, lang="fr")
    with pytest.raises(InputError, match="fb_docs"):
        from xsearch.components.vprf import VectorPRFRetriever, VPRFSpec

        VectorPRFRetriever(None, None, None, VPRFSpec(fb_docs=0), "p")
    idx.close()
