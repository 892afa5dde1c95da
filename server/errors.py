"""Library errors as HTTP answers: every xsearch error class gets a 4xx or a 503 whose message names the request's
input and never shows a file path of the server machine nor a stack.

Why one table: a class without a handler became a 500 (WriterBusyError, a translator's failure, a Java exception),
and 503 bodies quoted absolute paths (the index folder, the Apertium data folder).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

from fastapi import Request

from xsearch.errors import (BackendError, IndexFormatError, InputError, MissingBackendError, UnknownDocumentError,
                            WriterBusyError, XsearchError)

RETRY_AFTER_S = 1  # a busy writer (another process's batch) usually finishes within a second or two

# (class, status, what the message starts with): the first class the error is an instance of wins
STATUS: list[tuple[type[XsearchError], int, str]] = [
    (UnknownDocumentError, 404, ""),
    (InputError, 400, ""),
    (WriterBusyError, 503, "the index is busy with another write, retry: "),
    (MissingBackendError, 503, "this server lacks a backend: "),
    (IndexFormatError, 503, "the index cannot be read: "),
    (BackendError, 503, "a backend failed: "),
    (XsearchError, 503, "a backend failed: "),
]
# an absolute POSIX path not glued to a word before it (so "fr->en/es" or "k1/b" stay): /a/b/c -> c
_PATH = re.compile(r"(?<![\w.~-])/(?:[^\s/'\"`:,;()\[\]]+/)*([^\s/'\"`:,;()\[\]]*)")


def status_of(exc: XsearchError) -> tuple[int, str]:
    return next((status, prefix) for cls, status, prefix in STATUS if isinstance(exc, cls))


def public(message: str, index_path: Optional[Path] = None) -> str:
    """`message` without the machine's file paths: the index folder becomes its name, any other absolute path its
    last part."""
    if index_path is not None:
        message = message.replace(str(index_path), index_path.name)
    return _PATH.sub(lambda m: m.group(1) or "/", message)


def context(request: Request) -> str:
    """What the request asked for, in words, to name the input in a 503 (400s name it already)."""
    path, params = request.url.path, request.query_params
    if path == "/search":
        q = params.get("q", "")
        shown = repr(q if len(q) <= 80 else q[:80] + "…")
        return f"search {shown}" + (f" on route {params['route']!r}" if "route" in params else "")
    if path.startswith("/docs/"):
        return f"{'deleting' if request.method == 'DELETE' else 'reading'} document {path[len('/docs/'):]!r}"
    if path == "/docs":
        return "the batch"
    return f"{request.method} {path}"


def answer(exc: XsearchError, request: Request, index_path: Optional[Path]) -> tuple[int, str, dict[str, str]]:
    """(status, message, headers) for a library error raised while serving `request`."""
    status, prefix = status_of(exc)
    message = public(str(exc), index_path)
    if status == 503:
        message = f"{context(request)}: {prefix}{message}"
    headers = {"Retry-After": str(RETRY_AFTER_S)} if isinstance(exc, WriterBusyError) else {}
    return status, message, headers
