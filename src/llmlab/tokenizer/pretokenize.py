"""Pre-tokenizers: split normalized text into the words the model sees, remembering where each came from.

Each follows the Hugging Face `tokenizers` component of the same name and reads/writes the same JSON:
- `BertPreTokenizer`: split on whitespace (dropped) and on punctuation (each mark its own word), where
  punctuation is Unicode P* plus all ASCII punctuation, as in Google's BERT `_is_punctuation`; whitespace and
  P* are HF's classes (Rust's White_Space, the unicode_categories crate's P*: `unicode_classes.py`).
- `ByteLevel`: GPT-2's split regex (Radford et al. 2019, openai/gpt-2 `encoder.py`), then every UTF-8 byte of a
  word as a printable character (the tables are in `byte_level.py`).
- `Metaspace`: SentencePiece style (Kudo & Richardson 2018): spaces become '▁', a '▁' is prepended, and the
  text splits before each '▁'.
- `Whitespace`: `\\w+|[^\\w\\s]+`.

`split(text)` returns `(piece, start, end)`: the piece as the model sees it and the span of `text` it came
from; `split_spans` the same as two lists. `span(...)` maps a sub-span of a piece (a token) back to `text`: the
identity shift except where the piece is not a plain substring (ByteLevel's bytes, Metaspace's prepended '▁').
The pipeline maps a word's tokens at once: `char_spans` turns token spans into spans of the characters the
piece stands for (ByteLevel: bytes to characters), after which an occurrence is a shift, minus the one
character a pre-tokenizer that `prepends` may have put in front. `raw_split` gives the words before
`map_word` (ByteLevel maps each distinct word once).

`split_aligned` is the general form HF uses (`PreTokenizedString::split`): pieces that carry, for each of their
characters, the index of the text character it stands for; a `Sequence` (in `pretokenize_split.py`, with the
splitting pre-tokenizers and the tokenizer.json reader `pretokenizer_from_hf`) whose members are not all
substring splitters runs on it.

Speed: on ASCII text the BERT and GPT-2 splits run the standard library's `re` (faster than `regex`, the same
result there); the GPT-2 split tiles the text, so its spans are running sums of lengths; with `isolate_cjk` a
run of CJK ideographs is one match, cut into characters after.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from collections.abc import Sequence as SequenceOf
from itertools import accumulate

import regex

from llmlab.errors import LlmlabError
from llmlab.tokenizer.byte_level import BYTE_TO_UNICODE, char_spans, to_byte_level
from llmlab.tokenizer.normalize import CJK_RANGES
from llmlab.tokenizer.unicode_classes import PUNCTUATION, WHITE_SPACE, stand_in

Piece = tuple[str, int, int]
Aligned = tuple[str, list[int]]  # a piece and, for each of its characters, the index of the text character

_ASCII_PUNCT = r"\x21-\x2f\x3a-\x40\x5b-\x60\x7b-\x7e"
_PUNCT = PUNCTUATION + _ASCII_PUNCT
_BERT_SPLIT = regex.compile(f"[^{WHITE_SPACE}{_PUNCT}]+|[{_PUNCT}]")
_BERT_SPLIT_ASCII = re.compile(rf"[^\t\n\x0b\x0c\r {_ASCII_PUNCT}]+|[{_ASCII_PUNCT}]")  # the same, on ASCII
_BERT_SPLIT_CJK = regex.compile(  # the same with runs of CJK ideographs (group 1) apart, to be cut one by one
    f"([{CJK_RANGES}]+)|[^{WHITE_SPACE}{_PUNCT}{CJK_RANGES}]+|[{_PUNCT}]"
)
_GPT2_SPLIT = regex.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""")
_GPT2_SPLIT_ASCII = re.compile(  # the same, on ASCII
    r"""'s|'t|'re|'ve|'m|'ll|'d| ?[A-Za-z]+| ?[0-9]+| ?[^\sA-Za-z0-9]+|\s+(?!\S)|\s+""", re.ASCII
)
_WHITESPACE_SPLIT = regex.compile(r"\w+|[^\w\s]+")


