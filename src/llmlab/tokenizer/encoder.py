"""One text through the pipeline's front half: added tokens, normalizer, pre-tokenizer, model; offsets into the text.

Follows Hugging Face `tokenizers` (tokenizers/src/tokenizer/mod.rs, added_vocabulary.rs) and is tested
against it id for id, offset for offset, on real data (through `Tokenizer`, which adds the special tokens,
truncation and padding):
1. Added tokens are split off first, leftmost-longest: those with `normalized=False` (special tokens, as a
   rule) in the raw text, the others in each remaining piece once it is normalized.
2. Each remaining piece is normalized, pre-tokenized into words, and each word split by the model.

Offsets are character spans into the original text, as HF's Python binding gives them: a token's span within
its word is mapped through the pre-tokenizer, then back through the normalization
(`Normalizer.normalize_aligned`: per character, as HF's alignments). Word ids number the pieces HF calls
splits, in order: each added token and each word of the pre-tokenizer (a word the model turns into no token
still counts).

Speed, the common case: normalization leaves every character in place and the pre-tokenizer cuts plain
substrings, so a token's offset is an addition. Each word's split is remembered with its token spans already
in characters of the text it stands for (`PreTokenizer.char_spans`), so every later occurrence is a shift,
minus the one character a `prepends` pre-tokenizer (ByteLevel's prefix space, Metaspace's '▁') put in front.
With BertNormalizer and BertPreTokenizer the spaces around CJK ideographs are not inserted: the split makes
each ideograph a word instead, the same words with no alignment to follow (Chinese text then stays as it is).
"""

from __future__ import annotations

from itertools import chain, compress, repeat
from operator import is_not, itemgetter, ne, or_, sub
from typing import NamedTuple

from llmlab.tokenizer.added_tokens import AddedTokenMatcher
from llmlab.tokenizer.encoding import Encoding
from llmlab.tokenizer.normalize import BertNormalizer, Normalizer
from llmlab.tokenizer.pretokenize import BertPreTokenizer, ByteLevel, Metaspace, PreTokenizer
from llmlab.tokenizer.unigram.model import Unigram

__all__ = ["SequenceEncoder"]

_IDS = itemgetter(0)
_TOKENS = itemgetter(1)
_SPANS = itemgetter(2)
_LENGTH = itemgetter(3)
_START = itemgetter(0)
_END = itemgetter(1)

_MEMO_CAPACITY = 200_000  # words whose split is remembered
_MEMO_MAX_WORD = 64  # longer words (a Chinese clause or line) rarely repeat and are not remembered

# A word's split: token ids, token strings, spans in characters of the text the word stands for (None: one
# token, the whole word), and how many characters that text has (a prepended character counts as one).
WordSplit = tuple[tuple[int, ...], tuple[str, ...], tuple[tuple[int, int], ...] | None, int]


