"""Chinese, a script without spaces: every algorithm trains on it, compresses it, and leaves almost nothing unknown.

The figures (tokens per character, [UNK] rate on held-out text) are printed so `pytest -s` shows them.
"""

from __future__ import annotations

import pytest

from llmlab.tokenizer.stats import segmentation_stats
from llmlab.tokenizer.train import train_tokenizer

CORPORA = ("zh_classic_novels", "zh_poetry")


def read(path):
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f]


@pytest.mark.slow
@pytest.mark.parametrize("corpus", CORPORA)
@pytest.mark.parametrize("model", ["wordpiece", "bpe", "unigram"])
def test_chinese_compression_and_unknown_rate(shared_data, corpus, model):
    train = read(shared_data / corpus / "train.txt")  # all of it: rare characters need the whole corpus
    heldout = read(shared_data / corpus / "valid.txt")
    options = {"character_coverage": 0.9995} if model == "unigram" else {}
    tok = train_tokenizer(model, train, vocab_size=8000, **options)
    stats = segmentation_stats(tok, heldout)
    print(f"\n{corpus} {model}: tokens/char {stats.tokens_per_char:.3f}, [UNK] {100 * stats.unk_rate:.3f}%")
    assert stats.unk_rate < 0.005
    # Byte-level BPE may spend 3 byte tokens on a rare character; the others at most one per character.
    assert stats.tokens_per_char <= (1.5 if model == "bpe" else 1.0)
