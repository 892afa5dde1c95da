"""The HTTP API and web page over one xsearch index: `create_app(settings) -> FastAPI`.

Thin on purpose: every route calls the library (Index.search, the doc store, xsearch.update.apply_batch through
LiveIndex). Reads are open unless settings.read_auth; writes need the X-API-Key header. Bad input gets a 4xx
with a message saying what was wrong (400 for semantic errors, 404 for unknown ids, 422 for values outside
their declared schema, 413 for oversized bodies, 503 when a backend or the index fails: server/errors.py maps
every library error class); never a 500, never a server path or a stack in a message.
"""
import asyncio
import copy
from collections import Counter
import logging
import math
import os
import time
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Literal, Optional

from fastapi import Depends, FastAPI, HTTPException, Query, Request, Security
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.security import APIKeyHeader
from fastapi.staticfiles import StaticFiles
from pydantic import Field, StringConstraints, create_model

import xsearch
from xsearch.errors import XsearchError
from xsearch.index import Index, IndexView
from xsearch.records import Doc, Hit

from .auth import KeyBeforeBody, refusal
from .errors import answer
from .highlight import highlight, query_terms, snippet
from .models import (BatchResult, DocBatch, DocIn, DocOut, Error, Health, IndexInfo, IndexList, IndexRef, RouteInfo,
                     SearchHit, SearchResponse, Translation)
from .settings import SEARCH, ServerSettings
from .state import LiveIndex

STATIC = Path(__file__).parent / "static"
# name:value, each with a character that no engine (JSON Schema's regex, Python's str.strip) counts as whitespace
FieldFilter = Annotated[str, StringConstraints(min_length=3, max_length=200,
                                               pattern=r"^[^:]*[^:\s\x1c-\x1f\x85][^:]*:.*[^\s\x1c-\x1f\x85]")]
SEARCH_PARAMS = {"q", "route", "k", "offset", "lang", "year", "venue", "field", "facets"}
MAX_FIELD_FILTERS = 10
log = logging.getLogger("xsearch.server")

PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {c: {"model": Error} for c in codes}


class BodyLimit:
    """ASGI middleware: refuse request bodies over `limit` bytes (by Content-Length, and while streaming)."""

    def __init__(self, app, limit: int):  # noqa: ANN001
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):  # noqa: ANN001
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > self.limit:
                return await self._too_large(send)
        seen = 0

        async def limited_receive():  # noqa: ANN202
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise HTTPException(413, f"request body over {self.limit} bytes")
            return message

        return await self.app(scope, limited_receive, send)

    async def _too_large(self, send):  # noqa: ANN001, ANN202
        body = f'{{"detail":"request body over {self.limit} bytes"}}'.encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


def _safe(value: Any, depth: int = 0) -> Any:
    """A JSON-safe, bounded copy of a rejected input for a 422 message (no lone surrogates, no NaN, no megabytes
    echoed back)."""
    if isinstance(value, str):
        value = value.encode("utf-8", "replace").decode("utf-8")
        return value if len(value) <= 200 else value[:200] + "…"
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, (int, bool)) or value is None:
        return value
    if depth > 3:
        return "…"
    if isinstance(value, dict):
        return {str(_safe(k, depth + 1)): _safe(v, depth + 1) for k, v in list(value.items())[:20]}
    if isinstance(value, (list, tuple)):
        return [_safe(v, depth + 1) for v in list(value)[:20]]
    return _safe(str(value), depth + 1)


