"""Typed errors: every failure names the input that caused it (no bare asserts, no silent fallbacks)."""
from __future__ import annotations

from typing import Sequence


class XsearchError(Exception):
    """Base class for every error xsearch raises on purpose."""


class InputError(XsearchError, ValueError):
    """Bad user input: a malformed corpus record, an unknown option, an empty query."""

    def __init__(self, message: str, *, source: str | None = None, line: int | None = None):
        where = ""
        if source is not None:
            where = f"{source}:{line}: " if line is not None else f"{source}: "
        super().__init__(where + message)
        self.source = source
        self.line = line


class MissingBackendError(XsearchError, ImportError):
    """An optional backend is not installed; the message names the extra or package to install."""


class IndexFormatError(XsearchError):
    """An index folder is missing, incomplete or was written by an incompatible version."""


class BackendError(XsearchError):
    """A backend (Lucene through Java, a translator process) failed on an input: the message names that input and
    the backend's own one-line reason, never a stack (nothing Java leaves xsearch.lucene)."""


class WriterBusyError(XsearchError):
    """Another writer holds the index (build, update, compact or reaugment) for longer than the wait allowed."""


class UnknownDocumentError(InputError):
    """A batch deletes a document id the index does not hold."""

    def __init__(self, doc_ids: Sequence[str]):
        shown = ", ".join(repr(d) for d in list(doc_ids)[:10]) + (" ..." if len(doc_ids) > 10 else "")
        super().__init__(f"unknown document id{'s' if len(doc_ids) > 1 else ''}: {shown}")
        self.doc_ids = list(doc_ids)
