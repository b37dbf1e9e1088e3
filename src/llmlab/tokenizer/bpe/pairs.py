"""The pairs of the BPE trainer (`trainer.py`): every pair that appeared, its count, and the merge queue.

Reference: Hugging Face `tokenizers`, tokenizers/src/models/bpe/trainer.rs (`count_pairs` and the merge loop),
whose bookkeeping is reproduced so that the merges are identical:
- a pair's count changes only by what `Word::merge` reports (`words.py`); the merged pair's own count is
  left alone (a later queue entry for it is re-queued with that count);
- the queue is lazy: an entry whose count is out of date is queued again with the current one; the best entry
  has the highest count, then the smallest (left id, right id), then came first;
- a queue entry carries where its pair appeared when it was queued, and only there is the pair merged. HF
  carries the words and merges every occurrence in them; we carry the occurrences themselves, which is the
  same as long as every occurrence of the pair appeared at once. It did, unless one of the pair's symbols was
  built twice (two merges giving the same string, "ab" + "c" and "a" + "bc"): a pair holding such a symbol is
  merged throughout the words of its occurrences, as HF does (`trainer.py`).

Layout: each time a merge makes a pair (or the first count finds it) the pair gets a *slot*: its key
`left id << 21 | right id` (keys order as HF's (left, right) tuples), its weighted count and its positions.
Every node of the words knows the slot of the pair it starts, so a merge updates counts by slot, in numpy,
without looking pairs up. Slots live in numpy arrays, which the Python loop of small merges reads and writes
through memoryviews. A pair made again (only after a symbol was rebuilt) gets a new slot for its new
positions, whose count is kept by the pair's first slot (`alias`).

Queue: a heap of ints `-priority << 74 | key << 32 | slot`, so it compares integers only. HF queues a pair
with the count it had when made, and re-queues it with its current count only when it reaches the top. So a
slot whose first count is below `floor` can wait outside the heap (most pairs occur once or twice and are
never merged) until the heap's best falls below the floor; the floor then halves and the slots whose first
count reaches it are queued, with that count: the heap pops exactly what HF's would.
With `likelihood` (WordPiece's count(ab) / (count(a) * count(b))) merging ab raises the score of every pair
holding a or b, so those pairs are queued again after each merge, to be merged at all their positions.
"""

from __future__ import annotations

import heapq
import struct
from collections import defaultdict

import numpy as np

from llmlab.tokenizer.bpe.trainer import ID_BITS, ID_MASK  # key = left << ID_BITS | right

PARK = 16  # the first floor is the best first count / PARK
_SLOT_BITS = 32
_SHIFT, _LOW, _SLOT = ID_BITS * 2 + _SLOT_BITS, (1 << ID_BITS * 2 + _SLOT_BITS) - 1, (1 << _SLOT_BITS) - 1


