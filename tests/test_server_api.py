"""The HTTP API over a tiny index (bm25 + dense e5 + hybrid, with stored translations): search, documents,
paging, filters, highlighting, auth, live updates through the API, and 4xx (never 5xx) for bad input."""
from __future__ import annotations

import json

import pytest

pytest.importorskip("fastapi", reason="the server extra is not installed: pip install 'xsearch[server]'")
from fastapi.testclient import TestClient  # noqa: E402
from pydantic import ValidationError  # noqa: E402

from server.app import create_app  # noqa: E402
from server.settings import ServerSettings  # noqa: E402
from server_helpers import API_KEY, build_template, copy_index, install_translator  # noqa: E402

KEY = {"X-API-Key": API_KEY}


@pytest.fixture(scope="module")
def mp():
    with pytest.MonkeyPatch.context() as m:
        install_translator(m)
        yield m


@pytest.fixture(scope="module")
def template(tmp_path_factory, mp):
    return build_template(tmp_path_factory.mktemp("templates"))


@pytest.fixture(scope="module")
def client(template, tmp_path_factory):
    """Read-only tests share this client: nothing here writes."""
    path = copy_index(template, tmp_path_factory.mktemp("ro") / "tiny")
    with TestClient(create_app(ServerSettings(index=path, api_key=API_KEY))) as c:
        yield c


@pytest.fixture()
def writable(template, tmp_path):
    path = copy_index(template, tmp_path / "tiny")
    with TestClient(create_app(ServerSettings(index=path, api_key=API_KEY))) as c:
        yield c, path


def ids(response) -> list[str]:  # noqa: ANN001
    assert response.status_code == 200, response.text
    return [h["id"] for h in response.json()["hits"]]


# ---- reads ------------------------------------------------------------------------------------------------------
def test_health_and_indexes(client):
    import os

    assert client.get("/health").json() == {"status": "ok", "index": "tiny", "doc_count": 5, "generation": 1,
                                            "worker": os.getpid()}
    info = client.get("/indexes").json()["indexes"][0]
    routes = {r["name"]: r for r in info["routes"]}
    assert {"bm25", "dense", "hybrid", "bm25-dt", "bm25-qt"} <= set(routes)
    assert routes["hybrid"]["fused"] and routes["bm25-qt"]["query_translation"]
    assert info["default_route"] == "best" and info["max_k"] == 100 and info["default_k"] == 10
    assert info["translation"]["target_lang"] == "en" and info["languages"] == {"fr": 5}
    assert info["manifest"]["config"]["corpus"]["path"] == "inline"  # no build-machine paths
    assert info["manifest"]["components"]["dense"]["state"]["dim"] == 384


@pytest.mark.parametrize("route,query,lang,top", [
    ("bm25", "traduction automatique", "fr", "d1"),
    ("bm25", "chats", "fr", "d3"),
    ("bm25-dt", "speech recognition", "en", "d4"),
    ("dense", "speech recognition", "en", "d4"),
    ("hybrid", "statistical machine translation", "en", "d1"),
    ("hybrid-dt", "dependency parsing", "en", "d2"),
])
def test_routes_find_the_expected_article(client, route, query, lang, top):
    r = client.get("/search", params={"q": query, "route": route, "lang": lang, "k": 3})
    assert ids(r)[0] == top
    body = r.json()
    assert body["route"] == route and body["k"] == 3 and body["index"]["generation"] == 1
    assert [h["rank"] for h in body["hits"]] == list(range(1, len(body["hits"]) + 1))
    scores = [h["score"] for h in body["hits"]]
    assert scores == sorted(scores, reverse=True)


def test_hit_carries_original_translation_snippet_and_route_scores(client):
    body = client.get("/search", params={"q": "statistical machine translation", "route": "hybrid", "k": 2}).json()
    hit = body["hits"][0]
    assert hit["id"] == "d1" and hit["lang"] == "fr" and hit["title"] == "Traduction automatique statistique"
    assert hit["text"].startswith("Nous présentons") and hit["fields"] == {"year": 2010, "venue": "taln"}
    assert hit["translation"]["title"] == "Statistical machine translation"
    assert hit["translation"]["title_html"] == ("<mark>Statistical</mark> <mark>machine</mark> "
                                                "<mark>translation</mark>")
    assert "<mark>statistical</mark>" in hit["translation"]["snippet"]
    assert set(hit["route_scores"]) <= {"bm25", "dense"} and "dense" in hit["route_scores"]
    plain = client.get("/search", params={"q": "chats", "route": "bm25", "lang": "fr"}).json()["hits"][0]
    assert plain["route_scores"] == {}
    assert plain["title_html"] == "Les <mark>chats</mark> et les chiens"
    assert "domestiques" in plain["snippet"] and "<mark>chats</mark>" in plain["snippet"]


