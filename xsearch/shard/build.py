"""The sharded build: split the corpus by `shard_of`, build each shard with the ordinary writer, publish whole.

Every shard runs the same stage function, `build_shard` (translate -> generate xQG queries -> encode -> write,
i.e. one IndexWriter commit), in this process or on Ray workers (ray_build.py). The shards are written into a
temporary sibling folder; `sharded.json` is written last and the folder then takes OUT's place in one rename, so a
failed or killed build leaves no half-written OUT, and a previous OUT stays as it was until the new one is whole.
"""
from __future__ import annotations

import os
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from ..config import IndexConfig
from ..errors import InputError
from ..records import Doc
from ..storage.files import fsync_dir, remove, tree_bytes
from ..storage.lock import writer_lock
from .layout import ShardedManifest, is_sharded, shard_name, shard_of, write_sharded

Log = Callable[[str], None]


def split_docs(docs: Sequence[Doc], count: int) -> list[list[Doc]]:
    """The documents of each shard, in corpus order; refuses a shard count that leaves a shard empty."""
    if not isinstance(count, int) or count < 1:
        raise InputError(f"the number of shards must be a positive integer, got {count!r}")
    parts: list[list[Doc]] = [[] for _ in range(count)]
    for d in docs:
        parts[shard_of(d.doc_id, count)].append(d)
    empty = [i for i, p in enumerate(parts) if not p]
    if empty:
        raise InputError(f"{count} shards for {len(docs)} documents leaves shard {empty[0]} empty: use fewer shards")
    return parts


def build_shard(config: IndexConfig, root: str | Path, i: int, count: int, docs: Sequence[Doc], *,
                models: Any = None, show_progress: bool = False, log: Log = lambda _m: None) -> dict[str, Any]:
    """Build shard i of `count` from its documents into root/shard-<i>; returns what the build report keeps."""
    from ..build import build_index
    from ..storage.manifest import read_manifest

    t = time.perf_counter()
    folder = Path(root) / shard_name(i)
    build_index(config, folder, docs, show_progress=show_progress, log=log, shard=(i, count), models=models)
    manifest = read_manifest(folder)
    return {"shard": i, "docs": manifest.doc_count, "seconds": round(time.perf_counter() - t, 3),
            "default_route": manifest.default_route, "pid": os.getpid()}


def build_sharded(config: IndexConfig, out: str | Path, docs: Iterable[Doc] | None = None, *, shards: int,
                  ray: str | None = None, workers: int | None = None, show_progress: bool = True,
                  log: Log = print, models: Any = None, retries: int = 2) -> Path:
    """Build `config`'s corpus (or `docs`) into `shards` shard indexes under `out`, in this process, or on Ray when
    `ray` is "local", "auto" or a cluster address (`workers` actors, each loading its models once; a killed
    worker is restarted and its shard rebuilt up to `retries` times, then the build fails cleanly)."""
    from ..build import read_docs

    out = Path(out).resolve()
    t0 = time.perf_counter()
    docs = read_docs(config, docs, log)
    parts = split_docs(docs, shards)
    with writer_lock(out):
        if out.exists() and any(out.iterdir()) and not is_sharded(out):
            raise InputError(f"{out} exists and is not a sharded xsearch index: refusing to replace it "
                             "(remove it or choose another folder)")
        for stale in out.parent.glob(f".{out.name}.tmp-shards-*"):
            remove(stale)   # a killed earlier build (only the lock holder creates these)
        work = out.with_name(f".{out.name}.tmp-shards-{uuid.uuid4().hex[:12]}")
        work.mkdir(parents=True)
        try:
            if ray is None:
                from ..components import Models

                models = models or Models()
                stats = []
                for i, part in enumerate(parts):
                    log(f"shard {i + 1}/{shards}: {len(part)} documents")
                    stats.append(build_shard(config, work, i, shards, part, models=models,
                                             show_progress=show_progress, log=log))
                mode = {"mode": "in-process", "workers": 1}
            else:
                from .ray_build import build_on_ray

                stats, mode = build_on_ray(config, work, parts, address=ray, workers=workers, retries=retries,
                                           log=log)
            stats.sort(key=lambda s: s["shard"])
            created = datetime.now(timezone.utc).isoformat(timespec="seconds")
            seconds = round(time.perf_counter() - t0, 3)
            write_sharded(work, ShardedManifest(
                name=config.name, count=shards, shards=[shard_name(i) for i in range(shards)], created=created,
                build_id=uuid.uuid4().hex, default_route=stats[0]["default_route"],
                doc_counts=[s["docs"] for s in stats],
                build={**mode, "seconds": seconds, "shards": [{k: s[k] for k in ("docs", "seconds", "pid")}
                                                              for s in stats]}))
            fsync_dir(work)
            _publish(work, out)
        except BaseException:
            remove(work)
            raise
    log(f"sharded index written to {out}: {shards} shards, {len(docs)} documents, "
        f"{tree_bytes(out) / 1e6:.1f} MB in {time.perf_counter() - t0:.1f}s")
    return out


def _publish(work: Path, out: Path) -> None:
    """Swap the finished folder in; an earlier build is moved aside and removed (its open readers keep their
    files until they reopen: ShardedIndex notices the new build_id on its next search)."""
    from ..atomic import exchange

    remove(exchange(work, out))   # the old build's folder (nothing when OUT did not exist)
