"""Test collections (docs + queries + qrels) in one shape, whatever file layout they come from.

`taln_collection` rebuilds a CLIRudit-style set from the TALN archive (see ../shared/data/README.md); `clirudit_parquet`
reads CLIRudit's own parquet layout; `trec_collection` reads a JSONL corpus with TREC-style topics and qrels.
"""
from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Mapping, Sequence

from ..errors import InputError
from ..records import Doc, Query

if TYPE_CHECKING:
    import pandas as pd

    from ..protocols import Translator

Qrels = dict[str, dict[str, int]]


@dataclass
class Collection:
    """Everything one benchmark needs; qrels map query id -> doc id -> graded relevance (0 = judged not relevant)."""

    name: str
    docs: list[Doc]
    queries: list[Query]
    qrels: Qrels

    def stats(self) -> dict[str, float]:
        """Counts worth printing beside any score (they catch a wrongly built collection early)."""
        rel = [sum(1 for r in d.values() if r > 0) for d in self.qrels.values()]
        return {"docs": len(self.docs), "queries": len(self.queries), "judgements": sum(rel),
                "mean_rel_per_query": sum(rel) / len(rel) if rel else 0.0, "max_rel_per_query": max(rel, default=0)}


# ---------------------------------------------------------------------------------------------------- TALN / CLIRudit
def triple_query_id(keywords: Sequence[str]) -> str:
    """Stable id from the sorted keywords, so ids survive re-ordering of articles or files."""
    return "kw-" + hashlib.sha1("\x1f".join(sorted(keywords)).encode("utf-8")).hexdigest()[:12]


def keyword_queries(keywords_by_doc: Mapping[str, Iterable[str]], size: int = 3, sep: str = " ",
                    lang: str = "en") -> tuple[list[Query], Qrels]:
    """CLIRudit's rule: every `size`-combination of a doc's deduplicated keywords is a query, deduplicated across docs.

    A doc is relevant (1) to a query when its keyword set contains all the query's keywords; that is exactly the
    set of docs that generated the combination, so the qrels are collected while generating. Query text is the
    keywords in sorted order joined by `sep` (CLIRudit's own card writes "A, B, C"; pass sep=", " to match it).
    """
    qrels: Qrels = {}
    texts: dict[str, str] = {}
    owner: dict[str, tuple[str, ...]] = {}
    for doc_id, kws in keywords_by_doc.items():
        for combo in itertools.combinations(sorted(set(kws)), size):
            qid = triple_query_id(combo)
            if owner.setdefault(qid, combo) != combo:
                raise InputError(f"query id collision between {owner[qid]} and {combo}")
            texts[qid] = sep.join(combo)
            qrels.setdefault(qid, {})[doc_id] = 1
    queries = [Query(qid, text, lang) for qid, text in texts.items()]
    return queries, qrels


def taln_collection(data_dir: str | Path | None = None, sep: str = " ") -> Collection:
    """French title + abstract of TALN articles (non-empty `resume`), English 3-keyword queries, binary qrels.

    Expected from the shared copy: 1,386 docs, 10,161 queries, 10,241 judgements (at most 3 relevant per query).
    """
    from ..corpus.taln import read_taln
    from ..paths import default_data_dir

    root = Path(data_dir) if data_dir is not None else default_data_dir()
    folder = root / "taln-archives" if (root / "taln-archives").is_dir() else root
    if not folder.exists():
        raise InputError("TALN folder not found (expected <data>/taln-archives/xml)", source=str(folder))
    docs = list(read_taln(folder / "xml" if (folder / "xml").is_dir() else folder))
    queries, qrels = keyword_queries({d.doc_id: d.fields.get("keywords_en", []) for d in docs}, sep=sep)
    return Collection("taln-clirudit", docs, queries, qrels)


def oracle_docs(collection: Collection, translator_fallback: "Translator | None" = None) -> list[Doc]:
    """The "human translation" condition: each doc replaced by its authors' English title + abstract.

    Gap rule (TALN: 1,269 of 1,386 have an English abstract):
    - English abstract and title -> both (fields["oracle_source"] = "human");
    - English abstract, no English title (727) -> the abstract alone ("human-abstract-only");
    - no English abstract (117) -> the French title + abstract machine-translated by `translator_fallback`
      ("mt:<name>"; an English title, when the authors wrote one, is kept), or, with no translator, the French
      text unchanged ("french", lang stays "fr"), so the doc can still be retrieved and counts are comparable.
    """
    out: list[Doc] = []
    gaps: list[int] = []
    for d in collection.docs:
        title_en, abstract_en = d.fields.get("title_en", ""), d.fields.get("abstract_en", "")
        if abstract_en:
            src = "human" if title_en else "human-abstract-only"
            out.append(replace(d, lang="en", title=title_en, text=abstract_en, fields={**d.fields, "oracle_source": src}))
        else:
            gaps.append(len(out))
            out.append(replace(d, fields={**d.fields, "oracle_source": "french"}))
    if translator_fallback is not None and gaps:
        docs = [out[i] for i in gaps]
        translated = translator_fallback.translate([d.title for d in docs] + [d.text for d in docs], src="fr", tgt="en")
        if len(translated) != 2 * len(docs):
            raise InputError(f"translator {translator_fallback.name!r} returned {len(translated)} texts "
                             f"for {2 * len(docs)} inputs")
        for j, i in enumerate(gaps):
            d = out[i]
            title = d.fields.get("title_en") or translated[j]
            out[i] = replace(d, lang="en", title=title, text=translated[len(docs) + j],
                             fields={**d.fields, "oracle_source": f"mt:{translator_fallback.name}"})
    return out


