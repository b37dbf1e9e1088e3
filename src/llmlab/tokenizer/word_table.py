"""The counted words as the trainers take them: three flat arrays, sized by distinct words, not by corpus.

A `WordTable` holds every distinct word once, in ascending order, as its code points (one uint32 each, the
words one after the other), each word's length and each word's 64-bit count: 4 bytes per character plus 16
per word, where a Python dict of str -> int spends about 100 bytes per word before its characters. It reads
like a dict (`items`, `values`, iteration, `len`) for the trainers that walk words one by one, and hands its
arrays to the BPE trainer directly (`word_arrays`).

`sample` thins the counts for the Unigram trainer, whose EM costs far more per word than BPE's merges: every
word occurrence is kept with probability p = size / total, independently (a binomial draw per distinct word,
seeded), so the sample is an unbiased picture of the corpus at a known size. It is reported, never silent
(sentencepiece's `--input_sentence_size` samples sentences instead; google/sentencepiece #680).
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from operator import itemgetter

import numpy as np

from llmlab.errors import LlmlabError
from llmlab.tokenizer.countfile import MAX_COUNT, CountFile

_BLOCK = 1 << 16


@dataclass(frozen=True, eq=False)
class WordTable:
    """Distinct words, ascending: `codes` (C,) uint32 code points, `lengths` (W,) int64, `counts` (W,) int64."""

    codes: np.ndarray
    lengths: np.ndarray
    counts: np.ndarray

    @classmethod
    def from_items(cls, items: Iterable[tuple[str, int]]) -> WordTable:
        """Build from (word, count) pairs (kept in the order given), a block at a time."""
        codes, lengths, counts = [], [], []
        it = iter(items)
        while block := list(itertools.islice(it, _BLOCK)):
            words, block_counts = zip(*block, strict=True)
            codes.append(np.frombuffer("".join(words).encode("utf-32-le", "surrogatepass"), np.uint32))
            lengths.append(np.fromiter(map(len, words), np.int64, len(words)))
            counts.append(np.array(block_counts, np.int64))
        if not lengths:
            return cls(np.zeros(0, np.uint32), np.zeros(0, np.int64), np.zeros(0, np.int64))
        return cls(np.concatenate(codes), np.concatenate(lengths), np.concatenate(counts))

    @classmethod
    def from_dict(cls, counts: Mapping[str, int]) -> WordTable:
        """The table of a word -> count mapping, sorted."""
        return cls.from_items(sorted(counts.items()))

    def __len__(self) -> int:
        return len(self.lengths)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, WordTable):
            return NotImplemented
        return all(np.array_equal(a, b) for a, b in zip(self.arrays(), other.arrays(), strict=True))

    __hash__ = None  # mutable arrays: not hashable

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(codes, lengths, counts), as the BPE trainer takes them."""
        return self.codes, self.lengths, self.counts

    def __iter__(self) -> Iterator[str]:
        ends = np.cumsum(self.lengths)
        for lo in range(0, len(self), _BLOCK):
            hi = min(lo + _BLOCK, len(self))
            start = int(ends[lo - 1]) if lo else 0
            text = self.codes[start : int(ends[hi - 1])].tobytes().decode("utf-32-le", "surrogatepass")
            cuts = (ends[lo:hi] - start).tolist()
            yield from (text[a:b] for a, b in zip([0, *cuts[:-1]], cuts, strict=True))

    def keys(self) -> Iterator[str]:
        return iter(self)

    def values(self) -> list[int]:
        return self.counts.tolist()

    def items(self) -> Iterator[tuple[str, int]]:
        return zip(self, self.counts.tolist(), strict=True)

    def to_dict(self) -> dict[str, int]:
        return dict(self.items())

    @property
    def total(self) -> int:
        """The number of word occurrences counted (exact: a Python int)."""
        return sum(self.counts.tolist())

    @property
    def nbytes(self) -> int:
        return self.codes.nbytes + self.lengths.nbytes + self.counts.nbytes

    def sample(self, size: int, seed: int = 0) -> WordTable:
        """About `size` word occurrences, each kept with probability size / total (see the module docstring).

        Raises:
            LlmlabError: `size` is not positive.
        """
        if size <= 0:
            raise LlmlabError(f"sample size must be positive, not {size}")
        if size >= self.total:
            return self
        kept = np.random.default_rng(seed).binomial(self.counts, size / self.total)
        keep = kept > 0
        return WordTable(
            self.codes[np.repeat(keep, self.lengths)], self.lengths[keep], kept[keep].astype(np.int64)
        )


def word_arrays(word_counts) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(code points, lengths, counts) of a `WordTable` (as it is) or of a word -> count dict."""
    if isinstance(word_counts, WordTable):
        return word_counts.arrays()
    codes = np.frombuffer("".join(word_counts).encode("utf-32-le", "surrogatepass"), np.uint32)
    lengths = np.fromiter(map(len, word_counts), np.int64, len(word_counts))
    counts = np.fromiter(word_counts.values(), np.int64, len(word_counts))
    return codes, lengths, counts


def merge_sorted(streams: Iterable[Iterable[tuple[str, int]]]) -> Iterator[tuple[str, int]]:
    """Merge streams of (word, count), each ascending by word, into one, summing the counts of equal words.

    Raises:
        LlmlabError: a summed count passes 2^63 - 1.
    """
    for word, group in itertools.groupby(heapq.merge(*streams, key=itemgetter(0)), key=itemgetter(0)):
        count = sum(n for _, n in group)
        if count > MAX_COUNT:
            raise LlmlabError(f"the count of {word!r} ({count}) passes 2^63 - 1")
        yield word, count


def load_counts(paths: Iterable, fingerprint: str) -> WordTable:
    """Sum one or several count files into a table, refusing files made by another pipeline.

    Args:
        paths: count files (`countfile.py`).
        fingerprint: `countfile.pipeline_fingerprint` of the pipeline the model trains with.

    Raises:
        LlmlabError: an unreadable, truncated or corrupt file, another pipeline's file, a sum past 2^63 - 1.
    """
    files = [CountFile(p) for p in paths]
    try:
        for f in files:
            f.check_pipeline(fingerprint)
        return WordTable.from_items(merge_sorted(f.items() for f in files))
    finally:
        for f in files:
            f.close()
