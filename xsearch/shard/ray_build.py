"""The sharded build on Ray: a Ray Data pipeline whose one stage is an actor pool of shard builders.

Why shards, not documents, are the unit of work: every stage of a shard (translate -> generate -> encode -> write)
runs inside one IndexWriter commit, so a shard is all or nothing and a retried shard simply rebuilds; each actor
loads its models (translator, encoders, SPLADE) once and keeps them for every shard it builds, and asks for a GPU
where the cluster has one per worker. The shard folders are written under the build's temporary folder, which every
worker must reach (one machine, or a shared file system on a cluster); the documents travel through Ray's object
store. A worker that dies is restarted by Ray and its shard retried up to `retries` times; past that, the build
raises and build_sharded removes the temporary folder.
"""
from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any, Callable, Sequence

from ..config import IndexConfig
from ..errors import MissingBackendError
from ..records import Doc

Log = Callable[[str], None]
FAULT_ENV = "XSEARCH_SHARD_FAULT"   # tests only: "<shard>:once:<marker file>" or "<shard>:always"
# workers run Lucene (a JVM) too: Ray's failure signal handler must stay off there as well (see import_ray)
WORKER_ENV = {"env_vars": {"RAY_DISABLE_FAILURE_SIGNAL_HANDLER": "1"}}


def import_ray():
    """Ray, imported. Its driver must not install its failure signal handler: that replaces the JVM's SIGSEGV
    handler (the JVM takes SIGSEGV on purpose, for safepoints and null checks), and the next Lucene call in this
    process crashes it (seen: a segfault in the first BM25 write after a Ray build)."""
    os.environ.setdefault("RAY_DISABLE_FAILURE_SIGNAL_HANDLER", "1")
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise MissingBackendError("--ray needs Ray Data: pip install 'xsearch[ray]' (ray[data]==2.60.0)") from None
    return ray


class ShardBuilder:
    """A Ray Data actor: builds the shards of the batches it is given with models it loaded once."""

    def __init__(self, config: dict, root: str, count: int, fault: str | None = None):
        from ..components import Models

        self.config = IndexConfig.model_validate(config)
        self.root, self.count, self.fault = root, count, fault
        self.models = Models()

    def __call__(self, batch: dict[str, Any]) -> dict[str, list]:
        from .build import build_shard

        rows: dict[str, list] = {"shard": [], "docs": [], "seconds": [], "default_route": [], "pid": []}
        for i, blob in zip(batch["shard"], batch["docs"]):
            self._inject_fault(int(i))
            stats = build_shard(self.config, self.root, int(i), self.count, pickle.loads(blob), models=self.models)
            for key in rows:
                rows[key].append(stats[key])
        return rows

    def _inject_fault(self, shard: int) -> None:
        """Kill this worker process (as an OOM kill or a lost node would) when a test asks for it."""
        if not self.fault:
            return
        target, mode, *rest = self.fault.split(":", 2)
        if int(target) != shard:
            return
        if mode == "always":
            os._exit(17)
        marker = Path(rest[0])
        if not marker.exists():
            marker.write_text(str(os.getpid()))
            os._exit(17)


def build_on_ray(config: IndexConfig, root: Path, parts: Sequence[Sequence[Doc]], *, address: str,
                 workers: int | None, retries: int, log: Log) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Build every shard on Ray (started here for "local", joined for "auto" or an address); returns each shard's
    stats and how the build ran."""
    ray = import_ray()
    started = not ray.is_initialized()
    if started:
        if address == "local":
            ray.init(num_cpus=workers or os.cpu_count() or 1, include_dashboard=False, log_to_driver=False,
                     configure_logging=False)
        else:
            ray.init(address=address, log_to_driver=False, configure_logging=False)
    try:
        resources = ray.cluster_resources()
        cpus, gpus = int(resources.get("CPU", 1)), int(resources.get("GPU", 0))
        n = max(1, min(workers or cpus, len(parts)))
        gpu_each = 1 if gpus >= n else 0
        log(f"Ray: {n} shard builders on {cpus} CPUs, {gpus} GPUs ({'one GPU each' if gpu_each else 'CPU'})")
        rows = [{"shard": i, "docs": pickle.dumps(list(part))} for i, part in enumerate(parts)]
        ds = ray.data.from_items(rows, override_num_blocks=len(rows))
        built = ds.map_batches(
            ShardBuilder, batch_size=1, concurrency=n, num_cpus=max(1, cpus // n) if not gpu_each else 1,
            num_gpus=gpu_each, batch_format="numpy", runtime_env=WORKER_ENV,
            fn_constructor_kwargs={"config": config.model_dump(mode="json"), "root": str(root),
                                   "count": len(parts), "fault": os.environ.get(FAULT_ENV)},
            # bounded restarts (Ray Data's default is forever); Ray 2.60 has no named parameter for them yet
            max_restarts=retries, max_task_retries=retries)
        stats = built.take_all()
    finally:
        if started:
            ray.shutdown()
    out = [{"shard": int(s["shard"]), "docs": int(s["docs"]), "seconds": float(s["seconds"]),
            "default_route": str(s["default_route"]), "pid": int(s["pid"])} for s in stats]
    return out, {"mode": "ray", "address": address, "workers": n, "gpus_per_worker": gpu_each}
