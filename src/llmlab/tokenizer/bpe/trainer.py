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

Two merge loops, the same merges (tested: hypothesis on random corpora with every option, HF parity on both):
- compiled (`_core/bpe_trainer.cpp`, used when the core is built and the score is "frequency"): HF's own
  layout, each word an array of symbol ids merged in place, each queue entry the list of words to merge
  (varint-coded), counts in a hash table by pair; it takes a `WordTable`'s arrays as they are. Its state is
  sized by distinct words and pairs, whatever the corpus size: on the train splits of gutenberg_en and
  zh_classic_novels (46k and 171k distinct byte-level words), 141 and 396 bytes per distinct word at vocab 8k,
  181 and 407 at 32k. The core also counts the characters for the alphabet (`_char_counts`): this path never
  imports numpy (~10 MiB of resident memory, more than a WordPiece training adds);
- Python, the readable reference and the fallback (HF's bookkeeping, laid out for Python): the words are
  linked lists of symbol ids in numpy arrays (`words.py`); every pair that appears gets a slot holding its
  count and its positions (`pairs.py`), so a merge visits only the occurrences its queue entry names and
  changes counts by slot. Merges with few occurrences run in a Python loop, the large ones (early merges of
  byte-level Chinese, whose "words" are whole clauses) in numpy steps; pairs too rare to be merged soon never
  enter the heap.
Counting the words is the caller's job.
"""

from __future__ import annotations

import gc
from array import array
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, NamedTuple

from llmlab.errors import LlmlabError
from llmlab.tokenizer import core
from llmlab.tokenizer.bpe.model import BPE
from llmlab.tokenizer.word_table import WordTable, word_arrays

if TYPE_CHECKING:  # (numpy, words.py and pairs.py: the Python merge loop's, imported when it runs)
    from llmlab.tokenizer.bpe.pairs import Queue
    from llmlab.tokenizer.bpe.words import Words

ID_BITS, ID_MASK = 21, (1 << 21) - 1  # a merged pair's key: left id << ID_BITS | right id (the core's too)
_MAX_IDS = 1 << ID_BITS
BATCH = 32  # merges with at least this many positions to visit take numpy steps
BLOCK_WORDS = 1 << 16  # words per step when counting characters


def train_bpe(
    word_counts: dict[str, int] | WordTable,
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
        word_counts: each pre-tokenized word (for byte-level BPE: already byte-level mapped) and its count,
            as a dict or a `WordTable` (whose arrays are used as they are).
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
    if score not in ("frequency", "likelihood"):
        raise LlmlabError(f"BPE score must be 'frequency' or 'likelihood', not {score!r}")
    if not 0 < vocab_size < _MAX_IDS:
        raise LlmlabError(f"vocab_size must be between 1 and {_MAX_IDS - 1}, not {vocab_size}")
    codes, lengths, counts = word_arrays(word_counts)
    chars = _char_counts(codes, lengths, counts)
    alphabet = _alphabet(chars, initial_alphabet, limit_alphabet)
    tokens = list(dict.fromkeys([*special_tokens, *alphabet]))
    if vocab_size < len(tokens):
        raise LlmlabError(
            f"vocab_size {vocab_size} is smaller than the {len(special_tokens)} special tokens + "
            f"{len(alphabet)} alphabet characters = {len(tokens)} tokens it must hold"
        )
    vocab = {token: i for i, token in enumerate(tokens)}
    tables = _id_tables(chars, vocab, tokens, continuing_subword_prefix)
    options = (vocab_size, min_frequency, continuing_subword_prefix, max_token_length, progress)
    if score == "frequency" and core.available():
        merges = _learn_merges_core((codes, lengths, counts), tables, vocab, tokens, *options)
    else:
        merges = _learn_merges_python((codes, lengths, counts), tables, vocab, tokens, score, *options)
    # HF keeps its merges in a map, so a pair merged twice (only when a merge rebuilds an existing token,
    # which real corpora hardly ever do) keeps its last rank
    last = {pair: rank for rank, pair in enumerate(merges)}
    kept = [(tokens[p >> ID_BITS], tokens[p & ID_MASK]) for rank, p in enumerate(merges) if last[p] == rank]
    return BPE(vocab, kept, continuing_subword_prefix=continuing_subword_prefix)


def _alphabet(chars: Chars, initial: Iterable[str], limit: int | None) -> list[str]:
    """Characters of the words (`_char_counts`) plus `initial`; the `limit` most frequent, by code point."""
    freq = dict(zip(map(chr, chars.codes), chars.weights, strict=True))
    for ch in (s[0] for s in initial if s):  # of a longer string only its first character, as HF
        freq[ch] = float("inf")  # always kept first, as HF's usize::MAX
    kept = list(freq)
    if limit is not None and len(kept) > limit:
        kept = sorted(kept, key=lambda ch: (-freq[ch], ch))[:limit]
    return sorted(kept)


class Chars(NamedTuple):
    """The characters of the words: code points ascending, each one's count (the counts of the words holding
    it, summed) and where it first comes after a word's first character (an index into the code points, -1:
    never)."""

    codes: list[int]
    weights: list[float]
    later: list[int]


def _char_counts(codes, lengths, counts) -> Chars:
    """The `Chars` of the words, on the core (`char_counts`) or in numpy, a block of words at a time (so that
    no array per character is made)."""
    if core.available():
        return Chars(*(view.tolist() for view in core._corelib.char_counts(codes, lengths, counts)))
    import numpy as np

    codes, lengths, counts = map(np.asarray, (codes, lengths, counts))
    total = np.zeros(int(codes.max(initial=0)) + 1)
    ends = np.cumsum(lengths)
    for lo in range(0, len(lengths), BLOCK_WORDS):
        hi = min(lo + BLOCK_WORDS, len(lengths))
        start = int(ends[lo] - lengths[lo])
        weights = np.repeat(counts[lo:hi], lengths[lo:hi])
        total += np.bincount(codes[start : int(ends[hi - 1])], weights, len(total))
    is_later = np.ones(len(codes), bool)
    is_later[(ends - lengths)[lengths > 0]] = False
    at = np.flatnonzero(is_later)
    rest, where = np.unique(codes[at], return_index=True)
    later = np.full(len(total), -1)
    later[rest] = at[where]
    seen = np.flatnonzero(np.bincount(codes))
    return Chars(seen.tolist(), total[seen].tolist(), later[seen].tolist())


def _id_tables(
    chars: Chars, vocab: dict[str, int], tokens: list[str], prefix: str | None
) -> tuple[array, array]:
    """Code point -> symbol id (int32; -1 or past the end: not in the vocabulary, dropped from the words) for the
    first character of a word and for the others.

    With a `prefix`, every character but the word's first becomes prefix + character, a token added to the
    vocabulary in the order the words first show it.
    """
    first = {ord(t): i for t, i in vocab.items() if len(t) == 1}
    if not prefix:
        table = _code_table(first, max(first, default=-1) + 1)
        return table, table
    shown = sorted((at, code) for code, at in zip(chars.codes, chars.later, strict=True) if at >= 0)
    later = [chr(code) for _, code in shown]  # in the order the words first show them
    for ch in later:
        if ch in vocab and prefix + ch not in vocab:
            vocab[prefix + ch] = len(tokens)
            tokens.append(prefix + ch)
    rest = {ord(ch): vocab[prefix + ch] for ch in later if ch in vocab}
    size = max([*first, *rest], default=-1) + 1
    return _code_table(first, size), _code_table(rest, size)


def _code_table(ids: dict[int, int], size: int) -> array:
    """An int32 array of `size` code points -> id, -1 where `ids` has none."""
    table = array("i", [-1]) * size
    for code, i in ids.items():
        table[code] = i
    return table


def _symbols(codes, lengths, tables):
    """The words as symbol ids, one word after the other (characters outside the vocabulary dropped), and each
    word's new length (numpy arrays)."""
    import numpy as np

    codes, lengths = np.asarray(codes), np.asarray(lengths)
    first = np.zeros(len(codes), bool)
    first[(np.cumsum(lengths) - lengths)[lengths > 0]] = True
    looked_up = []
    for table in tables:  # a code point past the table's end is dropped (the -1 appended)
        table = np.append(np.asarray(table, np.int32), np.int32(-1))
        looked_up.append(table[np.minimum(codes, len(table) - 1)])
    ids = np.where(first, *looked_up)
    kept = ids >= 0
    word = np.repeat(np.arange(len(lengths)), lengths)
    return ids[kept], np.bincount(word[kept], minlength=len(lengths))


