"""Tiny random-weight models converted to CTranslate2: a Marian (opus-mt-shaped) translator and a T5
(doc2query-shaped) query generator.

Why: no MT or doc2query model can be downloaded here, but the CTranslate2 code paths (SentencePiece in, int8
beam search or sampling, SentencePiece out) must still be exercised by tests, the bench and device checks.
Their output is junk by design.

    python scripts/tiny_models.py marian OUT_DIR      # writes OUT_DIR/hf and OUT_DIR/ct2
    python scripts/tiny_models.py t5 OUT_DIR
"""
from __future__ import annotations

import json
import random
import sys
import warnings
from pathlib import Path

_WORDS = ("le la les un une des de du et en sur pour avec dans par modèle corpus analyse texte mot phrase "
          "langue traduction recherche système résultat méthode évaluation données article étude question "
          "the a of and in on for with model text word sentence language translation search system result "
          "method evaluation data paper study question").split()
_MARIAN_WORDS = _WORDS + "nous proposons présentons we propose present".split()
_T5_WORDS = _WORDS + "what how which generate passage".split()


def _corpus(words: list[str], punctuate: bool, n_lines: int = 400, seed: int = 0) -> list[str]:
    """Random lines over words (the SentencePiece training text); sentence-like (capital, end mark) if punctuate."""
    rng = random.Random(seed)
    lines = []
    for _ in range(n_lines):
        line = " ".join(rng.choice(words) for _ in range(rng.randint(4, 20)))
        lines.append(line.capitalize() + rng.choice([".", " ?", " !", ""]) if punctuate else line)
    return lines


def _workspace(out_dir: str | Path, words: list[str], punctuate: bool) -> tuple[Path, Path, Path]:
    """(hf folder, ct2 folder, SentencePiece training text) under out_dir, the text written."""
    out = Path(out_dir)
    hf, ct2 = out / "hf", out / "ct2"
    hf.mkdir(parents=True, exist_ok=True)
    text_file = out / "corpus.txt"
    text_file.write_text("\n".join(_corpus(words, punctuate)) + "\n", encoding="utf-8")
    return hf, ct2, text_file


def build_tiny_marian(out_dir: str | Path, vocab_size: int = 128, d_model: int = 32) -> Path:
    """Train a SentencePiece model, save a random MarianMTModel + tokenizer, convert; return the ct2 folder."""
    import sentencepiece as spm
    from ctranslate2.converters import TransformersConverter
    from transformers import MarianConfig, MarianMTModel, MarianTokenizer

    hf, ct2, text_file = _workspace(out_dir, _MARIAN_WORDS, punctuate=True)
    # opus-mt layout: </s>=0, <unk>=1, no <pad> in the spm; <pad> is appended LAST in vocab.json (the converter
    # drops the last id when it is <pad>).
    spm.SentencePieceTrainer.train(
        input=str(text_file), model_prefix=str(hf / "source"), vocab_size=vocab_size, model_type="unigram",
        eos_id=0, unk_id=1, bos_id=-1, pad_id=-1, character_coverage=1.0, hard_vocab_limit=False,
        minloglevel=2)
    (hf / "target.spm").write_bytes((hf / "source.model").read_bytes())
    (hf / "source.model").rename(hf / "source.spm")
    (hf / "source.vocab").unlink()
    sp = spm.SentencePieceProcessor(model_file=str(hf / "source.spm"))
    vocab = {sp.id_to_piece(i): i for i in range(sp.get_piece_size())}
    vocab["<pad>"] = len(vocab)
    (hf / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")

    n = len(vocab)
    config = MarianConfig(
        vocab_size=n, decoder_vocab_size=n, d_model=d_model, encoder_layers=1, decoder_layers=1,
        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=2 * d_model,
        decoder_ffn_dim=2 * d_model, max_position_embeddings=256, pad_token_id=n - 1, eos_token_id=0,
        decoder_start_token_id=n - 1, forced_eos_token_id=0, share_encoder_decoder_embeddings=True)
    MarianMTModel(config).save_pretrained(hf)
    with warnings.catch_warnings():  # "Recommended: pip install sacremoses" (unused: no Moses pre-tokenising)
        warnings.simplefilter("ignore", UserWarning)
        MarianTokenizer(str(hf / "source.spm"), str(hf / "target.spm"), str(hf / "vocab.json")).save_pretrained(hf)
        TransformersConverter(str(hf), copy_files=["source.spm", "target.spm"]).convert(
            str(ct2), quantization="int8", force=True)
    (ct2 / "xsearch.json").write_text(json.dumps({"family": "marian", "max_positions": 256}), encoding="utf-8")
    return ct2


def build_tiny_t5(out_dir: str | Path, vocab_size: int = 128, d_model: int = 32) -> Path:
    """Train a SentencePiece model, save a random T5ForConditionalGeneration + tokenizer, convert; return the
    ct2 folder (with spiece.model copied in)."""
    import sentencepiece as spm
    from ctranslate2.converters import TransformersConverter
    from transformers import T5Config, T5ForConditionalGeneration, T5Tokenizer

    hf, ct2, text_file = _workspace(out_dir, _T5_WORDS, punctuate=False)
    # T5 layout: <pad>=0, </s>=1, <unk>=2 (the decoder starts from <pad>)
    spm.SentencePieceTrainer.train(
        input=str(text_file), model_prefix=str(hf / "spiece"), vocab_size=vocab_size, model_type="unigram",
        pad_id=0, eos_id=1, unk_id=2, bos_id=-1, character_coverage=1.0, hard_vocab_limit=False, minloglevel=2)
    sp = spm.SentencePieceProcessor(model_file=str(hf / "spiece.model"))
    # transformers 5 builds T5Tokenizer from (piece, score) pairs rather than from the .model file
    tokenizer = T5Tokenizer(vocab=[(sp.id_to_piece(i), sp.get_score(i)) for i in range(sp.get_piece_size())],
                            extra_ids=0)
    tokenizer.save_pretrained(hf)
    config = T5Config(vocab_size=len(tokenizer), d_model=d_model, d_kv=d_model // 4, d_ff=2 * d_model, num_layers=1,
                      num_decoder_layers=1, num_heads=2, relative_attention_num_buckets=8, pad_token_id=0,
                      eos_token_id=1, decoder_start_token_id=0, feed_forward_proj="relu")
    T5ForConditionalGeneration(config).save_pretrained(hf)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        TransformersConverter(str(hf), copy_files=["spiece.model"]).convert(str(ct2), quantization="int8",
                                                                          force=True)
    return ct2


BUILDERS = {"marian": build_tiny_marian, "t5": build_tiny_t5}

if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in BUILDERS:
        sys.exit(__doc__)
    print(BUILDERS[sys.argv[1]](sys.argv[2]))
