"""Where a document lives in a sharded index, and the top-level manifest that makes a folder a sharded index.

The shard of a document is blake2b-64 of its UTF-8 id modulo N: stable across processes, machines and Python
versions (unlike hash()), uniform, and computable by any writer or reader without a lookup table.
`sharded.json` is written last by a build, atomically: a folder without it is not a (finished) sharded index.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from ..errors import IndexFormatError
from ..storage.files import write_atomic

SHARDED_MANIFEST = "sharded.json"
FORMAT = "xsearch-sharded/1"


def shard_of(doc_id: str, count: int) -> int:
    """The shard (0 .. count-1) that holds `doc_id`."""
    if count == 1:
        return 0
    digest = hashlib.blake2b(doc_id.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % count


def shard_name(i: int) -> str:
    return f"shard-{i:03d}"


class ShardedManifest(BaseModel):
    """The collection-level facts; each shard's own manifest describes its generations."""

    model_config = ConfigDict(extra="forbid")
    format: Literal["xsearch-sharded/1"] = FORMAT
    name: str
    count: int
    shards: list[str]
    hash: Literal["blake2b-64"] = "blake2b-64"
    created: str
    build_id: str                  # a new one per build: readers reopen the shards when it changes
    default_route: str
    doc_counts: list[int]          # at build time; each shard's manifest has the live count
    build: dict = {}               # how it was built: in-process or Ray, workers, seconds per shard


def is_sharded(path: str | Path) -> bool:
    return (Path(path) / SHARDED_MANIFEST).is_file()


def read_sharded(path: str | Path) -> ShardedManifest:
    path = Path(path)
    try:
        return ShardedManifest.model_validate_json((path / SHARDED_MANIFEST).read_bytes())
    except FileNotFoundError:
        raise IndexFormatError(f"{path} is not a sharded xsearch index (no {SHARDED_MANIFEST})") from None
    except ValueError as exc:
        raise IndexFormatError(f"{path / SHARDED_MANIFEST} is not a valid sharded manifest: {exc}") from None


def write_sharded(path: Path, manifest: ShardedManifest) -> None:
    write_atomic(path / SHARDED_MANIFEST,
                 json.dumps(manifest.model_dump(mode="json"), indent=2, ensure_ascii=False).encode("utf-8"))


def shard_paths(path: str | Path) -> list[Path]:
    path = Path(path).resolve()
    return [path / name for name in read_sharded(path).shards]
