"""Cross-lingual transfer checks for any Encoder: bitext mining, en-fr STS, zero-shot en->fr classification.

Why: retrieval scores on one collection mix many effects; these small public sets say directly whether an encoder
puts an English sentence and its French translation close together (which CLIR with a shared space relies on).
Symmetric tasks encode both sides with encode_queries (e5's advice for symmetric tasks: "query: " on both sides).
"""
from __future__ import annotations

import csv
import re
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..errors import InputError
from ..lazy import require
from ..protocols import Encoder

Scores = dict[str, float | int | str]


def _root(data_dir: str | Path | None) -> Path:
    from ..paths import default_data_dir

    return Path(data_dir) if data_dir is not None else default_data_dir()


def _lines(path: Path) -> list[str]:
    if not path.exists():
        raise InputError("data file not found", source=str(path))
    text = path.read_text(encoding="utf-8")
    return text[:-1].split("\n") if text.endswith("\n") else text.split("\n")


# ---------------------------------------------------------------------------------------------------- loaders
def load_tatoeba(data_dir: str | Path | None = None) -> tuple[list[str], list[str]]:
    """The 1,000 LASER Tatoeba fra-eng pairs: (english, french), line-aligned."""
    folder = _root(data_dir) / "tatoeba"
    en, fr = _lines(folder / "tatoeba.fra-eng.eng"), _lines(folder / "tatoeba.fra-eng.fra")
    if len(en) != len(fr):
        raise InputError(f"tatoeba files differ in length ({len(en)} vs {len(fr)})", source=str(folder))
    return en, fr


def load_diabla(data_dir: str | Path | None = None, direction: str = "both") -> tuple[list[str], list[str]]:
    """DiaBLa aligned TSVs (source TAB reference) as (english, french); direction en2fr, fr2en or both."""
    folder = _root(data_dir) / "diabla"
    if direction not in ("en2fr", "fr2en", "both"):
        raise InputError(f"direction must be en2fr, fr2en or both, got {direction!r}")
    en: list[str] = []
    fr: list[str] = []
    for d in (["en2fr", "fr2en"] if direction == "both" else [direction]):
        path = folder / f"diabla.{d}.aligned.tsv"
        for n, line in enumerate(_lines(path), start=1):
            parts = line.split("\t")
            if len(parts) != 2:
                raise InputError(f"expected 'source<TAB>reference', got {len(parts)} fields", source=str(path), line=n)
            src, ref = (p.strip() for p in parts)
            en.append(src if d == "en2fr" else ref)
            fr.append(ref if d == "en2fr" else src)
    return en, fr


def load_sib200(lang: str = "eng_Latn", split: str = "train",
                data_dir: str | Path | None = None) -> tuple[list[str], list[str], list[str]]:
    """SIB-200 rows of one language and split as (texts, labels, index_ids)."""
    path = _root(data_dir) / "sib200" / lang / f"{split}.tsv"
    rows = _lines(path)
    if not rows or rows[0].split("\t") != ["index_id", "category", "text"]:
        raise InputError("expected the header 'index_id<TAB>category<TAB>text'", source=str(path), line=1)
    texts, labels, ids = [], [], []
    for n, line in enumerate(rows[1:], start=2):
        parts = line.split("\t")
        if len(parts) != 3:
            raise InputError(f"expected 3 fields, got {len(parts)}", source=str(path), line=n)
        ids.append(parts[0])
        labels.append(parts[1])
        texts.append(parts[2])
    return texts, labels, ids


def sib200_bitext(split: str = "all", data_dir: str | Path | None = None) -> tuple[list[str], list[str]]:
    """English and French SIB-200 sentences paired by index_id (same FLORES sentence); split 'all' pools the three."""
    en: list[str] = []
    fr: list[str] = []
    for s in (["train", "dev", "test"] if split == "all" else [split]):
        et, _, eid = load_sib200("eng_Latn", s, data_dir)
        ft, _, fid = load_sib200("fra_Latn", s, data_dir)
        by_id = dict(zip(fid, ft))
        missing = [i for i in eid if i not in by_id]
        if missing or len(eid) != len(fid):
            raise InputError(f"SIB-200 {s}: eng/fra index_ids differ (e.g. {missing[:3]})")
        en += et
        fr += [by_id[i] for i in eid]
    return en, fr


