"""The lattices of the Unigram trainer (`trainer.py`): forward-backward and Viterbi over every word at once.

Reference: sentencepiece `src/unigram_model.cc` (`Lattice::PopulateMarginal`, `Lattice::Viterbi`) and
`src/unigram_model_trainer.cc` (the E-step and the pruning's second-best segmentation), computed here for all
words together: a node is a position in the corpus array (`seeds.py`), an edge one occurrence of one
piece. Forward-backward and Viterbi take one numpy step per character position (`_Sweep`), so Python's share
grows with the longest word, not with the corpus. Unknown nodes count toward no piece in the E-step
(sentencepiece credits them to id 0). The edges into a node are taken in the order of their start, so a tie
between segmentations goes to the longest piece, as in sentencepiece.

Two implementations of one interface (`build_lattice` picks): `Lattice` here, the readable reference
and the fallback, and `CoreLattice`, the compiled one (`_core/unigram_lattice.cpp`, used when the core is
built): the same ties and the same sums in the same order, so the same Viterbi and second-best
segmentations, and expected counts within rounding (tested).

Memory (the trainer's largest part): here the edges are kept twice, in forward order (read, write, piece) and
in backward order (read, piece: the pruning finds the edges leaving a node there), as int32, 20 bytes an
edge; the E-step's posteriors and the pruning's second-best segmentations are computed in batches. The
compiled lattice keeps 6 bytes an edge.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from llmlab.tokenizer import core
from llmlab.tokenizer.unigram.seeds import Corpus, ranges

CHUNK = 1 << 18  # edges per step of the E-step's posterior
PIECES = 1 << 14  # pieces per batch of second-best segmentations


def survivors(src: np.ndarray, dst: np.ndarray, piece: np.ndarray, alive: np.ndarray):
    """The edges that survive when pieces die (a dead single character turns into an unknown node, -1).

    Returns:
        the mask of surviving edges, and the new piece ids (unfiltered).
    """
    dead = (piece >= 0) & ~alive[piece]
    single = np.abs(dst - src) == 1
    return ~dead | single, np.where(dead & single, np.int32(-1), piece)


class _Sweep:
    """Edges ordered for a dynamic programme over all lattices at once.

    An edge reads node `read` and writes node `write`. Sorted by (the step of the node it writes, that node),
    each step updates all the nodes it writes with a few segmented numpy reductions, one segment per node.
    Only `read` and `piece` are kept per edge (and `write` when `keep_write`); the rest is per node.
    """

    def __init__(self, edges: list[np.ndarray], node_step, order=None, keep_write: bool = True):
        """Sort edges = [read, write, piece]; the list is emptied, so that each array can go once sorted."""
        if order is None:  # by (step of the written node, written node, read node)
            rank = np.empty(len(node_step), np.int32)
            rank[np.argsort(node_step, kind="stable")] = np.arange(len(node_step), dtype=np.int32)
            order = np.lexsort((edges[0], rank[edges[1]]))
        self.node_step, self.keep_write = node_step, keep_write
        self.piece = edges.pop()[order]
        self.read = edges.pop(0)[order]
        self._index(edges.pop()[order])

    def keep(self, alive: np.ndarray) -> None:
        write = self.write if self.keep_write else np.repeat(self.seg_node, self.seg_len)
        kept, piece = survivors(self.read, write, self.piece, alive)
        self.piece = piece[kept]  # one array at a time, so that only one old copy is alive at once
        del piece
        self.read = self.read[kept]
        self._index(write[kept])

    def _index(self, write: np.ndarray) -> None:
        new = np.ones(len(write), bool)
        new[1:] = write[1:] != write[:-1]
        self.seg = np.flatnonzero(new).astype(np.int32)  # the first edge of each written node
        self.seg_node = write[self.seg]
        self.seg_len = np.diff(np.append(self.seg, len(write))).astype(np.int32)
        steps = self.node_step[self.seg_node]
        segs = np.concatenate([[0], np.flatnonzero(np.diff(steps)) + 1, [len(self.seg)]])
        edges = np.append(self.seg, len(write))[segs]
        self.blocks = list(zip(edges[:-1], edges[1:], segs[:-1], segs[1:], strict=True))
        self.write = write if self.keep_write else None

    def logsumexp(self, values: np.ndarray, scores: np.ndarray) -> None:
        """values[write] = log sum exp(values[read] + scores[piece]) over each node's edges, step after step."""
        for a, b, s, t in self.blocks:
            v, seg = values[self.read[a:b]] + scores[self.piece[a:b]], self.seg[s:t] - a
            top = np.maximum.reduceat(v, seg)
            total = np.add.reduceat(np.exp(v - np.repeat(top, self.seg_len[s:t])), seg)
            values[self.seg_node[s:t]] = top + np.log(total)

    def best(self, values: np.ndarray, scores: np.ndarray, back: np.ndarray) -> None:
        """values[write] = max(values[read] + scores[piece]); back[write] = the first edge that reaches it."""
        for a, b, s, t in self.blocks:
            v, seg = values[self.read[a:b]] + scores[self.piece[a:b]], self.seg[s:t] - a
            top = np.maximum.reduceat(v, seg)
            hit = np.where(v == np.repeat(top, self.seg_len[s:t]), np.arange(a, b), b)
            values[self.seg_node[s:t]], back[self.seg_node[s:t]] = top, np.minimum.reduceat(hit, seg)

    def backtrack(
        self, back: np.ndarray, ends: np.ndarray, starts: np.ndarray
    ) -> Iterator[tuple[np.ndarray, ...]]:
        """Follow the best paths from `ends` to `starts`: yields (path index, edge) arrays, last edges first."""
        path, node = np.arange(len(ends)), ends
        while len(node):
            edge = back[node]
            yield path, edge
            node = self.read[edge]
            going = node != starts[path]
            path, node = path[going], node[going]


