"""A live update bringing a language the index's routes cannot take is refused (400 naming what is missing and what
the index holds), through the library (the CLI update path) and the API; a language they can take is indexed."""
from __future__ import annotations

import pytest

from server_helpers import API_KEY, DictTranslator, build_template, copy_index, install_translator
from xsearch.errors import InputError, MissingBackendError
from xsearch.records import Doc
from xsearch.update import apply_batch


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        install_translator(mp)
        real = DictTranslator.translate

        def fr_en_only(self, texts, src, tgt):  # noqa: ANN001, ANN202 - like Apertium with fr-en pairs only
            if {src, tgt} - {"fr", "en"}:
                raise MissingBackendError(f"no route {src}->{tgt}")
            return real(self, texts, src, tgt)

        mp.setattr(DictTranslator, "translate", fr_en_only)
        yield build_template(tmp_path_factory.mktemp("templates"))


@pytest.mark.parametrize("lang,missing", [
    ("eo", "a Lucene analyzer for 'eo' (there are analyzers for ar, "),
    ("de", "a document translation route de->en; and a query translation (bm25-qt) route en->de; and a query "
           "translation (bm25-qt) route fr->de;"),
])
def test_a_language_the_routes_cannot_take_is_refused(template, tmp_path, lang, missing):
    path = copy_index(template, tmp_path / "tiny")
    doc = Doc("n1", lang, "Titolo", "Teksto.")
    with pytest.raises(InputError) as caught:
        apply_batch(path, [doc, Doc("n2", "fr", "Un titre", "Un texte.")])
    message = str(caught.value)
    assert message.startswith(f"document 'n1' in {lang!r}: this index holds fr and lacks {missing}")
    assert message.endswith(f"add documents in one of its languages, or rebuild with a recipe for {lang!r}")
    from xsearch.index import open_index

    index = open_index(path)
    assert index.generation == 1 and sorted(index.manifest["languages"]) == ["fr"]   # nothing of the batch
    assert not any(name.endswith(lang) for name in index.manifest["components"])


def test_the_api_answers_400_and_takes_a_language_the_routes_can_take(template, tmp_path):
    from fastapi.testclient import TestClient

    from server.app import create_app
    from server.settings import ServerSettings

    path = copy_index(template, tmp_path / "tiny")
    key = {"X-API-Key": API_KEY}
    with TestClient(create_app(ServerSettings(index=path, api_key=API_KEY))) as c:
        r = c.post("/docs", json={"docs": [{"id": "g1", "lang": "de", "title": "Die Katze"}]}, headers=key)
        assert r.status_code == 400 and "'g1' in 'de': this index holds fr" in r.json()["detail"]
        assert "de->en" in r.json()["detail"]
        r = c.post("/docs", json={"docs": [{"id": "e1", "lang": "en", "title": "Beavers build dams"}]}, headers=key)
        assert r.status_code == 200, r.text
        assert c.get("/indexes").json()["indexes"][0]["languages"] == {"en": 1, "fr": 5}
        hits = c.get("/search", params={"q": "beavers", "route": "bm25-qt", "lang": "en"}).json()["hits"]
        assert [h["id"] for h in hits] == ["e1"]


def test_the_schema_lists_the_languages_the_index_takes(template, tmp_path):
    from fastapi.testclient import TestClient

    from server.app import create_app
    from server.settings import ServerSettings

    path = copy_index(template, tmp_path / "tiny")
    with TestClient(create_app(ServerSettings(index=path, api_key=API_KEY))) as c:
        lang = c.get("/openapi.json").json()["components"]["schemas"]["DocIn"]["properties"]["lang"]
        assert {"fr", "en", "de"} <= set(lang["enum"]) and "eo" not in lang["enum"]
        r = c.post("/docs", json={"docs": [{"id": "o1", "lang": "eo", "title": "La kato"}]},
                   headers={"X-API-Key": API_KEY})
        assert r.status_code == 422 and "this index takes documents in 'ar', " in r.text and "got 'eo'" in r.text
