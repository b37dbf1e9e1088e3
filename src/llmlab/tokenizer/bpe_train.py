"""BPE trainer: learn merges from word counts (Sennrich et al. 2016, "Neural Machine Translation of Rare Words
with Subword Units"), as byte-level GPT-2 uses it (Radford et al. 2019) when the words are byte-level mapped.

Reference implementation, matched merge for merge and id for id (tested): Hugging Face `tokenizers`
`BpeTrainer` (tokenizers/src/models/bpe/trainer.rs and word.rs). Its rules, all reproduced here:
- ids: special tokens first (in order), then the alphabet sorted by code point, then, with a
  `continuing_subword_prefix`, each prefix + character in the order the words first show it (HF meets the
  words in hash-map order, so there its ids differ from run to run), then one id per new token;
- the alphabet is every character of the words plus `initial_alphabet`; `limit_alphabet` keeps the most
  frequent (initial_alphabet first; among equal counts the smaller code point, where HF's order is arbitrary);
  characters left out are dropped from the words;
- the pair to merge is the one with the highest count, ties going to the smallest (left id, right id);
- the new token is left + right (right without its prefix); when that string is already a token (two merges
  can build the same string) its id is reused and the vocabulary does not grow; a pair merged twice keeps its
  later rank in the merge list, as HF's merge map does;
- a word is merged left to right, "aaa" with (a, a) giving "aa a";
- counts are updated incrementally and the priority queue is invalidated lazily, with HF's bookkeeping: each
  queue entry carries the words that held the pair when it was queued, and only those words are merged;
- `max_token_length` (in characters) stops a new pair from being counted unless left + right is shorter
  (HF's strict `<`); the first pairs of each word are always counted;
- training stops at `vocab_size`, when no pair is left, or when the best count is below `min_frequency`.

`score="likelihood"` replaces the count by the WordPiece criterion count(ab) / (count(a) * count(b)) of
Schuster & Nakajima (2012), a reconstruction following the description in the Hugging Face course (chapter 6,
"WordPiece tokenization"); HF's trainer has no such option, so there is no reference to match. Merging ab
lowers count(a) and count(b), which *raises* the score of every pair holding a or b, so those pairs are
re-queued after each merge (a lazy queue alone only copes with scores that fall).

Speed: a symbol is one character whose code point is its id, so a word is a short string and a pair a
two-character string, and finding and replacing a pair in a word (`in`, `str.split`, `str.join`; split cuts at
non-overlapping occurrences left to right, just as HF merges) run in C. Each merge visits only the words its
queue entry names; the queue holds plain ints. Counting the words is the caller's job (and, on a few MB of
text, takes about as long as training).
"""

from __future__ import annotations

import gc
import heapq
import itertools
import struct
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

from llmlab.errors import LlmlabError

if TYPE_CHECKING:
    from llmlab.tokenizer.bpe import BPE

_MAX_IDS = 0x110000  # one character per symbol id
_SHIFT, _LOW, _SEQ = 72, (1 << 72) - 1, (1 << 30) - 1  # queue key: -priority | left id | right id | sequence