def _message(error: dict) -> str:
    """pydantic's message, said plainly where a pattern would otherwise be quoted at the user."""
    loc, kind = tuple(error.get("loc", ())), error.get("type")
    if kind == "string_pattern_mismatch":
        if loc == ("query", "q"):
            return "the query is empty (only spaces)"
        if loc[:2] == ("query", "field"):
            return "a field filter must look like name:value (e.g. field=venue:taln)"
        if loc[-1:] in (("title",), ("text",)):
            return f"{loc[-1]} may not hold a NUL character"
        if loc[-1:] == ("id",):
            return "a document id may not hold control characters nor start or end with a space"
        if loc[-1:] == ("lang",):
            return "lang must be a lower-case ISO 639 code such as 'en' or 'fr' (pattern ^[a-z]{2,3}$)"
    if kind == "literal_error" and loc[-1:] == ("lang",):
        expected = (error.get("ctx") or {}).get("expected", "")
        return (f"this index takes documents in {expected} (the languages with a Lucene analyzer), got "
                f"{_safe(error.get('input'))!r}")
    if kind == "string_unicode":
        where = "an id to delete" if loc[-2:-1] == ("delete",) else ".".join(map(str, loc[1:])) or "a string"
        return (f"{where} is not valid Unicode: the JSON holds a lone surrogate escape (\\ud800-\\udfff) "
                "or invalid UTF-8")
    msg = str(_safe(error.get("msg", "")))
    return msg.removeprefix("Value error, ")


def _public_manifest(manifest: dict) -> dict:
    """The manifest without the build machine's file paths (the corpus path becomes its last part)."""
    out = copy.deepcopy(manifest)
    corpus = (out.get("config") or {}).get("corpus") or {}
    if isinstance(corpus.get("path"), str):
        corpus["path"] = Path(corpus["path"]).name
    return out


def _index_ref(index: Index | IndexView) -> IndexRef:
    m = index.manifest
    return IndexRef(name=m.get("name", index.path.name), doc_count=int(m["doc_count"]),
                    generation=int(m.get("generation", 0)),
                    translation_lang=(m.get("translation") or {}).get("target_lang"))


def _parse_filters(year: Optional[int], venue: Optional[str], field: list[str]) -> dict[str, list[str]]:
    filters: dict[str, list[str]] = {}
    if year is not None:
        filters["year"] = [str(year)]
    if venue is not None:
        filters["venue"] = [venue]
    if len(field) > MAX_FIELD_FILTERS:
        raise HTTPException(400, f"at most {MAX_FIELD_FILTERS} field filters, got {len(field)}")
    for item in field:
        name, sep, value = item.partition(":")
        if not sep or not name.strip() or not value.strip():
            raise HTTPException(400, f"field filter {item!r} must look like name:value (e.g. field=venue:taln)")
        filters.setdefault(name.strip(), []).append(value.strip())
    return filters


def _translation(tr: Optional[tuple[str, str]], lang: Optional[str], terms: list[str]) -> Optional[Translation]:
    if tr is None or lang is None:
        return None
    return Translation(lang=lang, title=tr[0], text=tr[1], title_html=highlight(tr[0], terms),
                       snippet=snippet(tr[1], terms))


def _hit(h: Hit, rank: int, tr: Optional[tuple[str, str]], tr_lang: Optional[str], terms: list[str],
         terms_original: list[str]) -> SearchHit:
    doc = h.doc or Doc(h.doc_id, "", "", "")
    return SearchHit(id=h.doc_id, rank=rank, score=float(h.score), lang=doc.lang, title=doc.title, text=doc.text,
                     title_html=highlight(doc.title, terms_original), snippet=snippet(doc.text, terms_original),
                     fields=dict(doc.fields), translation=_translation(tr, tr_lang, terms),
                     route_scores={k: float(v) for k, v in h.route_scores.items()})


def _translated_query_terms(index: Index, route: str, text: str, lang: str) -> list[str]:
    """For query-translation routes, the translated query's words also get highlighted (best effort)."""
    spec = index.manifest["routes"].get(route, {})
    langs = list(index.manifest.get("languages") or {})
    if not spec.get("query_translation") or not langs or langs[0] == lang:
        return []
    try:
        return query_terms(*index.query_translator().translate([text], lang, langs[0]))
    except Exception:  # noqa: BLE001 - highlighting never fails a search
        log.debug("query translation for highlighting failed", exc_info=True)
        return []