def _learn_merges_core(words, tables, vocab, tokens, vocab_size, min_frequency, prefix, max_len, progress):
    """The compiled merge loop (_core/bpe_trainer.cpp, proven equal to `_learn_merges_python`): the merged
    pairs, in order; the tokens it made are added to `vocab` and `tokens`."""
    from llmlab.tokenizer._corelib import learn_bpe_merges

    merges, made, _ = learn_bpe_merges(
        *words, *tables, tokens, vocab_size, min_frequency, prefix or "", -1 if max_len is None else max_len,
        progress,
    )  # fmt: skip
    vocab.update((token, len(tokens) + i) for i, token in enumerate(made))
    tokens.extend(made)
    return merges


def _learn_merges_python(
    words, tables, vocab, tokens, score, vocab_size, min_frequency, prefix, max_token_length, progress
) -> list[int]:
    """The merge loop in Python (the reference): the merged pairs, in order."""
    import numpy as np

    from llmlab.tokenizer.bpe.pairs import Queue
    from llmlab.tokenizer.bpe.words import Words

    gc_was_on = gc.isenabled()
    gc.disable()  # training makes millions of small acyclic objects; cyclic GC passes over them cost ~15%
    try:
        codes, lengths, counts = words
        words = Words(*_symbols(codes, lengths, tables), np.asarray(counts))
        units = words.symbol_counts(len(tokens)) if score == "likelihood" else []
        queue = Queue(words.count_pairs(), score == "likelihood", units)
        return _learn_merges(
            words, queue, vocab, tokens, vocab_size, min_frequency, prefix, max_token_length, progress
        )  # fmt: skip
    finally:
        if gc_was_on:
            gc.enable()


