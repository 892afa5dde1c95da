"""Sharded indexes: one collection split by a stable hash of each document id into N ordinary indexes.

  layout.py     which shard holds a document, the top-level sharded.json, opening the shard folders
  build.py      the sharded build: the same per-shard stage (translate -> generate -> encode -> write, the one
                writer) in-process or on Ray; written in a temporary folder and swapped in whole
  ray_build.py  the Ray Data pipeline (an actor pool: each worker loads its models once; GPUs where present)
  index.py      ShardedIndex: every route searched on every shard in parallel and merged; fusions over the
                merged runs, so a fused route ranks exactly as it would on one index with the same leaf runs
  update.py     live batches routed to each document's shard through that shard's writer
A shard is an index of the ordinary format (xsearch.storage); its manifest names it shard i of N.
Nothing here imports Ray unless a build asks for it.
"""
from __future__ import annotations

from .layout import SHARDED_MANIFEST, is_sharded, shard_of

__all__ = ["SHARDED_MANIFEST", "is_sharded", "shard_of"]