def _doc_model(manifest: dict) -> type[DocIn]:
    """DocIn whose `lang` lists the languages an index with BM25 can take (those it holds, and those with a Lucene
    analyzer), so the schema says it; the writer still checks translation routes (a 400 naming what is missing)."""
    from xsearch.lucene import ANALYZER_LANGS

    if not any(c.get("kind") == "bm25" for c in manifest.get("components", {}).values()):
        return DocIn
    langs = tuple(sorted(set(ANALYZER_LANGS) | set(manifest.get("languages") or {})))
    return create_model("DocIn", __base__=DocIn, __doc__=DocIn.__doc__,
                        lang=(Literal[langs], Field(description="ISO 639 language code of title and text: one this "
                                                                "index has an analyzer for")))


def create_app(settings: Optional[ServerSettings] = None, *, live: Optional[LiveIndex] = None) -> FastAPI:
    """The FastAPI app serving `settings.index` (settings default to the XSEARCH_* environment)."""
    settings = settings or ServerSettings.from_env()
    live = live or LiveIndex(settings.index, warm=settings.warm, ray=settings.ray)
    first = live.index
    route_enum = Enum("RouteName", {r: r for r in first.routes}, type=str)  # type: ignore[misc]
    default_k = min(SEARCH.k, settings.max_k)
    max_offset = SEARCH.max_k - settings.max_k  # so that offset + k never passes the library's max_k
    # the batch model with this server's batch size, and the languages this index can take, in its schema
    doc_model = _doc_model(first.manifest)
    batch_model = create_model("DocBatch", __base__=DocBatch, __doc__=DocBatch.__doc__,
                               docs=(list[doc_model], Field(default_factory=list, max_length=settings.max_batch_docs,
                                                        description="documents to add, or replace when the id "
                                                                    f"exists (at most {settings.max_batch_docs})")))

    app = FastAPI(title="xsearch", version=xsearch.__version__, docs_url="/api/docs", redoc_url=None,
                  description="Cross-lingual search over one xsearch index: search by any of its routes, read "
                              "documents with their translations, and add, replace or delete documents live.")
    app.state.live = live
    app.state.settings = settings
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    secret = settings.api_key.get_secret_value() if settings.api_key is not None else None
    app.add_middleware(KeyBeforeBody, api_key=secret, read_auth=settings.read_auth)  # outermost: runs first
    api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="the server's API key (XSEARCH_API_KEY)")

    def check_key(key: Optional[str]) -> None:
        # KeyBeforeBody already refused these before the body was read; kept so the schema and a direct call agree
        refused = refusal(secret, key)
        if refused is not None:
            raise HTTPException(*refused, headers={"WWW-Authenticate": "X-API-Key"} if refused[0] == 401 else None)

    def write_auth(key: Annotated[Optional[str], Security(api_key)] = None) -> None:
        check_key(key)

    def read_auth(key: Annotated[Optional[str], Security(api_key)] = None) -> None:
        check_key(key)

    reads = [Depends(read_auth)] if settings.read_auth else []
    read_errors = (401, 403) if settings.read_auth else ()

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"type": e.get("type", ""), "loc": [_safe(x) for x in e.get("loc", ())], "msg": _message(e),
                   **({"input": _safe(e["input"])} if "input" in e else {})} for e in exc.errors()]
        return JSONResponse({"detail": errors}, status_code=422)

    @app.exception_handler(XsearchError)
    async def _library_error(request: Request, exc: XsearchError) -> JSONResponse:
        status, message, headers = answer(exc, request, live.path)
        if status >= 500:
            log.warning("%s -> %d: %s", request.url.path, status, exc)
        return JSONResponse({"detail": message}, status_code=status, headers=headers)

    # ---- pages ------------------------------------------------------------------------------------------------
    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers=PAGE_HEADERS)

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    # ---- reads ------------------------------------------------------------------------------------------------
    @app.get("/health", response_model=Health, tags=["service"])
    def health() -> Health:
        with live.reading() as index:   # refreshes: another worker's or process's commit shows here too
            ref = _index_ref(index)
        return Health(status="ok", index=ref.name, doc_count=ref.doc_count, generation=ref.generation,
                      worker=os.getpid())

    @app.get("/indexes", response_model=IndexList, dependencies=reads, responses=_errors(*read_errors),
             tags=["service"])
    def indexes() -> IndexList:
        with live.reading() as index:
            return _index_list(index)

    def _index_list(index: IndexView) -> IndexList:
        m = index.manifest
        routes = [RouteInfo(name=name, about=spec.get("about", ""), fused=bool(spec.get("fuse")),
                            query_translation=bool(spec.get("query_translation")))
                  for name, spec in m["routes"].items()]
        ref = _index_ref(index)
        return IndexList(indexes=[IndexInfo(
            name=ref.name, doc_count=ref.doc_count, generation=ref.generation, languages=m.get("languages", {}),
            routes=routes, default_route=index.default_route, translation=m.get("translation"),
            max_k=settings.max_k, default_k=default_k, max_query_chars=settings.max_query_chars,
            manifest=_public_manifest(m))])

    @app.get("/search", response_model=SearchResponse, dependencies=reads,
             responses=_errors(400, *read_errors, 503), tags=["search"])
    async def search(
        request: Request,
        q: Annotated[str, Query(min_length=1, max_length=settings.max_query_chars, pattern=r"\S",
                                description=f"the query (at most {settings.max_query_chars} characters)")],
        route: Annotated[Optional[route_enum], Query(description="retrieval route (default: the index's)")] = None,
        k: Annotated[int, Query(ge=1, le=settings.max_k, description="results per page")] = default_k,
        offset: Annotated[int, Query(ge=0, le=max_offset,
                                     description=f"results to skip (paging; offset + k <= {SEARCH.max_k})")] = 0,
        lang: Annotated[str, Query(pattern=r"^[a-z]{2,3}$", description="query language")] = SEARCH.query_lang,
        year: Annotated[Optional[int], Query(ge=0, le=9999, description="only documents of this year")] = None,
        venue: Annotated[Optional[str], Query(min_length=1, max_length=100,
                                              description="only documents of this venue")] = None,
        field: Annotated[Optional[list[FieldFilter]], Query(max_length=MAX_FIELD_FILTERS,
                                                            description="other stored-field filters, name:value "
                                                                        "(repeat for several)")] = None,
        facets: Annotated[bool, Query(description="count the index's facet fields (year, venue...) over the "
                                                  f"top {settings.filter_depth} candidates")] = True,
    ) -> SearchResponse:
        unknown = sorted(set(request.query_params) - SEARCH_PARAMS)
        if unknown:
            raise HTTPException(400, f"unknown query parameter(s) {', '.join(unknown)}; "
                                     f"known: {', '.join(sorted(SEARCH_PARAMS))}")
        twice = sorted(n for n, c in Counter(k for k, _ in request.query_params.multi_items()).items()
                       if c > 1 and n != "field")
        if twice:
            raise HTTPException(400, f"query parameter(s) {', '.join(twice)} given more than once (only field= "
                                     "repeats)")
        text = q.strip()
        if not text:
            raise HTTPException(400, "the query is empty")
        if offset + k > SEARCH.max_k:
            raise HTTPException(400, f"offset + k must be at most {SEARCH.max_k} (got {offset} + {k})")
        filters = _parse_filters(year, venue, field or [])
        t0 = time.perf_counter()
        try:   # the search runs in the thread pool (its size bounds concurrent searches); the client waits at most
            return await asyncio.wait_for(run_in_threadpool(  # the budget (a search past it finishes unseen)
                _search, text, route, k, offset, lang, filters, facets, t0), settings.search_budget_s)
        except asyncio.TimeoutError:
            raise HTTPException(503, f"search {_safe(text)!r} took longer than the server's time budget of "
                                     f"{settings.search_budget_s:g} s; try again, or a cheaper route",
                                headers={"Retry-After": "1"}) from None

    def _search(text: str, route: Any, k: int, offset: int, lang: str, filters: dict, facets: bool,
                t0: float) -> SearchResponse:
        with live.reading() as index:
            route_name = route.value if route is not None else index.default_route
            found = index.page(text, route=route_name, k=k, lang=lang, offset=offset, filters=filters,
                               facets=facets, filter_depth=settings.filter_depth)
            page, has_more = found.hits, found.more
            ref = _index_ref(index)
            tr_lang = ref.translation_lang
            trs = index.docstore.translations([h.doc_id for h in page], tr_lang) if tr_lang else {}
            terms_translated = _translated_query_terms(index, route_name, text, lang)
        terms = query_terms(text)
        hits = [_hit(h, offset + i + 1, trs.get(h.doc_id), tr_lang, terms, terms + terms_translated)
                for i, h in enumerate(page)]
        return SearchResponse(
            query=text, route=route_name, lang=lang, k=k, offset=offset, filters=filters,
            candidates=found.candidates, matched=found.matched, facets=found.facets,
            hits=hits, has_more=has_more, prev_offset=max(0, offset - k) if offset > 0 else None,
            next_offset=offset + k if has_more and offset + 2 * k <= SEARCH.max_k else None,
            took_ms=round((time.perf_counter() - t0) * 1000, 2), index=ref)

    @app.get("/docs/{doc_id:path}", response_model=DocOut, dependencies=reads,
             responses=_errors(404, *read_errors), tags=["documents"])
    def get_doc(doc_id: str) -> DocOut:
        with live.reading() as index:
            doc = index.docstore.get(doc_id)
            tr_lang = _index_ref(index).translation_lang
            tr = index.docstore.translation(doc_id, tr_lang) if (doc is not None and tr_lang) else None
        if doc is None:
            raise HTTPException(404, f"unknown document id {doc_id!r}")
        return DocOut(id=doc.doc_id, lang=doc.lang, title=doc.title, text=doc.text, fields=dict(doc.fields),
                      translation=_translation(tr, tr_lang, []))

    # ---- writes -----------------------------------------------------------------------------------------------
    @app.post("/docs", response_model=BatchResult, dependencies=[Depends(write_auth)],
              responses=_errors(400, 401, 403, 404, 409, 413, 503), tags=["documents"])
    def post_docs(batch: batch_model) -> BatchResult:  # type: ignore[valid-type]
        """Add or replace documents (and delete ids), all in one atomic batch."""
        ids = [d.id for d in batch.docs]
        twice = sorted(i for i, n in Counter(ids).items() if n > 1)
        if twice:
            raise HTTPException(409, f"document id{'s' if len(twice) > 1 else ''} {', '.join(map(repr, twice))} "
                                     "appear(s) more than once in the batch")
        both = sorted(set(ids).intersection(batch.delete))
        if both:
            raise HTTPException(409, f"ids both added and deleted in one batch: {', '.join(map(repr, both))}")
        docs = [Doc(d.id, d.lang, d.title, d.text, d.fields) for d in batch.docs]
        return _apply(docs, batch.delete)

    @app.delete("/docs/{doc_id:path}", response_model=BatchResult, dependencies=[Depends(write_auth)],
                responses=_errors(400, 401, 403, 404, 503), tags=["documents"])
    def delete_doc(doc_id: str) -> BatchResult:
        with live.reading() as index:
            exists = index.docstore.get(doc_id) is not None
        if not exists:
            raise HTTPException(404, f"unknown document id {doc_id!r}")
        return _apply([], [doc_id])

    def _apply(docs: list[Doc], deletes: list[str]) -> BatchResult:
        t0 = time.perf_counter()
        count = live.apply(docs, deletes)
        return BatchResult(doc_count=count, generation=_index_ref(live.index).generation,
                           upserted=[d.doc_id for d in docs], deleted=list(deletes),
                           took_ms=round((time.perf_counter() - t0) * 1000, 2))

    return app
