"""Every library error class becomes a 4xx or a 503 naming the input, never a 500, a server path or a stack; Java
exceptions never leave xsearch.lucene."""
from __future__ import annotations

import json

import pytest

pytest.importorskip("fastapi", reason="the server extra is not installed: pip install 'xsearch[server]'")
from fastapi.testclient import TestClient  # noqa: E402

from server.app import create_app  # noqa: E402
from server.errors import public  # noqa: E402
from server.settings import ServerSettings  # noqa: E402
from server.state import LiveIndex  # noqa: E402
from server_helpers import API_KEY, build_template, copy_index, install_translator  # noqa: E402
from xsearch.errors import (BackendError, IndexFormatError, InputError, MissingBackendError,  # noqa: E402
                            UnknownDocumentError, WriterBusyError, XsearchError)
from xsearch.index import IndexView  # noqa: E402

KEY = {"X-API-Key": API_KEY}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        install_translator(mp)
        path = copy_index(build_template(tmp_path_factory.mktemp("templates")), tmp_path_factory.mktemp("e") / "tiny")
        with TestClient(create_app(ServerSettings(index=path, api_key=API_KEY)),
                        raise_server_exceptions=False) as c:
            yield c, path


@pytest.mark.parametrize("cls,status", [
    (InputError, 400), (UnknownDocumentError, 404), (WriterBusyError, 503), (MissingBackendError, 503),
    (IndexFormatError, 503), (BackendError, 503), (XsearchError, 503),
])
def test_every_error_class_is_a_4xx_or_503_without_paths(served, monkeypatch, cls, status):
    c, path = served

    def fail(*_a, **_k):  # noqa: ANN002, ANN003, ANN202
        if cls is UnknownDocumentError:
            raise cls(["x9"])
        raise cls(f"{path}/components/bm25-fr/snap-1 and /usr/share/apertium/modes/fr-es.mode are broken")

    monkeypatch.setattr(IndexView, "page", fail)
    r = c.get("/search", params={"q": "chats", "route": "bm25", "lang": "fr"})
    assert r.status_code == status, r.text
    detail = r.json()["detail"]
    assert str(path) not in r.text and "/usr/" not in r.text and "Traceback" not in r.text
    if cls is not UnknownDocumentError:
        assert "tiny" in detail and "fr-es.mode" in detail   # the folder's name and the file's name stay
    if status == 503:
        assert detail.startswith("search 'chats' on route 'bm25': ")
    assert (r.headers.get("retry-after") is not None) == (cls is WriterBusyError)


def test_a_busy_writer_is_a_503_naming_the_batch(served, monkeypatch):
    c, path = served

    def busy(*_a):  # noqa: ANN002, ANN202
        raise WriterBusyError(f"{path}: another writer (pid 1) has held the index for over 30s")

    monkeypatch.setattr(LiveIndex, "apply", busy)
    r = c.post("/docs", json={"docs": [{"id": "n1", "lang": "fr", "title": "Un titre"}]}, headers=KEY)
    assert r.status_code == 503 and r.headers["retry-after"] == "1"
    assert r.json()["detail"].startswith("the batch: the index is busy") and str(path) not in r.text
    r = c.delete("/docs/d1", headers=KEY)
    assert r.status_code == 503 and r.json()["detail"].startswith("deleting document 'd1': ")


@pytest.mark.parametrize("body,where", [
    (b'{"delete": ["\\ud800"]}', "an id to delete"),
    (b'{"delete": ["d1", "x\\udfff"]}', "an id to delete"),
    (b'{"docs": [{"id": "\\ud800", "lang": "fr", "title": "t"}]}', "docs.0.id"),
])
def test_lone_surrogates_are_refused_with_a_4xx(served, body, where):
    c, _ = served
    r = c.post("/docs", content=body, headers={**KEY, "content-type": "application/json"})
    assert r.status_code == 422, r.text
    assert f"{where} is not valid Unicode" in json.dumps(r.json())
    assert c.get("/health").json()["generation"] == 1