class Lattice:
    """The lattices of all words: their edges in forward order and in backward order, where the edges leaving
    a node are next to each other (the second-best segmentations of the pruning read them there)."""

    def __init__(self, corpus: Corpus, edges: list[np.ndarray]):
        """The lattices of `corpus` with its edges [src, dst, piece], which this takes (emptying the list)."""
        self.corpus, self.alive = corpus, None
        local = (np.arange(len(corpus.codes)) - corpus.start[corpus.word_of]).astype(np.int32)
        self.fwd = f = _Sweep(edges, local)
        self.bwd = _Sweep([f.write, f.read, f.piece], local.max() - local, keep_write=False)

    def keep(self, alive: np.ndarray) -> None:
        """Drop the edges of dead pieces."""
        if self.alive is not None and np.array_equal(alive, self.alive):
            return
        self.alive = alive
        self.fwd.keep(alive)
        self.bwd.keep(alive)

    def expected_counts(self, scores: np.ndarray) -> np.ndarray:
        """E-step: each piece's expected count in all words (weighted by word counts); scores as `_with_unk`."""
        c, f = self.corpus, self.fwd
        alpha, beta = np.full(len(c.codes), -np.inf), np.full(len(c.codes), -np.inf)
        alpha[c.start], beta[c.end] = 0.0, 0.0
        f.logsumexp(alpha, scores)
        self.bwd.logsumexp(beta, scores)
        log_weight = np.log(c.count) - alpha[c.end]  # word count / Z, in logs
        counts = np.zeros(len(scores))
        for lo in range(0, len(f.read), CHUNK):  # a few arrays of CHUNK edges at a time
            read, piece = f.read[lo : lo + CHUNK], f.piece[lo : lo + CHUNK]
            post = alpha[read] + scores[piece] + beta[f.write[lo : lo + CHUNK]] + log_weight[c.word_of[read]]
            np.add.at(counts, piece + 1, np.exp(post))  # in edge order, as one bincount would add them
        return counts[1:]  # (id -1, unknown, lands in bin 0)

    def viterbi_counts(self, scores: np.ndarray) -> np.ndarray:
        """How often each piece is used by the best segmentations of all words (weighted by word counts)."""
        c, f = self.corpus, self.fwd
        best, back = np.full(len(c.codes), -np.inf), np.zeros(len(c.codes), np.int64)
        best[c.start] = 0.0
        f.best(best, scores, back)
        freq = np.zeros(len(scores) - 1)
        for word, edge in f.backtrack(back, c.end, c.start):
            known = f.piece[edge] >= 0
            np.add.at(freq, f.piece[edge][known], c.count[word][known])
        return freq

    def second_best(self, reps: np.ndarray, lengths: np.ndarray, scores: np.ndarray):
        """The best segmentation of each piece (at one occurrence) that does not use the piece itself.

        Args:
            reps, lengths: where each piece occurs (its first node) and its length.

        Returns:
            its score per piece, and its tokens as (piece index, token id) arrays.
        """
        b, size = self.bwd, len(self.corpus.codes)
        first, count = np.zeros(size, np.int32), np.zeros(size, np.int32)
        first[b.seg_node], count[b.seg_node] = b.seg, b.seg_len  # the edges leaving each node
        batches = [  # a batch of pieces at a time, to bound memory
            _second_best(b, first, count, reps[lo : lo + PIECES], lengths[lo : lo + PIECES], scores, lo)
            for lo in range(0, max(len(reps), 1), PIECES)
        ]
        score, win, token = (np.concatenate(x) for x in zip(*batches, strict=True))
        order = np.argsort(win, kind="stable")  # grouped by piece, last token first
        return score, (win[order], token[order])


