"""Word boundaries for whole-word masking: for each token of the cached token array, does it start a word?

Segmenters (`SEGMENTERS`):
- "tokenizer": the tokenizer's own words, the pieces of its pre-tokenizer (`Encoding.word_ids`, as HF
  `tokenizers` numbers them): a token starts a word when its word id differs from the previous token's.
  For BERT's WordPiece this is Google's "##" rule (a token without "##" starts a word) that HF
  `DataCollatorForWholeWordMask` reads; BertPreTokenizer makes every CJK character a word of its own, so on
  Chinese this is character masking. For byte-level BPE and Metaspace Unigram a word is a pre-token.
- "jieba": the words of the jieba segmenter (https://github.com/fxsjy/jieba, `jieba.tokenize`, default
  dictionary and mode, HMM on), in the spirit of Chinese whole-word masking (Cui et al. 2021, "Pre-Training
  with Whole Word Masking for Chinese BERT", which segments with LTP). The optional extra `llmlab[zh]`.
  A token starts a word when its start offset is the start of a jieba word and the previous token ended at
  or before it (the bytes of one character that byte-level BPE spreads over several tokens stay in one
  word). A token that straddles two jieba words joins them into one: no jieba word is ever split.

The flags are computed by encoding the files again (the same lines, the same ids, checked against the token
array) and cached as words-<key>.npy beside the token cache, keyed like it plus the segmenter.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np

from llmlab.errors import LlmlabError, require_extra
from llmlab.pretraining.data import cache_path, line_chunks, load_cached, save_cached
from llmlab.tokenizer.pipeline import Encoding, Tokenizer

SEGMENTERS = ("tokenizer", "jieba")


def load_segmenter(name: str) -> Callable[[str], np.ndarray] | None:
    """The function text -> (len(text) + 1,) bool array, True at each word's first character, for `name`; None
    for "tokenizer" (its words come with the encodings).

    Raises:
        LlmlabError: an unknown name, or jieba not installed (one line naming the extra).
    """
    if name == "tokenizer":
        return None
    if name != "jieba":
        raise LlmlabError(f"unknown segmenter {name!r}; choose one of: {', '.join(SEGMENTERS)}")
    jieba = require_extra("jieba", "zh", "whole-word masking with the jieba segmenter")
    jieba.setLogLevel(logging.WARNING)  # no "Building prefix dict..." lines on stderr

    def word_starts(text: str) -> np.ndarray:
        starts = np.zeros(len(text) + 1, dtype=bool)
        starts[[start for _, start, _ in jieba.tokenize(text)]] = True
        return starts

    return word_starts


def word_start_array(
    files: list[Path],
    tokenizer: Tokenizer,
    segmenter: str,
    tokens: np.ndarray,
    cache_dir: Path,
    progress: bool = False,
    errors: str = "strict",
) -> np.ndarray:
    """(len(tokens),) bool: True where a token of `token_array(files, tokenizer, ...)` starts a word.

    Args:
        tokens: that token array, which the flags must line up with (checked).
        segmenter: a name of SEGMENTERS.

    Raises:
        LlmlabError: an unknown segmenter or a missing extra; the files changed since `tokens` was built.
    """
    path = cache_path("words", files, tokenizer, cache_dir, errors, segmenter=segmenter)
    cached = load_cached(path)
    if cached is not None and len(cached) == len(tokens):
        return cached
    split = load_segmenter(segmenter)
    if split is None:  # the Python path tracks the pre-tokenizer's words (the compiled core does not)
        tokenizer = copy.deepcopy(tokenizer)
        tokenizer.track_words = True
    eos = tokenizer.token_to_id("<|endoftext|>")
    parts: list[np.ndarray] = []
    ids: list[np.ndarray] = []
    for file in files:
        for lines in line_chunks(file, progress, errors, f"finding words ({segmenter}) in"):
            encs = tokenizer.encode_batch(lines, add_special_tokens=False)
            parts.extend(_line_flags(line, enc, split) for line, enc in zip(lines, encs, strict=True))
            ids.extend(np.asarray(enc.ids, dtype=tokens.dtype) for enc in encs)
        if eos is not None:
            parts.append(np.zeros(1, dtype=bool))  # the separator is a special token: never masked
            ids.append(np.asarray([eos], dtype=tokens.dtype))
    flags = np.concatenate(parts) if parts else np.zeros(0, dtype=bool)
    if not np.array_equal(np.concatenate(ids) if ids else tokens[:0], tokens):
        raise LlmlabError(f"{files[0]}: the text changed since it was tokenized; run again")
    save_cached(path, flags)
    return flags


def _line_flags(line: str, enc: Encoding, split: Callable[[str], np.ndarray] | None) -> np.ndarray:
    """(len(enc),) bool: which tokens of one encoded line start a word."""
    if split is None:
        words = enc.word_ids
        return np.array([i == 0 or w != words[i - 1] for i, w in enumerate(words)], dtype=bool)
    if not enc.offsets:
        return np.zeros(0, dtype=bool)
    spans = np.asarray(enc.offsets, dtype=np.int64).reshape(-1, 2)  # (n, 2): character start, end
    previous_end = np.concatenate([[0], spans[:-1, 1]])
    return split(line)[spans[:, 0]] & (spans[:, 0] >= previous_end)