def test_public_messages_keep_names_and_drop_paths(tmp_path):
    index = tmp_path / "taln"
    assert public(f"{index}/manifest-00000002.json is damaged", index) == "taln/manifest-00000002.json is damaged"
    assert public("no mode file /usr/share/apertium/modes/fr-es.mode") == "no mode file fr-es.mode"
    assert public("no route fr->en/es; k1/b and a / b") == "no route fr->en/es; k1/b and a / b"


def test_java_exceptions_become_typed_errors(tmp_path):
    pytest.importorskip("pyserini")
    from xsearch.lucene import MAX_CLAUSES, LuceneBM25, build_bm25

    folder = tmp_path / "bm25"
    build_bm25([{"id": "a", "contents": "le chat dort"}, {"id": "b", "contents": "le chien court"}], folder, "fr")
    lucene = LuceneBM25(folder, "fr")
    long = " ".join(f"mot{i}" for i in range(MAX_CLAUSES + 1))
    with pytest.raises(InputError, match=f"has {MAX_CLAUSES + 1} terms; Lucene takes at most {MAX_CLAUSES}"):
        lucene.search_texts([long], ["q"], 5)
    assert lucene.search_texts(["chat"], ["q"], 5)["q"] == {"a": pytest.approx(0.3648, abs=1e-3)}
    lucene.close()
    with pytest.raises(BackendError, match=r"^BM25 search for 'chat' failed in Lucene \(\w+: ") as caught:
        lucene.search_texts(["chat"], ["q"], 5)
    assert "\n" not in str(caught.value) and "anserini" not in str(caught.value)


def test_highlighting_is_one_pass_whatever_the_number_of_terms():
    from server.highlight import _key, highlight, query_terms, snippet

    words = [f"mot{i % 997}x" for i in range(20_000)] + ["automatiquement", "traductions", "chat"]
    text = " ".join(words)
    few = query_terms("automatique chat")
    many = few + [f"terme{i}" for i in range(2_000)]   # 1000 x more terms than `few`
    expected = {w for w in words if (k := _key(w)) and any(k[1] == s or (len(s) >= 5 and k[0].startswith(s))
                                                          for s in few)}   # the rule, as words x terms
    marked = set(__import__("re").findall(r"<mark>(\w+)</mark>", highlight(text, many)))
    assert marked == expected == {"automatiquement", "chat"}

    class Counted(list):
        """The query terms, counting how often highlighting walks them: once per text when they are sets, once per
        word (20,003 here) for a words x terms loop."""

        walks = 0

        def __iter__(self):  # noqa: ANN204
            Counted.walks += 1
            return super().__iter__()

    terms = Counted(many)
    snippet(text, terms)
    highlight(text, terms)
    assert Counted.walks <= 4, Counted.walks   # a constant per call, whatever the text's length


def test_a_search_past_the_time_budget_is_a_503_and_the_server_goes_on(served, monkeypatch):
    import time

    _c, path = served
    real = IndexView.page

    finished: list[bool] = []

    def slow(self, *a, **kw):  # noqa: ANN001, ANN002, ANN003, ANN202
        if a and a[0] == "slow query":
            time.sleep(3.0)
            finished.append(True)
        return real(self, *a, **kw)

    monkeypatch.setattr(IndexView, "page", slow)
    with TestClient(create_app(ServerSettings(index=path, search_budget_s=0.3))) as c:
        r = c.get("/search", params={"q": "slow query", "route": "bm25", "lang": "fr"})
        assert r.status_code == 503 and not finished, r.text   # answered before the search was done
        assert "time budget of 0.3 s" in r.json()["detail"] and r.headers["Retry-After"] == "1"
        assert c.get("/search", params={"q": "chats", "route": "bm25", "lang": "fr"}).json()["hits"][0]["id"] == "d3"