def train_bpe(
    word_counts: dict[str, int],
    vocab_size: int,
    min_frequency: int = 0,
    special_tokens: Sequence[str] = (),
    initial_alphabet: Iterable[str] = (),
    limit_alphabet: int | None = None,
    continuing_subword_prefix: str | None = None,
    max_token_length: int | None = None,
    score: str = "frequency",
    progress: Callable[[int, int], None] | None = None,
) -> BPE:
    """Learn a BPE model from pre-tokenized word counts.

    Args:
        word_counts: each pre-tokenized word (for byte-level BPE: already byte-level mapped) and its count.
        vocab_size: the size to stop at, special tokens included.
        min_frequency: a pair must occur at least this often to be merged.
        special_tokens: tokens that get the first ids, in this order.
        initial_alphabet: characters to include even if the words lack them (e.g. all 256 byte characters);
            of a longer string only the first character counts, as in HF.
        limit_alphabet: keep at most this many characters, the most frequent.
        continuing_subword_prefix: prefix of every symbol that does not start a word ("##" for WordPiece).
        max_token_length: no new pair is counted unless its token would be shorter than this (None: no limit).
        score: "frequency" (BPE, as HF) or "likelihood" (WordPiece's count(ab) / (count(a) * count(b))).
        progress: called as `progress(merges_done, merges_wanted)` after each merge.

    Returns:
        The trained `BPE` model (with `continuing_subword_prefix` set when given).

    Raises:
        LlmlabError: unknown `score`, or `vocab_size` smaller than the special tokens plus the alphabet.
    """
    from llmlab.tokenizer.bpe import BPE  # bpe.py re-exports this function, so import here

    if score not in ("frequency", "likelihood"):
        raise LlmlabError(f"BPE score must be 'frequency' or 'likelihood', not {score!r}")
    if not 0 < vocab_size < _MAX_IDS:
        raise LlmlabError(f"vocab_size must be between 1 and {_MAX_IDS - 1}, not {vocab_size}")
    alphabet = _alphabet(word_counts, initial_alphabet, limit_alphabet)
    tokens = list(dict.fromkeys([*special_tokens, *alphabet]))
    if vocab_size < len(tokens):
        raise LlmlabError(
            f"vocab_size {vocab_size} is smaller than the {len(special_tokens)} special tokens + "
            f"{len(alphabet)} alphabet characters = {len(tokens)} tokens it must hold"
        )
    vocab = {token: i for i, token in enumerate(tokens)}
    gc_was_on = gc.isenabled()
    gc.disable()  # training makes millions of small acyclic objects; cyclic GC passes over them cost ~15%
    try:
        words = _words_as_symbols(word_counts, vocab, tokens, continuing_subword_prefix)
        pairs = _Pairs(
            words, list(word_counts.values()), len(tokens), max_token_length, score == "likelihood"
        )
        merges = _learn_merges(
            pairs, vocab, tokens, vocab_size, min_frequency, continuing_subword_prefix, progress
        )
        del pairs, words  # freed now by reference counting, before the collector would walk them
        # HF keeps its merges in a map, so a pair merged twice (only when a merge rebuilds an existing token,
        # which real corpora hardly ever do) keeps its last rank
        last = {pair: rank for rank, pair in enumerate(merges)}
        kept = [(tokens[ord(p[0])], tokens[ord(p[1])]) for rank, p in enumerate(merges) if last[p] == rank]
        return BPE(vocab, kept, continuing_subword_prefix=continuing_subword_prefix)
    finally:
        if gc_was_on:
            gc.enable()


def _learn_merges(
    pairs: _Pairs,
    vocab: dict[str, int],
    tokens: list[str],
    vocab_size: int,
    min_frequency: int,
    prefix: str | None,
    progress: Callable[[int, int], None] | None,
) -> list[str]:
    """Merge the best pair until the vocabulary is full or no pair qualifies; the merged pairs, in order."""
    merges: list[str] = []
    wanted = vocab_size - len(tokens)
    while len(vocab) < vocab_size and (best := pairs.pop_best(min_frequency)) is not None:
        pair, pos = best
        new = _add_token(tokens[ord(pair[0])], tokens[ord(pair[1])], prefix, vocab, tokens)
        merges.append(pair)
        pairs.merge(pair, chr(new), pos)
        if progress:
            progress(len(merges), wanted)
    return merges


def _alphabet(word_counts: dict[str, int], initial: Iterable[str], limit: int | None) -> list[str]:
    """Characters of the words (weighted by count) plus `initial`; the `limit` most frequent, by code point."""
    by_count: dict[int, list[str]] = defaultdict(list)
    for word, count in word_counts.items():
        by_count[count].append(word)
    freq: Counter[str] = Counter()
    for count, words in by_count.items():  # few distinct counts, so Counter's C loop does the work
        freq.update({ch: n * count for ch, n in Counter("".join(words)).items()})
    for ch in (s[0] for s in initial if s):  # of a longer string only its first character, as HF
        freq[ch] = float("inf")  # always kept first, as HF's usize::MAX
    kept = list(freq)
    if limit is not None and len(kept) > limit:
        kept = sorted(kept, key=lambda ch: (-freq[ch], ch))[:limit]
    return sorted(kept)


