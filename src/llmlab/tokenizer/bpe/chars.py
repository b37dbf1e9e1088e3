"""Byte-level BPE on long words: merge each character's bytes on their own first, where that provably changes
nothing.

A GPT-2 "word" of Chinese is a whole clause, 60-150 bytes, and rarely repeats, so the word cache does not help
and the merge loop (HF's order: lowest rank first, leftmost first; see `model.py`) runs on every byte. Most of
its merges only join the two or three bytes of one character. Here each character is merged on its own once
(remembered), and the word's merge loop starts from those pieces: about a third as many symbols, and only the
merges across characters are left to do.

Why the tokens stay HF's, for a merge table where (1) every token is made before it is used (each merge that
makes a token has a lower rank than each merge that uses it: true of trained tables, so the ranks applied to a
word never decrease) and (2) a merge across two characters joins whole characters, except the listed few that
do not ("misaligned": neither part is whole characters and their join is not inside one character):
- a merge inside a character cannot apply across two (its right part would start with a continuation byte);
- so a character's bytes evolve as on their own (the ranks applied never decrease, so each of its states
  lasts between the ranks of the merges that make and end it) unless a misaligned merge, of a rank while a
  state lasts, takes that state's first piece as a right part or its last piece as a left part: such
  characters (and bytes that are not valid UTF-8) keep their bytes here;
- a whole character's token is only used by merges of higher rank than the ones that made it (1), so having
  it from the start changes no earlier decision.
Tables that break (1) do not use this at all; merges of symbols outside GPT-2's byte alphabet count as misaligned.
"""

from __future__ import annotations

import re
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable
from itertools import chain, pairwise
from operator import itemgetter

from llmlab.tokenizer.byte_level import BYTE_TO_UNICODE, UNICODE_TO_BYTE, to_byte_level

_NO_MERGE = 1 << 62
_CONTINUATION = "".join(re.escape(BYTE_TO_UNICODE[b]) for b in range(0x80, 0xC0))
_CHAR = re.compile(f".[{_CONTINUATION}]*", re.DOTALL)  # a UTF-8 lead byte and its continuation bytes
_LEAD = re.compile("[" + "".join(re.escape(BYTE_TO_UNICODE[b]) for b in range(0xC0, 0x100)) + "]")
_IDS, _SIZES = itemgetter(0), itemgetter(1)
# str.translate table: a GPT-2 byte character -> chr(its byte); the other characters up to U+00FF -> U+FFFF,
# so that only byte-level strings encode as latin-1
_TO_LATIN1 = {c: 0xFFFF for c in range(0x100)} | {ord(ch): b for ch, b in UNICODE_TO_BYTE.items()}


