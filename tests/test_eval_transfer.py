"""Transfer tasks with a fast hashed bag-of-words encoder; real-data loaders behind the slow marker."""
from __future__ import annotations

import re
import zlib
from typing import Sequence

import numpy as np
import pytest

from xsearch.errors import InputError
from xsearch.eval.transfer import (bitext_mining, crosslingual_sts, load_diabla, load_sib200, load_stsb,
                                   load_tatoeba, load_umsab, run_transfer, sib200_bitext, stsb_crosslingual,
                                   zero_shot_classification)
from xsearch.protocols import Encoder


class HashBow:
    """Bag of words hashed into 512 dims, L2-normalised: enough to rank shared-word pairs first."""

    name = "hash-bow"
    dim = 512

    def _enc(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, t in enumerate(texts):
            for w in re.findall(r"\w+", t.lower()):
                out[i, zlib.crc32(w.encode()) % self.dim] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms == 0, 1, norms)

    def encode_queries(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        return self._enc(texts)

    def encode_passages(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        return self._enc(texts)


def test_fake_is_an_encoder() -> None:
    assert isinstance(HashBow(), Encoder)


def test_bitext_mining_toy() -> None:
    en = ["Paris is big", "the cat sleeps", "Berlin train station", "hello"]
    fr = ["Paris est grande", "le cat dort", "gare de Berlin", "ok ok"]
    s = bitext_mining(HashBow(), en, fr)
    assert s["n"] == 4 and s["acc_en2fr"] == 0.75 and s["acc_fr2en"] == 0.75
    # an identical duplicate of the gold text counts as found
    s = bitext_mining(HashBow(), ["yes", "yes"], ["yes", "yes"])
    assert s["acc_en2fr"] == 1.0 and s["acc_fr2en"] == 1.0
    with pytest.raises(InputError):
        bitext_mining(HashBow(), ["a"], [])


def test_sts_toy() -> None:
    s = crosslingual_sts(HashBow(), ["a b c", "a b c", "a b c"], ["a b c", "a b x", "y z w"], [5.0, 3.0, 0.0])
    assert s["spearman"] == pytest.approx(100.0)


def test_zero_shot_classification_toy() -> None:
    pytest.importorskip("sklearn")
    train = (["goal match team", "vote party law", "team score goal", "law minister vote"] * 3,
             ["sport", "politics", "sport", "politics"] * 3)
    tests = {"en": (["goal team", "vote law"], ["sport", "politics"]), "fr": (["goal équipe", "loi vote"],
                                                                             ["sport", "politics"])}
    s = zero_shot_classification(HashBow(), train, tests)
    assert s["en_accuracy"] == 1.0 and s["fr_accuracy"] == 1.0 and s["fr_macro_f1"] == 1.0 and s["n_train"] == 12


def test_unknown_task() -> None:
    with pytest.raises(InputError, match="unknown transfer task"):
        run_transfer(HashBow(), ["nope"])


@pytest.mark.slow
def test_real_loaders_row_counts() -> None:
    en, fr = load_tatoeba()
    assert len(en) == len(fr) == 1000 and fr[0].startswith("Au commencement")
    for lang in ("eng_Latn", "fra_Latn"):
        assert [len(load_sib200(lang, s)[0]) for s in ("train", "dev", "test")] == [701, 99, 204]
    assert len(set(load_sib200("eng_Latn", "train")[1])) == 7
    en, fr = sib200_bitext("all")
    assert len(en) == len(fr) == 1004
    assert len(load_diabla(direction="en2fr")[0]) == 2865 and len(load_diabla(direction="fr2en")[0]) == 2883
    en, fr, gold = stsb_crosslingual("test")
    assert len(en) == len(fr) == len(gold) == 1379 and fr[0] == load_stsb("fr", "test")[0][1]
    for lang in ("english", "french"):
        assert [len(load_umsab(lang, s)[0]) for s in ("train", "val", "test")] == [1839, 324, 870]
    assert not any("\\u" in t for t in load_umsab("english", "train")[0])


@pytest.mark.slow
def test_run_transfer_with_fake_encoder() -> None:
    pytest.importorskip("sklearn")
    results = run_transfer(HashBow())
    assert set(results) == {"tatoeba", "diabla", "sib200-bitext", "stsb-en-fr", "sib200-clf", "umsab-clf"}
    assert 0 < results["tatoeba"]["acc_en2fr"] < 1  # shared names and numbers only
    assert results["sib200-clf"]["en_accuracy"] > results["sib200-clf"]["fr_accuracy"]