def test_snippets_are_html_escaped(client):
    hit = client.get("/search", params={"q": "balises", "route": "bm25", "lang": "fr"}).json()["hits"][0]
    assert hit["id"] == "d5"
    assert "<script>" not in hit["snippet"] and "&lt;script&gt;" in hit["snippet"]
    assert "<mark>balises</mark>" in hit["snippet"] and "&amp;amp;" in hit["snippet"]
    assert hit["title_html"] == "Traduction des <mark>balises</mark> &lt;b&gt; &amp; entités"
    assert "<script>" not in hit["translation"]["snippet"]
    assert hit["text"] == ("Un outil de traduction qui garde les balises <script>alert(1)</script> et les entités "
                           "&amp; intactes.")  # the raw text stays raw; only the *_html fields are markup


def test_paging(client):
    full = ids(client.get("/search", params={"q": "traduction parole", "route": "dense", "lang": "fr", "k": 5}))
    assert len(full) == 5
    p1 = client.get("/search", params={"q": "traduction parole", "route": "dense", "lang": "fr", "k": 2}).json()
    p2 = client.get("/search", params={"q": "traduction parole", "route": "dense", "lang": "fr", "k": 2,
                                       "offset": 2}).json()
    p3 = client.get("/search", params={"q": "traduction parole", "route": "dense", "lang": "fr", "k": 2,
                                       "offset": 4}).json()
    assert [h["id"] for h in p1["hits"] + p2["hits"] + p3["hits"]] == full
    assert [h["rank"] for h in p2["hits"]] == [3, 4]
    assert (p1["prev_offset"], p1["next_offset"], p1["has_more"]) == (None, 2, True)
    assert (p2["prev_offset"], p2["next_offset"]) == (0, 4)
    assert (p3["next_offset"], p3["has_more"], len(p3["hits"])) == (None, False, 1)


def test_filters_on_stored_fields(client):
    base = {"q": "traduction", "route": "dense", "lang": "fr", "k": 10}
    assert set(ids(client.get("/search", params={**base, "year": 2010}))) == {"d1", "d5"}
    assert set(ids(client.get("/search", params={**base, "venue": "recital"}))) == {"d3", "d5"}
    assert set(ids(client.get("/search", params={**base, "venue": "TALN", "year": 2010}))) == {"d1"}
    assert set(ids(client.get("/search", params={**base, "field": "venue:taln"}))) == {"d1", "d2", "d4"}
    assert ids(client.get("/search", params={**base, "year": 1999})) == []
    # filtering happens over a deeper candidate list, then paging applies to what is left
    r = client.get("/search", params={**base, "venue": "taln", "k": 1, "offset": 1}).json()
    assert len(r["hits"]) == 1 and r["hits"][0]["rank"] == 2 and r["has_more"] and r["candidates"] == 5
    assert r["filters"] == {"venue": ["taln"]}
    assert r["matched"] == 3 and r["facets"]["venue"] == {"taln": 3} and sum(r["facets"]["year"].values()) == 3
    r = client.get("/search", params={**base, "facets": "false"}).json()
    assert r["facets"] == {} and r["candidates"] == 5 and r["matched"] == 5


def test_get_doc(client):
    doc = client.get("/docs/d4").json()
    assert doc["title"] == "Reconnaissance de la parole" and doc["fields"]["year"] == 2015
    assert doc["translation"]["title"] == "Speech recognition" and doc["translation"]["lang"] == "en"
    r = client.get("/docs/nope")
    assert r.status_code == 404 and "nope" in r.json()["detail"]


def test_index_without_translations(tmp_path_factory, mp):
    path = build_template(tmp_path_factory.mktemp("plain"), translate=False)
    with TestClient(create_app(ServerSettings(index=path))) as c:
        body = c.get("/search", params={"q": "chats", "route": "bm25", "lang": "fr"}).json()
        assert body["index"]["translation_lang"] is None and body["hits"][0]["translation"] is None
        assert c.get("/docs/d3").json()["translation"] is None
        assert "bm25-dt" not in {r["name"] for r in c.get("/indexes").json()["indexes"][0]["routes"]}


