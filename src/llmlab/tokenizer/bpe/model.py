"""Byte-pair encoding model: split one pre-tokenized word into tokens by replaying learned merges.

Paper: Sennrich, Haddow & Birch (2016), "Neural Machine Translation of Rare Words with Subword Units"; the
byte-level variant (every byte a symbol, so nothing is unknown) is GPT-2's (Radford et al. 2019).
Reference implementation, matched token for token (tested): Hugging Face `tokenizers` `models.BPE`
(tokenizers/src/models/bpe/model.rs and word.rs), including its JSON form (the "model" of tokenizer.json).

How a word is encoded, as HF does it: each character becomes a symbol (with `continuing_subword_prefix`
when it does not start the word, `end_of_word_suffix` when it ends it); unknown characters become
`unk_token` (fused into one when `fuse_unk`), or their UTF-8 bytes as "<0xXX>" tokens with `byte_fallback`,
or are dropped. Then, repeatedly, the adjacent pair with the lowest merge rank is merged, the leftmost one
first, until no adjacent pair has a merge. This is HF's order; GPT-2's `encoder.py` merges every copy of the
best pair at once, which gives the same tokens for merge lists learned by a trainer.

Speed: a long byte-level word (a clause of Chinese) starts from each character's bytes merged on their own,
where that provably gives the same tokens (`chars.py`); short words are cached.

BPE-dropout (Provilkov et al. 2020): with `dropout` p each merge, tried best first, is skipped with
probability p until a merge is made (HF's order; a seeded `random.Random` stands for HF's thread RNG, so
sampled splits match HF's in distribution, and at p = 1 exactly: no merge at all).

As HF, with `byte_fallback` a pending unknown token is emitted after the byte tokens that follow it, and
offsets run in the order tokens are emitted (HF adds up byte lengths). Offsets are character indices into the
word (HF gives bytes; its pipeline converts them).

The trainer lives in `trainer.py`.
"""

from __future__ import annotations

import functools
import random
from array import array
from collections.abc import Iterable, Iterator
from itertools import accumulate, pairwise

from llmlab.errors import LlmlabError
from llmlab.tokenizer.bpe.chars import CharMerges, has_multibyte
from llmlab.tokenizer.vocab import VocabLookup

Token = tuple[int, int, int]  # (id, start, end), start/end character indices into the word
_NO_MERGE = 1 << 62  # rank of a pair that has no merge
_CACHE_MAX_WORD = 256  # longer words are not cached (HF's MAX_LENGTH)
_CHARS_FROM = 12  # words of at least this many symbols start from merged characters, where the table allows


