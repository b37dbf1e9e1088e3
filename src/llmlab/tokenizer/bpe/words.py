"""The words of the BPE trainer (`trainer.py`) as linked lists of symbols, merged in place.

Reference: Hugging Face `tokenizers`, tokenizers/src/models/bpe/word.rs (`Word::merge`), reproduced change for
change: a merge of (a, b) into n runs left to right through a word and reports, per occurrence, (left, a) -1,
(left, n) +1, (b, right) -1, (n, right) +1, where `left` is already merged ("abab": the second ab has the
left neighbour n) and `right` is not yet ("abab": the first ab has the right neighbour a). A +1 is dropped
unless the two tokens together are shorter than `max_token_length` (the -1 never is).

Layout: every distinct word once, one after the other in int32 arrays, a separator node (symbol -1) before
each word and after the last; node i is position i. `nxt` and `prv` link the live nodes of a word; a merge
rewrites the symbol of its first node and kills the second (symbol -1). An occurrence of a pair is the
position of its first node, and `slot` gives the slot (`pairs.PairTable`) that counts the pair starting
at each node. So a merge visits only the occurrences it is handed, never whole words, and changes counts by
slot. Small merges walk their occurrences in Python (`merge_few`, through memoryviews); large ones (the early
merges of byte-level Chinese touch hundreds of thousands) do the same in a few dozen numpy steps
(`merge_many`).
"""

from __future__ import annotations

import numpy as np

from llmlab.tokenizer.bpe.pairs import PairTable
from llmlab.tokenizer.bpe.trainer import ID_BITS


def _order(values: np.ndarray) -> np.ndarray:
    """The stable argsort of non-negative ints (a radix sort when they fit 16 bits, as symbol ids mostly do)."""
    if len(values) and values.max() < 1 << 16:
        return np.argsort(values.astype(np.uint16), kind="stable")
    return np.argsort(values, kind="stable")


def _runs(keys: np.ndarray) -> np.ndarray:
    """Where each run of equal keys starts, plus the end."""
    starts = np.flatnonzero(keys[1:] != keys[:-1]) + 1
    return np.concatenate([[0], starts, [len(keys)]]) if len(keys) else np.zeros(1, np.int64)


