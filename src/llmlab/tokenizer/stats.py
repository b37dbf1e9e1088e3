"""How well a tokenizer compresses text: tokens per word and per character, unknown rate, vocabulary usage.

Fewer tokens per character means shorter sequences for the model (the usual compression measure, e.g. in
Kudo & Richardson 2018 and the tokenizer comparisons of Rust et al. 2021); the [UNK] rate says how much text
the tokenizer cannot represent at all; vocabulary usage says how much of the vocabulary a held-out text
actually touches. Special tokens are not counted.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from llmlab.tokenizer.pipeline import Tokenizer


@dataclass(frozen=True)
class SegmentationStats:
    """Counts over a text; the ratios are properties."""

    tokens: int
    chars: int
    words: int
    unknown: int
    distinct_ids: int
    vocab_size: int

    @property
    def tokens_per_word(self) -> float:
        return self.tokens / max(self.words, 1)

    @property
    def tokens_per_char(self) -> float:
        return self.tokens / max(self.chars, 1)

    @property
    def unk_rate(self) -> float:
        return self.unknown / max(self.tokens, 1)

    @property
    def vocab_usage(self) -> float:
        return self.distinct_ids / max(self.vocab_size, 1)


def unknown_id(tok: Tokenizer) -> int | None:
    """The id of the model's unknown token, or None for a model that has none (byte-level BPE)."""
    model = tok.model
    if getattr(model, "unk_id", None) is not None:
        return model.unk_id
    unk = getattr(model, "unk_token", None)
    return tok.token_to_id(unk) if unk else None


def segmentation_stats(tok: Tokenizer, lines: Iterable[str], batch_size: int = 1000) -> SegmentationStats:
    """Encode `lines` (no special tokens) and count tokens, characters, words, unknowns and distinct ids."""
    unk = unknown_id(tok)
    tokens = chars = words = unknown = 0
    seen: set[int] = set()
    batch: list[str] = []
    for line in [*lines, None]:
        if line is not None:
            batch.append(line)
            chars += len(line)
            words += len(line.split())
        if batch and (line is None or len(batch) == batch_size):
            for enc in tok.encode_batch(batch, add_special_tokens=False):
                tokens += len(enc.ids)
                unknown += enc.ids.count(unk) if unk is not None else 0
                seen.update(enc.ids)
            batch = []
    return SegmentationStats(tokens, chars, words, unknown, len(seen), tok.vocab_size)
