"""The corpus of the Unigram trainer (`trainer.py`) as one array, and the seed pieces found by a suffix sort.

Reference: sentencepiece `src/unigram_model_trainer.cc` (`MakeSeedSentencePieces`) and
`src/trainer_interface.cc` (required characters, `IsValidSentencePiece`):
1. Required characters: the most frequent characters that together cover `character_coverage` of all
   characters. The others are unknown: no piece holds them and the lattice gives them an unknown node.
2. Seeds: every required character, plus the `seed_size` best substrings by frequency x length among those
   that branch (are followed by two different characters somewhere: the internal nodes of the suffix tree
   that sentencepiece walks; here a substring that ends a word and occurs twice counts too, as in running
   text different words follow it) and are valid pieces: at most `max_piece_length` characters, '▁' only
   first, one Unicode script (Hiragana and Katakana count as Han). Initial score: log(score / total).

Layout: every word is laid out once in one array of code points, a separator after each, so a lattice node is
a position in that array and an edge is one occurrence of one piece. A suffix sort of the array (prefix
doubling in numpy, or compiled: `_core/unigram_seeds.cpp`) yields the seeds with all their occurrences, so the
edges are built once, here, and the lattice only filters them as pieces die.

Deviations: words over 1,024 characters are cut into chunks (sentencepiece skips sentences over 4,192 bytes);
Unicode scripts come from `unicodedata` names.
"""

from __future__ import annotations

import unicodedata
from collections import Counter

import numpy as np

from llmlab.errors import LlmlabError
from llmlab.tokenizer import core
from llmlab.tokenizer.word_table import WordTable, word_arrays

MAX_CHUNK = 1024  # training cuts longer words into chunks of this many characters
_BLOCK = 1 << 18  # edges per numpy step where a step over all of them would copy them
_HAN = ("CJK", "HIRAGANA", "KATAKANA")  # name prefixes of the scripts sentencepiece counts as Han


class Corpus:
    """Every distinct word (chunk) once, in one array of code points with a separator (-1) after each word.

    Node p of every lattice is position p of the array: word w runs from `start[w]` to `end[w]`, its separator.
    """

    def __init__(self, word_counts: dict[str, int] | WordTable):
        codes, lengths, count = _chunked(word_counts)
        if not len(lengths):
            raise LlmlabError("Unigram trainer: no words to train on")
        self.count = count.astype(float)
        self.end = np.cumsum(lengths + 1) - 1
        self.start = self.end - lengths
        words = np.arange(len(lengths), dtype=np.int32)
        self.word_of = np.repeat(words, lengths + 1)  # (T,) each node's word
        letters = np.ones(len(self.word_of), bool)
        letters[self.end] = False
        self.codes = np.full(len(self.word_of), ord(" "), np.int32)  # code points fit 21 bits
        self.codes[letters] = codes
        self.text = self.codes.tobytes().decode("utf-32-le", "surrogatepass")  # the piece at node p of length
        self.codes[self.end] = -1  # n is text[p : p + n]; each word ends in a separator (-1, ' ' in the text)

    def require(self, coverage: float, max_len: int) -> list[tuple[str, float]]:
        """Choose the required characters; set `char` (piece id of each node's character, -1 unknown) and `room`.

        Returns:
            (character, count) of the required characters, most frequent first (ties: by code point).
        """
        uniq, inverse = _distinct(self.codes)
        counts = np.bincount(inverse, self.count[self.word_of])
        total, covered, required = counts[uniq >= 0].sum(), 0.0, []
        for i in np.lexsort((uniq, -counts)):
            if uniq[i] >= 0 and covered < coverage * total:
                covered += counts[i]
                required.append(i)
        piece_of = np.full(len(uniq), -1, np.int32)
        piece_of[required] = np.arange(len(required))
        self.char = piece_of[inverse]
        self.room = self._room(uniq, inverse, max_len)
        return [(chr(uniq[i]), float(counts[i])) for i in required]

    def _room(self, uniq: np.ndarray, inverse: np.ndarray, max_len: int) -> np.ndarray:
        """(T,) the longest valid piece starting at each node: known characters of one script, '▁' only first.

        Node-sized arrays are int32 (positions fit: see `seeds`), as they are the corpus's largest."""
        names: dict[str, int] = {}
        table = [names.setdefault(_script(chr(c)), len(names)) if c >= 0 else -1 for c in uniq]
        script = np.array(table, np.int32)[inverse]
        space, known = self.codes == ord("▁"), self.char >= 0
        script[space | ~known] = -1
        node = np.arange(len(script), dtype=np.int32)
        if "Inherited" in names:  # a combining mark takes the script of the character before it
            marks = script == names["Inherited"]
            script = script[np.maximum.accumulate(np.where(marks, np.int32(0), node))]
        after = np.append(script[1:], np.int32(-1))
        grows = (after >= 0) & ((script == after) | (space & known))  # the piece at p can take in p + 1
        del script, after
        stop = np.where(grows, np.int32(len(grows)), node)
        stop = np.minimum.accumulate(stop[::-1])[::-1]  # the first node at or after p that cannot grow
        stop -= node
        return np.where(known, np.minimum(stop + 1, max_len), 0).astype(np.int32, copy=False)