class SequenceEncoder:
    """Text -> `Encoding` without special tokens, for one set of stages (rebuilt when a stage changes)."""

    def __init__(
        self,
        model,
        normalizer: Normalizer | None,
        pre_tokenizer: PreTokenizer | None,
        raw_tokens: AddedTokenMatcher,
        normalized_tokens: AddedTokenMatcher,
        id_to_token: dict[int, str],
    ):
        """Args:
        model: the `WordPiece`, `BPE` or `Unigram` model.
        normalizer, pre_tokenizer: the stages before it (None: skipped).
        raw_tokens, normalized_tokens: the added tokens matched in the raw / the normalized text.
        id_to_token: id -> token string, added tokens included.
        """
        if (
            isinstance(normalizer, BertNormalizer)
            and normalizer.handle_chinese_chars
            and type(pre_tokenizer) is BertPreTokenizer
            and normalized_tokens.pattern is None
        ):  # the spaces BERT puts around CJK ideographs only make them words: the split does that directly
            normalizer, pre_tokenizer = normalizer.without_cjk_spaces(), BertPreTokenizer(isolate_cjk=True)
        self.model, self.normalizer, self.pre_tokenizer = model, normalizer, pre_tokenizer
        self._raw, self._normalized, self._id_to_token = raw_tokens, normalized_tokens, id_to_token
        self._identity_span = pre_tokenizer is None or type(pre_tokenizer).span is PreTokenizer.span
        self._prepends = pre_tokenizer is not None and pre_tokenizer.prepends
        self._unk_as_text = model.unk_id if isinstance(model, Unigram) else None  # HF reads it as its text
        self._memo = _Memo(self._split_word)  # keyed by the words before the pre-tokenizer maps them
        # a Sequence whose pieces are not substrings (ByteLevel or Metaspace after a split) goes the general way
        self._aligned = (
            pre_tokenizer is not None
            and not pre_tokenizer.substring
            and not isinstance(pre_tokenizer, (Metaspace, ByteLevel))
        )
        identity_map = pre_tokenizer is None or type(pre_tokenizer).map_word is PreTokenizer.map_word
        self._map_word = None if identity_map else pre_tokenizer.map_word

    def encode(self, text: str, type_id: int = 0) -> Encoding:
        """Tokenize one text: ids, tokens, offsets and word ids; type ids `type_id`, no special tokens."""
        out = _Tokens([], [], [], [])
        pieces = self._raw.split(text)
        if pieces is None:
            self._encode_piece(text, 0, out, 0)
        else:
            word = 0
            for start, stop, added in pieces:
                if added is None:
                    word = self._encode_piece(text[start:stop], start, out, word)
                else:
                    out.added(added.id, text[start:stop], (start, stop), word)
                    word += 1
        ids, tokens, offsets, words = out
        n = len(ids)
        return Encoding(ids, tokens, offsets, [type_id] * n, [1] * n, [0] * n, [], words)

    def _encode_piece(self, raw: str, base: int, out: _Tokens, word: int) -> int:
        """Normalize `raw` (which starts at `base` in the text), split off normalized added tokens, encode;
        the piece's first word is word `word`. Returns the index of the next word."""
        text, align = (raw, None) if self.normalizer is None else self.normalizer.normalize_aligned(raw)
        pieces = self._normalized.split(text)
        if pieces is None and align is None:  # the fast, common path: offsets need no mapping
            return self._encode_words(text, base, out, word, first=base == 0)
        offsets = out.offsets
        for start, stop, added in pieces or [(0, len(text), None)]:
            done = len(offsets)
            if added is None:
                first = base + _raw_position(start, align, len(raw)) == 0
                word = self._encode_words(text[start:stop], start, out, word, first)
            else:
                out.added(added.id, text[start:stop], (start, stop), word)
                word += 1
            offsets[done:] = _to_raw(offsets[done:], align, len(raw), base)
        return word

    def _encode_words(self, text: str, shift: int, out: _Tokens, word: int, first: bool) -> int:
        """Pre-tokenize `text`, let the model split each word; a token's offsets are `shift` + its text span.

        `first` says whether `text` starts the input (for Metaspace's prepend_scheme "first"); `word` is the
        index of its first word. Whole lists at once: a word of one token that is its text span (most are)
        takes that span as its offsets. Returns the index of the next word.
        """
        pre = self.pre_tokenizer
        if pre is None:
            pieces, spans = ([text], [(0, len(text))]) if text else ([], [])
        elif self._aligned:
            return self._encode_aligned(text, shift, out, word, first)
        elif isinstance(pre, Metaspace):
            pieces, spans = pre.split_spans(text, first)
        else:
            pieces, spans = pre.raw_split(text)  # words before the pre-tokenizer maps them (ByteLevel)
        splits = list(map(self._memo.__getitem__, pieces))
        ids, tokens, offsets, words = out
        before = len(ids)
        ids += chain.from_iterable(map(_IDS, splits))
        tokens += chain.from_iterable(map(_TOKENS, splits))
        next_word = word + len(splits)
        if len(ids) - before == len(splits):  # one token a word, the common case
            words += range(word, next_word)
        else:
            words += chain.from_iterable(map(repeat, range(word, next_word), map(len, map(_IDS, splits))))
        # the words of more than one token, or not the whole word, or (pieces that are not substrings) not as
        # long as their text span: a `prepends` pre-tokenizer puts a character in front of the first piece only
        several = map(is_not, map(_SPANS, splits), repeat(None))
        if not self._identity_span and not self._prepends:
            lengths = map(sub, map(_END, spans), map(_START, spans))
            several = map(or_, several, map(ne, map(_LENGTH, splits), lengths))
        odd = list(compress(range(len(splits)), several))
        if self._prepends and splits and splits[0][3] != spans[0][1] - spans[0][0] and odd[:1] != [0]:
            odd.insert(0, 0)
        if shift:
            spans = [(start + shift, end + shift) for start, end in spans]
        done = 0
        identity = self._identity_span
        for i in odd:
            offsets += spans[done:i]
            (start, end), (_, _, word_spans, n) = spans[i], splits[i]
            if word_spans is not None and (identity or n == end - start):  # several tokens, a plain word
                offsets += [(start + a, start + b) for a, b in word_spans]
            else:
                offsets += self._word_offsets(splits[i], pieces[i], text, start - shift, end - shift, shift)
            done = i + 1
        offsets += spans[done:]
        return next_word

    def _encode_aligned(self, text: str, shift: int, out: _Tokens, word: int, first: bool) -> int:
        """`_encode_words` for a pre-tokenizer that says, character by character, where its pieces come from."""
        ids, tokens, offsets, words = out
        for piece, align in self.pre_tokenizer.split_aligned([(text, list(range(len(text))))], first):
            split = self._memo[piece]
            ids += split[0]
            tokens += split[1]
            words += repeat(word, len(split[0]))
            word += 1
            spans = split[2] or ((0, len(piece)),)
            offsets += [
                (shift + align[a], shift + align[b - 1] + 1) if b > a else (shift + align[a],) * 2
                for a, b in spans
            ]
        return word

    def _word_offsets(
        self, split: WordSplit, word: str, text: str, start: int, end: int, shift: int
    ) -> list[tuple[int, int]]:
        """The offsets of one word's tokens, the word coming from text[start:end]."""
        spans = split[2] or ((0, split[3]),)
        n = split[3]
        if self._identity_span or n == end - start:  # the word is its text span, character for character
            start += shift
            return [(start + a, start + b) for a, b in spans]
        if (
            self._prepends and n == end - start + 1
        ):  # its first character was put in front, for the text's first
            start += shift
            return [(start + max(a - 1, 0), start + max(b - 1, 1)) for a, b in spans]
        pre = self.pre_tokenizer  # not met with the pre-tokenizers here: map token by token
        word = pre.map_word(word)
        spans = [pre.span(text, word, start, end, a, b) for _, a, b in self.model.tokenize(word)]
        return [(shift + a, shift + b) for a, b in spans]

    def _split_word(self, raw_word: str) -> WordSplit:
        """The model's split of a word (see `WordSplit`), remembered when the word is short.

        All tuples of atoms, which the garbage collector stops tracking: a big memo costs it nothing.
        """
        word = raw_word if self._map_word is None else self._map_word(raw_word)
        split = self.model.tokenize(word)
        ids, starts, ends = zip(*split, strict=True) if split else ((), (), ())
        tokens = tuple(map(self._id_to_token.__getitem__, ids))
        spans = list(zip(starts, ends, strict=True))
        if self._unk_as_text is not None and self._unk_as_text in ids:
            tokens = tuple(
                word[a:b] if i == self._unk_as_text else t
                for i, t, (a, b) in zip(ids, tokens, spans, strict=True)
            )
        if self.pre_tokenizer is not None:
            spans, n = self.pre_tokenizer.char_spans(word, spans)
        else:
            n = len(word)
        hit = (ids, tokens, None if len(spans) == 1 and spans[0] == (0, n) else tuple(spans), n)
        if len(word) <= _MEMO_MAX_WORD and len(self._memo) < _MEMO_CAPACITY:
            self._memo[raw_word] = hit
        return hit


