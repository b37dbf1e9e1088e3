"""Unigram language-model tokenizer: the model stage (Viterbi segmentation, sampling, byte fallback).

Paper: Kudo (2018), "Subword Regularization: Improving Neural Network Translation Models with Multiple Subword
Candidates". A word is cut into pieces x_1..x_k maximising sum_i log p(x_i) (Viterbi over the lattice of every
vocabulary piece found in the word); subword regularisation instead samples a cut with probability
proportional to P(x)^alpha.
Reference implementations, matched token for token (tested): sentencepiece `src/unigram_model.cc`
(`Model::EncodeOptimized`, `Lattice::Sample`) and Hugging Face `tokenizers` `models.Unigram`, including its
JSON form (the "model" of tokenizer.json). Their rules, reproduced here:
- a position with no one-character piece gets an unknown node scored `min_score - 10` (kUnkPenalty);
  consecutive unknown tokens are fused into one (`fuse_unk`, HF's default and sentencepiece's), and with
  `byte_fallback` such a run becomes its UTF-8 bytes as "<0xXX>" tokens, each spanning the whole run as in
  HF (or stays `unk_id` when a byte has no piece: not all 256 need to be pieces);
- of equally good paths to a position the one found first wins: the one whose last token starts earliest;
- the unk piece and the "<0xXX>" byte pieces are never matched inside text, nor are `special_ids` (the
  CONTROL pieces of sentencepiece, such as <s> and </s>).
Deviations: scores add up in float64, as HF does (sentencepiece adds in float32, so on a near-tie closer than
float32 rounding the two references can disagree); HF matches <unk>, "<0xXX>" and special pieces written in
the text itself (its pipeline splits special tokens off first). Offsets are character indices into the word.

The trainer lives in `trainer.py`.
"""

from __future__ import annotations

import functools
import math
import random
from collections.abc import Iterable
from operator import itemgetter

from llmlab.errors import LlmlabError

Token = tuple[int, int, int]  # (id, start, end), start/end character indices into the word
UNK_PENALTY = 10.0  # sentencepiece kUnkPenalty: an unknown node scores min_score - 10
_CACHE_MAX_WORD = 64  # longer words (whole Chinese lines) rarely repeat and are not cached
_UNK = -1  # id of an unknown node inside the lattice, before fusing / byte fallback


def byte_piece(byte: int) -> str:
    """The byte-fallback piece of one byte: 0xE4 -> "<0xE4>"."""
    return f"<0x{byte:02X}>"