def _words_as_symbols(
    word_counts: dict[str, int], vocab: dict[str, int], tokens: list[str], prefix: str | None
) -> list[str]:
    """Each word as a string of symbols (character chr(id)); characters outside the vocabulary are dropped.

    With a `prefix`, every character but the word's first becomes prefix + character, a token added to the
    vocabulary in the order the words first show it.
    """
    first = {ord(ch): chr(vocab[ch]) if ch in vocab else None for ch in dict.fromkeys("".join(word_counts))}
    if not prefix:
        return [word.translate(first) for word in word_counts]
    rest = dict.fromkeys(itertools.chain.from_iterable(word[1:] for word in word_counts))
    for ch in rest:
        if ch in vocab and prefix + ch not in vocab:
            vocab[prefix + ch] = len(tokens)
            tokens.append(prefix + ch)
    after = {ord(ch): chr(vocab[prefix + ch]) if ch in vocab else None for ch in rest}
    return [word[:1].translate(first) + word[1:].translate(after) for word in word_counts]


def _add_token(left: str, right: str, prefix: str | None, vocab: dict[str, int], tokens: list[str]) -> int:
    """The id of left + right (the right part without its prefix), added to the vocabulary when new."""
    if prefix and right.startswith(prefix):
        right = right[len(prefix) :]
    new = vocab.get(left + right)
    if new is None:
        new = vocab[left + right] = len(tokens)
        tokens.append(left + right)
    return new


class _Pairs:
    """Counts of adjacent symbol pairs in the words, kept up to date as merges rewrite the words, and the
    priority queue of pairs to merge, lazily invalidated: an entry whose priority is out of date is queued
    again with the current one when it reaches the top.

    A queue entry is one int, so the heap compares integers only: -priority, then the pair's two ids, then a
    sequence number (FIFO among equal entries) that finds the pair and the words that held it when queued.
    """

    def __init__(
        self,
        words: list[str],
        counts: list[int],
        n_tokens: int,
        max_token_length: int | None,
        likelihood: bool,
    ):
        self.words, self.counts = words, counts
        self.length = [1] * n_tokens  # characters per token, by id
        self.limit = max_token_length if max_token_length is not None else float("inf")
        self.likelihood = likelihood
        self.count, where = _count_pairs(words, counts)
        self.priority = self.score if likelihood else self.count.__getitem__  # pair -> int, higher is better
        self.seq = itertools.count()
        self.entries: dict[int, tuple[str, list[int]]] = {}  # sequence number -> (pair, words)
        self.where: dict[str, list[int]] = where if likelihood else {}  # likelihood: pair -> all its words
        self.unit = _unit_counts(words, counts, n_tokens) if likelihood else []
        self.partners: dict[str, set[str]] = defaultdict(set)  # likelihood: symbol -> pairs holding it
        for pair in self.count if likelihood else ():
            self.partners[pair[0]].add(pair)
            self.partners[pair[1]].add(pair)
        self.heap: list[int] = []
        for pair, ws in where.items():
            self.push(pair, ws)

    def score(self, pair: str) -> int:
        """Likelihood priority: count(ab) / (count(a) * count(b)) as its IEEE-754 bits, which for positive
        floats order as the floats do; not positive when the pair is gone."""
        n = self.count[pair]
        if n <= 0:
            return n
        return int.from_bytes(struct.pack(">d", n / (self.unit[ord(pair[0])] * self.unit[ord(pair[1])])))

    def push(self, pair: str, ws: list[int]) -> None:
        """Queue `pair` (if it occurs) with the words that hold it."""
        priority = self.priority(pair)
        if priority > 0:
            seq = next(self.seq)
            self.entries[seq] = (pair, ws)
            heapq.heappush(self.heap, -priority << _SHIFT | ord(pair[0]) << 51 | ord(pair[1]) << 30 | seq)

    def pop_best(self, min_frequency: int) -> tuple[str, list[int]] | None:
        """The best pair and the words to merge it in, or None when no pair is left to merge."""
        least = max(1, min_frequency)
        while self.heap:
            key = heapq.heappop(self.heap)
            pair, pos = self.entries[key & _SEQ]
            best = self.priority(pair)
            if best != -(key >> _SHIFT):  # out of date: its count (or score) changed since it was queued
                heapq.heappush(self.heap, -best << _SHIFT | key & _LOW)
                continue
            del self.entries[key & _SEQ]
            if self.count[pair] < least:
                if self.likelihood:
                    continue  # a rarer pair may still score higher; this one's count can only fall
                return None  # HF stops here: no other pair has a higher count
            return pair, pos
        return None

    def merge(self, pair: str, new: str, pos: list[int]) -> None:
        """Replace `pair` by the symbol `new` in the words `pos`; update counts, queue the pairs that appeared."""
        a, b = pair
        if ord(new) == len(self.length):
            self.length.append(self.length[ord(a)] + self.length[ord(b)])
        if self.likelihood:  # the symbol counts change by the number of pairs merged
            merged = sum(self.counts[w] * self.words[w].count(pair) for w in set(pos))
        left, right = _merge_in_words(self.words, pos, pair, new)
        # (pair that lost occurrences, pair that gained them, the neighbour, the words)
        moves = [(o + a, o + new, o, ws) for o, ws in left.items()]
        moves += [(b + o, new + o, o, ws) for o, ws in right.items()]
        count, count_of, length = self.count, self.counts.__getitem__, self.length
        room = self.limit - length[ord(new)]  # HF's max_token_length rule: neighbour + new must be shorter
        fresh: dict[str, list[int]] = {}  # pairs that appeared -> words they appeared in
        for gone, made, other, ws in moves:
            n = sum(map(count_of, ws))
            count[gone] = count.get(gone, 0) - n  # may precede its +n: "abab" gains (ab, a), then loses it
            if length[ord(other)] < room:
                count[made] = count.get(made, 0) + n
                fresh[made] = fresh[made] + ws if made in fresh else ws
        if self.likelihood:
            fresh = self._rescore(pair, new, merged, fresh)
        for made, ws in fresh.items():
            self.push(made, ws)

    def _rescore(self, pair: str, new: str, merged: int, fresh: dict) -> dict[str, list[int]]:
        """Likelihood: update symbol counts; every pair holding a or b now scores higher, so it is queued again."""
        self.unit.extend([0] * (ord(new) + 1 - len(self.unit)))
        self.unit[ord(pair[0])] -= merged
        self.unit[ord(pair[1])] -= merged
        self.unit[ord(new)] += merged
        self.count[pair] = 0  # merged everywhere: drop stale copies (HF would merge them again)
        for made, ws in fresh.items():
            self.where.setdefault(made, []).extend(ws)
            self.partners[made[0]].add(made)
            self.partners[made[1]].add(made)
        return {p: self.where[p] for p in self.partners[pair[0]] | self.partners[pair[1]] | fresh.keys()}


