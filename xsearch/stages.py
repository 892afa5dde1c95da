"""Pure batch stages of a write (no hidden state, so they can run per batch, per shard or on workers):
document checks, the new-language check, document translation, the query-encoder compatibility check."""
from __future__ import annotations

import json
import re
from typing import Any, Callable, Mapping, Sequence

from .errors import InputError, MissingBackendError, XsearchError
from .records import Doc

Log = Callable[[str], None]
_LANG = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$")


def as_doc(record: Doc | Mapping[str, Any]) -> Doc:
    """A checked Doc from a Doc or a mapping with id (or doc_id), lang, title, text and fields."""
    if isinstance(record, Doc):
        doc = record
    elif isinstance(record, Mapping):
        doc_id = record.get("id", record.get("doc_id"))
        doc = Doc(doc_id=doc_id, lang=record.get("lang"), title=record.get("title") or "",  # type: ignore[arg-type]
                  text=record.get("text") or "", fields=dict(record.get("fields") or {}))
    else:
        raise InputError(f"a document must be a Doc or a mapping, got {type(record).__name__}")
    if not isinstance(doc.doc_id, str) or not doc.doc_id.strip():
        raise InputError(f"document id must be a non-empty string, got {doc.doc_id!r}")
    if not isinstance(doc.lang, str) or not _LANG.match(doc.lang):
        raise InputError(f"document {doc.doc_id!r}: lang must be a language code like 'fr', got {doc.lang!r}")
    if not isinstance(doc.title, str) or not isinstance(doc.text, str):
        raise InputError(f"document {doc.doc_id!r}: title and text must be strings")
    if not doc.contents:
        raise InputError(f"document {doc.doc_id!r} has neither title nor text")
    for name, value in (("id", doc.doc_id), ("title", doc.title), ("text", doc.text)):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise InputError(f"document {doc.doc_id!r}: {name} is not valid Unicode text (lone surrogate)") from None
    try:
        json.dumps(dict(doc.fields), ensure_ascii=False).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise InputError(f"document {doc.doc_id!r}: fields must be JSON values ({exc})") from None
    return doc


def check_batch(docs: Sequence[Doc], deletes: Sequence[str]) -> None:
    seen: set[str] = set()
    for d in docs:
        if d.doc_id in seen:
            raise InputError(f"document id {d.doc_id!r} appears twice in the batch")
        seen.add(d.doc_id)
    for d in deletes:
        if not isinstance(d, str) or not d:
            raise InputError(f"ids to delete must be non-empty strings, got {d!r}")
        try:
            d.encode("utf-8")
        except UnicodeEncodeError:
            raise InputError(f"id to delete {d!r} is not valid Unicode text") from None
    both = seen.intersection(deletes)
    if both:
        raise InputError(f"ids both added and deleted in one batch: {sorted(both)}")


def can_translate(translator: Any, src: str, tgt: str) -> bool:
    """Whether `translator` has a route src->tgt: asked of its `route` (Apertium: no process), else by translating
    one word (other backends)."""
    inner = getattr(translator, "inner", translator)   # a CachedTranslator: ask the backend, cache nothing
    try:
        if hasattr(inner, "route"):
            inner.route(src, tgt)
        else:
            inner.translate(["test"], src, tgt)
    except (MissingBackendError, InputError):
        return False
    return True


def check_new_language(lang: str, doc_ids: Sequence[str], *, held: Sequence[str], bm25: bool,
                       dt_target: str | None, qt_sources: Sequence[str], translator: Callable[[], Any]) -> None:
    """A live update may bring a language the index does not hold yet only if every route can take it: BM25 needs
    a Lucene analyzer (else English rules would tokenise it), document translation a route `lang`->target, and
    query translation (bm25-qt: every query is translated into each BM25 component's language) a route from each
    of `qt_sources` into `lang`. Otherwise an InputError names what is missing and what the index holds, instead
    of a 503 or a component that breaks bm25-qt for everyone. `translator` is called only when a route is needed."""
    from .lucene import ANALYZER_LANGS

    missing: list[str] = []
    if bm25 and lang not in ANALYZER_LANGS:
        missing.append(f"a Lucene analyzer for {lang!r} (there are analyzers for {', '.join(sorted(ANALYZER_LANGS))})")
    pairs = ([(lang, dt_target, "document translation")] if dt_target and dt_target != lang else []) + \
        [(src, lang, "query translation (bm25-qt)") for src in qt_sources if src != lang]
    if pairs and not missing:
        try:
            tr = translator()
        except XsearchError:
            tr = None   # no translator on this machine at all: routes already fail for every language alike
        if tr is not None:
            missing += [f"a {what} route {src}->{tgt}" for src, tgt, what in pairs if not can_translate(tr, src, tgt)]
    if missing:
        shown = ", ".join(repr(d) for d in list(doc_ids)[:5]) + (" ..." if len(doc_ids) > 5 else "")
        raise InputError(f"document{'s' if len(doc_ids) > 1 else ''} {shown} in {lang!r}: this index holds "
                         f"{', '.join(held) or 'no language yet'} and lacks {'; and '.join(missing)}; add "
                         f"documents in one of its languages, or rebuild with a recipe for {lang!r}")


def translate_docs(docs: Sequence[Doc], spec: str, target_lang: str, show_progress: bool,
                   log: Log) -> dict[str, tuple[str, str]]:
    """Document translation (DT) of title and text through the cached translator (one call per source language:
    the cache batches, commits after each batch and shows progress); docs already in the target language are kept
    as they are."""
    from .paths import cache_dir
    from .translate import make_translator

    out = {d.doc_id: (d.title, d.text) for d in docs if d.lang == target_lang}
    by_lang: dict[str, list[Doc]] = {}
    for d in docs:
        if d.lang != target_lang:
            by_lang.setdefault(d.lang, []).append(d)
    if not by_lang:
        return out
    translator = make_translator(spec, cache_path=cache_dir() / "translations.sqlite", show_progress=show_progress)
    for lang, group in by_lang.items():
        result = translator.translate([x for d in group for x in (d.title, d.text)], lang, target_lang)
        for i, d in enumerate(group):
            out[d.doc_id] = (result[2 * i], result[2 * i + 1])
        stats = getattr(translator, "last_stats", None)
        log(f"translated {len(group)} {lang}->{target_lang} documents: {stats}" if stats else
            f"translated {len(group)} {lang}->{target_lang} documents")
    return out


def check_query_encoder(passage_spec: str, query_spec: str | None, encoder_for: Callable[[str], Any]) -> str:
    """The query encoder must embed into the passage encoder's space: same model family, or refuse."""
    if not query_spec or query_spec == passage_spec:
        return passage_spec
    passage, query = encoder_for(passage_spec), encoder_for(query_spec)
    pf, qf = getattr(passage, "family", passage.name), getattr(query, "family", query.name)
    if pf != qf:
        raise InputError(f"query encoder {query_spec!r} ({qf}) does not embed into the space of passage encoder "
                         f"{passage_spec!r} ({pf})")
    return query_spec
