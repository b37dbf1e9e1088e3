"""Pre-tokenizers: split normalized text into the words the model sees, remembering where each came from.

Each follows the Hugging Face `tokenizers` component of the same name and reads/writes the same JSON:
- `BertPreTokenizer`: split on whitespace (dropped) and on punctuation (each mark its own word), where
  punctuation is Unicode P* plus all ASCII punctuation, as in Google's BERT `_is_punctuation`.
- `ByteLevel`: GPT-2's split regex (Radford et al. 2019, openai/gpt-2 `encoder.py`), then every UTF-8 byte of a
  word mapped to a printable character by GPT-2's `bytes_to_unicode` table, so no byte is ever unknown.
- `Metaspace`: SentencePiece style (Kudo & Richardson 2018): spaces become '▁', a '▁' is prepended, and the
  text splits before each '▁'.
- `Whitespace`: `\\w+|[^\\w\\s]+`.

`split(text)` returns `(piece, start, end)`: the piece as the model sees it and the span of `text` it came
from. `span(...)` maps a sub-span of a piece (a token) back to characters of `text`; it is the identity shift
except where the piece is not a plain substring (ByteLevel's bytes, Metaspace's prepended '▁').
"""

from __future__ import annotations

from collections.abc import Sequence as SequenceOf

import regex

from llmlab.errors import LlmlabError

Piece = tuple[str, int, int]

_ASCII_PUNCT = r"\x21-\x2f\x3a-\x40\x5b-\x60\x7b-\x7e"
_BERT_SPLIT = regex.compile(rf"[^\s\p{{P}}{_ASCII_PUNCT}]+|[\p{{P}}{_ASCII_PUNCT}]")
_GPT2_SPLIT = regex.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""")
_WHITESPACE_SPLIT = regex.compile(r"\w+|[^\w\s]+")


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible map from the 256 byte values to printable Unicode characters.

    Printable Latin-1 bytes map to themselves; the other 68 (controls, space, ...) to U+0100 onwards, in order.
    """
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table = {b: chr(b) for b in keep}
    extra = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return table


BYTE_TO_UNICODE: dict[int, str] = bytes_to_unicode()
UNICODE_TO_BYTE: dict[str, int] = {c: b for b, c in BYTE_TO_UNICODE.items()}
_LATIN1_TO_BYTELEVEL = {b: c for b, c in BYTE_TO_UNICODE.items()}  # str.translate table over latin-1 text


def to_byte_level(text: str) -> str:
    """The UTF-8 bytes of `text`, each as its GPT-2 printable character."""
    return text.encode("utf-8").decode("latin-1").translate(_LATIN1_TO_BYTELEVEL)


class PreTokenizer:
    """Base class: subclasses implement `split` and `to_hf`; `span` is the identity shift."""

    def split(self, text: str) -> list[Piece]:
        raise NotImplementedError

    def to_hf(self) -> dict:
        raise NotImplementedError

    def span(self, text: str, piece: str, start: int, end: int, a: int, b: int) -> tuple[int, int]:
        """Map characters [a, b) of `piece` (which came from text[start:end]) to a span of `text`."""
        return start + a, start + b

    def raw_words(self, text: str) -> list[str]:
        """The pieces before any per-piece mapping (for counting: map each distinct word once, later)."""
        return [piece for piece, _, _ in self.split(text)]

    def map_word(self, word: str) -> str:
        """Turn a raw word into the piece the model sees (identity except for ByteLevel)."""
        return word


class BertPreTokenizer(PreTokenizer):
    """Whitespace and punctuation split, as BERT."""

    def split(self, text: str) -> list[Piece]:
        return [(m.group(), m.start(), m.end()) for m in _BERT_SPLIT.finditer(text)]

    def raw_words(self, text: str) -> list[str]:
        return _BERT_SPLIT.findall(text)

    def to_hf(self) -> dict:
        return {"type": "BertPreTokenizer"}


class Whitespace(PreTokenizer):
    """Words and runs of other non-space characters."""

    def split(self, text: str) -> list[Piece]:
        return [(m.group(), m.start(), m.end()) for m in _WHITESPACE_SPLIT.finditer(text)]

    def to_hf(self) -> dict:
        return {"type": "Whitespace"}