class Unigram:
    """Model stage of the pipeline. Works on one pre-tokenized word at a time ('▁hello', or a whole line).

    Attributes:
        vocab: piece -> id.
        pieces: (piece, score) in id order; scores are log probabilities.
        unk_id: id of the unknown piece (None: unknown characters are an error unless byte fallback).
        byte_fallback: unknown characters become "<0xXX>" byte tokens.
    """

    def __init__(
        self,
        pieces: list[tuple[str, float]],
        unk_id: int | None = 0,
        byte_fallback: bool = False,
        special_ids: Iterable[int] = (),
        fuse_unk: bool = True,
        cache_capacity: int = 100_000,
    ):
        """Build the model.

        Args:
            pieces: (piece, score) for each id, scores being log probabilities.
            unk_id: id of the unknown piece, or None.
            byte_fallback: unknown characters become "<0xXX>" tokens (where every byte has its piece).
            special_ids: ids never matched inside text (sentencepiece CONTROL pieces such as <s>, </s>).
            fuse_unk: consecutive unknown characters make one token (HF's tokenizer.json has no such field:
                it is always on there).
            cache_capacity: how many words to remember (0: no cache).

        Raises:
            LlmlabError: no pieces, a malformed or repeated piece, `unk_id` or a special id out of range.
        """
        _check_pieces(pieces, unk_id)
        self.pieces = [(p, float(s)) for p, s in pieces]
        self.vocab = {p: i for i, (p, _) in enumerate(self.pieces)}
        self.unk_id = unk_id
        self.byte_fallback = byte_fallback
        self.fuse_unk = fuse_unk
        self.special_ids = frozenset(special_ids)
        if any(not 0 <= i < len(pieces) for i in self.special_ids):
            raise LlmlabError(
                f"Unigram special ids {sorted(self.special_ids)} are not all below {len(pieces)}"
            )
        self._byte_ids = [self.vocab.get(byte_piece(b)) for b in range(256)] if byte_fallback else []
        hidden = self.special_ids | {unk_id} | set(self._byte_ids) - {None}
        matched = [i for i in range(len(pieces)) if i not in hidden]
        self._scores = [s for _, s in self.pieces]
        self._matched = matched
        self._max_len = max((len(self.pieces[i][0]) for i in matched), default=0)
        self.unk_score = min((self._scores[i] for i in matched), default=0.0) - UNK_PENALTY
        self._cache: dict[str, tuple[Token, ...]] = {}
        self._cache_capacity = cache_capacity

    @functools.cached_property
    def _prefixes(self) -> dict[str, int]:
        """`_prefix_table` of the matched pieces, made on first use (a tokenizer on the compiled core never
        needs it, and it is the model's largest table)."""
        return _prefix_table([self.pieces[i][0] for i in self._matched], self._matched)

    def tokenize(self, word: str) -> list[Token]:
        """The best (Viterbi) segmentation of one pre-tokenized word.

        Args:
            word: the word as the model sees it, e.g. '▁hello' or a whole space-less Chinese line.

        Returns:
            (id, start, end) for each token, start/end character indices into `word`; unknown characters
            fused into one `unk_id` token, or with byte fallback one "<0xXX>" token per UTF-8 byte, each
            carrying its character's span. Cached per word (bounded cache).

        Raises:
            LlmlabError: an unknown character with neither `unk_id` nor byte fallback.
        """
        hit = self._cache.get(word)
        if hit is not None:
            return list(hit)
        tokens = self._finish(word, self._viterbi(word))
        if len(self._cache) < self._cache_capacity and len(word) < _CACHE_MAX_WORD:
            self._cache[word] = tuple(tokens)
        return tokens

    def _viterbi(self, word: str) -> list[Token]:
        """Best path, unknown nodes as id -1. Ties keep the earlier start (sentencepiece's strict '>')."""
        n, get, scores, max_len = len(word), self._prefixes.get, self._scores, self._max_len
        best = [0.0] + [-math.inf] * n  # best[e]: score of the best path covering word[:e]
        start = [0] * (n + 1)  # start of that path's last token
        ids = [_UNK] * (n + 1)  # id of that last token
        for s in range(n):
            base, pid = best[s], get(word[s])
            # one character: its piece, or an unknown node when it has none (it is the first candidate to s+1)
            score = base + (self.unk_score if pid is None or pid < 0 else scores[pid])
            if score > best[s + 1]:
                best[s + 1], start[s + 1], ids[s + 1] = score, s, _UNK if pid is None or pid < 0 else pid
            if pid is None:  # no piece starts with this character
                continue
            for e in range(s + 2, min(n, s + max_len) + 1):
                pid = get(word[s:e])
                if pid is None:  # no piece starts with word[s:e]: stop extending
                    break
                if pid >= 0 and base + scores[pid] > best[e]:
                    best[e], start[e], ids[e] = base + scores[pid], s, pid
        path, e = [], n
        while e > 0:
            path.append((ids[e], start[e], e))
            e = start[e]
        return path[::-1]

    def sample(self, word: str, alpha: float, rng: random.Random) -> list[Token]:
        """Sample a segmentation with probability proportional to P(segmentation)^alpha (Kudo 2018).

        Forward filtering, backward sampling over the lattice, as sentencepiece's `Lattice::Sample`.

        Args:
            word: the pre-tokenized word.
            alpha: the smoothing exponent (sentencepiece's inverse temperature); 0 samples uniformly over
                segmentations, a large alpha gives the Viterbi segmentation.
            rng: the random source.

        Returns:
            (id, start, end) tokens as `tokenize` gives them.
        """
        ends = self._lattice(word)  # ends[e]: (start, id, score) of each node ending at e
        fwd = [0.0] * (len(word) + 1)  # fwd[e]: log of the summed weight of all paths covering word[:e]
        for e in range(1, len(word) + 1):
            fwd[e] = _logsumexp([fwd[s] + alpha * score for s, _, score in ends[e]])
        path, e = [], len(word)
        while e > 0:
            weights = [math.exp(fwd[s] + alpha * score - fwd[e]) for s, _, score in ends[e]]
            s, pid, _ = rng.choices(ends[e], weights)[0]
            path.append((pid, s, e))
            e = s
        return self._finish(word, path[::-1])

    def _lattice(self, word: str) -> list[list[tuple[int, int, float]]]:
        """Every node of the word's lattice, grouped by end position: (start, id, score)."""
        ends: list[list[tuple[int, int, float]]] = [[] for _ in range(len(word) + 1)]
        for s in range(len(word)):
            single = False
            for e in range(s + 1, min(len(word), s + self._max_len) + 1):
                pid = self._prefixes.get(word[s:e])
                if pid is None:
                    break
                if pid >= 0:
                    ends[e].append((s, pid, self._scores[pid]))
                    single = single or e == s + 1
            if not single:
                ends[s + 1].append((s, _UNK, self.unk_score))
        return ends

    def _finish(self, word: str, path: list[Token]) -> list[Token]:
        """Replace unknown nodes (runs of them when fused): byte tokens with byte fallback, else `unk_id`."""
        if _UNK not in map(itemgetter(0), path):
            return path
        tokens: list[Token] = []
        for pid, s, e in path:
            if pid != _UNK:
                tokens.append((pid, s, e))
            elif self.fuse_unk and tokens and tokens[-1][0] == _UNK:
                tokens[-1] = (_UNK, tokens[-1][1], e)
            else:
                tokens.append((_UNK, s, e))
        out: list[Token] = []
        for pid, s, e in tokens:
            ids = (
                [self._byte_ids[b] for b in word[s:e].encode("utf-8")]
                if pid == _UNK and self.byte_fallback
                else []
            )
            if pid != _UNK:
                out.append((pid, s, e))
            elif ids and None not in ids:
                out += [(i, s, e) for i in ids]
            elif self.unk_id is None:
                raise LlmlabError(f"Unigram: unknown character {word[s:e]!r} and the model has no unk_id")
            else:
                out.append((self.unk_id, s, e))
        return out

    def id_to_token(self, id: int) -> str | None:
        """The piece of `id`, or None when no piece has it."""
        return self.pieces[id][0] if 0 <= id < len(self.pieces) else None

    def token_to_id(self, token: str) -> int | None:
        """The id of `token`, or None when it is not in the vocabulary."""
        return self.vocab.get(token)

    def to_hf(self) -> dict:
        """The "model" object of an HF tokenizer.json (`special_ids` are not part of it)."""
        return {
            "type": "Unigram",
            "unk_id": self.unk_id,
            "vocab": [[p, s] for p, s in self.pieces],
            "byte_fallback": self.byte_fallback,
        }

    @classmethod
    def from_hf(cls, d: dict) -> Unigram:
        """Build from the "model" object of an HF tokenizer.json.

        Raises:
            LlmlabError: not a Unigram model, a missing or malformed vocab, a bad unk_id or byte_fallback.
        """
        if not isinstance(d, dict) or d.get("type", "Unigram") != "Unigram":
            kind = d.get("type") if isinstance(d, dict) else type(d).__name__
            raise LlmlabError(f"expected a Unigram model object, got {kind!r}")
        vocab = d.get("vocab")
        if not isinstance(vocab, list) or not all(
            isinstance(v, (list, tuple)) and len(v) == 2 for v in vocab
        ):
            raise LlmlabError("Unigram model: 'vocab' is missing or not a list of [piece, score] pairs")
        byte_fallback = d.get("byte_fallback", False)
        if not isinstance(byte_fallback, bool):
            raise LlmlabError(f"Unigram model: 'byte_fallback' must be true or false, not {byte_fallback!r}")
        return cls([(p, s) for p, s in vocab], unk_id=d.get("unk_id"), byte_fallback=byte_fallback)


