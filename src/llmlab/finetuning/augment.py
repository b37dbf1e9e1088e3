"""Easy Data Augmentation (EDA) for text classification, applied on the fly, seeded.

Paper: Wei & Zou (2019), "EDA: Easy Data Augmentation Techniques for Boosting Performance on Text
Classification Tasks"; reference implementation jasonwei20/eda_nlp `code/eda.py` (random_deletion,
random_swap, random_insertion). With rate α and n words:
- delete: each word is dropped with probability α; if every word would go, one random word stays;
- swap:   max(1, int(α·n)) times, two random positions trade words (the length is unchanged);
- insert: max(1, int(α·n)) times, a word is inserted at a random position (the length grows by that many).
Deviation: EDA inserts a WordNet synonym of a random word; we insert a copy of a random word of the same text
(no lexicon, and it works for every language). Words are whitespace-separated tokens; a text without spaces
(Chinese, Japanese) is split into characters and joined back without spaces. α = 0 is the identity.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

OPS = ("delete", "swap", "insert")


def words_of(text: str) -> tuple[list[str], str]:
    """The units EDA edits and the separator that joins them back: words and " ", or characters and ""."""
    words = text.split()
    return (words, " ") if len(words) > 1 else (list(text.strip()), "")


def random_deletion(words: list[str], rate: float, rng: random.Random) -> list[str]:
    """Drop each word with probability `rate`; never return an empty list for a non-empty input."""
    if rate <= 0 or not words:
        return list(words)
    kept = [w for w in words if rng.random() >= rate]
    return kept or [words[rng.randrange(len(words))]]


def random_swap(words: list[str], rate: float, rng: random.Random) -> list[str]:
    """Swap two random positions max(1, int(rate·n)) times."""
    words = list(words)
    if rate <= 0 or len(words) < 2:
        return words
    for _ in range(max(1, int(rate * len(words)))):
        i = rng.randrange(len(words))
        j = rng.randrange(len(words))
        words[i], words[j] = words[j], words[i]
    return words


def random_insertion(words: list[str], rate: float, rng: random.Random) -> list[str]:
    """Insert a copy of a random word at a random position, max(1, int(rate·n)) times."""
    words = list(words)
    if rate <= 0 or not words:
        return words
    for _ in range(max(1, int(rate * len(words)))):
        words.insert(rng.randrange(len(words) + 1), words[rng.randrange(len(words))])
    return words


_APPLY = {"delete": random_deletion, "swap": random_swap, "insert": random_insertion}


def augment(text: str, rate: float, ops: Sequence[str], rng: random.Random) -> str:
    """One EDA operation, drawn uniformly from `ops`, applied to `text` at `rate`.

    Args:
        text: the input text.
        rate: EDA's α in [0, 1]; 0 returns the text unchanged.
        ops: names from OPS.
        rng: the random source (seed it for reproducible augmentation).

    Returns:
        The augmented text.
    """
    if rate <= 0 or not ops:
        return text
    words, sep = words_of(text)
    op = ops[rng.randrange(len(ops))]
    return sep.join(_APPLY[op](words, rate, rng))


def example_rng(seed: int, epoch: int, index: int) -> random.Random:
    """The random source of one training example in one epoch: the same on every run and after a resume."""
    return random.Random(f"eda:{seed}:{epoch}:{index}")


def check_ops(ops: Sequence[str]) -> str | None:
    """A one-line problem with an augmentation op list, or None."""
    unknown = [op for op in ops if op not in OPS]
    return f"unknown augmentation ops {unknown}; choose from {', '.join(OPS)}" if unknown else None
