"""Unigram language-model trainer (Kudo 2018, "Subword Regularization"), as sentencepiece trains it.

Reference implementation: sentencepiece `src/unigram_model_trainer.cc` and `src/trainer_interface.cc`; compared
(tested) by the compression of the vocabulary it learns. Its steps, reproduced here:
1. Required characters: the most frequent characters that together cover `character_coverage` of all
   characters. The others are unknown: no piece holds them and the lattice gives them an unknown node.
2. Seeds: every required character, plus the `seed_size` best substrings by frequency x length among those
   that branch (are followed by two different characters somewhere: the internal nodes of the suffix tree
   that sentencepiece walks; here a substring that ends a word and occurs twice counts too, as in running
   text different words follow it) and are valid pieces: at most `max_piece_length` characters, '▁' only
   first, one Unicode script (Hiragana and Katakana count as Han). Initial score: log(score / total).
3. EM, `num_sub_iterations` times: the E-step takes each piece's expected count by forward-backward over every
   word's lattice; the M-step drops pieces expected fewer than 0.5 times and scores the others
   digamma(count) - digamma(total), the Bayesian (sparse prior) update.
4. Pruning to max(shrinking_factor * size, 1.1 * vocab_size) pieces: a piece whose best segmentation is not
   itself goes; a used single character stays; for the others the loss of removing the piece is estimated by
   handing its Viterbi count to its second-best segmentation, and the pieces that lose least go. Back to 3
   until at most 1.1 * vocab_size pieces are left.
5. Vocabulary: special tokens (`unk_token` first unless listed), the 256 "<0xXX>" pieces with byte fallback,
   every required character (one EM dropped scores min_score + 0.0001 * rank), then the best pieces up to
   `vocab_size`, ordered by score.

Speed: every word is laid out once in one array of code points, a separator after each, so a lattice node is
a position in that array and an edge is one occurrence of one piece. A suffix sort of the array (prefix
doubling in numpy) yields the seeds with all their occurrences, so the edges are built once and only filtered
as pieces die. Forward-backward and Viterbi run over all words at once, one numpy step per character position
(`_Sweep`): Python's share grows with the longest word, not with the corpus.

Deviations: words over 1,024 characters are cut into chunks (sentencepiece skips sentences over 4,192 bytes);
Unicode scripts come from `unicodedata` names; unknown nodes count toward no piece in the E-step
(sentencepiece credits them to id 0); ties follow array order where sentencepiece's follow its hash maps.
"""

from __future__ import annotations

import itertools
import math
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np

from llmlab.errors import LlmlabError

if TYPE_CHECKING:
    from llmlab.tokenizer.unigram import Unigram

MAX_CHUNK = 1024  # training cuts longer words into chunks of this many characters
_HAN = ("CJK", "HIRAGANA", "KATAKANA")  # name prefixes of the scripts sentencepiece counts as Han


