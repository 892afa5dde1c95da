"""Keyphrase pseudo-queries (KeyBERT-style): the offline default QueryGenerator.

Candidates are word n-grams (1-3 words) of the passage that neither start nor end with a stopword (French and
English lists inline) and never cross punctuation; a cheap tf-idf pre-score (document frequencies over the
passages of the call) keeps at most `max_candidates` per passage; the survivors are encoded *as queries* by the
multilingual encoder and scored by cosine to the passage vector; Maximal Marginal Relevance (Carbonell and
Goldstein 1998, as in KeyBERT's `use_mmr`) picks `n` diverse ones. TranslatedQueries then turns them into
query-language pseudo-queries through a Translator (fr -> en through the cached Apertium translator), or they are
kept as they are (make_query_generator's `translator`).
"""
from __future__ import annotations

import math
import re
from collections import Counter
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from ..errors import InputError
from . import checked_passages

if TYPE_CHECKING:
    from ..protocols import Encoder, Translator

STOPWORDS_FR = frozenset("""
a à afin ai aie aient aies ait al alors as au aucun aucune auquel aussi autre autres aux auxquelles auxquels avait
avaient avais avant avec avez aviez avoir avons ayant c ça ce ceci cela celle celles celui cependant certain
certaine certaines certains ces cet cette ceux chacun chacune chaque chez ci comme comment d dans de dont des
desquelles desquels deux devrait doit donc du duquel dès elle elles en encore entre es est et étaient étais était
étant été être eu eux fait faire fois font hors il ils j je jusqu jusque l la laquelle le lequel les lesquelles
lesquels leur leurs lors lorsque lui m ma mais me même mêmes mes moi moins mon n ne ni non nos notre nous on ont
ou où par parce parmi pas peu peut peuvent plus plusieurs pour pourquoi pourrait puis qu quand que quel quelle
quelles quels qui quoi s sa sans se selon ses si sien son sont sous soit sur t ta tandis te tel telle telles tels
tes toi ton tous tout toute toutes très tu un une unes uns vers via voici voilà vos votre vous y afin ainsi
également autour cet celle-ci celui-ci ici là notamment nouveau nouvelle nouvelles nouveaux permet permettent
présente présentons proposons propose proposé proposée décrivons décrit montrons montre article travail
travaux partir afin lequel laquelle etc
""".split())

STOPWORDS_EN = frozenset("""
a about above after again against all also am an and any are as at be because been before being below between
both but by can could did do does doing down during each few for from further had has have having he her here
hers herself him himself his how i if in into is it its itself just me more most my myself no nor not now of off
on once only or other our ours ourselves out over own same she should so some such than that the their theirs
them themselves then there these they this those through to too under until up very was we were what when where
which while who whom why will with would you your yours yourself yourselves may might must shall via using use
used based new paper present presents propose proposed describe describes show shows work etc within without
""".split())

STOPWORDS = STOPWORDS_FR | STOPWORDS_EN

# Words: letters and digits, inner hyphens kept ("sous-catégorisation"); apostrophes and punctuation split words,
# so French elisions ("l'analyse") leave "l" (a stopword) and "analyse".
_WORD = re.compile(r"[^\W_]+(?:-[^\W_]+)*", re.UNICODE)
# Candidate phrases never cross these.
_BREAK = re.compile(r"[.,;:!?()\[\]{}«»\"“”/|…—–\n\r\t]+|\s-\s")


def _is_edge_ok(word: str) -> bool:
    return word not in STOPWORDS and not word.isdigit() and len(word) > 1


def candidate_phrases(text: str, max_words: int = 3, min_unigram_chars: int = 3) -> Counter[str]:
    """Lower-cased word n-grams (1..max_words) with no stopword or number at either edge, counted in `text`.
    A phrase is the text span it covers (whitespace normalised), so elisions stay readable for a translator:
    "campagne d'évaluation", not "campagne d évaluation"."""
    counts: Counter[str] = Counter()
    for segment in _BREAK.split(text.lower().replace("\u2019", "'")):
        spans = [(m.group(), m.start(), m.end()) for m in _WORD.finditer(segment)]
        for i, (first, start, _) in enumerate(spans):
            if not _is_edge_ok(first):
                continue
            for j in range(i, min(i + max_words, len(spans))):
                last, _, end = spans[j]
                if not _is_edge_ok(last):
                    continue
                if j == i and len(first) < min_unigram_chars:
                    continue
                counts[" ".join(segment[start:end].split())] += 1
    return counts


def _content_words(phrase: str) -> list[str]:
    return [w for w in _WORD.findall(phrase) if w not in STOPWORDS]


def prescore(candidates: Sequence[Counter[str]], max_candidates: int) -> list[list[str]]:
    """Keep each passage's `max_candidates` best phrases by tf x (sum of idf of its content words), idf from the
    passages given together (one passage alone: every word has the same idf)."""
    df: Counter[str] = Counter()
    for counts in candidates:
        df.update({w for phrase in counts for w in _content_words(phrase)})
    n_docs = len(candidates)
    idf = {w: math.log((n_docs + 1) / (c + 1)) + 1.0 for w, c in df.items()}
    kept = []
    for counts in candidates:
        scored = sorted(counts, key=lambda p: (-counts[p] * sum(idf[w] for w in _content_words(p)), p))
        kept.append(scored[:max_candidates])
    return kept


