"""`xsearch verify`: every component's id set and count against the doc store's, at the newest generation."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..components import get_kind, holds, parse_spec


@dataclass
class ComponentCheck:
    name: str
    kind: str
    expected: int
    found: int
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.missing and not self.extra and self.expected == self.found


@dataclass
class VerifyReport:
    path: Path
    generation: int
    doc_count: int
    checks: list[ComponentCheck]
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems and all(c.ok for c in self.checks)


def verify(path: str | Path) -> VerifyReport:
    from ..index import Index

    index = Index(path, auto_refresh=False)
    try:
        gen = index._current  # noqa: SLF001 - verify inspects the generation it pinned
        m = gen.manifest_model
        docs = list(gen.docstore)
        ids = {d.doc_id for d in docs}
        problems = []
        if len(ids) != m.doc_count:
            problems.append(f"the doc store holds {len(ids)} documents, the manifest says {m.doc_count}")
        langs: dict[str, int] = {}
        for d in docs:
            langs[d.lang] = langs.get(d.lang, 0) + 1
        if langs != m.languages:
            problems.append(f"languages in the doc store {langs} != manifest {m.languages}")
        checks = []
        for name, entry in m.components.items():
            kind = get_kind(entry.kind)
            if kind.ids is None:
                continue
            spec = parse_spec(entry.spec)
            want = {d.doc_id for d in docs if holds(spec, d)}
            got = kind.ids(gen._ctx, name, entry)  # noqa: SLF001
            checks.append(ComponentCheck(name, entry.kind, len(want), len(got), sorted(want - got)[:20],
                                         sorted(got - want)[:20]))
            if entry.docs != len(got):
                problems.append(f"{name}: the manifest counts {entry.docs} documents, the component holds {len(got)}")
        return VerifyReport(Path(path), m.generation, m.doc_count, checks, problems)
    finally:
        index.close()


def verify_all(path: str | Path) -> list[VerifyReport]:
    """`verify` of an index, or of every shard of a sharded one (each document must also sit in the shard its id
    hashes to)."""
    from ..index import Index
    from ..shard.layout import is_sharded, read_sharded, shard_of

    if not is_sharded(path):
        return [verify(path)]
    top = read_sharded(path)
    reports = []
    for i, name in enumerate(top.shards):
        report = verify(Path(path) / name)
        index = Index(report.path, auto_refresh=False)
        try:
            misplaced = sorted(d for d in index.docstore.ids() if shard_of(d, top.count) != i)
        finally:
            index.close()
        if misplaced:
            report.problems.append(f"{len(misplaced)} documents belong to another shard: {misplaced[:10]}")
        reports.append(report)
    return reports
