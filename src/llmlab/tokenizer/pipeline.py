"""The tokenizer pipeline: normalizer → pre-tokenizer → model → post-processor, and the decoder back.

Follows Hugging Face `tokenizers` (tokenizers/src/tokenizer/mod.rs, added_vocabulary.rs, utils/truncation.rs,
utils/padding.rs) and is tested against it id for id, offset for offset, on real data:
1. Added tokens are split off first, leftmost-longest: those with `normalized=False` (special tokens, as a
   rule) in the raw text, the others in each remaining piece once it is normalized.
2. Each remaining piece is normalized, pre-tokenized into words, and each word split by the model.
3. Truncation (room left for the special tokens), post-processing (special tokens, type ids), padding.

Offsets are character spans into the original text (of each sequence of a pair), as HF's Python binding
gives them: a token's span within its word is mapped through the pre-tokenizer (`span`), then back through
the normalization, whose alignment is found by normalizing character by character (as HF's alignments are
per character; only composing normalizers such as NFKC fall back to the normalizer's grapheme alignment).
Deviation: `max_length` below the number of special tokens is an error (HF's unsigned subtraction wraps
around there and nothing is truncated).

Speed, the common case: normalization leaves every character in place and the pre-tokenizer cuts plain
substrings, so a token's offset is an addition; each word's split (ids, tokens, spans) is remembered.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import chain, repeat

import regex

from llmlab.errors import LlmlabError
from llmlab.io import atomic_write_json, fingerprint, read_json
from llmlab.tokenizer.normalize import Normalizer
from llmlab.tokenizer.postprocess import (
    Encoding,
    Padding,
    PostProcessor,
    Truncation,
    merge,
    pad_encodings,
    truncate_pair,
)
from llmlab.tokenizer.pretokenize import ByteLevel, Metaspace, PreTokenizer
from llmlab.tokenizer.unigram import Unigram

__all__ = ["AddedToken", "Encoding", "Padding", "Tokenizer", "Truncation", "check_fingerprint"]

_GRAPHEME = regex.compile(r"\X", regex.DOTALL)
_WORD_CHAR = regex.compile(r"[\p{Alphabetic}\p{M}\p{Nd}\p{Pc}\p{Join_Control}]")  # Rust regex's \w
_SPACES_BEFORE = regex.compile(r"\p{White_Space}*\Z")
_SPACES_AFTER = regex.compile(r"\p{White_Space}*")
_MEMO_CAPACITY = 200_000  # words whose split the pipeline remembers


@dataclass(frozen=True)
class AddedToken:
    """A token matched in the text before the model sees it (HF `AddedToken`).

    Attributes:
        id: its id (the model's id when the model has the token).
        content: the text it matches.
        special: skipped by `decode(skip_special_tokens=True)`.
        single_word: match only when not inside a word.
        lstrip, rstrip: the match swallows the whitespace on its left / right.
        normalized: match in the normalized text (default: not for special tokens, as HF).
    """

    id: int
    content: str
    special: bool = False
    single_word: bool = False
    lstrip: bool = False
    rstrip: bool = False
    normalized: bool | None = None

    def __post_init__(self):
        if self.normalized is None:
            object.__setattr__(self, "normalized", not self.special)

    def to_hf(self) -> dict:
        return {
            "id": self.id,
            "content": self.content,
            "single_word": self.single_word,
            "lstrip": self.lstrip,
            "rstrip": self.rstrip,
            "normalized": self.normalized,
            "special": self.special,
        }


class _AddedMatcher:
    """Leftmost-longest search for a set of added tokens, with HF's single_word / lstrip / rstrip rules."""

    def __init__(self, tokens: dict[str, AddedToken]):
        self.tokens = tokens
        longest_first = sorted(tokens, key=len, reverse=True)  # alternation tries them in order
        self.pattern = regex.compile("|".join(map(regex.escape, longest_first))) if tokens else None

    def split(self, text: str) -> list[tuple[int, int, AddedToken | None]] | None:
        """(start, end, token or None) pieces covering `text`, or None when no token occurs in it."""
        if self.pattern is None or self.pattern.search(text) is None:
            return None
        pieces, pos = [], 0
        for m in self.pattern.finditer(text):
            start, stop = m.span()
            tok = self.tokens[m.group()]
            if tok.single_word and (
                (start > 0 and _WORD_CHAR.match(text, start - 1))
                or (stop < len(text) and _WORD_CHAR.match(text, stop))
            ):
                continue
            if tok.lstrip:
                start = max(_SPACES_BEFORE.search(text, 0, start).start(), pos)
            if tok.rstrip:
                stop = _SPACES_AFTER.match(text, stop).end()
            if pos < start:
                pieces.append((pos, start, None))
            pieces.append((start, stop, tok))
            pos = stop
        if pos < len(text):
            pieces.append((pos, len(text), None))
        return pieces


class Tokenizer:
    """A full tokenizer: text → `Encoding` (ids, tokens, offsets, masks) and ids → text."""

    def __init__(
        self,
        model,
        normalizer: Normalizer | None = None,
        pre_tokenizer: PreTokenizer | None = None,
        post_processor: PostProcessor | None = None,
        decoder=None,
        added_tokens: Iterable[AddedToken] = (),
        truncation: Truncation | None = None,
        padding: Padding | None = None,
    ):
        """Assemble the pipeline.

        Args:
            model: a `WordPiece`, `BPE` or `Unigram` model (anything with `tokenize`, `vocab`, `to_hf`).
            normalizer, pre_tokenizer, post_processor, decoder: the other stages (None: skip the stage).
            added_tokens: tokens matched before the model runs (special tokens such as [CLS]).
            truncation, padding: runtime settings (see `enable_truncation`, `enable_padding`).
        """
        self._model, self._normalizer, self._pre_tokenizer = model, normalizer, pre_tokenizer
        self.post_processor = post_processor
        self.decoder = decoder
        self.truncation = truncation
        self.padding = padding
        self.added_tokens: list[AddedToken] = []
        for token in added_tokens:
            self._add(token)
        self._refresh()

    def __repr__(self) -> str:
        return f"Tokenizer({self.model_type}, vocab_size={self.vocab_size}, added_tokens={len(self.added_tokens)})"

    # The stages the caches depend on: assigning a new one rebuilds them. Treat stages as immutable.
    @property
    def model(self):
        return self._model

    @model.setter
    def model(self, model) -> None:
        self._model = model
        self._refresh()

    @property
    def normalizer(self) -> Normalizer | None:
        return self._normalizer

    @normalizer.setter
    def normalizer(self, normalizer: Normalizer | None) -> None:
        self._normalizer = normalizer
        self._refresh()

    @property
    def pre_tokenizer(self) -> PreTokenizer | None:
        return self._pre_tokenizer

    @pre_tokenizer.setter
    def pre_tokenizer(self, pre_tokenizer: PreTokenizer | None) -> None:
        self._pre_tokenizer = pre_tokenizer
        self._refresh()

    @property
    def model_type(self) -> str:
        """ "wordpiece", "bpe" or "unigram"."""
        return type(self.model).__name__.lower()

    # ---- added tokens and vocabulary -------------------------------------------------------------------

    def _add(self, token: AddedToken) -> bool:
        """Add or replace one added token; False when an identical one is already there (or it is empty)."""
        if not token.content or token in self.added_tokens:
            return False
        self.added_tokens = [t for t in self.added_tokens if t.content != token.content] + [token]
        return True

    def _refresh(self) -> None:
        """Rebuild the lookups after the added tokens changed."""
        ordered = [t for t in self.added_tokens if t.special] + [
            t for t in self.added_tokens if not t.special
        ]
        self._raw = _AddedMatcher({t.content: t for t in ordered if not t.normalized})
        norm = self.normalizer.normalize if self.normalizer else str
        self._normed = _AddedMatcher({norm(t.content): t for t in reversed(ordered) if t.normalized})
        self._specials = {t.content for t in self.added_tokens if t.special}
        self._added_ids = {t.content: t.id for t in self.added_tokens}
        self._id_to_token = {i: t for t, i in self.model.vocab.items()}
        # as HF: a normalized added token reads back in its normalized form (and is then not "special" by name)
        self._id_to_token.update(
            {t.id: norm(t.content) if t.normalized else t.content for t in self.added_tokens}
        )
        pre = self.pre_tokenizer
        self._identity_span = pre is None or type(pre).span is PreTokenizer.span
        # for these pre-tokenizers a word as long as its text span maps to it character for character
        self._plain_when_same_length = self._identity_span or isinstance(pre, (ByteLevel, Metaspace))
        self._memo: dict[str, tuple[tuple[int, ...], tuple[str, ...], tuple | None]] = {}
        self._char_memo = _CharMemo(self.normalizer.normalize if self.normalizer else str)

    def add_special_tokens(self, tokens: list[str]) -> int:
        """Add special tokens (matched in the raw text, skipped when decoding), as HF's `add_special_tokens`.

        A token already in the vocabulary keeps its id; a new one gets the next free id.

        Returns:
            How many were added (tokens already added as special tokens do not count).
        """
        added = 0
        for content in tokens:
            id_ = self._added_ids.get(content, self.model.token_to_id(content))
            added += self._add(AddedToken(self._next_id() if id_ is None else id_, content, special=True))
            self._added_ids = {t.content: t.id for t in self.added_tokens}
        self._refresh()
        return added

    def _next_id(self) -> int:
        return next_added_id(len(self.model.vocab), [t.id for t in self.added_tokens])

    def token_to_id(self, token: str) -> int | None:
        """The id of `token` (added tokens first, then the model), or None."""
        id_ = self._added_ids.get(token)
        return self.model.token_to_id(token) if id_ is None else id_

    def id_to_token(self, id: int) -> str | None:
        """The token of `id` (added tokens first, then the model), or None."""
        return self._id_to_token.get(id)

    def get_vocab(self) -> dict[str, int]:
        """token -> id, the model's vocabulary and the added tokens."""
        return {**self.model.vocab, **{t.content: t.id for t in self.added_tokens}}

    @property
    def vocab_size(self) -> int:
        """Number of distinct tokens, added tokens included (HF's `get_vocab_size(True)`)."""
        return len(self.get_vocab())

    # ---- encoding --------------------------------------------------------------------------------------

    def encode(self, text: str, pair: str | None = None, add_special_tokens: bool = True) -> Encoding:
        """Tokenize one text (or a pair of texts) into an `Encoding`.

        Args:
            text: the (first) text.
            pair: the second text of a pair (e.g. question and context), or None.
            add_special_tokens: let the post-processor add its special tokens ([CLS], [SEP], ...).

        Returns:
            The encoding, truncated and padded as configured; `overflowing` holds the cut-off windows.

        Raises:
            LlmlabError: the truncation settings cannot be met (stride too large, sequence too short).
        """
        enc = self._post_process(
            self._encode_sequence(text, 0),
            None if pair is None else self._encode_sequence(pair, 1),
            add_special_tokens,
        )
        return pad_encodings([enc], self.padding)[0] if self.padding else enc

    def encode_batch(
        self, inputs: list[str] | list[tuple[str, str]], add_special_tokens: bool = True
    ) -> list[Encoding]:
        """Encode many texts or (text, pair) tuples; batch-longest padding pads to the longest of the batch."""
        # A batch allocates tens of thousands of small lists that all survive until it is returned; letting
        # the collector run meanwhile only re-scans them (and the whole heap) in vain: no cycles are made here.
        enabled = gc.isenabled()
        gc.disable()
        try:
            encs = [self._encode_input(x, add_special_tokens) for x in inputs]
            return pad_encodings(encs, self.padding) if self.padding else encs
        finally:
            if enabled:
                gc.enable()

    def _encode_input(self, x: str | tuple[str, str], add_special_tokens: bool) -> Encoding:
        if isinstance(x, str):
            return self._post_process(self._encode_sequence(x, 0), None, add_special_tokens)
        a, b = x
        return self._post_process(
            self._encode_sequence(a, 0), self._encode_sequence(b, 1), add_special_tokens
        )

    def _post_process(self, a: Encoding, b: Encoding | None, add_special_tokens: bool) -> Encoding:
        """HF's post_process: truncate (leaving room for special tokens), then add the special tokens."""
        if self.truncation:
            added = self.post_processor.added_tokens(b is not None) if self.post_processor else 0
            a, b = truncate_pair(a, b, self.truncation, added if add_special_tokens else 0)
        if self.post_processor:
            return self.post_processor.process(a, b, add_special_tokens)
        return a if b is None else merge(a, b)

    def _encode_sequence(self, text: str, type_id: int) -> Encoding:
        """One text through added-token split, normalizer, pre-tokenizer and model; no special tokens yet."""
        ids: list[int] = []
        tokens: list[str] = []
        offsets: list[tuple[int, int]] = []
        pieces = self._raw.split(text)
        if pieces is None:
            self._encode_piece(text, 0, ids, tokens, offsets)
        else:
            for start, stop, added in pieces:
                if added is None:
                    self._encode_piece(text[start:stop], start, ids, tokens, offsets)
                else:
                    ids.append(added.id)
                    tokens.append(text[start:stop])
                    offsets.append((start, stop))
        n = len(ids)
        return Encoding(ids, tokens, offsets, [type_id] * n, [1] * n, [0] * n, [])

    def _encode_piece(self, raw: str, base: int, ids: list, tokens: list, offsets: list) -> None:
        """Normalize `raw` (which starts at `base` in the text), split off normalized added tokens, encode."""
        text = raw if self.normalizer is None else self.normalizer.normalize(raw)
        align = None if text == raw or self._one_to_one(raw, text) else self._alignment(raw, text)
        pieces = self._normed.split(text)
        if pieces is None and align is None:  # the fast, common path: offsets need no mapping
            self._encode_words(text, base, ids, tokens, offsets, first=base == 0)
            return
        for start, stop, added in pieces or [(0, len(text), None)]:
            done = len(offsets)
            if added is None:
                first = base + _raw_position(start, align, len(raw)) == 0
                self._encode_words(text[start:stop], start, ids, tokens, offsets, first)
            else:
                ids.append(added.id)
                tokens.append(text[start:stop])
                offsets.append((start, stop))
            offsets[done:] = [(base + a, base + b) for a, b in _to_raw(offsets[done:], align, len(raw))]

    def _one_to_one(self, raw: str, text: str) -> bool:
        """Whether each character of `raw` became one character of `text` (lowercasing, say): positions keep.

        Checked on the distinct characters only; a composition (NFC) shortens the text, so equal lengths with
        every character normalizing to one character leave no room for one.
        """
        memo = self._char_memo
        return len(text) == len(raw) and all(len(memo[c]) == 1 for c in set(raw))

    def _alignment(self, raw: str, text: str) -> list[int]:
        """For each character of `text`, the normalized `raw`, the character of `raw` it came from (its span
        is that one character, as in HF).

        Normalizing character by character gives each output character its own source character, as HF's
        alignments do. Where that does not rebuild `text` (NFC/NFKC compose a character with the marks after
        it) the graphemes that compose map to their first character; should even that not rebuild `text`
        (a normalizer acting across graphemes), positions are only approximate.
        """
        parts = list(map(self._char_memo.__getitem__, raw))
        if "".join(parts) == text:
            lengths = list(map(len, parts))
            return list(chain.from_iterable(map(repeat, range(len(raw)), lengths)))
        starts: list[int] = []  # some characters compose with the next ones: go grapheme by grapheme
        for m in _GRAPHEME.finditer(raw):
            grapheme, at = m.group(), m.start()
            out = self.normalizer.normalize(grapheme)
            chars = [self._char_memo[c] for c in grapheme]
            if "".join(chars) == out:
                starts += chain.from_iterable(map(repeat, range(at, m.end()), map(len, chars)))
            else:
                starts += [at] * len(out)  # HF aligns a composed character to the first of its sources
        return starts if len(starts) == len(text) else [min(i, len(raw) - 1) for i in range(len(text))]

    def _encode_words(
        self, text: str, shift: int, ids: list, tokens: list, offsets: list, first: bool
    ) -> None:
        """Pre-tokenize `text`, let the model split each word; a token's offsets are `shift` + its text span.

        `first` says whether `text` starts the input (for Metaspace's prepend_scheme "first").
        """
        pre = self.pre_tokenizer
        if pre is None:
            words = [(text, 0, len(text))] if text else []
        elif isinstance(pre, Metaspace):
            words = pre.split(text, first)
        else:
            words = pre.split(text)
        memo, memo_word = self._memo, self._memo_word
        if self._identity_span:  # BERT's and other substring pre-tokenizers: the common case
            for word, start, end in words:
                w_ids, w_tokens, w_spans = memo.get(word) or memo_word(word)
                ids += w_ids
                tokens += w_tokens
                if w_spans is None:  # one token, the whole word
                    offsets.append((start + shift, end + shift))
                else:
                    start += shift
                    offsets += [(start + a, start + b) for a, b in w_spans]
            return
        plain = self._plain_when_same_length
        for word, start, end in words:
            w_ids, w_tokens, w_spans = memo.get(word) or memo_word(word)
            ids += w_ids
            tokens += w_tokens
            if plain and end - start == len(word):  # the word is its text span, character for character
                start += shift
                if w_spans is None:
                    offsets.append((start, end + shift))
                else:
                    offsets += [(start + a, start + b) for a, b in w_spans]
            else:
                spans = w_spans or ((0, len(word)),)
                offsets += [
                    (shift + a, shift + b)
                    for a, b in (pre.span(text, word, start, end, a, b) for a, b in spans)
                ]

    def _memo_word(self, word: str) -> tuple[tuple[int, ...], tuple[str, ...], tuple | None]:
        """The model's split of `word` as (ids, tokens, spans); spans None for one token covering the word.

        All tuples of atoms, which the garbage collector stops tracking: a big memo costs it nothing.
        """
        split = self.model.tokenize(word)
        ids = tuple(t[0] for t in split)
        spans = tuple((a, b) for _, a, b in split)
        tokens = tuple(self._id_to_token[i] for i in ids)
        if (
            isinstance(self.model, Unigram) and self.model.unk_id in ids
        ):  # HF: Unigram's unknown reads as its text
            tokens = tuple(
                word[a:b] if i == self.model.unk_id else t
                for i, t, (a, b) in zip(ids, tokens, spans, strict=True)
            )
        hit = (ids, tokens, None if spans == ((0, len(word)),) else spans)
        if len(self._memo) < _MEMO_CAPACITY:
            self._memo[word] = hit
        return hit

    # ---- decoding --------------------------------------------------------------------------------------

    def decode(self, ids: list[int], skip_special_tokens: bool = True) -> str:
        """Turn ids back into text with the decoder (ids with no token are skipped, as HF).

        Args:
            ids: token ids.
            skip_special_tokens: leave out special added tokens ([CLS], [PAD], ...).

        Returns:
            The text.
        """
        tokens = [self._id_to_token.get(i) for i in ids]
        tokens = [t for t in tokens if t is not None and not (skip_special_tokens and t in self._specials)]
        return self.decoder.decode(tokens) if self.decoder else " ".join(tokens)

    def decode_batch(self, batch: list[list[int]], skip_special_tokens: bool = True) -> list[str]:
        """`decode` for each list of ids."""
        return [self.decode(ids, skip_special_tokens) for ids in batch]

    # ---- runtime settings ------------------------------------------------------------------------------

    def enable_truncation(
        self, max_length: int, stride: int = 0, strategy: str = "longest_first", direction: str = "right"
    ) -> None:
        """Truncate encodings to `max_length` tokens (special tokens included); see `Truncation`."""
        self.truncation = Truncation(max_length, stride, strategy, direction)

    def no_truncation(self) -> None:
        self.truncation = None

    def enable_padding(
        self,
        direction: str = "right",
        pad_id: int = 0,
        pad_type_id: int = 0,
        pad_token: str = "[PAD]",
        length: int | None = None,
        pad_to_multiple_of: int | None = None,
    ) -> None:
        """Pad encodings to `length` (None: the longest of the batch); see `Padding`."""
        self.padding = Padding(direction, pad_id, pad_type_id, pad_token, length, pad_to_multiple_of)

    def no_padding(self) -> None:
        self.padding = None

    # ---- files -----------------------------------------------------------------------------------------

    def to_hf(self) -> dict:
        """The HF tokenizer.json object of this tokenizer."""

        def part(x):
            return None if x is None else x.to_hf()

        return {
            "version": "1.0",
            "truncation": part(self.truncation),
            "padding": part(self.padding),
            "added_tokens": [t.to_hf() for t in sorted(self.added_tokens, key=lambda t: t.id)],
            "normalizer": part(self.normalizer),
            "pre_tokenizer": part(self.pre_tokenizer),
            "post_processor": part(self.post_processor),
            "decoder": part(self.decoder),
            "model": self.model.to_hf(),
        }

    @classmethod
    def from_hf(cls, d: dict, source: str = "tokenizer.json") -> Tokenizer:
        """Build from an HF tokenizer.json object; errors name `source`. See `hf_json.tokenizer_from_hf`."""
        from llmlab.tokenizer.hf_json import tokenizer_from_hf  # hf_json builds Tokenizers, so import here

        return tokenizer_from_hf(d, source)

    @property
    def fingerprint(self) -> str:
        """sha256 of the tokenizer.json minus truncation and padding: equal fingerprints, equal tokens."""
        d = self.to_hf()
        del d["truncation"], d["padding"]
        return fingerprint(d)

    def save(self, path: str | os.PathLike) -> None:
        """Write tokenizer.json atomically (HF `tokenizers` loads it).

        Raises:
            LlmlabError: the folder does not exist.
        """
        atomic_write_json(path, self.to_hf())

    @classmethod
    def load(cls, path: str | os.PathLike) -> Tokenizer:
        """Read a tokenizer.json (ours or HF's).

        Raises:
            LlmlabError: the file is missing, corrupt, truncated, or holds something unsupported.
        """
        return cls.from_hf(read_json(path, "tokenizer file"), source=str(path))


class _CharMemo(dict):
    """character -> its normalized form, computed once."""

    def __init__(self, normalize):
        super().__init__()
        self.normalize = normalize

    def __missing__(self, char: str) -> str:
        self[char] = out = self.normalize(char)
        return out


def _raw_position(i: int, align: list[int] | None, n_raw: int) -> int:
    """The raw position of normalized position `i` (the end of the text maps to the end)."""
    return i if align is None else align[i] if i < len(align) else n_raw


def _to_raw(spans: list[tuple[int, int]], align: list[int] | None, n_raw: int) -> list:
    """Spans of normalized text as spans of the raw text (an empty span stays empty, at its position)."""
    if align is None:
        return spans
    return [
        (align[a], align[b - 1] + 1) if b > a else ((align[a],) * 2 if a < len(align) else (n_raw, n_raw))
        for a, b in spans
    ]


def next_added_id(vocab_size: int, added_ids: list[int]) -> int:
    """The id HF gives a new added token: the model's size, or one past the largest added id beyond it."""
    top = max(added_ids, default=None)
    return vocab_size if top is None or (top < vocab_size and vocab_size) else top + 1


def check_fingerprint(expected: str, actual: str, what: str) -> None:
    """Refuse a tokenizer other than the one an artefact was made with.

    Args:
        expected: the fingerprint recorded with the artefact.
        actual: the fingerprint of the tokenizer given now.
        what: the artefact, e.g. "model runs/a/model.safetensors".

    Raises:
        LlmlabError: the fingerprints differ; the message names both.
    """
    if expected != actual:
        raise LlmlabError(
            f"{what} was saved with tokenizer {expected[:12]}… but tokenizer {actual[:12]}… was given"
        )
