"""Query-term highlighting for result pages: HTML-escaped text with <mark> around matching words.

Matching is deliberately forgiving and language-neutral (accents and case folded, a light suffix strip), since
the query is often in another language than the document and the exact analyzer stems are not at hand. Every
piece of document text is HTML-escaped; the only markup in the output is <mark>…</mark>.
"""
from __future__ import annotations

import html
import re
import unicodedata
from functools import lru_cache
from typing import Iterable, Sequence

_WORD = re.compile(r"\w+", re.UNICODE)
_STOP = frozenset("""
a an and are as at be by for from in into is it of on or that the this to with we our their
au aux avec ce ces dans de des du elle en et il ils la le les leur leurs ne nous on ou par pas pour qui que
sa se ses son sur un une est sont
""".split())
_SUFFIXES = ("ements", "ement", "ations", "ation", "ques", "ique", "ings", "ing", "es", "ed", "s", "x", "e")


def fold(word: str) -> str:
    """Case- and accent-folded form of a word."""
    decomposed = unicodedata.normalize("NFKD", word.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _stem(word: str) -> str:
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 4:
            return word[: -len(suffix)]
    return word


def query_terms(*queries: str) -> list[str]:
    """Stems of the query words worth highlighting (no stopwords, no single characters)."""
    out: dict[str, None] = {}   # ordered and de-duplicated in one pass
    for q in queries:
        for m in _WORD.finditer(q or ""):
            w = fold(m.group())
            if len(w) >= 2 and w not in _STOP:
                out[_stem(w)] = None
    return list(out)


@lru_cache(maxsize=100_000)
def _key(word: str) -> tuple[str, str] | None:
    """(folded, stem) of a document word, or None for words never highlighted; cached (words repeat a lot)."""
    w = fold(word)
    if len(w) < 2 or w in _STOP:
        return None
    return w, _stem(w)


_PREFIX = (5, 30)  # stems of 5 to 30 letters also match the words they start ("automat" marks "automatique")


class _Terms:
    """Query stems as sets, so a word is matched in a time independent of the number of terms (a stem equal to the
    word's own, or a prefix of it from the set, at most 26 lookups of at most 30 letters): highlighting is one pass
    over the text, linear in its length, not words x terms."""

    def __init__(self, stems: Sequence[str]):
        self.exact = frozenset(stems)
        self.prefixes = frozenset(s for s in stems if _PREFIX[0] <= len(s) <= _PREFIX[1])
        self.lengths = sorted({len(s) for s in self.prefixes})

    def match(self, word: str) -> bool:
        if not self.exact:
            return False
        key = _key(word)
        if key is None:
            return False
        w, ws = key
        return ws in self.exact or any(w[:n] in self.prefixes for n in self.lengths if n <= len(w))


def _spans(text: str, stems: Sequence[str]) -> tuple[list[tuple[int, int]], list[bool]]:
    terms = _Terms(stems)
    words = [(m.start(), m.end()) for m in _WORD.finditer(text)]
    return words, [terms.match(text[a:b]) for a, b in words]


def _render(text: str, start: int, end: int, words: Iterable[tuple[int, int]], hits: Iterable[bool]) -> str:
    out, pos = [], start
    for (a, b), hit in zip(words, hits):
        if a < start or b > end or not hit:
            continue
        out.append(html.escape(text[pos:a]))
        out.append(f"<mark>{html.escape(text[a:b])}</mark>")
        pos = b
    out.append(html.escape(text[pos:end]))
    return "".join(out)


def highlight(text: str, stems: Sequence[str]) -> str:
    """The whole text, escaped, with matching words marked."""
    words, hits = _spans(text or "", stems)
    return _render(text or "", 0, len(text or ""), words, hits)


def snippet(text: str, stems: Sequence[str], width: int = 40) -> str:
    """The `width`-word window of `text` with the most matching words, escaped and marked; "…" where cut."""
    text = text or ""
    words, hits = _spans(text, stems)
    if len(words) <= width:
        return _render(text, 0, len(text), words, hits)
    best, best_at, window = -1, 0, sum(hits[:width])
    for i in range(0, len(words) - width + 1):
        if i:
            window += hits[i + width - 1] - hits[i - 1]
        if window > best:
            best, best_at = window, i
    if best == 0:
        best_at = 0
    first, last = best_at, best_at + width - 1
    start = 0 if first == 0 else words[first][0]
    end = len(text) if last == len(words) - 1 else words[last][1]
    body = _render(text, start, end, words[first:last + 1], hits[first:last + 1])
    return ("…" if start > 0 else "") + body + ("…" if end < len(text) else "")
