"""Live batches on a sharded index: each document goes to the shard its id hashes to, through that shard's writer.

The whole batch is checked first (documents valid, every deleted id present in its shard), so a bad batch
changes no shard. Each shard's part is then one commit of that shard (all or nothing per shard); shards commit one
after another under the sharded folder's writer lock. A crash between two shard commits leaves the earlier shards
at their new generation and the later ones at their old — each shard consistent, the batch half applied — and the
batch can simply be sent again (adds replace by id; a repeated delete of an id already gone is reported).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

from ..components import Models
from ..docstore import DocStore
from ..errors import UnknownDocumentError
from ..records import Doc
from ..storage.lock import writer_lock
from ..storage.manifest import read_manifest
from .layout import read_sharded, shard_of

Log = Callable[[str], None]


def apply_sharded(path: str | Path, docs: Sequence[Doc], deletes: Sequence[str], *, models: Models | None,
                  log: Log | None, lock_timeout_s: float | None) -> int:
    """One batch over the shards (docs and deletes already checked); returns the collection's document count."""
    from ..update import apply_batch

    path = Path(path).resolve()
    top = read_sharded(path)
    upserts: dict[int, list[Doc]] = {}
    dels: dict[int, list[str]] = {}
    for d in docs:
        upserts.setdefault(shard_of(d.doc_id, top.count), []).append(d)
    for d in deletes:
        dels.setdefault(shard_of(d, top.count), []).append(d)
    with writer_lock(path, lock_timeout_s):
        missing = [d for i, ids in dels.items() for d in ids if d not in _present(path / top.shards[i], ids)]
        if missing:
            raise UnknownDocumentError(missing)
        for i in sorted(set(upserts) | set(dels)):
            apply_batch(path / top.shards[i], upserts.get(i, ()), dels.get(i, ()), models=models, log=log,
                        lock_timeout_s=lock_timeout_s)
        return sum(read_manifest(path / name).doc_count for name in top.shards)


def _present(shard: Path, ids: Sequence[str]) -> set[str]:
    manifest = read_manifest(shard)
    store = DocStore(shard / manifest.docstore, manifest.generation)
    try:
        return set(store.languages_of(list(ids)))
    finally:
        store.close()


def compact_sharded(path: str | Path, *, models: Models | None, log: Log | None) -> int:
    """Compact every shard; returns the sum of the shards' generations (the collection's generation)."""
    from ..update import compact

    path = Path(path).resolve()
    top = read_sharded(path)
    with writer_lock(path):
        return sum(compact(path / name, models=models, log=log) for name in top.shards)


__all__ = ["apply_sharded", "compact_sharded"]