class CharMerges:
    """The pieces each character's bytes merge into on their own, for a byte-level merge table."""

    def __init__(self, vocab: dict[str, int], ranks: dict[tuple[int, int], int], merged: list[int]):
        """Use `build`, which checks the table first."""
        self._vocab, self._ranks, self._merged = vocab, ranks, merged
        self._tokens: dict[int, str] | None = None  # id -> token, made on first need
        self._by_side: tuple[tuple[list[tuple[int, int]], list[int]], ...] | None = None  # see `_merges_of`
        self._kinds: dict[int, int] = {}  # id -> its bytes' kind (`_kind`), as met
        self._misaligned: dict[tuple[int, int], list[int]] = {}  # (side, id) -> ranks, in order
        self._chars = _Chars(self._premerge)

    @classmethod
    def build(cls, vocab: dict[str, int], ranks: dict[tuple[int, int], int], merged: list[int]):
        """A `CharMerges` for this table, or None when a merge makes a token after another merge used it."""
        made = cls(vocab, ranks, merged)
        return made if made._made_before_used() else None

    def _made_before_used(self) -> bool:
        first_use: dict[int, int] = {}  # id -> the lowest rank of a merge that uses it as a part
        for (left, right), rank in self._ranks.items():
            for part in (left, right):
                if rank < first_use.get(part, _NO_MERGE):
                    first_use[part] = rank
        merged = self._merged
        return all(first_use.get(merged[rank], _NO_MERGE) >= rank for rank in self._ranks.values())

    def symbols(self, word: str) -> tuple[list[int], list[int]] | None:
        """The symbols `word` starts from: (ids, bytes each covers); None if a character is not in the vocab."""
        try:
            pieces = list(map(self._chars.__getitem__, _CHAR.findall(word)))
        except KeyError:
            return None
        return list(chain.from_iterable(map(_IDS, pieces))), list(chain.from_iterable(map(_SIZES, pieces)))

    def _premerge(self, char: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """(ids, sizes) of one character: its own merges' result where safe, else its bytes."""
        byte_ids = [self._vocab[c] for c in char]  # KeyError: not in the vocabulary
        if len(char) == 1 or not _is_utf8(_to_bytes(char)):
            return tuple(byte_ids), (1,) * len(char)
        ids, sizes, states = self._merge_alone(list(byte_ids))
        for (since, first, last), (until, _, _) in pairwise([*states, (_NO_MERGE, 0, 0)]):
            if self._misaligned_between(1, first, since, until) or self._misaligned_between(
                0, last, since, until
            ):
                return tuple(byte_ids), (1,) * len(char)
        return tuple(ids), tuple(sizes)

    def _merge_alone(self, ids: list[int]) -> tuple[list[int], list[int], list[tuple[int, int, int]]]:
        """BPE on a few symbols (lowest rank first, leftmost first).

        Returns:
            ids, sizes, and each state as (rank of the merge that made it (-1 first), first id, last id).
        """
        get, sizes = self._ranks.get, [1] * len(ids)
        states = [(-1, ids[0], ids[-1])]
        while len(ids) > 1:
            ranks = [get(pair, _NO_MERGE) for pair in pairwise(ids)]
            best = min(ranks)
            if best == _NO_MERGE:
                break
            i = ranks.index(best)
            ids[i : i + 2] = [self._merged[best]]
            sizes[i : i + 2] = [sizes[i] + sizes[i + 1]]
            states.append((best, ids[0], ids[-1]))
        return ids, sizes, states

    def _misaligned_between(self, side: int, id_: int, low: int, high: int) -> bool:
        """Whether a misaligned merge with `id_` as left (side 0) or right (1) part has a rank in (low, high)."""
        ranks = self._misaligned.get((side, id_))
        if ranks is None:
            kind, own = self._kind, self._kind(id_)
            ranks = self._misaligned[side, id_] = []
            for rank, other in self._merges_of(side, id_):
                if _misaligned(*((own, kind(other)) if side == 0 else (kind(other), own))):
                    ranks.append(rank)
        i = bisect_right(ranks, low)
        return i < len(ranks) and ranks[i] < high

    def _merges_of(self, side: int, id_: int) -> list[tuple[int, int]]:
        """(rank, other part) of the merges with `id_` as left (side 0) or right (1) part, by rank."""
        if self._by_side is None:  # per side: the merges sorted by that part, and those parts (to bisect);
            # flat lists of the table's own objects: a megabyte, where a dict of lists took five
            self._by_side = tuple(_sorted_by(self._ranks, side) for side in (0, 1))
        pairs, parts = self._by_side[side]
        found = pairs[bisect_left(parts, id_) : bisect_right(parts, id_)]
        return sorted((self._ranks[pair], pair[1 - side]) for pair in found)

    def _kind(self, id_: int) -> int:
        """The `_kind` of a token's bytes, by id (remembered)."""
        kind = self._kinds.get(id_)
        if kind is None:
            if self._tokens is None:
                self._tokens = {i: t for t, i in self._vocab.items()}
            kind = self._kinds[id_] = _kind(_to_bytes(self._tokens[id_]))
        return kind


def char_pieces(
    vocab: dict[str, int], ranks: dict[tuple[int, int], int], merged: list[int]
) -> list[tuple[int, list[int], list[int]]]:
    """(UTF-8 bytes of a character as a little-endian int, ids, bytes each covers) for every character of the
    vocabulary that its byte-level merges join on their own (fewer pieces than bytes), where `CharMerges`
    proves that changes nothing; [] for a table it refuses. The compiled core starts long words from these."""
    packed = _packed_char_pieces(vocab, ranks, merged)
    # The lists are made once the tables of `CharMerges` are freed: small objects made while those lived would
    # keep the tables' memory pages from going back (CPython returns its 1 MiB arenas of small objects only
    # when all of one is free), MiBs more at the peak when the compiled core is built right after this.
    out, i = [], 0
    while i < len(packed):
        code, n = packed[i], packed[i + 1]
        out.append((code, packed[i + 2 : i + 2 + n].tolist(), packed[i + 2 + n : i + 2 + 2 * n].tolist()))
        i += 2 + 2 * n
    return out


def _packed_char_pieces(vocab: dict[str, int], ranks: dict[tuple[int, int], int], merged: list[int]) -> array:
    """`char_pieces` in one int64 array: for each character its UTF-8 bytes as an int, n, n ids, n sizes."""
    packed = array("q")
    merges = CharMerges.build(vocab, ranks, merged)
    if merges is None:
        return packed
    for char in sorted(_vocab_chars(vocab)):
        try:
            ids, sizes = merges._premerge(to_byte_level(char))
        except KeyError:  # a byte with no token
            continue
        if len(ids) < len(char.encode()):
            packed.extend((int.from_bytes(char.encode(), "little"), len(ids), *ids, *sizes))
    merges._chars = None  # its cache refers back to it: freed now, not at the next full garbage collection
    return packed


def _vocab_chars(vocab: Iterable[str]) -> set[str]:
    """The characters of more than one byte whose UTF-8 bytes all lie inside one byte-level token."""
    tokens = list(vocab)
    latin = "\u0800".join(tokens).translate(_TO_LATIN1)  # byte i as chr(i); a non-byte above U+00FF
    if len(latin.encode("latin-1", "ignore")) != len(latin) - max(len(tokens) - 1, 0):  # a non-byte token
        each = (token.translate(_TO_LATIN1) for token in tokens)
        latin = "\u0800".join(s for s in each if s.isascii() or max(s) <= "\xff")
    # joined by an ASCII character, which ends any partial UTF-8 sequence as a token's end would
    data = latin.replace("\u0800", "\n").encode("latin-1")
    return {c for c in set(data.decode("utf-8", "ignore")) if c >= "\x80"}


def _sorted_by(ranks: dict[tuple[int, int], int], side: int) -> tuple[list[tuple[int, int]], list[int]]:
    """The merges (left id, right id) sorted by one part (rank order among equals), and that part of each."""
    pairs = sorted(ranks, key=itemgetter(side))
    return pairs, [pair[side] for pair in pairs]


def has_multibyte(word: str) -> bool:
    """Whether byte-level `word` holds a character of more than one byte (a lead byte 0xC0-0xFF)."""
    return _LEAD.search(word) is not None


def _to_bytes(symbols: str) -> bytes | None:
    """The bytes byte-level `symbols` stand for; None if one is outside GPT-2's byte alphabet."""
    try:
        return symbols.translate(_TO_LATIN1).encode("latin-1")
    except UnicodeEncodeError:
        return None


def _is_utf8(data: bytes | None) -> bool:
    try:
        data.decode("utf-8")  # type: ignore[union-attr]
    except (UnicodeDecodeError, AttributeError):
        return False
    return True


# The kind of a token's bytes, for `_misaligned`, as flags: byte-level at all; whole characters; continuation
# bytes after the first; continuation bytes only
_BYTES, _WHOLE, _TAIL, _ALL = 1, 2, 4, 8


def _kind(data: bytes | None) -> int:
    if data is None:
        return 0
    tail = all(0x80 <= b < 0xC0 for b in data[1:])
    every = all(0x80 <= b < 0xC0 for b in data[:1]) and tail
    return _BYTES | _WHOLE * _is_utf8(data) | _TAIL * tail | _ALL * every


def _misaligned(left: int, right: int) -> bool:
    """Of two tokens' `_kind`s: neither whole characters on both sides nor inside one character (or not
    byte-level at all)."""
    if not left & right & _BYTES:
        return True
    inside_one_char = left & _TAIL and right & _ALL
    return not (inside_one_char or left & right & _WHOLE)


class _Chars(dict):
    """character (as byte-level symbols) -> its (ids, sizes), computed on first use."""

    def __init__(self, premerge: Callable[[str], tuple]):
        super().__init__()
        self.premerge = premerge

    def __missing__(self, char: str) -> tuple:
        self[char] = out = self.premerge(char)
        return out
