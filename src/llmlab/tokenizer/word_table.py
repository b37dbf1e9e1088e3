"""The counted words as the trainers take them: three flat arrays, sized by distinct words, not by corpus.

A `WordTable` holds every distinct word once, in ascending order, as its code points (one uint32 each, the
words one after the other), each word's length and each word's 64-bit count: 4 bytes per character plus 16
per word, where a Python dict of str -> int spends about 100 bytes per word before its characters. It reads
like a dict (`items`, `values`, iteration, `len`) for the trainers that walk words one by one, and hands its
arrays to the BPE trainer directly (`word_arrays`).

The arrays are memoryviews (of the compiled counter's memory, of `array.array`s or of numpy arrays): the
compiled path trains without importing numpy (~10 MiB of resident memory, more than training itself adds to
a WordPiece run); the trainers that compute in numpy wrap them, without a copy (`numpy.asarray`).

`sample` thins the counts for the Unigram trainer, whose EM costs far more per word than BPE's merges: every
word occurrence is kept with probability p = size / total, independently (a binomial draw per distinct word,
seeded), so the sample is an unbiased picture of the corpus at a known size. It is reported, never silent
(sentencepiece's `--input_sentence_size` samples sentences instead; google/sentencepiece #680).
"""

from __future__ import annotations

import heapq
import itertools
from array import array
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from operator import itemgetter

from llmlab.errors import LlmlabError
from llmlab.tokenizer.countfile import MAX_COUNT, CountFile

_BLOCK = 1 << 16
_KINDS = {"I": "IL", "q": "ql"}  # the array's item type -> the buffer formats of that size taken for it


@dataclass(frozen=True, eq=False)
class WordTable:
    """Distinct words, ascending: `codes` (C,) uint32 code points, `lengths` (W,) int64, `counts` (W,) int64.

    Built from any 1-D buffers of these item types (kept as memoryviews, without a copy).

    Raises:
        LlmlabError: an array of another shape or item type.
    """

    codes: memoryview
    lengths: memoryview
    counts: memoryview

    def __post_init__(self) -> None:
        for name, kind in (("codes", "I"), ("lengths", "q"), ("counts", "q")):
            view = memoryview(getattr(self, name))
            size = array(kind).itemsize
            if view.ndim != 1 or view.itemsize != size or view.format.lstrip("@=<") not in _KINDS[kind]:
                raise LlmlabError(
                    f"WordTable: {name} must be a 1-D array of {8 * size}-bit integers (format {view.format!r})"
                )
            object.__setattr__(self, name, view.cast("B").cast(kind))

    @classmethod
    def from_items(cls, items: Iterable[tuple[str, int]]) -> WordTable:
        """Build from (word, count) pairs (kept in the order given), a block at a time."""
        codes, lengths, counts = array("I"), array("q"), array("q")
        it = iter(items)
        while block := list(itertools.islice(it, _BLOCK)):
            words, block_counts = zip(*block, strict=True)
            codes.frombytes("".join(words).encode("utf-32-le", "surrogatepass"))
            lengths.extend(map(len, words))
            counts.extend(block_counts)
        return cls(codes, lengths, counts)

    @classmethod
    def from_dict(cls, counts: Mapping[str, int]) -> WordTable:
        """The table of a word -> count mapping, sorted."""
        return cls.from_items(sorted(counts.items()))

    def __len__(self) -> int:
        return len(self.lengths)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, WordTable):
            return NotImplemented
        return all(a == b for a, b in zip(self.arrays(), other.arrays(), strict=True))

    __hash__ = None  # mutable arrays: not hashable

    def arrays(self) -> tuple[memoryview, memoryview, memoryview]:
        """(codes, lengths, counts), as the BPE trainer takes them."""
        return self.codes, self.lengths, self.counts

    def __iter__(self) -> Iterator[str]:
        start = 0
        for lo in range(0, len(self), _BLOCK):
            cuts = list(itertools.accumulate(self.lengths[lo : lo + _BLOCK].tolist(), initial=0))
            text = self.codes[start : start + cuts[-1]].tobytes().decode("utf-32-le", "surrogatepass")
            start += cuts[-1]
            yield from (text[a:b] for a, b in itertools.pairwise(cuts))

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
        import numpy as np  # here: the compiled trainers run without numpy

        if size <= 0:
            raise LlmlabError(f"sample size must be positive, not {size}")
        if size >= self.total:
            return self
        codes, lengths, counts = map(np.asarray, self.arrays())
        kept = np.random.default_rng(seed).binomial(counts, size / self.total)
        keep = kept > 0
        return WordTable(codes[np.repeat(keep, lengths)], lengths[keep], kept[keep].astype(np.int64))


def word_arrays(word_counts) -> tuple[memoryview, memoryview, memoryview]:
    """(code points, lengths, counts) of a `WordTable` (as it is) or of a word -> count dict."""
    if isinstance(word_counts, WordTable):
        return word_counts.arrays()
    codes = array("I", "".join(word_counts).encode("utf-32-le", "surrogatepass"))
    lengths, counts = array("q", map(len, word_counts)), array("q", word_counts.values())
    return WordTable(codes, lengths, counts).arrays()


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
