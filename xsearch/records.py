"""The record model: one Doc, Query and Run shape for every backend, string ids and a language on each record."""
from __future__ import annotations

import gzip
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

from .errors import InputError


@dataclass(frozen=True)
class Doc:
    """A document as every stage sees it. `fields` holds anything else (year, venue, English metadata...)."""

    doc_id: str
    lang: str
    title: str = ""
    text: str = ""
    fields: Mapping[str, Any] = field(default_factory=dict)

    @property
    def contents(self) -> str:
        """Title and text joined: what gets indexed and encoded by default."""
        return f"{self.title}\n{self.text}".strip()


@dataclass(frozen=True)
class Query:
    query_id: str
    text: str
    lang: str = "en"


@dataclass(frozen=True)
class Hit:
    """One ranked result, with the stored document for display and the per-route scores of a fused run."""

    doc_id: str
    score: float
    rank: int
    doc: Doc | None = None
    route_scores: Mapping[str, float] = field(default_factory=dict)


class Run(dict[str, dict[str, float]]):
    """query id -> doc id -> score (ranx's Run), the one result type every retriever returns."""

    def ranked(self, query_id: str, k: int | None = None) -> list[tuple[str, float]]:
        """Docs of one query by descending score; ties broken by doc id so the order is deterministic."""
        items = sorted(self.get(query_id, {}).items(), key=lambda kv: (-kv[1], kv[0]))
        return items if k is None else items[:k]

    def cut(self, k: int) -> "Run":
        return Run({q: dict(self.ranked(q, k)) for q in self})

    def write_trec(self, path: str | Path, tag: str = "xsearch") -> None:
        """Write the run in TREC format (`qid Q0 docid rank score tag`); `.gz` paths are gzipped."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".part")
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(tmp, "wt", encoding="utf-8") as out:
            for qid in sorted(self):
                for rank, (did, score) in enumerate(self.ranked(qid), start=1):
                    out.write(f"{qid} Q0 {did} {rank} {score:.6f} {tag}\n")
        tmp.replace(path)

    @classmethod
    def read_trec(cls, path: str | Path) -> "Run":
        path = Path(path)
        opener = gzip.open if path.suffix == ".gz" else open
        run = cls()
        with opener(path, "rt", encoding="utf-8") as f:
            for n, line in enumerate(f, start=1):
                parts = line.split()
                if not parts:
                    continue
                if len(parts) != 6:
                    raise InputError(f"expected 6 columns 'qid Q0 docid rank score tag', got {len(parts)}",
                                     source=str(path), line=n)
                try:
                    score = float(parts[4])
                except ValueError:
                    raise InputError(f"score {parts[4]!r} is not a number", source=str(path), line=n) from None
                run.setdefault(parts[0], {})[parts[2]] = score
        return run


def as_queries(queries: "str | Query | Iterable[str | Query] | Mapping[str, str]", lang: str = "en") -> list[Query]:
    """Accept one string, a Query, a list of either, or {id: text}; number bare strings q0, q1, ..."""
    if isinstance(queries, (str, Query)):
        queries = [queries]
    if isinstance(queries, Mapping):
        queries = [Query(str(qid), text, lang) for qid, text in queries.items()]
    out: list[Query] = []
    for i, q in enumerate(queries):
        out.append(q if isinstance(q, Query) else Query(f"q{i}", str(q), lang))
    for q in out:
        if not q.text or not q.text.strip():
            raise InputError(f"query {q.query_id!r} is empty")
    return out


def iter_batches(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


__all__ = ["Doc", "Query", "Hit", "Run", "as_queries", "iter_batches"]
