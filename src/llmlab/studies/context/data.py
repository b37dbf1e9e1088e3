"""The context study's data: the demo corpus split, its tokenizer, and documents of a given length.

Training documents are corpus pieces of exactly `length` tokens (decoded back to text) with passkey
documents of the same length mixed in (passkey.py), one document per example, so the fine-tuning loop keeps
each whole: a passkey must never be cut off from its question.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from llmlab.finetuning.data import Example
from llmlab.stdlib_text import demo_corpus
from llmlab.studies.context.passkey import FILLER, KEY, QUESTION, passkey_document
from llmlab.tokenizer.pipeline import Tokenizer
from llmlab.tokenizer.train import train_tokenizer

if TYPE_CHECKING:
    from llmlab.studies.context.run import ContextSizes


@dataclass
class StudyData:
    """The tokenizer and the token streams every run of the study shares."""

    tokenizer: Tokenizer
    train_tokens: np.ndarray
    valid_tokens: np.ndarray
    dev: list[Example]  # a few valid documents for the trainer's dev loss


def prepare_data(out_dir: Path, sizes: ContextSizes) -> StudyData:
    """Split the corpus, train (or reload) the tokenizer, tokenize both splits."""
    lines = demo_corpus()
    cut = len(lines) * 9 // 10
    path = out_dir / "tokenizer.json"
    if path.is_file():
        tokenizer = Tokenizer.load(path)
    else:
        tokenizer = study_tokenizer(lines[:cut], sizes.vocab)
        tokenizer.save(path)
    train_tokens, valid_tokens = (_tokens(tokenizer, part) for part in (lines[:cut], lines[cut:]))
    dev = [Example(t, None) for t in _chunks(tokenizer, valid_tokens, sizes.short)[:16]]
    return StudyData(tokenizer, train_tokens, valid_tokens, dev)


def study_tokenizer(lines: list[str], vocab: int) -> Tokenizer:
    """BPE on `lines` and 300 copies of the passkey sentences with every digit: the task's words and keys
    become a token each (passkey.py)."""
    task = ["".join(FILLER) + KEY.format(key="") + QUESTION + " 0 1 2 3 4 5 6 7 8 9"] * 300
    return train_tokenizer("bpe", lines + task, vocab, workers=1)


def _tokens(tokenizer: Tokenizer, lines: list[str]) -> np.ndarray:
    return np.array([i for enc in tokenizer.encode_batch([" " + line for line in lines]) for i in enc.ids])


def _chunks(tokenizer: Tokenizer, tokens: np.ndarray, length: int) -> list[str]:
    """The token stream cut into pieces of `length` tokens, as text (one training document each)."""
    return tokenizer.decode_batch(
        [tokens[i : i + length].tolist() for i in range(0, len(tokens) - length, length)]
    )


def documents(data: StudyData, sizes: ContextSizes, length: int, seed: int) -> list[Example]:
    """Corpus pieces of `length` tokens with passkey documents of that length mixed in (keys at random depths)."""
    texts = _chunks(data.tokenizer, data.train_tokens, length)
    rng = random.Random(seed)
    n_passkey = round(len(texts) * sizes.passkey_share / (1 - sizes.passkey_share))
    texts += [passkey_document(data.tokenizer, length, rng.random(), rng).text for _ in range(n_passkey)]
    rng.shuffle(texts)
    return [Example(t, None) for t in texts]