class Words:
    """The distinct words as linked lists of symbol ids, each with its count."""

    def __init__(self, ids: np.ndarray, lengths: np.ndarray, counts: np.ndarray):
        """The words' symbol ids, one word after the other, each word's length and count."""
        word = np.repeat(np.arange(len(lengths), dtype=np.int32), lengths)
        size = len(ids) + len(lengths) + 1
        self.start = np.cumsum(lengths + 1) - lengths  # (W,) the first node of each word
        self.end = self.start + lengths
        self.counts, self.weight = counts, counts.tolist()  # the same, as a list for the Python loop
        self.sym = np.full(size, -1, np.int32)
        self.sym[np.arange(len(ids)) + word + 1] = ids
        self.nxt = np.arange(1, size + 1, dtype=np.int32)
        self.prv = np.arange(-1, size - 1, dtype=np.int32)
        self.word = np.concatenate(
            [np.zeros(1, np.int32), np.repeat(np.arange(len(lengths), dtype=np.int32), lengths + 1)]
        )
        self.slot = np.zeros(size, np.int32)
        self.views = tuple(memoryview(x) for x in (self.sym, self.nxt, self.prv, self.word, self.slot))

    def count_pairs(self) -> PairTable:
        """Count every adjacent pair (weighted by word counts) into a new table, a slot per distinct pair."""
        pos = np.flatnonzero((self.sym[:-1] >= 0) & (self.sym[1:] >= 0))
        left, right = self.sym[pos].astype(np.int64), self.sym[pos + 1].astype(np.int64)
        order = _order(right)
        order = order[_order(left[order])]  # by left, then right, then position
        pos, keys = pos[order], (left << ID_BITS | right)[order]
        cuts = _runs(keys)
        self.slot[pos] = np.repeat(np.arange(1, len(cuts), dtype=np.int32), np.diff(cuts))
        counts = np.add.reduceat(self.counts[self.word[pos]], cuts[:-1]) if len(pos) else pos
        return PairTable(keys[cuts[:-1]], counts, cuts, pos.astype(np.int32))

    def symbol_counts(self, size: int) -> list[int]:
        """Weighted count of every symbol id below `size`."""
        live = self.sym >= 0
        return np.bincount(self.sym[live], self.counts[self.word[live]], size).astype(np.int64).tolist()

    def word_nodes(self, pos) -> np.ndarray:
        """Every node of the words that hold the positions `pos`, in order."""
        words = np.unique(self.word[np.asarray(pos, np.int64)])
        lo, sizes = self.start[words], self.end[words] - self.start[words]
        return np.arange(sizes.sum()) - np.repeat(np.cumsum(sizes) - sizes - lo, sizes)

    def merge_few(
        self, table: PairTable, pos: list[int], pair: tuple[int, int, int], rule
    ) -> tuple[list[int], int]:
        """Merge pair = (a, b, new) at the positions `pos` that still hold a, b, left to right, in Python.

        Args:
            table: where the counts change and the pairs made get their slots (room reserved).
            rule: (length, room): a pair (x, new) or (new, x) is counted only when length[x] < room (None: all).

        Returns:
            the new slots, and the weighted number of occurrences merged.
        """
        a, b, new = pair
        sym, nxt, prv, word, slot = self.views
        count, weight = table.count_mv, self.weight
        made: dict[int, tuple[int, int, list[int]]] = {}  # key -> (slot, counting slot, positions)
        merged = 0
        for p in sorted(pos):
            if sym[p] != a:
                continue
            q = nxt[p]
            if sym[q] != b:
                continue
            before, after = prv[p], nxt[q]
            sym[p], sym[q], nxt[p], prv[after] = new, -1, after, p
            n = weight[word[p]]
            merged += n
            if (right := sym[after]) >= 0:  # not merged yet, as HF: the next occurrence's a
                count[slot[q]] -= n
                key = new << ID_BITS | right
                if (s := made.get(key)) is None:
                    s = made[key] = _made(table, key, rule is None or rule[0][right] < rule[1])
                slot[p] = s[1]
                count[s[1]] += n
                s[2].append(p)
            if (left := sym[before]) >= 0:  # `new` when the previous occurrence was just merged
                count[slot[before]] -= n
                key = left << ID_BITS | new
                if (s := made.get(key)) is None:
                    s = made[key] = _made(table, key, rule is None or rule[0][left] < rule[1])
                slot[before] = s[1]
                count[s[1]] += n
                s[2].append(before)
        for s, _, ps in made.values():
            if s:
                table.listed[s] = ps
        return [s for s, _, _ in made.values() if s], merged

    def merge_many(self, table: PairTable, pos, pair: tuple[int, int, int], rule) -> tuple[np.ndarray, int]:
        """`merge_few` in numpy steps."""
        a, b, new = pair
        sym, nxt, prv = self.sym, self.nxt, self.prv
        p, q = self._occurrences(pos, a, b)
        before, after = prv[p], nxt[q]
        left, right = sym[before].astype(np.int64), sym[after].astype(np.int64)
        left[_after(q, before)] = new  # the previous occurrence touches: already merged
        lost_right = self.slot[q]
        sym[p], sym[q], nxt[p], prv[after] = new, -1, after, p
        before = prv[p]  # the left neighbour's node, now that touching occurrences are merged
        n = self.counts[self.word[p]]
        # the pairs made: (new, right) at p, then (left, new) at `before`, where "abab" leaves (n, n)
        has_left, has_right = left >= 0, right >= 0
        others = np.concatenate([right[has_right], left[has_left]])
        keys = np.concatenate([new << ID_BITS | right[has_right], left[has_left] << ID_BITS | new])
        nodes = np.concatenate([p[has_right], before[has_left]])
        weights = np.concatenate([n[has_right], n[has_left]])
        split = int(has_right.sum())
        made, node_slot = _made_slots(table, keys, nodes, others, split, rule, (right == new).any())
        np.add.at(table.count, node_slot, weights)
        self.slot[nodes[:split]] = node_slot[:split]
        lost_left = self.slot[before[has_left]]  # after the right side: "abab" loses the (n, a) it made
        self.slot[nodes[split:]] = node_slot[split:]
        np.subtract.at(table.count, np.concatenate([lost_right[has_right], lost_left]), weights)
        return made, int(n.sum())

    def _occurrences(self, pos, a: int, b: int) -> tuple[np.ndarray, np.ndarray]:
        """The first and second nodes of the occurrences of (a, b) at `pos`, ascending, non-overlapping."""
        sym = self.sym
        p = np.sort(np.asarray(pos, np.int64))
        p = p[sym[p] == a]
        q = self.nxt[p]
        holds = sym[q] == b
        p, q = p[holds], q[holds].astype(np.int64)
        if a == b:  # in a run "aaaa" the occurrences overlap: merge the first, third, ... of each run
            index = np.arange(len(p))
            run_start = np.maximum.accumulate(np.where(_after(q, p), 0, index))
            odd = (index - run_start) % 2 == 1
            p, q = p[~odd], q[~odd]
        return p, q


def _made_slots(
    table: PairTable, keys, nodes, others, split: int, rule, shared: bool
) -> tuple[np.ndarray, np.ndarray]:
    """New slots for the pairs a merge made, grouped by key (nodes[:split] on the right side, the rest on the
    left): the slots, and the slot counting the pair at each node (0 for a pair the `rule` does not count).

    `shared`: the new symbol was there before, so both sides can make the same pair.
    """
    if shared:
        order = np.lexsort((nodes, keys))
    else:  # each side is in position order, which a stable sort by neighbour keeps
        order = np.concatenate([_order(others[:split]), split + _order(others[split:])])
    if rule is not None:
        length, room = rule
        order = order[length[others[order]] < room]
    cuts = _runs(keys[order])
    slots, counting = table.add_many(keys[order][cuts[:-1]], nodes[order], cuts)
    node_slot = np.zeros(len(nodes), np.int32)
    node_slot[order] = np.repeat(counting, np.diff(cuts))
    return slots, node_slot


def _after(ends: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Whether occurrence i starts where occurrence i - 1 ends: starts[i] == ends[i - 1]."""
    follows = np.zeros(len(starts), bool)
    follows[1:] = ends[:-1] == starts[1:]
    return follows


def _made(table: PairTable, key: int, counted: bool) -> tuple[int, int, list[int]]:
    """A new slot for a pair made by `merge_few`: (slot, counting slot, positions); slot 0 if not counted."""
    return (*table.add_one(key), []) if counted else (0, 0, [])