def mmr(doc_sims: np.ndarray, cand_vectors: np.ndarray, n: int, diversity: float) -> list[int]:
    """Maximal Marginal Relevance: repeatedly take argmax (1 - diversity) * sim(c, doc) - diversity * max sim(c, chosen)."""
    if len(doc_sims) == 0 or n <= 0:
        return []
    chosen = [int(np.argmax(doc_sims))]
    if n == 1:
        return chosen
    pair = cand_vectors @ cand_vectors.T
    max_to_chosen = pair[:, chosen[0]].copy()
    remaining = np.ones(len(doc_sims), dtype=bool)
    remaining[chosen[0]] = False
    while len(chosen) < min(n, len(doc_sims)):
        score = (1.0 - diversity) * doc_sims - diversity * max_to_chosen
        score[~remaining] = -np.inf
        best = int(np.argmax(score))
        chosen.append(best)
        remaining[best] = False
        max_to_chosen = np.maximum(max_to_chosen, pair[:, best])
    return chosen


class KeyphraseGenerator:
    """QueryGenerator: n diverse keyphrases per passage, in the passage's language (`lang` is not used: wrap it
    in TranslatedQueries for query-language pseudo-queries).

    `encoder` scores candidates (encoded with `encode_queries`, since they stand for queries) against the passage
    vector (`encode_passages`, or the vectors the caller already has: `passage_vectors=`).
    """

    name = "keyphrase"
    uses_lang = False  # phrases come out in the passage language, whatever `lang` says (a cache key ignores it)

    def __init__(self, encoder: "Encoder", *, max_candidates: int = 30, diversity: float = 0.5, max_words: int = 3,
                 batch_size: int = 256):
        if max_candidates < 1 or not 0.0 <= diversity <= 1.0 or not 1 <= max_words <= 5:
            raise InputError("keyphrase options: max_candidates >= 1, 0 <= diversity <= 1, 1 <= max_words <= 5")
        self.encoder = encoder
        self.max_candidates, self.diversity, self.max_words = max_candidates, diversity, max_words
        self.batch_size = batch_size
        enc = getattr(encoder, "family", None) or encoder.name
        self.model_id = f"keyphrase-v2|{enc}|cand{max_candidates}|div{diversity:g}|ngram1-{max_words}"

    def generate(self, passages: Sequence[str], n: int, lang: str, *, src_lang: str | None = None,
                 passage_vectors: np.ndarray | None = None) -> list[list[str]]:
        passages = checked_passages(passages, n)
        if not passages:
            return []
        cands = prescore([candidate_phrases(p, self.max_words) for p in passages], self.max_candidates)
        if passage_vectors is None:
            passage_vectors = self.encoder.encode_passages(passages)
        passage_vectors = np.asarray(passage_vectors, dtype=np.float32)
        if passage_vectors.shape[0] != len(passages):
            raise InputError(f"{passage_vectors.shape[0]} passage vectors for {len(passages)} passages")

        flat = list(dict.fromkeys(c for cs in cands for c in cs))  # each distinct phrase encoded once
        vectors = self._encode(flat)
        row = {c: i for i, c in enumerate(flat)}
        picked: list[list[str]] = []
        for cs, pv in zip(cands, passage_vectors):
            if not cs:
                picked.append([])
                continue
            cv = vectors[[row[c] for c in cs]]
            order = mmr(cv @ pv, cv, n, self.diversity)
            picked.append([cs[i] for i in order])
        return picked

    def _encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.encoder.dim), np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # similar lengths share a batch
        out = np.empty((len(texts), self.encoder.dim), np.float32)
        out[order] = self.encoder.encode_queries([texts[i] for i in order], batch_size=self.batch_size)
        return out


class TranslatedQueries:
    """QueryGenerator over another one: its queries, translated from the passage language (`src_lang=`) into
    `lang` by `translator` (one call for all distinct queries; a CachedTranslator keeps them). Queries already in
    `lang` pass through. Outputs are whitespace-normalised, and lower-cased when the query was (Apertium
    capitalises the first word)."""

    def __init__(self, inner: Any, translator: "Translator", default_src_lang: str = "fr"):
        self.inner, self.translator, self.default_src_lang = inner, translator, default_src_lang
        self.name = inner.name
        self.model_id = f"{getattr(inner, 'model_id', '')}|tr={translator.name}:{getattr(translator, 'model_id', '')}"

    def __getattr__(self, name: str) -> Any:  # hits, misses, seconds of a cached inner generator
        if name in ("hits", "misses", "seconds"):
            return getattr(self.inner, name)
        raise AttributeError(name)

    def generate(self, passages: Sequence[str], n: int, lang: str, *, src_lang: str | None = None,
                 **options: Any) -> list[list[str]]:
        src = src_lang or self.default_src_lang
        queries = self.inner.generate(passages, n, lang, src_lang=src, **options)
        if src == lang:
            return queries
        distinct = list(dict.fromkeys(q for qs in queries for q in qs))
        out = dict(zip(distinct, self.translator.translate(distinct, src, lang))) if distinct else {}
        return [[_clean(out[q], q) for q in qs] for qs in queries]


def _clean(translation: str, source: str) -> str:
    t = " ".join(translation.split())
    if not t:
        return source
    return t.lower() if source == source.lower() else t
