"""Corpus readers: each yields Doc records and raises InputError naming the file and record on bad input."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

from ..errors import InputError
from ..records import Doc
from .jsonl import read_jsonl
from .taln import read_taln


def read_corpus(path: str | Path, format: str = "auto", lang: str | None = None) -> Iterator[Doc]:
    """Read `path` as `jsonl` or `taln` (a TALN XML file or a folder of them); `auto` guesses from the path."""
    path = Path(path)
    if not path.exists():
        raise InputError("corpus path does not exist", source=str(path))
    if format == "auto":
        if path.is_dir() or path.suffix == ".xml":
            format = "taln"
        elif path.name.endswith((".jsonl", ".jsonl.gz", ".json")):
            format = "jsonl"
        else:
            raise InputError("cannot tell the corpus format: pass format='jsonl' or 'taln'", source=str(path))
    if format == "jsonl":
        return read_jsonl(path, default_lang=lang)
    if format == "taln":
        return read_taln(path)
    raise InputError(f"unknown corpus format {format!r}: use jsonl or taln", source=str(path))


__all__ = ["read_corpus", "read_jsonl", "read_taln"]