# ---- bad input: 4xx with a message, never 5xx ---------------------------------------------------------------------
@pytest.mark.parametrize("params,status,message", [
    ({}, 422, "q"),
    ({"q": ""}, 422, "at least 1 character"),
    ({"q": "   "}, 422, "the query is empty"),
    ({"q": "x" * 1001}, 422, "at most 1000 characters"),
    ({"q": "x", "k": 0}, 422, "greater than or equal to 1"),
    ({"q": "x", "k": 101}, 422, "less than or equal to 100"),
    ({"q": "x", "k": "ten"}, 422, "valid integer"),
    ({"q": "x", "offset": -1}, 422, "greater than or equal to 0"),
    ({"q": "x", "offset": 950, "k": 100}, 422, "less than or equal to 900"),   # offset + k <= 1000
    ({"q": "x", "route": "nope"}, 422, "'bm25'"),
    ({"q": "x", "lang": "english"}, 422, "pattern"),
    ({"q": "x", "year": "recent"}, 422, "valid integer"),
    ({"q": "x", "yaer": "2010"}, 400, "unknown query parameter(s) yaer"),
    ({"q": "x", "field": "venue"}, 422, "name:value"),
    ({"q": "x", "year": "2010.5"}, 422, "valid integer"),
    ({"q": "x", "venue": ["taln", "recital"]}, 400, "venue given more than once"),
])
def test_bad_search_input(client, params, status, message):
    r = client.get("/search", params=params)
    assert r.status_code == status, r.text
    assert message in json.dumps(r.json()), r.text


def test_openapi_schema(client):
    schema = client.get("/openapi.json").json()
    assert {"/search", "/docs", "/docs/{doc_id}", "/indexes", "/health"} <= set(schema["paths"])
    params = {p["name"]: p for p in schema["paths"]["/search"]["get"]["parameters"]}
    assert params["k"]["schema"]["maximum"] == 100 and params["q"]["schema"]["maxLength"] == 1000
    assert set(schema["components"]["schemas"]["RouteName"]["enum"]) >= {"bm25", "dense", "hybrid"}
    assert schema["components"]["securitySchemes"]["APIKeyHeader"]["name"] == "X-API-Key"


def test_page_and_static_files(client):
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert 'id="q"' in page.text and 'aria-label="Result pages"' in page.text
    for name in ("app.js", "style.css", "index.html"):
        r = client.get(f"/static/{name}")
        assert r.status_code == 200
        assert "https://" not in r.text and "http://" not in r.text.replace("http://www.w3.org", "")  # no CDN


# ---- writes -------------------------------------------------------------------------------------------------------
def test_writes_need_the_key(client):
    doc = {"docs": [{"id": "x", "lang": "fr", "title": "t", "text": "u"}]}
    assert client.post("/docs", json=doc).status_code == 401
    assert client.post("/docs", json=doc, headers={"X-API-Key": "wrong"}).status_code == 401
    assert client.delete("/docs/d1").status_code == 401
    assert client.get("/health").json()["doc_count"] == 5


def test_writes_disabled_without_a_key_and_read_auth(template, tmp_path):
    path = copy_index(template, tmp_path / "tiny")
    with TestClient(create_app(ServerSettings(index=path))) as c:
        r = c.post("/docs", json={"delete": ["d1"]}, headers=KEY)
        assert r.status_code == 403 and "XSEARCH_API_KEY" in r.json()["detail"]
    with TestClient(create_app(ServerSettings(index=path, api_key=API_KEY, read_auth=True))) as c:
        assert c.get("/search", params={"q": "chats"}).status_code == 401
        assert c.get("/docs/d1").status_code == 401
        assert c.get("/search", params={"q": "chats"}, headers=KEY).status_code == 200
        assert c.get("/health").status_code == 200