def load_stsb(lang: str, split: str = "test", data_dir: str | Path | None = None) -> list[tuple[str, str, float]]:
    """stsb-multi-mt rows (sentence1, sentence2, score 0-5) for one language and split."""
    path = _root(data_dir) / "stsb-multi-mt" / f"stsb-{lang}-{split}.csv"
    if not path.exists():
        raise InputError("data file not found", source=str(path))
    out = []
    with open(path, newline="", encoding="utf-8") as f:
        for n, row in enumerate(csv.reader(f), start=1):
            if len(row) != 3:
                raise InputError(f"expected sentence1,sentence2,score, got {len(row)} fields", source=str(path), line=n)
            out.append((row[0], row[1], float(row[2])))
    return out


def stsb_crosslingual(split: str = "test", data_dir: str | Path | None = None
                      ) -> tuple[list[str], list[str], list[float]]:
    """en-fr STS: English sentence1 with the French sentence2 of the same row, and the row's gold score."""
    en, fr = load_stsb("en", split, data_dir), load_stsb("fr", split, data_dir)
    if len(en) != len(fr) or any(a[2] != b[2] for a, b in zip(en, fr)):
        raise InputError(f"stsb en/fr {split} files are not row-aligned")
    return [r[0] for r in en], [r[1] for r in fr], [r[2] for r in en]


_ESCAPE = re.compile(r"\\u([0-9a-fA-F]{4})")


def load_umsab(lang: str = "english", split: str = "train",
               data_dir: str | Path | None = None) -> tuple[list[str], list[str]]:
    """UMSAB tweets and labels (0 negative, 1 neutral, 2 positive); literal '\\uXXXX' escapes are decoded."""
    folder = _root(data_dir) / "umsab-sentiment" / lang
    texts = [_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), t).strip() for t in _lines(folder / f"{split}_text.txt")]
    labels = [x.strip() for x in _lines(folder / f"{split}_labels.txt")]
    if len(texts) != len(labels):
        raise InputError(f"{len(texts)} texts but {len(labels)} labels", source=str(folder / split))
    return texts, labels


# ---------------------------------------------------------------------------------------------------- tasks
def _encode(encoder: Encoder, texts: Sequence[str], batch_size: int) -> np.ndarray:
    return np.asarray(encoder.encode_queries(list(texts), batch_size=batch_size), dtype=np.float32)


def bitext_mining(encoder: Encoder, en: Sequence[str], fr: Sequence[str], batch_size: int = 64) -> Scores:
    """Nearest-neighbour (cosine) accuracy both ways; a hit on an identical duplicate of the gold text counts."""
    if len(en) != len(fr) or not en:
        raise InputError(f"bitext sides must be non-empty and equal in length ({len(en)} vs {len(fr)})")
    t0 = time.perf_counter()
    e, f = _encode(encoder, en, batch_size), _encode(encoder, fr, batch_size)
    seconds = time.perf_counter() - t0
    sim = e @ f.T
    gold = np.arange(len(en))
    en_a, fr_a = np.asarray(en, dtype=object), np.asarray(fr, dtype=object)
    e2f, f2e = sim.argmax(axis=1), sim.argmax(axis=0)
    return {"n": len(en), "acc_en2fr": float(np.mean((e2f == gold) | (fr_a[e2f] == fr_a))),
            "acc_fr2en": float(np.mean((f2e == gold) | (en_a[f2e] == en_a))),
            "encode_seconds": round(seconds, 2), "sentences_per_s": round(2 * len(en) / seconds, 1)}


def crosslingual_sts(encoder: Encoder, left: Sequence[str], right: Sequence[str], gold: Sequence[float],
                     batch_size: int = 64) -> Scores:
    """Spearman x 100 between cosine(left_i, right_i) and the gold similarity."""
    stats = require("scipy.stats")
    t0 = time.perf_counter()
    a, b = _encode(encoder, left, batch_size), _encode(encoder, right, batch_size)
    seconds = time.perf_counter() - t0
    cos = np.sum(a * b, axis=1)
    return {"n": len(gold), "spearman": float(100 * stats.spearmanr(cos, gold).statistic),
            "encode_seconds": round(seconds, 2), "sentences_per_s": round(2 * len(gold) / seconds, 1)}