class ByteLevel(PreTokenizer):
    """GPT-2 byte-level pre-tokenizer: regex split, then bytes to printable characters."""

    def __init__(self, add_prefix_space: bool = False, use_regex: bool = True, trim_offsets: bool = True):
        self.add_prefix_space = add_prefix_space
        self.use_regex = use_regex
        self.trim_offsets = trim_offsets

    @staticmethod
    def alphabet() -> set[str]:
        """The 256 characters that stand for the 256 byte values (the byte-level BPE initial alphabet)."""
        return set(BYTE_TO_UNICODE.values())

    def split(self, text: str) -> list[Piece]:
        shift = 0
        if self.add_prefix_space and text and not text.startswith(" "):
            text, shift = " " + text, 1
        if not self.use_regex:
            spans = [(0, len(text))] if text else []
        else:
            spans = [m.span() for m in _GPT2_SPLIT.finditer(text)]
        if text.isascii():
            mapped = text.translate(_LATIN1_TO_BYTELEVEL)
            return [(mapped[s:e], max(s - shift, 0), max(e - shift, shift)) for s, e in spans]
        return [(to_byte_level(text[s:e]), max(s - shift, 0), max(e - shift, shift)) for s, e in spans]

    def raw_words(self, text: str) -> list[str]:
        if self.add_prefix_space and text and not text.startswith(" "):
            text = " " + text
        if not self.use_regex:
            return [text] if text else []
        return _GPT2_SPLIT.findall(text)

    def map_word(self, word: str) -> str:
        return to_byte_level(word)

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

    def to_hf(self) -> dict:
        return {
            "type": "ByteLevel",
            "add_prefix_space": self.add_prefix_space,
            "trim_offsets": self.trim_offsets,
            "use_regex": self.use_regex,
        }


class Metaspace(PreTokenizer):
    """SentencePiece's whitespace handling: ' ' → '▁', a '▁' prepended, split before each '▁'."""

    def __init__(self, replacement: str = "▁", prepend_scheme: str = "always", split: bool = True):
        if prepend_scheme not in ("always", "first", "never"):
            raise LlmlabError(
                f"Metaspace prepend_scheme must be always, first or never, not {prepend_scheme!r}"
            )
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
        full, shift = self._prepared(text, first)
        if not self.split_words:
            return [(full, 0, len(text))] if full else []
        return [
            (m.group(), max(m.start() - shift, 0), max(m.end() - shift, shift))
            for m in self._words.finditer(full)
        ]

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


class Sequence(PreTokenizer):
    """Apply several pre-tokenizers, each to the pieces of the previous one (plain-substring ones only)."""

    def __init__(self, pretokenizers: SequenceOf[PreTokenizer]):
        self.pretokenizers = list(pretokenizers)

    def split(self, text: str) -> list[Piece]:
        pieces = [(text, 0, len(text))]
        for p in self.pretokenizers:
            pieces = [(w, s + a, s + b) for piece, s, _ in pieces for w, a, b in p.split(piece)]
        return pieces

    def to_hf(self) -> dict:
        return {"type": "Sequence", "pretokenizers": [p.to_hf() for p in self.pretokenizers]}


def pretokenizer_from_hf(d: dict | None) -> PreTokenizer | None:
    """Build a pre-tokenizer from the `pre_tokenizer` object of an HF tokenizer.json (None stays None).

    Raises:
        LlmlabError: an unknown or malformed pre-tokenizer.
    """
    if d is None:
        return None
    kind = d.get("type") if isinstance(d, dict) else None
    try:
        if kind == "BertPreTokenizer":
            return BertPreTokenizer()
        if kind == "Whitespace":
            return Whitespace()
        if kind == "ByteLevel":
            return ByteLevel(
                d.get("add_prefix_space", False), d.get("use_regex", True), d.get("trim_offsets", True)
            )
        if kind == "Metaspace":
            return Metaspace(
                d.get("replacement", "▁"), d.get("prepend_scheme", "always"), d.get("split", True)
            )
        if kind == "Sequence":
            return Sequence([pretokenizer_from_hf(p) for p in d["pretokenizers"]])
    except (KeyError, TypeError) as e:
        raise LlmlabError(f"malformed pre_tokenizer {kind!r}: missing or bad field {e}") from None
    raise LlmlabError(f"unsupported pre_tokenizer {kind!r}")
