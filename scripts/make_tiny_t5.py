"""Build a tiny random-weight T5 (doc2query-shaped) model and convert it to CTranslate2.

Why: no doc2query model can be downloaded here, but the seq2seq query-generation code path (SentencePiece in,
int8 sampling with several hypotheses, SentencePiece out) must still be exercised by tests. Output is junk.

    python scripts/make_tiny_t5.py OUT_DIR      # writes OUT_DIR/hf and OUT_DIR/ct2
"""
from __future__ import annotations

import random
import sys
import warnings
from pathlib import Path

_WORDS = ("le la les un une des de du et en sur pour avec dans par modèle corpus analyse texte mot phrase "
          "langue traduction recherche système résultat méthode évaluation données article étude question "
          "the a of and in on for with model text word sentence language translation search system result "
          "method evaluation data paper study question what how which generate passage").split()


def _corpus(n_lines: int = 400, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(_WORDS) for _ in range(rng.randint(4, 20))) for _ in range(n_lines)]


def build_tiny_t5(out_dir: str | Path, vocab_size: int = 128, d_model: int = 32) -> Path:
    """Train a SentencePiece model, save a random T5ForConditionalGeneration + tokenizer, convert; return the
    ct2 folder (with spiece.model copied in)."""
    import sentencepiece as spm
    from ctranslate2.converters import TransformersConverter
    from transformers import T5Config, T5ForConditionalGeneration, T5Tokenizer

    out = Path(out_dir)
    hf, ct2 = out / "hf", out / "ct2"
    hf.mkdir(parents=True, exist_ok=True)
    text_file = out / "corpus.txt"
    text_file.write_text("\n".join(_corpus()) + "\n", encoding="utf-8")
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


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    print(build_tiny_t5(sys.argv[1]))