def zero_shot_classification(encoder: Encoder, train: tuple[Sequence[str], Sequence[str]],
                             tests: dict[str, tuple[Sequence[str], Sequence[str]]], batch_size: int = 64) -> Scores:
    """Logistic regression on English train embeddings, scored on each test set (e.g. 'en' and 'fr'): acc, macro-F1."""
    lm = require("sklearn.linear_model")
    skm = require("sklearn.metrics")
    t0 = time.perf_counter()
    x = _encode(encoder, train[0], batch_size)
    encoded = {name: _encode(encoder, texts, batch_size) for name, (texts, _) in tests.items()}
    seconds = time.perf_counter() - t0
    clf = lm.LogisticRegression(max_iter=1000).fit(x, list(train[1]))
    out: Scores = {"n_train": len(train[0])}
    n = len(train[0])
    for name, (texts, labels) in tests.items():
        pred = clf.predict(encoded[name])
        out[f"{name}_n"] = len(labels)
        out[f"{name}_accuracy"] = float(skm.accuracy_score(list(labels), pred))
        out[f"{name}_macro_f1"] = float(skm.f1_score(list(labels), pred, average="macro"))
        n += len(texts)
    out.update(encode_seconds=round(seconds, 2), sentences_per_s=round(n / seconds, 1))
    return out


# ---------------------------------------------------------------------------------------------------- the suite
def _tatoeba(enc: Encoder, d: Path | None) -> Scores:
    return bitext_mining(enc, *load_tatoeba(d))


def _diabla(enc: Encoder, d: Path | None) -> Scores:
    return bitext_mining(enc, *load_diabla(d))


def _sib_bitext(enc: Encoder, d: Path | None) -> Scores:
    return bitext_mining(enc, *sib200_bitext("all", d))


def _stsb(enc: Encoder, d: Path | None) -> Scores:
    return crosslingual_sts(enc, *stsb_crosslingual("test", d))


def _sib_clf(enc: Encoder, d: Path | None) -> Scores:
    train = load_sib200("eng_Latn", "train", d)[:2]
    return zero_shot_classification(enc, train, {"en": load_sib200("eng_Latn", "test", d)[:2],
                                                 "fr": load_sib200("fra_Latn", "test", d)[:2]})


def _umsab_clf(enc: Encoder, d: Path | None) -> Scores:
    return zero_shot_classification(enc, load_umsab("english", "train", d), {"en": load_umsab("english", "test", d),
                                                                             "fr": load_umsab("french", "test", d)})


TASKS: dict[str, Callable[[Encoder, Path | None], Scores]] = {
    "tatoeba": _tatoeba, "diabla": _diabla, "sib200-bitext": _sib_bitext, "stsb-en-fr": _stsb,
    "sib200-clf": _sib_clf, "umsab-clf": _umsab_clf,
}


def run_transfer(encoder: Encoder, tasks: Sequence[str] | None = None,
                 data_dir: str | Path | None = None) -> dict[str, Scores]:
    """Run the named tasks (all of TASKS by default); each result carries its own wall-clock `seconds`."""
    names = list(tasks) if tasks is not None else list(TASKS)
    unknown = [t for t in names if t not in TASKS]
    if unknown:
        raise InputError(f"unknown transfer task(s) {unknown}: choose from {list(TASKS)}")
    out: dict[str, Scores] = {}
    for name in names:
        t0 = time.perf_counter()
        scores = TASKS[name](encoder, Path(data_dir) if data_dir is not None else None)
        out[name] = {"encoder": encoder.name, **scores, "seconds": round(time.perf_counter() - t0, 2)}
    return out


__all__ = ["load_tatoeba", "load_diabla", "load_sib200", "sib200_bitext", "load_stsb", "stsb_crosslingual",
           "load_umsab", "bitext_mining", "crosslingual_sts", "zero_shot_classification", "TASKS", "run_transfer"]
