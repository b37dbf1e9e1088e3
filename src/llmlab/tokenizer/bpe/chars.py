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
from bisect import bisect_right
from collections.abc import Callable
from itertools import chain, pairwise
from operator import itemgetter

from llmlab.tokenizer.byte_level import BYTE_TO_UNICODE, UNICODE_TO_BYTE

_NO_MERGE = 1 << 62
_CONTINUATION = "".join(re.escape(BYTE_TO_UNICODE[b]) for b in range(0x80, 0xC0))
_CHAR = re.compile(f".[{_CONTINUATION}]*", re.DOTALL)  # a UTF-8 lead byte and its continuation bytes
_LEAD = re.compile("[" + "".join(re.escape(BYTE_TO_UNICODE[b]) for b in range(0xC0, 0x100)) + "]")
_IDS, _SIZES = itemgetter(0), itemgetter(1)


class CharMerges:
    """The pieces each character's bytes merge into on their own, for a byte-level merge table."""

    def __init__(self, model_tokens: dict[int, str], ranks: dict[tuple[int, int], int], merged: list[int]):
        """Use `build`, which checks the table first."""
        self._tokens, self._ranks, self._merged = model_tokens, ranks, merged
        self._vocab = {t: i for i, t in model_tokens.items()}
        # id -> [(rank, other part)] of the merges with it as left (0) / right (1) part
        self._by_side: tuple[dict, dict] = ({}, {})
        for (a, b), rank in sorted(ranks.items(), key=itemgetter(1)):
            self._by_side[0].setdefault(a, []).append((rank, b))
            self._by_side[1].setdefault(b, []).append((rank, a))
        self._misaligned: dict[tuple[int, int], list[int]] = {}  # (side, id) -> ranks, in order
        self._chars = _Chars(self._premerge)

    @classmethod
    def build(cls, vocab: dict[str, int], ranks: dict[tuple[int, int], int], merged: list[int]):
        """A `CharMerges` for this table, or None when a merge makes a token after another merge used it."""
        used: set[int] = set()
        for (a, b), rank in sorted(ranks.items(), key=itemgetter(1)):
            if merged[rank] in used:
                return None
            used.update((a, b))
        return cls({i: t for t, i in vocab.items()}, ranks, merged)

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
            ranks = self._misaligned[side, id_] = []
            for rank, other in self._by_side[side].get(id_, ()):
                left, right = (id_, other) if side == 0 else (other, id_)
                if _misaligned(self._tokens[left], self._tokens[right]):
                    ranks.append(rank)
        i = bisect_right(ranks, low)
        return i < len(ranks) and ranks[i] < high


def has_multibyte(word: str) -> bool:
    """Whether byte-level `word` holds a character of more than one byte (a lead byte 0xC0-0xFF)."""
    return _LEAD.search(word) is not None


def _to_bytes(symbols: str) -> bytes | None:
    """The bytes byte-level `symbols` stand for; None if one is outside GPT-2's byte alphabet."""
    try:
        return bytes(map(UNICODE_TO_BYTE.__getitem__, symbols))
    except KeyError:
        return None


def _is_utf8(data: bytes | None) -> bool:
    try:
        data.decode("utf-8")  # type: ignore[union-attr]
    except (UnicodeDecodeError, AttributeError):
        return False
    return True


def _misaligned(left: str, right: str) -> bool:
    """Neither whole characters on both sides nor inside one character (or not byte-level at all)."""
    x, y = _to_bytes(left), _to_bytes(right)
    if x is None or y is None:
        return True
    inside_one_char = all(0x80 <= b < 0xC0 for b in (x + y)[1:])
    return not (inside_one_char or (_is_utf8(x) and _is_utf8(y)))


class _Chars(dict):
    """character (as byte-level symbols) -> its (ids, sizes), computed on first use."""

    def __init__(self, premerge: Callable[[str], tuple]):
        super().__init__()
        self.premerge = premerge

    def __missing__(self, char: str) -> tuple:
        self[char] = out = self.premerge(char)
        return out