class CoreLattice:
    """`Lattice` on the compiled core (`_core/unigram_lattice.cpp`): the same methods, the same results."""

    def __init__(self, corpus: Corpus, edges: list[np.ndarray]):
        """The lattices of `corpus` with its edges [src, dst, piece], which this takes (emptying the list)."""
        from llmlab.tokenizer._corelib import UnigramLattice

        self.corpus, self.alive = corpus, None
        src, dst, piece = (np.ascontiguousarray(edges.pop(0), np.int32) for _ in range(3))
        self._core = UnigramLattice(
            *(np.ascontiguousarray(x, t) for x, t in [(corpus.start, np.int64), (corpus.end, np.int64)]),
            np.ascontiguousarray(corpus.count, np.float64), len(corpus.codes), src, dst, piece,
        )  # fmt: skip

    def keep(self, alive: np.ndarray) -> None:
        if self.alive is not None and np.array_equal(alive, self.alive):
            return
        self.alive = alive
        self._core.keep(np.ascontiguousarray(alive, bool))

    def expected_counts(self, scores: np.ndarray) -> np.ndarray:
        return self._core.expected_counts(np.ascontiguousarray(scores, np.float64))

    def viterbi_counts(self, scores: np.ndarray) -> np.ndarray:
        return self._core.viterbi_counts(np.ascontiguousarray(scores, np.float64))

    def second_best(self, reps: np.ndarray, lengths: np.ndarray, scores: np.ndarray):
        score, win, token = self._core.second_best(
            np.ascontiguousarray(reps, np.int64), np.ascontiguousarray(lengths, np.int64),
            np.ascontiguousarray(scores, np.float64),
        )  # fmt: skip
        return score, (win, token)


def build_lattice(corpus: Corpus, edges: list[np.ndarray]) -> Lattice | CoreLattice:
    """The lattices of `corpus`: compiled when the core is available, else the Python reference."""
    return (CoreLattice if core.available() else Lattice)(corpus, edges)


def _second_best(b: _Sweep, first, count, reps, lengths, scores, index: int):
    """`Lattice.second_best` for the pieces numbered from `index`, reading the edges that leave each node from
    the backward sweep: (score, piece number, token id)."""
    win, src = ranges(reps, reps + lengths)  # every node of every piece's window, in order
    which, edge = ranges(first[src], first[src] + count[src])
    win, src, dst, end = win[which], src[which], b.read[edge], (reps + lengths)[win[which]]
    inside = (dst <= end) & ((src != reps[win]) | (dst != end))  # within the piece, not the piece
    win, src, dst, piece = win[inside], src[inside], dst[inside], b.piece[edge[inside]]
    offset = np.cumsum(lengths + 1) - lengths - 1 - reps  # window node = offset[win] + corpus node
    step = (dst - reps[win]).astype(np.int16)
    order = np.argsort(step, kind="stable")  # edges come window by window, so (step, write) order
    node_step = np.arange(int((lengths + 1).sum())) - np.repeat(offset + reps, lengths + 1)
    sweep = _Sweep([offset[win] + src, offset[win] + dst, piece], node_step, order)
    best, back = np.full(len(node_step), -np.inf), np.zeros(len(node_step), np.int64)
    best[offset + reps] = 0.0
    sweep.best(best, scores, back)
    steps = list(sweep.backtrack(back, offset + reps + lengths, offset + reps))
    win = np.concatenate([np.zeros(0, np.int64), *(w for w, _ in steps)]) + index
    token = np.concatenate([np.zeros(0, np.int32), *(sweep.piece[e] for _, e in steps)])
    return best[offset + reps + lengths], win, token