def _check_pieces(pieces: list[tuple[str, float]], unk_id: int | None) -> None:
    if not pieces:
        raise LlmlabError("Unigram model: the vocabulary is empty")
    seen: set[str] = set()
    for i, (piece, score) in enumerate(pieces):
        if not isinstance(piece, str) or not piece:
            raise LlmlabError(f"Unigram model: piece {i} is {piece!r}; expected a non-empty string")
        if isinstance(score, bool) or not isinstance(score, (int, float)) or not math.isfinite(score):
            raise LlmlabError(
                f"Unigram model: piece {i} ({piece!r}) has score {score!r}; expected a finite number"
            )
        if piece in seen:
            raise LlmlabError(f"Unigram model: piece {piece!r} appears twice")
        seen.add(piece)
    if unk_id is not None and (
        isinstance(unk_id, bool) or not isinstance(unk_id, int) or not 0 <= unk_id < len(pieces)
    ):
        raise LlmlabError(f"Unigram model: unk_id {unk_id!r} is not an id below {len(pieces)}")


def _prefix_table(pieces: list[str], ids: list[int]) -> dict[str, int]:
    """Every prefix of every piece -> the piece's id if the prefix is a piece, else -1 (a trie as one dict)."""
    table: dict[str, int] = {}
    for piece in pieces:
        for k in range(1, len(piece)):
            table.setdefault(piece[:k], -1)
    table.update(zip(pieces, ids, strict=True))
    return table


def _logsumexp(values: list[float]) -> float:
    top = max(values)
    return top + math.log(sum(math.exp(v - top) for v in values))


__all__ = ["Token", "Unigram", "byte_piece"]