def _chunked(word_counts: dict[str, int] | WordTable) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The words cut into chunks of MAX_CHUNK characters, equal chunks summed, words counted 0 dropped, as
    (code points, lengths, counts) (`word_table.word_arrays`): a `WordTable` without long words as it is."""
    if isinstance(word_counts, WordTable):
        codes, lengths, counts = map(np.asarray, word_counts.arrays())
        if lengths.max(initial=0) <= MAX_CHUNK and (counts > 0).all():
            return codes, lengths, counts
    merged: Counter[str] = Counter()
    for word, count in word_counts.items():
        for i in range(0, len(word) if count > 0 else 0, MAX_CHUNK):
            merged[word[i : i + MAX_CHUNK]] += count
    return tuple(map(np.asarray, word_arrays(merged)))


def _script(ch: str) -> str:
    """The Unicode script of a character, approximated from its name: 'LATIN', 'Han', 'Common', ..."""
    if unicodedata.category(ch)[0] not in "LM":
        return "Common"  # digits, punctuation, symbols, spaces
    first = unicodedata.name(ch, "").removeprefix("FULLWIDTH ").removeprefix("HALFWIDTH ").split(" ")[0]
    if first.startswith(_HAN):
        return "Han"
    return {"COMBINING": "Inherited", "MODIFIER": "Common", "": "Common"}.get(first, first)


def _distinct(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """np.unique(codes, return_inverse=True) of code points (and -1), by counting rather than sorting."""
    present = np.bincount(codes + 1)  # -1 first
    uniq = (np.flatnonzero(present) - 1).astype(codes.dtype)
    index = np.zeros(len(present), np.int32)
    index[uniq + 1] = np.arange(len(uniq))
    return uniq, index[codes + 1]


def _dense_rank(values: np.ndarray) -> np.ndarray:
    """Each value's rank among the distinct values (np.unique's inverse), as int32."""
    order = np.argsort(values)
    ordered = values[order]
    rank = np.empty(len(values), np.int32)
    rank[order] = np.cumsum(np.concatenate([[False], ordered[1:] != ordered[:-1]]), dtype=np.int32)
    return rank


def _suffix_order(codes: np.ndarray, depth: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """Positions sorted by their first `depth` characters, by prefix doubling.

    Returns:
        the sorted positions, and per level j the ranks of the 2**j characters from each position (equal ranks,
        equal strings), padded with -1 past the end.
    """
    rank = _dense_rank(codes)
    ranks, k = [rank], 1
    while k < depth:
        after = np.full(len(rank), -1, np.int64)
        after[:-k] = rank[k:]
        rank = _dense_rank(rank.astype(np.int64) * (int(rank.max()) + 2) + after + 1)
        ranks.append(rank)
        k *= 2
    padding = np.full(2 * k, -1, np.int32)
    return np.argsort(rank, kind="stable").astype(np.int32), [np.append(r, padding) for r in ranks]


def _sorted_suffixes(corpus: Corpus, depth: int) -> tuple[np.ndarray, np.ndarray]:
    """The positions where a piece of 2+ characters can start, sorted by their first `depth` characters (and
    then by position), and the common prefix of each with the one before (0 for the first).

    Compiled where the core is built (`_core/unigram_seeds.cpp`: the same order and prefixes, tested).
    """
    keep = corpus.room >= 2
    if core.available():
        from llmlab.tokenizer._corelib import sorted_suffixes

        width = 1 << max(depth - 1, 0).bit_length()  # as many characters as the prefix doubling compares
        return sorted_suffixes(corpus.codes, keep, width)
    sa, ranks = _suffix_order(corpus.codes, depth)
    sa = sa[keep[sa]]
    lcp = np.zeros(len(sa), np.int32)
    lcp[1:] = _lcp(sa[:-1], sa[1:], ranks)
    return sa, lcp


def _lcp(a: np.ndarray, b: np.ndarray, ranks: list[np.ndarray]) -> np.ndarray:
    """The length of the common prefix of the strings at positions a and b (binary lifting over the ranks)."""
    lcp = np.zeros(len(a), np.int32)
    for j in reversed(range(len(ranks))):
        lcp += (ranks[j][a + lcp] == ranks[j][b + lcp]) * np.int32(1 << j)
    return lcp


def ranges(lo: np.ndarray, hi: np.ndarray, dtype=np.int64) -> tuple[np.ndarray, np.ndarray]:
    """Every integer of the ranges [lo[i], hi[i]): (the range i of each, the integers), as `dtype`."""
    counts = hi - lo
    which = np.repeat(np.arange(len(lo), dtype=dtype), counts)
    starts = (np.cumsum(counts) - counts - lo).astype(dtype)
    integers = np.arange(counts.sum(), dtype=dtype)
    for lo in range(0, len(integers), _BLOCK):  # in place, a block at a time: see `_take`
        integers[lo : lo + _BLOCK] -= starts[which[lo : lo + _BLOCK]]
    return which, integers


def _take(values: np.ndarray, index: np.ndarray, out: np.ndarray) -> None:
    """out[:] = values[index] (index -1: the last value), a block at a time: the seeds' edges are the trainer's
    largest arrays, and numpy would first make an int64 copy of a whole int32 index."""
    for lo in range(0, len(index), _BLOCK):
        np.take(values, index[lo : lo + _BLOCK], out=out[lo : lo + _BLOCK], mode="wrap")  # (unbuffered)


class Pieces:
    """The seed pieces: the required characters, then substrings of the corpus text, made into strings only
    when asked for (a corpus has up to a million seeds, and most die)."""

    def __init__(self, chars: list[str], text: str, starts: np.ndarray, lengths: np.ndarray):
        self.chars, self.text, self.starts = chars, text, starts
        self.lengths = np.concatenate([np.ones(len(chars), np.int64), lengths])  # characters per piece

    def __len__(self) -> int:
        return len(self.lengths)

    def __getitem__(self, i: int) -> str:
        if i < len(self.chars):
            return self.chars[i]
        start = int(self.starts[i - len(self.chars)])
        return self.text[start : start + int(self.lengths[i])]


def seeds(corpus: Corpus, required: list[tuple[str, float]], max_len: int, seed_size: int):
    """Seed pieces: the required characters, then the best branching substrings, and all their occurrences.

    Returns:
        the pieces, their log probabilities, a node where each occurs, and the edges [src, dst, piece] of all
        occurrences, piece -1 for an unknown character.
    """
    sa, lcp = _sorted_suffixes(corpus, max_len + 1)
    length, first, last, score = _branching(corpus, sa, lcp, max_len)
    best = np.argsort(-score, kind="stable")[:seed_size]
    length, first, last, score = length[best], first[best], last[best], score[best]
    pieces = Pieces([c for c, _ in required], corpus.text, sa[first], length)
    scores = np.concatenate([[n for _, n in required], score])
    nodes = np.flatnonzero(corpus.codes >= 0).astype(np.int32)
    ids, seen = np.unique(corpus.char[nodes], return_index=True)
    reps = np.concatenate([nodes[seen[ids >= 0]], sa[first]]).astype(np.int64)
    # every occurrence of every seed, int32 (4 bytes an edge), each array filled in place: at most three
    # edge-sized arrays at a time
    seed, member = ranges(first, last, np.int32)
    src, piece = np.empty(len(nodes) + len(seed), np.int32), np.empty(len(nodes) + len(seed), np.int32)
    src[: len(nodes)], piece[: len(nodes)] = nodes, corpus.char[nodes]
    _take(sa, member, src[len(nodes) :])
    del member
    np.add(seed, np.int32(len(required)), out=piece[len(nodes) :])
    del seed
    dst = np.empty(len(src), np.int32)
    _take(np.append(pieces.lengths, 1).astype(np.int32), piece, dst)  # an unknown character (-1) is 1 long
    dst += src
    return pieces, np.log(scores / scores.sum()), reps, [src, dst, piece]


def _branching(corpus: Corpus, sa: np.ndarray, lcp: np.ndarray, max_len: int):
    """Every valid branching substring of 2+ characters: (length, first, last, frequency x length), where
    sa[first:last] are the positions where it occurs.

    Compiled where the core is built (`_core/unigram_seeds.cpp` `branching`: the same arrays, tested).
    """
    weight = corpus.count[corpus.word_of[sa]]
    if core.available():
        from llmlab.tokenizer._corelib import branching

        to_end = corpus.end[corpus.word_of[sa]] - sa  # characters from each suffix to the end of its word
        return branching(lcp, weight, to_end.astype(np.int64), corpus.room[sa], max_len)
    found = [(np.zeros(0, np.int64),) * 3 + (np.zeros(0),)]
    for length in range(2, max_len + 1 if len(sa) else 2):
        first = np.flatnonzero(lcp < length)  # sa[first:last] share a string of `length` characters
        last = np.append(first[1:], len(sa))
        freq = np.add.reduceat(weight, first)
        branches = np.logical_or.reduceat(lcp == length, first)  # two different next characters
        ends_word = corpus.end[corpus.word_of[sa[first]]] - sa[first] == length  # (sorted first in its group)
        ok = (branches | (ends_word & (freq >= 2))) & (corpus.room[sa[first]] >= length)
        found.append((np.full(ok.sum(), length), first[ok], last[ok], freq[ok] * length))
    return (np.concatenate(f) for f in zip(*found, strict=True))