def _learn_merges(
    words: Words,
    queue: Queue,
    vocab: dict[str, int],
    tokens: list[str],
    vocab_size: int,
    min_frequency: int,
    prefix: str | None,
    max_token_length: int | None,
    progress: Callable[[int, int], None] | None,
) -> list[int]:
    """Merge the best pair until the vocabulary is full or no pair qualifies; the merged pairs, in order."""
    import numpy as np

    merges: list[int] = []
    wanted = vocab_size - len(tokens)
    length = None if max_token_length is None else np.ones(max(len(tokens), vocab_size) + 1, np.int64)
    rebuilt: set[int] = set()  # ids that two merges have built
    while len(vocab) < vocab_size and (slot := queue.pop_best(min_frequency)) is not None:
        key = queue.table.key_mv[slot]
        a, b = key >> ID_BITS, key & ID_MASK
        fresh = len(tokens)
        new = _add_token(tokens[a], tokens[b], prefix, vocab, tokens)
        merges.append(key)
        if new == fresh and length is not None:
            length[new] = length[a] + length[b]  # characters per token, by id
        elif new != fresh:  # an existing token: its pairs can now be made twice
            rebuilt.add(new)
            queue.table.rebuilt()
        rule = None if length is None else (length, max_token_length - length[new])
        _merge(words, queue, slot, (a, b, new), rule, rebuilt)
        if progress:
            progress(len(merges), wanted)
    return merges


def _merge(
    words: Words, queue: Queue, slot: int, pair: tuple[int, int, int], rule, rebuilt: set[int]
) -> None:
    """Merge the slot's pair (a, b) into `new` where it appeared; count and queue the pairs made.

    `rule`: HF's max_token_length rule as (length, room), a pair (x, new) being counted only if
    length[x] < room; None without a limit.
    """
    a, b, new = pair
    table = queue.table
    pos = queue.positions(slot)
    if a in rebuilt or b in rebuilt:  # the words may hold the pair where `pos` does not know
        pos = words.word_nodes(pos)
    table.reserve(2 * len(pos), 2 * len(pos))
    if len(pos) >= BATCH:
        made, merged = words.merge_many(table, pos, pair, rule)
    else:
        made, merged = words.merge_few(table, pos if isinstance(pos, list) else pos.tolist(), pair, rule)
    if queue.likelihood:
        queue.rescore(slot, new, merged)
    queue.add(made)


def _add_token(left: str, right: str, prefix: str | None, vocab: dict[str, int], tokens: list[str]) -> int:
    """The id of left + right (the right part without its prefix), added to the vocabulary when new."""
    if prefix and right.startswith(prefix):
        right = right[len(prefix) :]
    new = vocab.get(left + right)
    if new is None:
        new = vocab[left + right] = len(tokens)
        tokens.append(left + right)
    return new