def test_add_replace_delete_through_the_api(writable):
    c, path = writable
    new = {"id": "d9", "lang": "fr", "title": "Les ornithorynques", "text": "Un ornithorynque nage dans la rivière.",
           "fields": {"year": 2021, "venue": "taln", "authors": ["A. Auteur"]}}
    r = c.post("/docs", json={"docs": [new]}, headers=KEY)
    assert r.status_code == 200, r.text
    assert r.json()["doc_count"] == 6 and r.json()["generation"] == 2 and r.json()["upserted"] == ["d9"]
    hit = c.get("/search", params={"q": "ornithorynque", "route": "bm25", "lang": "fr"}).json()["hits"][0]
    assert hit["id"] == "d9" and hit["fields"]["authors"] == ["A. Auteur"]
    assert hit["translation"]["title"] == "[en] Les ornithorynques"  # translated on the way in
    assert ids(c.get("/search", params={"q": "ornithorynque", "route": "dense", "lang": "fr", "k": 1})) == ["d9"]

    replaced = {**new, "title": "Les castors", "text": "Un castor construit un barrage."}
    assert c.post("/docs", json={"docs": [replaced]}, headers=KEY).json()["doc_count"] == 6
    assert ids(c.get("/search", params={"q": "ornithorynque", "route": "bm25", "lang": "fr"})) == []
    assert ids(c.get("/search", params={"q": "castor", "route": "bm25", "lang": "fr"})) == ["d9"]
    assert c.get("/docs/d9").json()["title"] == "Les castors"

    r = c.delete("/docs/d9", headers=KEY)
    assert r.status_code == 200 and r.json()["deleted"] == ["d9"] and r.json()["doc_count"] == 5
    assert c.get("/docs/d9").status_code == 404
    assert "d9" not in ids(c.get("/search", params={"q": "castor", "route": "hybrid", "lang": "fr", "k": 10}))
    assert c.delete("/docs/d9", headers=KEY).status_code == 404

    # survives a restart: a new app on the same folder sees the same state
    with TestClient(create_app(ServerSettings(index=path, api_key=API_KEY))) as again:
        assert again.get("/health").json()["generation"] == 4
        assert again.get("/docs/d9").status_code == 404


@pytest.mark.parametrize("body,status,message", [
    (b"{not json", 422, "JSON decode error"),
    (b"[]", 422, "valid dictionary"),
    (json.dumps({}).encode(), 422, "empty batch"),
    (json.dumps({"docs": [{"id": "a", "lang": "fr", "title": "t", "colour": "red"}]}).encode(), 422,
     "Extra inputs"),
    (json.dumps({"docs": [{"id": "a", "lang": "French", "title": "t"}]}).encode(), 422,
     "this index takes documents in 'ar', "),
    (json.dumps({"docs": [{"id": "a", "lang": "fr"}]}).encode(), 422, "neither title nor text"),
    (json.dumps({"docs": [{"id": "a", "lang": "fr", "title": " ", "text": "\n"}]}).encode(), 422, "neither title"),
    (json.dumps({"docs": [{"id": "a", "lang": "fr", "title": "t"}] * 2}).encode(), 409, "more than once"),
    (json.dumps({"docs": [{"id": " a", "lang": "fr", "title": "t"}]}).encode(), 422, "start or end with a space"),
    (json.dumps({"docs": [{"id": "a\nb", "lang": "fr", "title": "t"}]}).encode(), 422, "control characters"),
    (b'{"docs": [{"id": "a", "lang": "fr", "title": "\\ud800"}]}', 422, "not valid Unicode"),
    (b'{"docs": [{"id": "a", "lang": "fr", "title": "t", "fields": {"x": NaN}}]}', 422, "finite"),
    (json.dumps({"docs": [{"id": "a", "lang": "fr", "title": "t", "fields": {"x": {"y": 1}}}]}).encode(), 422,
     "fields"),
    (json.dumps({"delete": ["d1", "nope", "gone"]}).encode(), 404, "unknown document ids: 'nope', 'gone'"),
    (json.dumps({"docs": [{"id": "d1", "lang": "fr", "title": "t"}], "delete": ["d1"]}).encode(), 409,
     "both added and deleted"),
])
def test_bad_batches_change_nothing(writable, body, status, message):
    c, _path = writable
    r = c.post("/docs", content=body, headers={**KEY, "content-type": "application/json"})
    assert r.status_code == status, r.text
    assert message in json.dumps(r.json()), r.text
    assert c.get("/health").json()["generation"] == 1 and c.get("/health").json()["doc_count"] == 5


def test_oversized_body(template, tmp_path):
    path = copy_index(template, tmp_path / "tiny")
    with TestClient(create_app(ServerSettings(index=path, api_key=API_KEY, max_body_bytes=2048,
                                              max_batch_docs=2))) as c:
        big = {"docs": [{"id": "a", "lang": "fr", "title": "t", "text": "x" * 5000}]}
        r = c.post("/docs", json=big, headers=KEY)
        assert r.status_code == 413 and "2048" in r.json()["detail"]
        three = {"docs": [{"id": str(i), "lang": "fr", "title": "t"} for i in range(3)]}
        r = c.post("/docs", json=three, headers=KEY)
        assert r.status_code == 422 and "at most 2 items" in r.text


