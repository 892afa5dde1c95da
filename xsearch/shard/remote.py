"""Shards held by Ray actors: a cluster serves an index larger than one machine's memory.

`open_index(path, ray="auto")` gives a ShardedIndex whose shards are `RemoteShard`s: each is a Ray actor that opens
one shard folder (on a file system its node reaches) and answers searches and doc-store lookups for it. The route
tree, the merge and the fusions stay in the caller's process, exactly as for local shards; only the leaf searches
and the document fetches cross the network. Each call to an actor reads that shard's newest generation (a write by
any process is seen on the next call); one request's calls to different shards are not pinned together.
"""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

from ..records import Doc, Query, Run


class ShardActor:
    """Runs in a Ray worker: one shard, opened once (its models loaded once), searched on demand."""

    def __init__(self, path: str):
        from ..index import Index

        self.index = Index(path)

    def manifest(self) -> dict[str, Any]:
        self.index.refresh()
        return self.index.manifest

    def search(self, route: str, queries: list[Query], k: int) -> dict[str, dict[str, float]]:
        with self.index.reading() as view:
            return dict(view.retriever(route).search(queries, k))

    def get_many(self, doc_ids: list[str]) -> dict[str, Doc]:
        return self.index.docstore.get_many(doc_ids)

    def fields_many(self, doc_ids: list[str], names: list[str] | None) -> dict[str, dict]:
        return self.index.docstore.fields_many(doc_ids, names)

    def languages_of(self, doc_ids: list[str]) -> dict[str, str]:
        return self.index.docstore.languages_of(doc_ids)

    def translations(self, doc_ids: list[str], lang: str) -> dict[str, tuple[str, str]]:
        return self.index.docstore.translations(doc_ids, lang)

    def ids(self) -> set[str]:
        return self.index.docstore.ids()

    def generated_queries(self, doc_id: str, component: str | None) -> list[str] | None:
        return self.index.generated_queries(doc_id, component)

    def generation(self) -> int:
        self.index.refresh()
        return self.index.generation


class _RemoteRetriever:
    def __init__(self, actor: Any, route: str):
        self.actor, self.name = actor, route

    def search(self, queries: Sequence[Query], k: int = 10) -> Run:
        import ray

        return Run(ray.get(self.actor.search.remote(self.name, list(queries), k)))


class _RemoteDocStore:
    def __init__(self, actor: Any):
        self.actor = actor

    def _get(self, method: str, *args: Any) -> Any:
        import ray

        return ray.get(getattr(self.actor, method).remote(*args))

    def get(self, doc_id: str) -> Doc | None:
        return self._get("get_many", [doc_id]).get(doc_id)

    def get_many(self, doc_ids: Sequence[str]) -> dict[str, Doc]:
        return self._get("get_many", list(doc_ids))

    def fields_many(self, doc_ids: Sequence[str], names: Sequence[str] | None = None) -> dict[str, dict]:
        return self._get("fields_many", list(doc_ids), None if names is None else list(names))

    def languages_of(self, doc_ids: Sequence[str]) -> dict[str, str]:
        return self._get("languages_of", list(doc_ids))

    def translation(self, doc_id: str, lang: str) -> tuple[str, str] | None:
        return self._get("translations", [doc_id], lang).get(doc_id)

    def translations(self, doc_ids: Sequence[str], lang: str) -> dict[str, tuple[str, str]]:
        return self._get("translations", list(doc_ids), lang)

    def ids(self) -> set[str]:
        return self._get("ids")

    def __iter__(self) -> Iterator[Doc]:
        ids = sorted(self.ids())
        for i in range(0, len(ids), 1000):
            yield from self.get_many(ids[i:i + 1000]).values()

    def __len__(self) -> int:
        return len(self.ids())


class RemoteShard:
    """A shard behind a Ray actor, with what ShardedIndex needs of a local Index (and of an IndexView)."""

    def __init__(self, actor: Any, name: str):
        self.actor, self.name = actor, name
        self.docstore = _RemoteDocStore(actor)

    @property
    def manifest(self) -> dict[str, Any]:
        import ray

        return ray.get(self.actor.manifest.remote())

    @property
    def routes(self) -> list[str]:
        return list(self.manifest["routes"])

    @property
    def generation(self) -> int:
        import ray

        return ray.get(self.actor.generation.remote())

    @property
    def doc_count(self) -> int:
        return self.manifest["doc_count"]

    def retriever(self, route: str) -> _RemoteRetriever:
        return _RemoteRetriever(self.actor, route)

    def generated_queries(self, doc_id: str, component: str | None = None) -> list[str] | None:
        import ray

        return ray.get(self.actor.generated_queries.remote(doc_id, component))

    def refresh(self) -> bool:
        return False   # each actor call reads its shard's newest generation

    @contextmanager
    def reading(self) -> Iterator["_RemoteView"]:
        yield _RemoteView(self, self.manifest)

    def close(self) -> None:
        import ray

        ray.kill(self.actor)


class _RemoteView:
    """One request's view of a remote shard: its manifest fetched once."""

    def __init__(self, shard: RemoteShard, manifest: dict[str, Any]):
        self.shard, self.manifest = shard, manifest
        self.routes = list(manifest["routes"])
        self.docstore = shard.docstore
        self.retriever = shard.retriever
        self.generated_queries = shard.generated_queries


def open_remote_shards(path: Path, names: Sequence[str], address: str) -> list[RemoteShard]:
    """One actor per shard, started on the Ray cluster at `address` ("local" starts one here)."""
    from .ray_build import WORKER_ENV, import_ray

    ray = import_ray()
    if not ray.is_initialized():
        if address == "local":
            ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False)
        else:
            ray.init(address=address, log_to_driver=False, configure_logging=False)
    cls = ray.remote(num_cpus=0, runtime_env=WORKER_ENV)(ShardActor)   # searches are light and bursty: do not reserve a CPU per shard
    return [RemoteShard(cls.remote(str(path / name)), name) for name in names]