def _count_pairs(words: list[str], counts: list[int]) -> tuple[dict[str, int], dict[str, list[int]]]:
    """Weighted count of every adjacent pair, and for each pair the words that hold it."""
    where: dict[str, list[int]] = defaultdict(list)
    for i, word in enumerate(words):
        for pair in map(str.__add__, word, word[1:]):
            where[pair].append(i)
    count_of = counts.__getitem__
    return {pair: sum(map(count_of, ws)) for pair, ws in where.items()}, dict(where)


def _unit_counts(words: list[str], counts: list[int], size: int) -> list[int]:
    """Weighted count of every symbol (the likelihood score's denominator)."""
    unit = [0] * size
    for word, count in zip(words, counts, strict=True):
        for sym in word:
            unit[ord(sym)] += count
    return unit


def _merge_in_words(
    words: list[str], pos: list[int], pair: str, new: str
) -> tuple[dict[str, list[int]], dict[str, list[int]]]:
    """Replace every `pair` in the words `pos` by `new`, left to right (as HF's `Word::merge`; so does `split`).

    Returns:
        left, right: for each symbol found left (right) of a merged pair, the words, once per occurrence;
            the pair (symbol, a) (or (b, symbol)) lost those occurrences and (symbol, new) (or (new, symbol))
            gained them. As in HF, a right neighbour is taken before the next merge: in "abab" the first ab has
            the right neighbour a, the second the left neighbour ab.
    """
    left: dict[str, list[int]] = defaultdict(list)
    right: dict[str, list[int]] = defaultdict(list)
    for w in [w for w in pos if pair in words[w]]:  # an earlier merge may have taken the pair from a word
        parts = words[w].split(pair)
        if len(parts) == 2:  # the common case, one occurrence
            before, after = parts
            if before:
                left[before[-1]].append(w)
            if after:
                right[after[0]].append(w)
        else:
            last = len(parts) - 2  # index of the last occurrence
            for j, (before, after) in enumerate(itertools.pairwise(parts)):
                if before or j:
                    left[before[-1] if before else new].append(w)
                if after or j < last:
                    right[after[0] if after else pair[0]].append(w)
        words[w] = new.join(parts)
    return left, right