# ---- settings and command line ------------------------------------------------------------------------------------
def test_settings_from_environment(tmp_path):
    env = {"XSEARCH_INDEX": str(tmp_path), "XSEARCH_API_KEY": "s3cret-0123456789", "XSEARCH_MAX_K": "50",
           "XSEARCH_READ_AUTH": "true"}
    s = ServerSettings.from_env(env)
    assert s.index == tmp_path and s.api_key.get_secret_value() == "s3cret-0123456789" and s.max_k == 50 and s.read_auth
    assert "s3cret" not in repr(s)
    with pytest.raises(ValidationError, match="at least 16 characters"):   # a short key can be guessed
        ServerSettings.from_env({**env, "XSEARCH_API_KEY": "s3cret"})
    assert ServerSettings.from_env(env, max_k=20, read_auth=None).max_k == 20
    with pytest.raises(ValidationError, match="max_k"):
        ServerSettings.from_env({**env, "XSEARCH_MAX_K": "5000"})
    with pytest.raises(ValidationError, match="read_auth needs an api_key"):
        ServerSettings.from_env({"XSEARCH_INDEX": str(tmp_path), "XSEARCH_READ_AUTH": "1"})


def test_serve_command_registers():
    import argparse

    from server.cli import add_serve_command, cmd_serve

    parser = argparse.ArgumentParser()
    add_serve_command(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["serve", "--index", "indexes/taln", "--port", "8123", "--max-k", "50"])
    assert (args.index, args.host, args.port, args.max_k, args.func) == ("indexes/taln", "127.0.0.1", 8123, 50,
                                                                         cmd_serve)


def test_snippet_window_and_highlight_rules():
    from server.highlight import highlight, query_terms, snippet

    terms = query_terms("Statistical machine translations of the chats")
    assert "the" not in terms and "of" not in terms
    words = ["mot"] * 100 + ["traduction", "des", "chats"] + ["fin"] * 100
    out = snippet(" ".join(words), query_terms("chat traduction"), width=20)
    assert out.startswith("…") and out.endswith("…") and out.count(" ") < 25
    assert "<mark>traduction</mark> des <mark>chats</mark>" in out
    assert highlight("Éléments & <b>", query_terms("elements")) == "<mark>Éléments</mark> &amp; &lt;b&gt;"
    assert snippet("", terms) == "" and highlight("x < y", []) == "x &lt; y"


# ---- auth before body ------------------------------------------------------------------------------------------
def test_keyless_and_wrong_key_writes_are_refused_before_the_body_is_read(template, tmp_path):
    """FastAPI parses a JSON body before it resolves Security dependencies: the key is checked by an ASGI
    middleware from the headers alone, so a keyless 40 MB POST costs the server nothing."""
    import asyncio

    path = copy_index(template, tmp_path / "tiny")
    app = create_app(ServerSettings(index=path, api_key=API_KEY))
    size = 40_000_000

    def call(method: str, key: str | None) -> tuple[int, int, dict]:
        reads, sent = [0], []
        headers = [(b"content-type", b"application/json"), (b"content-length", str(size).encode())]
        if key is not None:
            headers.append((b"x-api-key", key.encode()))
        scope = {"type": "http", "method": method, "path": "/docs" if method == "POST" else "/docs/d1",
                 "raw_path": b"/docs", "query_string": b"", "headers": headers, "http_version": "1.1",
                 "scheme": "http", "server": ("test", 80), "client": ("test", 1), "root_path": ""}

        async def receive() -> dict:
            reads[0] += 1
            return {"type": "http.request", "body": b"x" * 65536, "more_body": True}

        async def send(message: dict) -> None:
            sent.append(message)

        asyncio.run(app(scope, receive, send))
        start = next(m for m in sent if m["type"] == "http.response.start")
        body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
        return start["status"], reads[0], json.loads(body)

    for method in ("POST", "DELETE"):
        status, reads, body = call(method, None)
        assert (status, reads) == (401, 0) and "X-API-Key" in body["detail"]
        status, reads, body = call(method, API_KEY[:-1] + "x")
        assert (status, reads) == (401, 0)
    app = create_app(ServerSettings(index=path))   # writes disabled: 403, still before the body
    status, reads, body = call("POST", API_KEY)
    assert (status, reads) == (403, 0) and "XSEARCH_API_KEY" in body["detail"]
