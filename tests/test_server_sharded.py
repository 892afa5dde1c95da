"""The server on a sharded index: the same API (search, facets, documents with their translation, writes routed
to each document's shard) as on one index."""
from __future__ import annotations

import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from server.app import create_app  # noqa: E402
from server.settings import ServerSettings  # noqa: E402
from server_helpers import API_KEY, DOCS, TRANSLATOR, install_translator  # noqa: E402
from xsearch.config import CorpusSpec, IndexConfig  # noqa: E402
from xsearch.shard.build import build_sharded  # noqa: E402
from xsearch.shard.layout import shard_of  # noqa: E402

KEY = {"X-API-Key": API_KEY}


@pytest.fixture()
def client(tmp_path, monkeypatch):
    install_translator(monkeypatch)
    cfg = IndexConfig(name="tiny", corpus=CorpusSpec(path="inline"),
                      translate={"translator": TRANSLATOR, "dense": False})
    path = build_sharded(cfg, tmp_path / "tiny", list(DOCS), shards=2, show_progress=False, log=lambda _m: None)
    with TestClient(create_app(ServerSettings(index=path, api_key=API_KEY))) as c:
        yield c, path


def test_a_sharded_index_serves_the_same_api(client):
    c, path = client
    assert sorted({shard_of(d.doc_id, 2) for d in DOCS}) == [0, 1]          # both shards hold documents
    assert c.get("/health").json()["doc_count"] == 5
    for route, query, lang, top in [("bm25", "chats", "fr", "d3"), ("dense", "speech recognition", "en", "d4"),
                                    ("bm25-dt", "speech recognition", "en", "d4"),
                                    ("hybrid", "statistical machine translation", "en", "d1")]:
        body = c.get("/search", params={"q": query, "route": route, "lang": lang, "k": 3}).json()
        assert body["hits"][0]["id"] == top, (route, body)
    body = c.get("/search", params={"q": "traduction", "route": "bm25", "lang": "fr", "venue": "recital"}).json()
    assert [h["id"] for h in body["hits"]] == ["d5"] and body["facets"]["venue"]
    doc = c.get("/docs/d4").json()
    assert doc["title"] == "Reconnaissance de la parole" and doc["translation"]["title"] == "Speech recognition"
    r = c.post("/docs", json={"docs": [{"id": "n1", "lang": "fr", "title": "Les castors",
                                        "text": "Les castors construisent des barrages."}], "delete": ["d3"]},
               headers=KEY)
    assert r.status_code == 200 and r.json()["doc_count"] == 5, r.text
    assert c.get("/search", params={"q": "castors", "route": "bm25", "lang": "fr"}).json()["hits"][0]["id"] == "n1"
    assert c.get("/docs/d3").status_code == 404