class PreTokenizer:
    """Base class: subclasses implement `split_spans` (or `split`) and `to_hf`; `span` is the identity shift."""

    prepends = False  # whether the first piece may start with a character put in front of its text span
    substring = (
        True  # every piece is a substring of the text (`split_spans` says all); False: `split_aligned`
    )

    def split(self, text: str) -> list[Piece]:
        """(piece, start, end) for each word of `text`: the piece as the model sees it, the span it came from."""
        pieces, spans = self.split_spans(text)
        return [(piece, start, end) for piece, (start, end) in zip(pieces, spans, strict=True)]

    def split_spans(self, text: str) -> tuple[list[str], list[tuple[int, int]]]:
        """`split` as two lists, the pieces and their spans (quicker to make and to use)."""
        pieces = self.split(text)
        return [piece for piece, _, _ in pieces], [(start, end) for _, start, end in pieces]

    def raw_split(self, text: str) -> tuple[list[str], list[tuple[int, int]]]:
        """`split_spans` before the per-piece mapping: `map_word` turns each word into its piece."""
        return self.split_spans(text)

    def split_aligned(self, pieces: list[Aligned], first: bool) -> list[Aligned]:
        """Split each of `pieces` further (HF `PreTokenizedString::split`), empty pieces dropped.

        Args:
            pieces: (text, alignment) pairs, alignment[i] the index of the input character text[i] stands for.
            first: whether the input starts the whole text (a piece starting at input index 0 then starts it).
        """
        out: list[Aligned] = []
        for text, align in pieces:
            words, spans = self.split_spans(text)
            out += [(w, align[a:b]) for w, (a, b) in zip(words, spans, strict=True) if b > a]
        return out

    def to_hf(self) -> dict:
        raise NotImplementedError

    def span(self, text: str, piece: str, start: int, end: int, a: int, b: int) -> tuple[int, int]:
        """Map characters [a, b) of `piece` (which came from text[start:end]) to a span of `text`."""
        return start + a, start + b

    def char_spans(self, piece: str, spans: SequenceOf[tuple[int, int]]) -> tuple[SequenceOf, int]:
        """Token spans within `piece` as spans of the characters of text the piece stands for, and how many
        characters that is (a prepended character counts as one). The identity for text pieces."""
        return spans, len(piece)

    def raw_words(self, text: str) -> list[str]:
        """The pieces before any per-piece mapping (for counting: map each distinct word once, later)."""
        return [piece for piece, _, _ in self.split(text)]

    def map_word(self, word: str) -> str:
        """Turn a raw word into the piece the model sees (identity except for ByteLevel)."""
        return word


class BertPreTokenizer(PreTokenizer):
    """Whitespace and punctuation split, as BERT."""

    def __init__(self, isolate_cjk: bool = False):
        """Args: isolate_cjk: also make each CJK ideograph a word, as the spaces `BertNormalizer` puts around
        them do; the pipeline uses this in their place (no HF equivalent on its own: saved as BERT's split)."""
        self.isolate_cjk = isolate_cjk

    def split_spans(self, text: str) -> tuple[list[str], list[tuple[int, int]]]:
        if text.isascii():
            return _pieces_and_spans(_BERT_SPLIT_ASCII.finditer(text))
        probe = stand_in(text)  # HF's classes: spans found there hold for the text
        if not self.isolate_cjk:
            pieces, spans = _pieces_and_spans(_BERT_SPLIT.finditer(probe))
            return (pieces, spans) if probe is text else ([text[a:b] for a, b in spans], spans)
        pieces: list[str] = []
        spans: list[tuple[int, int]] = []
        for m in _BERT_SPLIT_CJK.finditer(probe):
            start, end = m.span()
            if m.lastindex:  # a run of ideographs, one word each
                pieces += text[start:end]
                spans += zip(range(start, end), range(start + 1, end + 1), strict=True)
            else:
                pieces.append(text[start:end])
                spans.append((start, end))
        return pieces, spans

    def raw_words(self, text: str) -> list[str]:
        return _BERT_SPLIT_ASCII.findall(text) if text.isascii() else self.split_spans(text)[0]

    def to_hf(self) -> dict:
        return {"type": "BertPreTokenizer"}