class BPE(VocabLookup):
    """Model stage of the pipeline. Works on one pre-tokenized word at a time.

    Attributes:
        vocab: token -> id.
        merges: (left, right) token pairs, rank order (made on each access: the model keeps ids, as HF).
    """

    def __init__(
        self,
        vocab: dict[str, int],
        merges: list[tuple[str, str]],
        unk_token: str | None = None,
        continuing_subword_prefix: str | None = None,
        end_of_word_suffix: str | None = None,
        ignore_merges: bool = False,
        fuse_unk: bool = False,
        byte_fallback: bool = False,
        dropout: float | None = None,
        seed: int = 0,
        cache_capacity: int = 100_000,
    ):
        """Build the model.

        Args:
            vocab: token -> id.
            merges: (left, right) token pairs, highest priority first.
            unk_token: token for characters outside the vocabulary (None: such characters are dropped).
            continuing_subword_prefix: prefix of symbols that do not start the word ("##").
            end_of_word_suffix: suffix of the symbol that ends the word ("</w>").
            ignore_merges: a word that is itself in the vocabulary becomes that one token.
            fuse_unk: consecutive unknown characters give one `unk_token`.
            byte_fallback: unknown characters become their UTF-8 bytes as "<0xXX>" tokens when present.
            dropout: the probability of skipping each merge (BPE-dropout; None or 0: none; words are then
                not cached).
            seed: the seed of the dropout's random source.
            cache_capacity: how many words to remember (0: no cache).

        Raises:
            LlmlabError: a merge names a token, or builds a token, that is not in the vocabulary; a dropout
                outside [0, 1].
        """
        if dropout is not None and not 0.0 <= dropout <= 1.0:
            raise LlmlabError(f"BPE dropout must be between 0 and 1, not {dropout}")
        self.vocab = dict(vocab)
        self.unk_token = unk_token
        self.continuing_subword_prefix = continuing_subword_prefix
        self.end_of_word_suffix = end_of_word_suffix
        self.ignore_merges = ignore_merges
        self.fuse_unk = fuse_unk
        self.byte_fallback = byte_fallback
        self.dropout = dropout
        self._rng = random.Random(seed)
        self._merge_ids, self._merged = self._merge_table(merges)
        self._simple = not (continuing_subword_prefix or end_of_word_suffix)
        self._cache: dict[str, tuple[Token, ...]] = {}
        self._cache_capacity = cache_capacity
        # True: build on first use; False or None: the table cannot use it (see chars.py)
        self._char_merges: CharMerges | None | bool = self._simple

    def _merge_table(self, merges: Iterable[tuple[str, str]]) -> tuple[array, list[int]]:
        """The merges by id, as HF keeps them: (left id, right id) of each, flattened into one int32 array (a
        tenth of the memory of a list of string pairs), and rank -> id of the token each makes."""
        get, strip = self.vocab.get, len((self.continuing_subword_prefix or "").encode())
        pairs, merged = array("i"), []
        for rank, (a, b) in enumerate(merges):
            # HF drops the prefix's length in bytes from the right part whether or not it starts with it
            try:
                right = b.encode()[strip:].decode() if strip else b
            except UnicodeDecodeError:
                raise LlmlabError(
                    f"BPE merge {rank} ({a!r}, {b!r}): cannot drop the prefix from {b!r}"
                ) from None
            left_id, right_id, new = get(a), get(b), get(a + right)
            if left_id is None or right_id is None or new is None:
                token = next(t for t in (a, b, a + right) if t not in self.vocab)
                raise LlmlabError(
                    f"BPE merge {rank} ({a!r}, {b!r}): token {token!r} is not in the vocabulary"
                )
            pairs.extend((left_id, right_id))
            merged.append(new)
        return pairs, merged

    @property
    def merges(self) -> list[tuple[str, str]]:
        """The merges, highest priority first, as (left, right) tokens."""
        token = self._id_to_token
        return [(token[left], token[right]) for left, right in self._merge_pairs()]

    def _merge_pairs(self) -> Iterator[tuple[int, int]]:
        """(left id, right id) of each merge, rank order."""
        return zip(self._merge_ids[::2], self._merge_ids[1::2], strict=True)

    @functools.cached_property
    def _ranks(self) -> dict[tuple[int, int], int]:
        """(left id, right id) -> rank, made on first use: the model's largest table, which a tokenizer
        running on the compiled core never needs (`merge_ranks` makes a fresh one)."""
        return self.merge_ranks()

    def merge_ranks(self) -> dict[tuple[int, int], int]:
        """(left id, right id) -> rank of every merge (a repeated pair keeps its last rank, as HF)."""
        return {pair: rank for rank, pair in enumerate(self._merge_pairs())}

    def tokenize(self, word: str) -> list[Token]:
        """Split one pre-tokenized word into tokens.

        Args:
            word: the word as the model sees it (for byte-level BPE: byte-level mapped).

        Returns:
            (id, start, end) for each token; start/end are character indices into `word`. Cached per word
            (bounded cache).

        Raises:
            LlmlabError: an unknown character needs `unk_token`, which is not in the vocabulary.
        """
        if self.dropout and not (self.ignore_merges and word in self.vocab):
            ids, spans = self._symbols(word)
            sizes = self._merge_dropout(ids)
            ends = list(accumulate(sizes))
            spans = spans or [(i, i + 1) for i in range(len(word))]
            return [
                (i, spans[end - n][0], spans[end - 1][1]) for i, n, end in zip(ids, sizes, ends, strict=True)
            ]
        hit = self._cache.get(word)
        if hit is not None:
            return list(hit)
        if self.ignore_merges and word in self.vocab:
            tokens = [(self.vocab[word], 0, len(word))]
        else:
            ids, sizes, spans = self._start(word)
            sizes = self._merge(ids, sizes)
            ends = list(accumulate(sizes))
            if spans is None:  # sizes are in characters
                tokens = [(i, end - n, end) for i, n, end in zip(ids, sizes, ends, strict=True)]
            else:
                tokens = [
                    (i, spans[end - n][0], spans[end - 1][1])
                    for i, n, end in zip(ids, sizes, ends, strict=True)
                ]
        if len(self._cache) < self._cache_capacity and len(word) < _CACHE_MAX_WORD:
            self._cache[word] = tuple(tokens)
        return tokens

    def _start(self, word: str) -> tuple[list[int], list[int] | None, list[tuple[int, int]] | None]:
        """The symbols the merges start from: ids, characters each covers (None: one each), spans as `_symbols`."""
        if len(word) >= _CHARS_FROM and self._char_merges and has_multibyte(word):
            if self._char_merges is True:
                self._char_merges = CharMerges.build(self.vocab, self._ranks, self._merged)
            start = self._char_merges.symbols(word) if self._char_merges else None
            if start is not None:
                return start[0], start[1], None
        ids, spans = self._symbols(word)
        return ids, None, spans

    def _symbols(self, word: str) -> tuple[list[int], list[tuple[int, int]] | None]:
        """The initial symbols of `word` (ids) and the character span of each (None: one per character)."""
        if self._simple:
            try:
                return list(map(self.vocab.__getitem__, word)), None
            except KeyError:
                pass  # an unknown character: take the slow path
        emitted: list[tuple[int, int]] = []  # (id, bytes it stands for), in HF's order
        unk: list[int] = []  # the bytes of a pending unknown token, emitted before the next known character
        for i, ch in enumerate(word):
            piece = self._piece(ch, first=i == 0, last=i == len(word) - 1)
            size = len(ch.encode())
            byte_ids = None if piece in self.vocab else self._bytes(piece)
            if byte_ids is not None:  # HF: byte tokens of one byte each, a pending unknown token waits
                emitted += [(b, 1) for b in byte_ids]
            elif piece in self.vocab:
                self._flush_unk(unk, emitted)
                emitted.append((self.vocab[piece], size))
            elif self.unk_token is not None:  # without one, the character is dropped (as HF)
                if unk and self.fuse_unk:
                    unk[0] += size
                else:
                    self._flush_unk(unk, emitted)
                    unk[:] = [size]
        self._flush_unk(unk, emitted)
        return [i for i, _ in emitted], _char_spans(word, [n for _, n in emitted])

    def _flush_unk(self, unk: list[int], emitted: list[tuple[int, int]]) -> None:
        if unk:
            if self.unk_token not in self.vocab:
                raise LlmlabError(f"BPE unk_token {self.unk_token!r} is not in the vocabulary")
            emitted.append((self.vocab[self.unk_token], unk[0]))  # type: ignore[index]
            unk.clear()

    def _piece(self, ch: str, first: bool, last: bool) -> str:
        if not first and self.continuing_subword_prefix:
            ch = self.continuing_subword_prefix + ch
        if last and self.end_of_word_suffix:
            ch = ch + self.end_of_word_suffix
        return ch

    def _bytes(self, piece: str) -> list[int] | None:
        """With byte fallback, the ids of "<0xXX>" for each UTF-8 byte of `piece`; None if one is missing."""
        if not self.byte_fallback:
            return None
        ids = [self.vocab.get(f"<0x{b:02X}>") for b in piece.encode()]
        return None if None in ids else ids  # type: ignore[return-value]

    def _merge(self, ids: list[int], sizes: list[int] | None = None) -> list[int]:
        """Apply merges to `ids` in place, lowest rank first, leftmost first among equal ranks (HF's order).

        Args:
            ids: the symbols.
            sizes: what each symbol covers, in characters or symbols (None: 1 each).

        Returns:
            For each resulting token, the sum of the sizes of the symbols it merged.
        """
        get, merged = self._ranks.get, self._merged
        ranks = [get(pair, _NO_MERGE) for pair in pairwise(ids)]  # ranks[i]: merge of ids[i], ids[i + 1]
        sizes = [1] * len(ids) if sizes is None else sizes
        while ranks:
            best = min(ranks)
            if best == _NO_MERGE:
                break
            i = ranks.index(best)
            ids[i] = merged[best]
            del ids[i + 1], ranks[i]
            sizes[i] += sizes.pop(i + 1)
            if i:
                ranks[i - 1] = get((ids[i - 1], ids[i]), _NO_MERGE)
            if i < len(ranks):
                ranks[i] = get((ids[i], ids[i + 1]), _NO_MERGE)
        return sizes

    def _merge_dropout(self, ids: list[int]) -> list[int]:
        """`_merge` with BPE-dropout: the candidate merges are tried best first (leftmost among equals), each
        skipped with probability `dropout`; the first one not skipped is made, and the skipped ones are
        candidates again. Stops when every candidate was skipped."""
        get, merged, rng, p = self._ranks.get, self._merged, self._rng, self.dropout
        sizes = [1] * len(ids)
        while True:
            ranks = [(get(pair), i) for i, pair in enumerate(pairwise(ids))]
            best = next(
                (i for _, i in sorted(r for r in ranks if r[0] is not None) if rng.random() >= p), None
            )
            if best is None:
                return sizes
            ids[best] = merged[get((ids[best], ids[best + 1]))]
            del ids[best + 1]
            sizes[best] += sizes.pop(best + 1)

    def to_hf(self) -> dict:
        """The "model" object of an HF tokenizer.json (vocab in id order, merges as [left, right] lists)."""
        return {
            "type": "BPE",
            "dropout": self.dropout,
            "unk_token": self.unk_token,
            "continuing_subword_prefix": self.continuing_subword_prefix,
            "end_of_word_suffix": self.end_of_word_suffix,
            "fuse_unk": self.fuse_unk,
            "byte_fallback": self.byte_fallback,
            "ignore_merges": self.ignore_merges,
            "vocab": dict(sorted(self.vocab.items(), key=lambda item: item[1])),
            "merges": [[a, b] for a, b in self.merges],
        }

    @classmethod
    def from_hf(cls, d: dict) -> BPE:
        """Build from the "model" object of an HF tokenizer.json.

        Args:
            d: the object; merges may be [[left, right], ...] or, as in older files, ["left right", ...].

        Returns:
            The model.

        Raises:
            LlmlabError: not a BPE model, a missing or malformed vocab or merges, dropout, a merge token that is
                not in the vocabulary.
        """
        if not isinstance(d, dict) or d.get("type", "BPE") != "BPE":
            kind = d.get("type") if isinstance(d, dict) else type(d).__name__
            raise LlmlabError(f"expected a BPE model object, got {kind!r}")
        vocab, merges = d.get("vocab"), d.get("merges", [])
        if not isinstance(vocab, dict) or not all(isinstance(i, int) for i in vocab.values()):
            raise LlmlabError("BPE model: 'vocab' is missing or not a mapping of token -> integer id")
        if not isinstance(merges, list):
            raise LlmlabError("BPE model: 'merges' must be a list")
        return cls(
            vocab,
            [_parse_merge(m, rank) for rank, m in enumerate(merges)],
            unk_token=d.get("unk_token"),
            continuing_subword_prefix=d.get("continuing_subword_prefix"),
            end_of_word_suffix=d.get("end_of_word_suffix"),
            ignore_merges=bool(d.get("ignore_merges", False)),
            fuse_unk=bool(d.get("fuse_unk", False)),
            byte_fallback=bool(d.get("byte_fallback", False)),
            dropout=d.get("dropout"),
        )


def _char_spans(word: str, sizes: list[int]) -> list[tuple[int, int]]:
    """Character spans of symbols that follow one another, each `sizes[i]` UTF-8 bytes long (HF's offsets)."""
    char_of_byte = [i for i, ch in enumerate(word) for _ in ch.encode()]
    last = len(word)
    spans, start = [], 0
    for size in sizes:
        end = start + size
        a = char_of_byte[start] if start < len(char_of_byte) else last
        b = char_of_byte[end - 1] + 1 if 0 < end <= len(char_of_byte) else last
        spans.append((a, max(a, b)))
        start = end
    return spans


def _parse_merge(merge: object, rank: int) -> tuple[str, str]:
    """One merge as a pair: ["a", "b"] or the older "a b"."""
    parts = merge.split(" ") if isinstance(merge, str) else merge
    if not isinstance(parts, (list, tuple)) or len(parts) != 2 or not all(isinstance(p, str) for p in parts):
        raise LlmlabError(f"BPE model: merge {rank} is {merge!r}; expected [left, right] or 'left right'")
    return parts[0], parts[1]


__all__ = ["BPE", "Token"]
