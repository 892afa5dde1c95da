"""Where xsearch keeps converted models and caches: XSEARCH_CACHE, else ~/.cache/xsearch (never in the repo)."""
from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    root = Path(os.environ.get("XSEARCH_CACHE") or Path.home() / ".cache" / "xsearch")
    root.mkdir(parents=True, exist_ok=True)
    return root


def models_dir() -> Path:
    d = cache_dir() / "models"
    d.mkdir(parents=True, exist_ok=True)
    return d


def default_data_dir() -> Path:
    """The shared data folder beside the project (../shared/data), or XSEARCH_DATA."""
    env = os.environ.get("XSEARCH_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "shared" / "data"