class Whitespace(PreTokenizer):
    """Words and runs of other non-space characters."""

    def split_spans(self, text: str) -> tuple[list[str], list[tuple[int, int]]]:
        return _pieces_and_spans(_WHITESPACE_SPLIT.finditer(text))

    def to_hf(self) -> dict:
        return {"type": "Whitespace"}


class ByteLevel(PreTokenizer):
    """GPT-2 byte-level pre-tokenizer: regex split, then bytes to printable characters."""

    prepends = True  # add_prefix_space: the first piece's 'Ġ' stands for its first character
    substring = False

    def __init__(self, add_prefix_space: bool = False, use_regex: bool = True, trim_offsets: bool = True):
        self.add_prefix_space = add_prefix_space
        self.use_regex = use_regex
        self.trim_offsets = trim_offsets

    @staticmethod
    def alphabet() -> set[str]:
        """The 256 characters that stand for the 256 byte values (the byte-level BPE initial alphabet)."""
        return set(BYTE_TO_UNICODE.values())

    def split_spans(self, text: str) -> tuple[list[str], list[tuple[int, int]]]:
        words, spans = self.raw_split(text)
        return list(map(to_byte_level, words)), spans

    def raw_split(self, text: str) -> tuple[list[str], list[tuple[int, int]]]:
        words = self.raw_words(text)
        shift = int(self.add_prefix_space and bool(text) and not text.startswith(" "))
        return words, tiling_spans(words, shift)

    def raw_words(self, text: str) -> list[str]:
        if self.add_prefix_space and text and not text.startswith(" "):
            text = " " + text
        if not self.use_regex:
            return [text] if text else []
        return (_GPT2_SPLIT_ASCII if text.isascii() else _GPT2_SPLIT).findall(text)

    def map_word(self, word: str) -> str:
        return to_byte_level(word)

    def split_aligned(self, pieces: list[Aligned], first: bool) -> list[Aligned]:
        out: list[Aligned] = []
        for text, align in pieces:
            if self.add_prefix_space and text and not text.startswith(" "):
                text, align = " " + text, align[:1] + align  # HF: the space stands for the first character
            words = (
                (_GPT2_SPLIT_ASCII if text.isascii() else _GPT2_SPLIT).findall(text)
                if self.use_regex
                else [text]
            )
            spans = tiling_spans(words, 0)
            for word, (a, b) in zip(words, spans, strict=True):
                sizes = [len(c.encode("utf-8")) for c in text[a:b]]
                out.append(
                    (
                        to_byte_level(word),
                        [i for i, n in zip(align[a:b], sizes, strict=True) for _ in range(n)],
                    )
                )
        return [(w, al) for w, al in out if w]

    def span(self, text: str, piece: str, start: int, end: int, a: int, b: int) -> tuple[int, int]:
        source = text[start:end]
        prefix = len(piece) - len(source.encode("utf-8"))  # 1 when a space was prepended
        a, b = max(a - prefix, 0), max(b - prefix, prefix)  # the prepended space stands for the first char
        if source.isascii():
            return start + a, start + b
        char_of_byte = [i for i, ch in enumerate(source) for _ in ch.encode("utf-8")]
        char_of_byte.append(len(source))
        first = char_of_byte[a]
        last = char_of_byte[b - 1] + 1 if b > a else first
        return start + first, start + last

    def char_spans(self, piece: str, spans: SequenceOf[tuple[int, int]]) -> tuple[SequenceOf, int]:
        return char_spans(piece, spans)

    def to_hf(self) -> dict:
        return {
            "type": "ByteLevel",
            "add_prefix_space": self.add_prefix_space,
            "trim_offsets": self.trim_offsets,
            "use_regex": self.use_regex,
        }


