"""The TALN/RECITAL archive (boudinfl/taln-archives): French title + abstract as the document.

The authors' English title, abstract and keywords are kept as fields (title_en, abstract_en, keywords_en) for the
human-translation oracle and the CLIRudit-style queries; they are not indexed by default.
"""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Iterator

from ..errors import InputError
from ..records import Doc

TALN_URL = "https://github.com/boudinfl/taln-archives"


def split_keywords(raw: str) -> list[str]:
    """Keywords split on ',' and ';', lower-cased and stripped (the CLIRudit construction rule)."""
    return [k for k in (p.strip().lower() for p in re.split(r"[,;]", raw or "")) if k]


def _files(path: Path) -> list[Path]:
    if path.is_dir():
        files = sorted(path.glob("*.xml")) or sorted(path.glob("xml/*.xml"))
        if not files:
            raise InputError("no TALN *.xml files in this folder", source=str(path))
        return files
    return [path]


def read_taln(path: str | Path) -> Iterator[Doc]:
    """Yield one Doc per article with a non-empty French abstract (`resume`)."""
    for file in _files(Path(path)):
        try:
            root = ET.parse(file).getroot()
        except ET.ParseError as exc:
            raise InputError(f"malformed XML: {exc}", source=str(file), line=exc.position[0]) from None
        venue = file.stem.split("-")[0]
        year = file.stem.split("-")[-1]
        for n, art in enumerate(root.iter("article"), start=1):
            doc_id = (art.get("id") or "").strip()
            if not doc_id:
                raise InputError(f"article #{n} has no id attribute", source=str(file))

            def text(tag: str) -> str:
                return " ".join((art.findtext(tag) or "").split())

            resume = text("resume")
            if not resume:
                continue
            authors = [" ".join(filter(None, [(a.findtext("prenom") or "").strip(), (a.findtext("nom") or "").strip()]))
                       for a in art.iter("auteur")]
            yield Doc(
                doc_id=doc_id,
                lang="fr",
                title=text("titre"),
                text=resume,
                fields={
                    "venue": venue,
                    "year": int(year) if year.isdigit() else year,
                    "authors": authors,
                    "keywords_fr": split_keywords(art.findtext("mots_cles") or ""),
                    "title_en": text("title"),
                    "abstract_en": text("abstract"),
                    "keywords_en": split_keywords(art.findtext("keywords") or ""),
                },
            )