# ---------------------------------------------------------------------------------------------------- CLIRudit parquet
def _pick(df: "pd.DataFrame", aliases: Sequence[str], what: str, source: Path) -> str:
    for a in aliases:
        if a in df.columns:
            return a
    raise InputError(f"no {what} column: expected one of {list(aliases)}, found {list(df.columns)}", source=str(source))


def _read_parquet(folder: Path, config: str, split: str) -> tuple["pd.DataFrame", Path]:
    from ..lazy import require

    pd = require("pandas")
    files = sorted((folder / config).glob(f"{split}-*.parquet")) + sorted((folder / config).glob(f"{split}.parquet"))
    files += sorted((folder / config / split).glob("*.parquet")) if (folder / config / split).is_dir() else []
    if not files:
        raise InputError(f"no parquet file for {config}/{split} (looked for {config}/{split}-*.parquet, "
                         f"{config}/{split}.parquet, {config}/{split}/*.parquet)", source=str(folder))
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True), files[0]


def clirudit_parquet(folder: str | Path, doc_lang: str = "fr", query_lang: str = "en", split: str = "test") -> Collection:
    """CLIRudit's hub layout: docs/{fr,en}.test-*.parquet, queries/en.test-*, qrels/en_fr.test-*.

    Columns follow its card (docs: docid,title,subtitle,abstract; queries: qid,query; qrels: qid,docid,rel), with
    BEIR-style aliases (_id/id, text, query-id/corpus-id/score) accepted; a missing column is named in the error.
    """
    folder = Path(folder)
    ddf, dsrc = _read_parquet(folder, "docs", f"{doc_lang}.{split}")
    qdf, qsrc = _read_parquet(folder, "queries", f"{query_lang}.{split}")
    rdf, rsrc = _read_parquet(folder, "qrels", f"{query_lang}_{doc_lang}.{split}")
    did = _pick(ddf, ["docid", "doc_id", "_id", "id", "corpus-id"], "document id", dsrc)
    dtext = _pick(ddf, ["abstract", "text", "contents"], "document text", dsrc)
    docs = []
    for row in ddf.to_dict("records"):
        title = " : ".join(str(row[c]) for c in ("title", "subtitle") if c in row and row[c])
        docs.append(Doc(str(row[did]), doc_lang, title, str(row[dtext] or "")))
    qid = _pick(qdf, ["qid", "query_id", "query-id", "_id", "id"], "query id", qsrc)
    qtext = _pick(qdf, ["query", "text"], "query text", qsrc)
    queries = [Query(str(q), str(t), query_lang) for q, t in zip(qdf[qid], qdf[qtext])]
    rq = _pick(rdf, ["qid", "query_id", "query-id"], "qrels query id", rsrc)
    rd = _pick(rdf, ["docid", "doc_id", "corpus-id"], "qrels doc id", rsrc)
    rr = _pick(rdf, ["rel", "relevance", "score"], "qrels relevance", rsrc)
    qrels: Qrels = {}
    for q, d, r in zip(rdf[rq], rdf[rd], rdf[rr]):
        qrels.setdefault(str(q), {})[str(d)] = int(r)
    return Collection(f"clirudit-{query_lang}_{doc_lang}.{split}", docs, queries, qrels)


# ---------------------------------------------------------------------------------------------------- TREC
def read_topics(path: str | Path, lang: str = "en") -> list[Query]:
    """Topics as TSV (`qid<TAB>text`) or JSONL (`id`/`qid`/`query_id`/`_id` + `text`/`query`/`title`)."""
    path = Path(path)
    out: list[Query] = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            if path.suffix in (".jsonl", ".json"):
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise InputError(f"invalid JSON ({exc.msg})", source=str(path), line=n) from None
                qid = next((obj[k] for k in ("id", "qid", "query_id", "_id") if k in obj), None)
                text = next((obj[k] for k in ("text", "query", "title") if k in obj), None)
                if qid is None or text is None:
                    raise InputError("topic needs an id (id/qid/query_id/_id) and a text (text/query/title)",
                                     source=str(path), line=n)
                qlang = str(obj.get("lang") or lang)
            else:
                parts = line.rstrip("\n").split("\t", 1)
                if len(parts) != 2:
                    raise InputError("expected 'qid<TAB>text'", source=str(path), line=n)
                qid, text, qlang = parts[0], parts[1], lang
            out.append(Query(str(qid).strip(), str(text).strip(), qlang))
    return out


def read_qrels(path: str | Path) -> Qrels:
    """TREC qrels: `qid iter docid rel` per line (whitespace separated)."""
    path = Path(path)
    qrels: Qrels = {}
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 4:
                raise InputError(f"expected 4 columns 'qid 0 docid rel', got {len(parts)}", source=str(path), line=n)
            try:
                rel = int(parts[3])
            except ValueError:
                raise InputError(f"relevance {parts[3]!r} is not an integer", source=str(path), line=n) from None
            qrels.setdefault(parts[0], {})[parts[2]] = rel
    return qrels


def trec_collection(corpus_jsonl: str | Path, topics: str | Path, qrels: str | Path, name: str | None = None,
                    doc_lang: str | None = None, query_lang: str = "en") -> Collection:
    """A generic benchmark: JSONL corpus (xsearch's reader), TSV/JSONL topics, TREC qrels."""
    from ..corpus.jsonl import read_jsonl

    docs = list(read_jsonl(corpus_jsonl, default_lang=doc_lang))
    return Collection(name or Path(corpus_jsonl).stem, docs, read_topics(topics, query_lang), read_qrels(qrels))


__all__ = ["Collection", "Qrels", "keyword_queries", "triple_query_id", "taln_collection", "oracle_docs",
           "clirudit_parquet", "read_topics", "read_qrels", "trec_collection"]