def train_unigram(
    word_counts: dict[str, int],
    vocab_size: int,
    special_tokens: Sequence[str] = (),
    unk_token: str = "<unk>",
    character_coverage: float = 0.9995,
    max_piece_length: int = 16,
    seed_size: int = 1_000_000,
    shrinking_factor: float = 0.75,
    num_sub_iterations: int = 2,
    byte_fallback: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> Unigram:
    """Learn a Unigram model from pre-tokenized word counts.

    Args:
        word_counts: each pre-tokenized word ('▁hello', or a whole space-less line) and its count.
        vocab_size: the size of the final vocabulary, special tokens and byte pieces included.
        special_tokens: pieces that get the first ids, in order; `unk_token` is put first if missing.
        unk_token: the unknown piece.
        character_coverage: the share of all characters that the required characters must cover.
        max_piece_length: the longest piece, in characters.
        seed_size: how many substrings seed the EM.
        shrinking_factor: the share of pieces each pruning round keeps.
        num_sub_iterations: EM iterations before each pruning round.
        byte_fallback: add the 256 "<0xXX>" pieces; unknown characters are then encoded as their bytes.
        progress: called as `progress(rounds_done, rounds_expected)`.

    Returns:
        The trained `Unigram` (scores are log probabilities; special tokens are never matched in text). A small
        corpus can give fewer than `vocab_size` pieces.

    Raises:
        LlmlabError: no words, a bad setting, or `vocab_size` below the special and byte pieces plus the
            required characters.
    """
    from llmlab.tokenizer.unigram import UNK_PENALTY, Unigram, byte_piece  # unigram.py re-exports us

    _check_settings(vocab_size, character_coverage, max_piece_length, shrinking_factor, num_sub_iterations)
    specials = list(dict.fromkeys(special_tokens))
    if unk_token not in specials:
        specials.insert(0, unk_token)
    meta = specials + ([byte_piece(b) for b in range(256)] if byte_fallback else [])
    corpus = _Corpus(word_counts)
    required = corpus.require(character_coverage, max_piece_length)
    if vocab_size < len(meta) + len(required):
        raise LlmlabError(
            f"Unigram trainer: vocab_size {vocab_size} is smaller than the {len(meta)} special/byte pieces + "
            f"{len(required)} required characters; raise vocab_size or lower character_coverage"
        )
    pieces, logp, reps, edges = _seeds(corpus, required, max_piece_length, seed_size)
    lengths = np.array([len(p) for p in pieces])
    lattice = _Lattice(corpus, *edges)
    alive, desired = np.ones(len(pieces), bool), int(vocab_size * 1.1)
    rounds = max(math.ceil(math.log(desired / len(pieces)) / math.log(shrinking_factor)), 0) + 1
    for done in itertools.count(1):
        for _ in range(num_sub_iterations):
            alive, logp = _m_step(lattice.expected_counts(_with_unk(logp, alive, UNK_PENALTY)), alive)
            lattice.keep(alive)
        if progress:
            progress(min(done, rounds - 1), rounds)
        if alive.sum() <= desired:  # every pruning round removes pieces, so this ends
            break
        target = max(desired, int(shrinking_factor * alive.sum()))
        alive = _prune(lattice, lengths, reps, _with_unk(logp, alive, UNK_PENALTY), alive, target)
        lattice.keep(alive)
    final = _finalize(pieces, logp, alive, [c for c, _ in required], vocab_size - len(meta), set(meta))
    if progress:
        progress(rounds, rounds)
    return Unigram(
        [(m, 0.0) for m in meta] + final,
        unk_id=specials.index(unk_token),
        byte_fallback=byte_fallback,
        special_ids=range(len(specials)),
    )


def _check_settings(
    vocab_size: int, coverage: float, max_len: int, shrink: float, sub_iterations: int
) -> None:
    for ok, message in [
        (vocab_size >= 1, f"vocab_size must be positive, not {vocab_size}"),
        (0 < coverage <= 1, f"character_coverage must be in (0, 1], not {coverage}"),
        (max_len >= 1, f"max_piece_length must be positive, not {max_len}"),
        (0 < shrink < 1, f"shrinking_factor must be in (0, 1), not {shrink}"),
        (sub_iterations >= 1, f"num_sub_iterations must be positive, not {sub_iterations}"),
    ]:
        if not ok:
            raise LlmlabError(f"Unigram trainer: {message}")


def _with_unk(logp: np.ndarray, alive: np.ndarray, penalty: float) -> np.ndarray:
    """Scores to index by piece id: `logp`, then the unknown node's min_score - penalty (read by id -1)."""
    return np.append(logp, logp[alive].min() - penalty)


class _Corpus:
    """Every distinct word (chunk) once, in one array of code points with a separator (-1) after each word.

    Node p of every lattice is position p of the array: word w runs from `start[w]` to `end[w]`, its separator.
    """

    def __init__(self, word_counts: dict[str, int]):
        merged: Counter[str] = Counter()
        for word, count in word_counts.items():
            for i in range(0, len(word) if count > 0 else 0, MAX_CHUNK):
                merged[word[i : i + MAX_CHUNK]] += count
        if not merged:
            raise LlmlabError("Unigram trainer: no words to train on")
        self.count = np.array(list(merged.values()), float)
        self.text = "".join(w + " " for w in merged)  # the piece at node p of length n is text[p : p + n]
        lengths = np.array([len(w) for w in merged])
        self.end = np.cumsum(lengths + 1) - 1
        self.start = self.end - lengths
        self.word_of = np.repeat(np.arange(len(lengths)), lengths + 1)  # (T,) the word of each node
        self.codes = np.frombuffer(self.text.encode("utf-32-le"), np.uint32).astype(np.int64)
        self.codes[self.end] = -1

    def require(self, coverage: float, max_len: int) -> list[tuple[str, float]]:
        """Choose the required characters; set `char` (piece id of each node's character, -1 unknown) and `room`.

        Returns:
            (character, count) of the required characters, most frequent first (ties: by code point).
        """
        uniq, inverse = np.unique(self.codes, return_inverse=True)
        counts = np.bincount(inverse, self.count[self.word_of])
        total, covered, required = counts[uniq >= 0].sum(), 0.0, []
        for i in np.lexsort((uniq, -counts)):
            if uniq[i] >= 0 and covered < coverage * total:
                covered += counts[i]
                required.append(i)
        piece_of = np.full(len(uniq), -1)
        piece_of[required] = np.arange(len(required))
        self.char = piece_of[inverse].astype(np.int32)
        self.room = self._room(uniq, inverse, max_len)
        return [(chr(uniq[i]), float(counts[i])) for i in required]

    def _room(self, uniq: np.ndarray, inverse: np.ndarray, max_len: int) -> np.ndarray:
        """(T,) the longest valid piece starting at each node: known characters of one script, '▁' only first."""
        names: dict[str, int] = {}
        table = [names.setdefault(_script(chr(c)), len(names)) if c >= 0 else -1 for c in uniq]
        script = np.array(table)[inverse]
        space, known = self.codes == ord("▁"), self.char >= 0
        script[space | ~known] = -1
        if "Inherited" in names:  # a combining mark takes the script of the character before it
            marks = script == names["Inherited"]
            script = script[np.maximum.accumulate(np.where(marks, 0, np.arange(len(script))))]
        after = np.append(script[1:], -1)
        grows = (after >= 0) & ((script == after) | (space & known))  # the piece at p can take in p + 1
        stop = np.where(grows, len(grows), np.arange(len(grows)))
        stop = np.minimum.accumulate(stop[::-1])[::-1]  # the first node at or after p that cannot grow
        return np.where(known, np.minimum(stop - np.arange(len(grows)) + 1, max_len), 0)


def _script(ch: str) -> str:
    """The Unicode script of a character, approximated from its name: 'LATIN', 'Han', 'Common', ..."""
    if unicodedata.category(ch)[0] not in "LM":
        return "Common"  # digits, punctuation, symbols, spaces
    first = unicodedata.name(ch, "").removeprefix("FULLWIDTH ").removeprefix("HALFWIDTH ").split(" ")[0]
    if first.startswith(_HAN):
        return "Han"
    return {"COMBINING": "Inherited", "MODIFIER": "Common", "": "Common"}.get(first, first)


def _suffix_order(codes: np.ndarray, depth: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """Positions sorted by their first `depth` characters, by prefix doubling.

    Returns:
        the sorted positions, and per level j the ranks of the 2**j characters from each position (equal ranks,
        equal strings), padded with -1 past the end.
    """
    rank = np.unique(codes, return_inverse=True)[1].astype(np.int64)
    ranks, k = [rank], 1
    while k < depth:
        after = np.full(len(rank), -1)
        after[:-k] = rank[k:]
        rank = np.unique(rank * (rank.max() + 2) + after + 1, return_inverse=True)[1].astype(np.int64)
        ranks.append(rank)
        k *= 2
    return np.argsort(rank, kind="stable"), [np.append(r, np.full(2 * k, -1)) for r in ranks]


def _lcp(a: np.ndarray, b: np.ndarray, ranks: list[np.ndarray]) -> np.ndarray:
    """The length of the common prefix of the strings at positions a and b (binary lifting over the ranks)."""
    lcp = np.zeros(len(a), np.int64)
    for j in reversed(range(len(ranks))):
        lcp += (ranks[j][a + lcp] == ranks[j][b + lcp]) * (1 << j)
    return lcp


def _ranges(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every integer of the ranges [lo[i], hi[i]): (the range i of each, the integers)."""
    counts = hi - lo
    which = np.repeat(np.arange(len(lo)), counts)
    return which, np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts - lo, counts)


def _seeds(corpus: _Corpus, required: list[tuple[str, float]], max_len: int, seed_size: int):
    """Seed pieces: the required characters, then the best branching substrings, and all their occurrences.

    Returns:
        the pieces, their log probabilities, a node where each occurs, and the edges (src, dst, piece) of all
        occurrences, piece -1 for an unknown character.
    """
    sa, ranks = _suffix_order(corpus.codes, max_len + 1)
    sa = sa[corpus.room[sa] >= 2]  # where a piece of 2+ characters can start
    lcp = np.zeros(len(sa), np.int64)
    lcp[1:] = _lcp(sa[:-1], sa[1:], ranks)
    weight = corpus.count[corpus.word_of[sa]]
    found = [(np.zeros(0, np.int64),) * 3 + (np.zeros(0),)]  # (length, first, last, score) per substring
    for length in range(2, max_len + 1 if len(sa) else 2):
        first = np.flatnonzero(lcp < length)  # sa[first:last] share a string of `length` characters
        last = np.append(first[1:], len(sa))
        freq = np.add.reduceat(weight, first)
        branches = np.logical_or.reduceat(lcp == length, first)  # two different next characters
        ends_word = corpus.end[corpus.word_of[sa[first]]] - sa[first] == length  # (sorted first in its group)
        ok = (branches | (ends_word & (freq >= 2))) & (corpus.room[sa[first]] >= length)
        found.append((np.full(ok.sum(), length), first[ok], last[ok], freq[ok] * length))
    length, first, last, score = (np.concatenate(f) for f in zip(*found, strict=True))
    best = np.argsort(-score, kind="stable")[:seed_size]
    length, first, last, score = length[best], first[best], last[best], score[best]
    substrings = [corpus.text[p : p + n] for p, n in zip(sa[first], length, strict=True)]
    pieces = [c for c, _ in required] + substrings
    scores = np.concatenate([[n for _, n in required], score])
    nodes = np.flatnonzero(corpus.codes >= 0)
    ids, seen = np.unique(corpus.char[nodes], return_index=True)
    seed, member = _ranges(first, last)  # every occurrence of every seed
    src = np.concatenate([nodes, sa[member]]).astype(np.int32)
    dst = src + np.concatenate([np.ones(len(nodes), np.int32), length[seed]]).astype(np.int32)
    piece = np.concatenate([corpus.char[nodes], seed + len(required)]).astype(np.int32)
    reps = np.concatenate([nodes[seen[ids >= 0]], sa[first]])
    return pieces, np.log(scores / scores.sum()), reps, (src, dst, piece)


def _survivors(src: np.ndarray, dst: np.ndarray, piece: np.ndarray, alive: np.ndarray):
    """The edges that survive when pieces die (a dead single character turns into an unknown node, -1).

    Returns:
        the mask of surviving edges, and the new piece ids (unfiltered).
    """
    dead = (piece >= 0) & ~alive[piece]
    single = np.abs(dst - src) == 1
    return ~dead | single, np.where(dead & single, -1, piece).astype(np.int32)


class _Sweep:
    """Edges ordered for a dynamic programme over all lattices at once.

    An edge reads node `read` and writes node `write`. Sorted by (step, write), each step updates all the nodes
    it writes with a few segmented numpy reductions, one segment per written node.
    """

    def __init__(self, read, write, piece, step, order: np.ndarray | None = None):
        if order is None:
            order = np.argsort(step.astype(np.int64) * (int(write.max(initial=0)) + 1) + write)
        self.read, self.write, self.piece, self.step = read[order], write[order], piece[order], step[order]
        self._index()

    def keep(self, alive: np.ndarray) -> None:
        kept, self.piece = _survivors(self.read, self.write, self.piece, alive)
        self.read, self.write, self.piece, self.step = (
            x[kept] for x in (self.read, self.write, self.piece, self.step)
        )
        self._index()

    def _index(self) -> None:
        new = np.ones(len(self.write), bool)
        new[1:] = self.write[1:] != self.write[:-1]
        self.seg = np.flatnonzero(new)  # the first edge of each written node
        self.seg_node, self.seg_len = self.write[self.seg], np.diff(np.append(self.seg, len(self.write)))
        segs = np.concatenate([[0], np.flatnonzero(np.diff(self.step[self.seg])) + 1, [len(self.seg)]])
        edges = np.append(self.seg, len(self.write))[segs]
        self.blocks = list(zip(edges[:-1], edges[1:], segs[:-1], segs[1:], strict=True))

    def logsumexp(self, values: np.ndarray, scores: np.ndarray) -> None:
        """values[write] = log sum exp(values[read] + score) over each node's edges, step after step."""
        for a, b, s, t in self.blocks:
            v, seg = values[self.read[a:b]] + scores[a:b], self.seg[s:t] - a
            top = np.maximum.reduceat(v, seg)
            total = np.add.reduceat(np.exp(v - np.repeat(top, self.seg_len[s:t])), seg)
            values[self.seg_node[s:t]] = top + np.log(total)

    def best(self, values: np.ndarray, scores: np.ndarray, back: np.ndarray) -> None:
        """values[write] = max(values[read] + score); back[write] = the first edge that reaches it."""
        for a, b, s, t in self.blocks:
            v, seg = values[self.read[a:b]] + scores[a:b], self.seg[s:t] - a
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


class _Lattice:
    """The lattices of all words: their edges in forward, backward and source order."""

    def __init__(self, corpus: _Corpus, src: np.ndarray, dst: np.ndarray, piece: np.ndarray):
        self.corpus, self.alive = corpus, None
        local = (np.arange(len(corpus.codes)) - corpus.start[corpus.word_of]).astype(np.int32)
        self.fwd = _Sweep(src, dst, piece, local[dst])
        self.bwd = _Sweep(dst, src, piece, local.max() - local[src])
        order = np.argsort(src)  # a piece's inner edges are then one range
        self.src, self.dst, self.piece = src[order], dst[order], piece[order]

    def keep(self, alive: np.ndarray) -> None:
        """Drop the edges of dead pieces."""
        if self.alive is not None and np.array_equal(alive, self.alive):
            return
        self.alive = alive
        self.fwd.keep(alive)
        self.bwd.keep(alive)
        kept, piece = _survivors(self.src, self.dst, self.piece, alive)
        self.src, self.dst, self.piece = self.src[kept], self.dst[kept], piece[kept]

    def expected_counts(self, scores: np.ndarray) -> np.ndarray:
        """E-step: each piece's expected count in all words (weighted by word counts); scores as `_with_unk`."""
        c, f = self.corpus, self.fwd
        edge_scores = scores[f.piece]
        alpha, beta = np.full(len(c.codes), -np.inf), np.full(len(c.codes), -np.inf)
        alpha[c.start], beta[c.end] = 0.0, 0.0
        f.logsumexp(alpha, edge_scores)
        self.bwd.logsumexp(beta, scores[self.bwd.piece])
        word = c.word_of[f.read]
        log_weight = np.log(c.count) - alpha[c.end]  # word count / Z, in logs
        post = np.exp(alpha[f.read] + edge_scores + beta[f.write] + log_weight[word])
        return np.bincount(f.piece + 1, post, minlength=len(scores))[1:]  # (id -1, unknown, lands in bin 0)

    def viterbi_counts(self, scores: np.ndarray) -> np.ndarray:
        """How often each piece is used by the best segmentations of all words (weighted by word counts)."""
        c, f = self.corpus, self.fwd
        best, back = np.full(len(c.codes), -np.inf), np.zeros(len(c.codes), np.int64)
        best[c.start] = 0.0
        f.best(best, scores[f.piece], back)
        freq = np.zeros(len(scores) - 1)
        for word, edge in f.backtrack(back, c.end, c.start):
            known = f.piece[edge] >= 0
            np.add.at(freq, f.piece[edge][known], c.count[word][known])
        return freq

    def second_best(self, reps: np.ndarray, lengths: np.ndarray, scores: np.ndarray):
        """The best segmentation of each piece (at one occurrence) that does not use the piece itself.

        Returns:
            its score per piece, and its tokens as (piece index, token id) arrays.
        """
        win, edge = _ranges(self.src.searchsorted(reps), self.src.searchsorted(reps + lengths))
        src, dst, end = self.src[edge], self.dst[edge], (reps + lengths)[win]
        inside = (dst <= end) & ((src != reps[win]) | (dst != end))  # within the piece, not the piece
        win, src, dst, piece = win[inside], src[inside], dst[inside], self.piece[edge[inside]]
        offset = np.cumsum(lengths + 1) - lengths - 1 - reps  # window node = offset[win] + corpus node
        step = (dst - reps[win]).astype(np.int16)
        order = np.argsort(step, kind="stable")  # edges come window by window, so (step, write) order
        sweep = _Sweep(offset[win] + src, offset[win] + dst, piece, step, order)
        size = int((lengths + 1).sum())
        best, back = np.full(size, -np.inf), np.zeros(size, np.int64)
        best[offset + reps] = 0.0
        sweep.best(best, scores[sweep.piece], back)
        steps = list(sweep.backtrack(back, offset + reps + lengths, offset + reps))
        tokens = (np.concatenate([w for w, _ in steps]), np.concatenate([sweep.piece[e] for _, e in steps]))
        return best[offset + reps + lengths], tokens


def _digamma(x: np.ndarray) -> np.ndarray:
    """sentencepiece's digamma: the recurrence up to 7, then the asymptotic series."""
    x, result = x.astype(float), np.zeros(len(x))
    while (small := x < 7).any():
        result[small] -= 1 / x[small]
        x[small] += 1
    x = x - 0.5
    xx2 = 1 / (x * x)
    xx4 = xx2 * xx2
    return result + np.log(x) + xx2 / 24 - 7 / 960 * xx4 + 31 / 8064 * xx4 * xx2 - 127 / 30720 * xx4 * xx4


def _m_step(expected: np.ndarray, alive: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """M-step: pieces expected < 0.5 times die; score = digamma(count) - digamma(total)."""
    alive = alive & (expected >= 0.5)
    logp = np.full(len(expected), -np.inf)
    logp[alive] = _digamma(expected[alive]) - _digamma(expected[alive].sum(keepdims=True))
    return alive, logp


def _prune(lattice: _Lattice, lengths, reps, scores, alive, target: int) -> np.ndarray:
    """Keep `target` pieces: the used characters, then the pieces whose removal loses most likelihood."""
    freq = lattice.viterbi_counts(scores)
    ids = np.flatnonzero(alive)
    chars, multi = ids[lengths[ids] == 1], ids[lengths[ids] > 1]
    alt_score, (win, alt) = lattice.second_best(reps[multi], lengths[multi], scores)
    # removing piece i hands its Viterbi count f_i to the n pieces of its second-best segmentation
    f_i, n = freq[multi], np.bincount(win, minlength=len(multi))
    total, alt_freq = freq.sum(), np.where(alt >= 0, freq[alt], 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_alt = np.bincount(win, np.log(alt_freq + f_i[win]), len(multi))
        log_alt -= n * np.log(total + f_i * (n - 1))  # the total count grows by f_i * (n - 1)
        loss = f_i / lattice.corpus.count.sum() * (np.log(f_i) - math.log(total) - log_alt)
    candidates = (f_i > 0) & (alt_score <= scores[multi])  # used, and its own best segmentation
    ranked = multi[candidates][np.argsort(-loss[candidates], kind="stable")]
    kept = chars[freq[chars] > 0]
    new = np.zeros(len(alive), bool)
    new[kept] = True
    new[ranked[: max(target - len(kept), 0)]] = True
    return new


def _finalize(pieces, logp, alive, required: list[str], size: int, meta: set[str]) -> list[tuple[str, float]]:
    """The required characters, then the best pieces up to `size`, ordered by score (ties: by piece)."""
    scores = {pieces[i]: float(logp[i]) for i in np.flatnonzero(alive)}
    low = min(scores.values())
    missing = [c for c in required if c not in scores]  # EM dropped them: scored as sentencepiece does
    final = {c: low + 0.0001 * rank for rank, c in enumerate(missing)}
    final.update((c, scores[c]) for c in required if c in scores)
    for piece, score in sorted(scores.items(), key=lambda kv: (-kv[1], kv[0])):
        if len(final) >= size:
            break
        if piece not in meta:
            final.setdefault(piece, score)
    return sorted(((p, s) for p, s in final.items() if p not in meta), key=lambda kv: (-kv[1], kv[0]))