def check_prepend_scheme(scheme: str) -> None:
    """Metaspace's `prepend_scheme` (pre-tokenizer and decoder alike) must be always, first or never."""
    if scheme not in ("always", "first", "never"):
        raise LlmlabError(f"Metaspace prepend_scheme must be always, first or never, not {scheme!r}")


class Metaspace(PreTokenizer):
    """SentencePiece's whitespace handling: ' ' → '▁', a '▁' prepended, split before each '▁'."""

    prepends = True  # the prepended '▁' stands for the first character
    substring = False

    def __init__(self, replacement: str = "▁", prepend_scheme: str = "always", split: bool = True):
        check_prepend_scheme(prepend_scheme)
        self.replacement = replacement
        self.prepend_scheme = prepend_scheme
        self.split_words = split
        r = regex.escape(replacement)
        self._words = regex.compile(f"{r}[^{r}]*|[^{r}]+")

    def _prepared(self, text: str, first: bool) -> tuple[str, int]:
        """The text with spaces replaced and '▁' prepended; the shift is 1 where it was prepended."""
        text = text.replace(" ", self.replacement)
        prepend = self.prepend_scheme == "always" or (self.prepend_scheme == "first" and first)
        shift = int(prepend and bool(text) and not text.startswith(self.replacement))
        return self.replacement * shift + text, shift

    def split(self, text: str, first: bool = True) -> list[Piece]:
        pieces, spans = self.split_spans(text, first)
        return [(piece, start, end) for piece, (start, end) in zip(pieces, spans, strict=True)]

    def split_spans(self, text: str, first: bool = True) -> tuple[list[str], list[tuple[int, int]]]:
        """As `split`; `first` says whether `text` starts the input (for prepend_scheme "first")."""
        full, shift = self._prepared(text, first)
        if not self.split_words:
            return ([full], [(0, len(text))]) if full else ([], [])
        pieces = self._words.findall(full)
        return pieces, tiling_spans(pieces, shift)

    def split_aligned(self, pieces: list[Aligned], first: bool) -> list[Aligned]:
        out: list[Aligned] = []
        for text, align in pieces:
            full, shift = self._prepared(text, first and bool(align) and align[0] == 0)
            align = align[:shift] + align
            words = self._words.findall(full) if self.split_words else [full] if full else []
            spans = tiling_spans(words, 0)
            out += [(w, align[a:b]) for w, (a, b) in zip(words, spans, strict=True)]
        return out

    def raw_words(self, text: str) -> list[str]:
        full, _ = self._prepared(text, True)
        return self._words.findall(full) if self.split_words else [full] if full else []

    def span(self, text: str, piece: str, start: int, end: int, a: int, b: int) -> tuple[int, int]:
        prefix = len(piece) - (end - start)  # 1 for the prepended '▁', which stands for the first character
        return start + max(a - prefix, 0), start + max(b - prefix, prefix)

    def to_hf(self) -> dict:
        return {
            "type": "Metaspace",
            "replacement": self.replacement,
            "prepend_scheme": self.prepend_scheme,
            "split": self.split_words,
        }


def _pieces_and_spans(matches: Iterable) -> tuple[list[str], list[tuple[int, int]]]:
    """The text and span of each regex match."""
    matches = list(matches)
    if not matches:
        return [], []
    match_type = type(matches[0])
    return list(map(match_type.group, matches)), list(map(match_type.span, matches))


def tiling_spans(pieces: list[str], shift: int) -> list[tuple[int, int]]:
    """Spans of pieces that follow one another; with `shift` 1 the first character was prepended and stands
    for the first character of the text."""
    bounds = list(accumulate(map(len, pieces), initial=-shift))
    spans = list(zip(bounds[:-1], bounds[1:], strict=True))
    if shift and spans:  # the prepended character counts as the first one
        spans[0] = (0, max(spans[0][1], 1))
    return spans
