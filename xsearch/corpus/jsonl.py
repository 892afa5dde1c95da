"""JSONL corpora: one object per line with `id`, `text`, optional `title`, `lang`; other keys become fields."""
from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Iterator

from ..errors import InputError
from ..records import Doc

_CORE = {"id", "doc_id", "_id", "title", "text", "contents", "lang"}


def read_jsonl(path: str | Path, default_lang: str | None = None) -> Iterator[Doc]:
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    seen: set[str] = set()
    with opener(path, "rt", encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"invalid JSON ({exc.msg})", source=str(path), line=n) from None
            if not isinstance(obj, dict):
                raise InputError("each line must be a JSON object", source=str(path), line=n)
            doc_id = obj.get("id", obj.get("doc_id", obj.get("_id")))
            if doc_id is None or str(doc_id).strip() == "":
                raise InputError("record has no 'id'", source=str(path), line=n)
            doc_id = str(doc_id)
            if doc_id in seen:
                raise InputError(f"duplicate id {doc_id!r}", source=str(path), line=n)
            seen.add(doc_id)
            text = obj.get("text", obj.get("contents", ""))
            title = obj.get("title", "") or ""
            if not isinstance(text, str) or not isinstance(title, str):
                raise InputError(f"record {doc_id!r}: 'title' and 'text' must be strings", source=str(path), line=n)
            if not (text.strip() or title.strip()):
                raise InputError(f"record {doc_id!r} has neither title nor text", source=str(path), line=n)
            lang = obj.get("lang") or default_lang
            if not lang:
                raise InputError(f"record {doc_id!r} has no 'lang' and no default language was given",
                                 source=str(path), line=n)
            fields = {k: v for k, v in obj.items() if k not in _CORE}
            yield Doc(doc_id=doc_id, lang=str(lang), title=title, text=text, fields=fields)
