"""xsearch: cross-lingual retrieval. Importing this package is cheap: no JVM, no torch until a backend is used."""
from __future__ import annotations

from .errors import InputError, IndexFormatError, MissingBackendError, XsearchError
from .fusion import fuse
from .records import Doc, Hit, Query, Run

__version__ = "0.1.0"


def open_index(path):  # noqa: ANN001, ANN201 - re-exported lazily to keep imports light
    from .index import open_index as _open

    return _open(path)


def build_index(*args, **kwargs):  # noqa: ANN002, ANN003, ANN201
    from .index import build_index as _build

    return _build(*args, **kwargs)


__all__ = ["Doc", "Hit", "Query", "Run", "fuse", "open_index", "build_index", "XsearchError", "InputError",
           "IndexFormatError", "MissingBackendError", "__version__"]