class _Tokens(NamedTuple):
    """The lists one encode fills, token by token."""

    ids: list[int]
    tokens: list[str]
    offsets: list[tuple[int, int]]
    words: list[int]

    def added(self, id_: int, token: str, span: tuple[int, int], word: int) -> None:
        """Append an added token, a word of its own."""
        self.ids.append(id_)
        self.tokens.append(token)
        self.offsets.append(span)
        self.words.append(word)


class _Memo(dict):
    """word -> its `WordSplit`, computed (and remembered, when short) on first use."""

    def __init__(self, split_word):
        super().__init__()
        self.split_word = split_word

    def __missing__(self, word: str) -> WordSplit:
        return self.split_word(word)


def _raw_position(i: int, align: list[int] | None, n_raw: int) -> int:
    """The raw position of normalized position `i` (the end of the text maps to the end)."""
    return i if align is None else align[i] if i < len(align) else n_raw


def _to_raw(spans: list[tuple[int, int]], align: list[int] | None, n_raw: int, base: int) -> list:
    """Spans of normalized text as spans of the text (an empty span stays empty, at its position)."""
    if align is None:
        return [(base + a, base + b) for a, b in spans]
    n = len(align)
    return [
        (base + align[a], base + align[b - 1] + 1)
        if b > a
        else ((base + align[a],) * 2 if a < n else (base + n_raw,) * 2)
        for a, b in spans
    ]