class PairTable:
    """Slots: key, count and positions (a range of `pool`, or a list in `listed`) of every pair made.

    Slot 0 collects the pairs that nobody counts (HF's max_token_length keeps them out).
    """

    def __init__(self, keys: np.ndarray, counts: np.ndarray, cuts: np.ndarray, pool: np.ndarray):
        """The first count: slot i + 1 holds keys[i], with positions pool[cuts[i]:cuts[i + 1]]."""
        self.size = len(keys) + 1
        self.key, self.count = np.zeros(2 * self.size, np.int64), np.zeros(2 * self.size, np.int64)
        self.start, self.end = np.zeros(2 * self.size, np.int64), np.zeros(2 * self.size, np.int64)
        self.key[1 : self.size], self.count[1 : self.size] = keys, counts
        self.start[1 : self.size], self.end[1 : self.size] = cuts[:-1], cuts[1:]
        self.pool, self.pooled = np.concatenate([pool, np.zeros_like(pool)]), len(pool)
        self.listed: dict[int, list[int]] = {}  # the positions of slots made by small merges
        self.alias: dict[int, int] = {}  # slot -> the slot that counts its pair (a pair made again)
        self.lookup: dict[int, int] | None = None  # key -> counting slot, kept once a symbol is rebuilt
        self.key_mv, self.count_mv = memoryview(self.key), memoryview(self.count)

    def reserve(self, slots: int, positions: int) -> None:
        """Room for this many more slots and pooled positions (memoryviews taken before are stale after)."""
        if self.size + slots > len(self.key):
            grow = max(slots, len(self.key))
            for name in ("key", "count", "start", "end"):
                setattr(self, name, np.concatenate([getattr(self, name), np.zeros(grow, np.int64)]))
            self.key_mv, self.count_mv = memoryview(self.key), memoryview(self.count)
        if self.pooled + positions > len(self.pool):
            self.pool = np.concatenate([self.pool, np.zeros(max(positions, len(self.pool)), self.pool.dtype)])

    def positions(self, slot: int):
        """Where the slot's pair appeared (ascending): a list or a numpy array."""
        listed = self.listed.get(slot)
        return listed if listed is not None else self.pool[self.start[slot] : self.end[slot]]

    def add_one(self, key: int) -> tuple[int, int]:
        """A new slot for `key` (room reserved), its count at 0: (the slot, the slot that counts the pair)."""
        slot = self.size
        self.size += 1
        self.key_mv[slot] = key
        return slot, self.counter(key, slot)

    def add_many(self, keys: np.ndarray, pos: np.ndarray, cuts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """New slots for keys[i] at pos[cuts[i]:cuts[i + 1]] (room reserved): the slots, their counting slots."""
        slots = np.arange(self.size, self.size + len(keys))
        self.size += len(keys)
        self.key[slots] = keys
        self.pool[self.pooled : self.pooled + len(pos)] = pos
        self.start[slots], self.end[slots] = self.pooled + cuts[:-1], self.pooled + cuts[1:]
        self.pooled += len(pos)
        if self.lookup is None:
            return slots, slots
        return slots, np.array(
            [self.counter(k, s) for k, s in zip(keys.tolist(), slots.tolist(), strict=True)]
        )

    def counter(self, key: int, slot: int) -> int:
        """The slot that counts `key`: the new `slot` itself unless the pair has a slot already."""
        if self.lookup is None:
            return slot
        counting = self.lookup.setdefault(key, slot)
        if counting != slot:
            self.alias[slot] = counting
        return counting

    def rebuilt(self) -> None:
        """A symbol was built again: from now on a pair can be made twice, so slots are found by key."""
        if self.lookup is None:
            live = np.arange(1, self.size)
            self.lookup = dict(zip(self.key[live].tolist(), live.tolist(), strict=True))


class Queue:
    """The merge queue over a `PairTable` (see the module docstring)."""

    def __init__(self, table: PairTable, likelihood: bool, units: list[int]):
        self.table, self.likelihood, self.unit = table, likelihood, units
        self.heap: list[int] = []
        self.queued = np.zeros(1, bool)  # slots put on the heap (merged ones included)
        self.first = np.zeros(1, np.int64)  # each slot's count when it was made: HF queues it with that
        best = int(table.count[: table.size].max(initial=0))
        self.floor = 1 if likelihood else max(1, best // PARK)
        self.partners: dict[int, set[int]] = defaultdict(set)  # likelihood: symbol -> counting slots
        self.events: dict[int, list[int]] = defaultdict(list)  # likelihood: counting slot -> its slots
        self.add(np.arange(1, table.size))

    def priority(self, slot: int) -> int:
        """The count of the slot's pair; with likelihood count(ab) / (count(a) * count(b)) as IEEE-754 bits
        (positive floats order as their bits do); not positive when the pair is gone."""
        n = self.table.count_mv[self.table.alias.get(slot, slot)]
        if not self.likelihood or n <= 0:
            return n
        key = self.table.key_mv[slot]
        return int.from_bytes(struct.pack(">d", n / (self.unit[key >> ID_BITS] * self.unit[key & ID_MASK])))

    def add(self, slots) -> None:
        """Take in new slots (a list or an array): queue those whose count reaches the floor."""
        if len(self.queued) < len(self.table.key):
            grow = len(self.table.key) - len(self.queued)
            self.queued = np.concatenate([self.queued, np.zeros(grow, bool)])
            self.first = np.concatenate([self.first, np.zeros(grow, np.int64)])
            self.queued_mv, self.first_mv = memoryview(self.queued), memoryview(self.first)
        if self.likelihood:
            self._add_likelihood(slots)
        elif len(slots) > 16:
            slots = np.asarray(slots, np.int64)
            counting = [self.table.alias.get(s, s) for s in slots.tolist()] if self.table.alias else slots
            self.first[slots] = self.table.count[counting]
            self._push(slots[self.first[slots] >= self.floor])
        else:  # the same, one by one
            count, alias, key, floor = self.table.count_mv, self.table.alias, self.table.key_mv, self.floor
            for slot in slots if isinstance(slots, list) else slots.tolist():
                n = self.first_mv[slot] = count[alias.get(slot, slot)]
                if n >= floor:
                    self.queued_mv[slot] = True
                    heapq.heappush(self.heap, -n << _SHIFT | key[slot] << _SLOT_BITS | slot)

    def _add_likelihood(self, slots) -> None:
        for slot in np.asarray(slots, np.int64).tolist():
            counting = self.table.alias.get(slot, slot)
            self.events[counting].append(slot)
            self.partners[self.table.key_mv[slot] >> ID_BITS].add(counting)
            self.partners[self.table.key_mv[slot] & ID_MASK].add(counting)
            self.push(slot)

    def _push(self, slots: np.ndarray) -> None:
        """Queue slots with their first count: the key HF's heap holds for them until they reach its top."""
        self.queued[slots] = True
        for slot, first in zip(slots.tolist(), self.first[slots].tolist(), strict=True):
            heapq.heappush(self.heap, -first << _SHIFT | self.table.key_mv[slot] << _SLOT_BITS | slot)

    def push(self, slot: int) -> None:
        """Put the slot on the heap with its pair's current priority (if the pair occurs)."""
        priority = self.priority(slot)
        if priority > 0:
            heapq.heappush(self.heap, -priority << _SHIFT | self.table.key_mv[slot] << _SLOT_BITS | slot)

    def unpark(self, floor: int) -> None:
        """Lower the floor to `floor` and queue the waiting slots whose first count reaches it."""
        old, self.floor = self.floor, max(floor, 1)
        first = self.first
        self._push(np.flatnonzero(~self.queued & (first >= self.floor) & (first < old)))

    def pop_best(self, min_frequency: int) -> int | None:
        """The slot of the best pair, or None when no pair is left to merge."""
        least, heap = max(1, min_frequency), self.heap
        while heap or self.floor > 1:
            if self.floor > 1 and (not heap or -(heap[0] >> _SHIFT) < self.floor):
                self.unpark(self.floor // 2)  # the best pair may not be queued yet
                continue
            key = heap[0]
            slot = key & _SLOT
            best = self.priority(slot)
            if best != -(key >> _SHIFT):  # out of date: its count (or score) changed since it was queued
                heapq.heapreplace(heap, -best << _SHIFT | key & _LOW)
                continue
            heapq.heappop(heap)
            if self.table.count_mv[self.table.alias.get(slot, slot)] < least:
                if self.likelihood:
                    continue  # a rarer pair may still score higher; this one's count can only fall
                return None  # HF stops here: no other pair has a higher count
            return slot
        return None

    def positions(self, slot: int):
        """Where to merge the slot's pair: its positions; with likelihood, those of every slot of the pair."""
        if not self.likelihood:
            return self.table.positions(slot)
        counting = self.table.alias.get(slot, slot)
        parts = [self.table.positions(s) for s in self.events.get(counting, [counting])]
        return np.unique(np.concatenate([np.asarray(p, np.int64) for p in parts]))

    def rescore(self, slot: int, new: int, merged: int) -> None:
        """Likelihood, after a merge of the slot's pair (a, b) into `new`: a and b lost `merged` occurrences,
        so every pair holding them scores higher: queue them again."""
        key = self.table.key_mv[slot]
        a, b = key >> ID_BITS, key & ID_MASK
        self.unit.extend([0] * (new + 1 - len(self.unit)))
        self.unit[a] -= merged
        self.unit[b] -= merged
        self.unit[new] += merged
        self.table.count_mv[self.table.alias.get(slot, slot)] = 0  # merged everywhere: drop stale copies
        for counting in self.partners[a] | self.partners[b]:
            self.push(counting)
