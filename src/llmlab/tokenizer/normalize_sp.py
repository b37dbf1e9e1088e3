"""Normalizers of SentencePiece-style and byte-level pipelines, and the tokenizer.json reader of all normalizers.

Each follows the Hugging Face `tokenizers` normalizer of the same name (tokenizers/src/normalizers/*.rs,
`NormalizedString` in tokenizer/normalizer.rs), reads/writes the same JSON and is tested against it, offsets
included (alignments as HF's: see `alignment.py`):
- `Nmt`: sentencepiece's nmt_nfkc clean-up without the NFKC: ASCII control characters dropped, some
  whitespace-like characters (tab, line breaks, zero-width spaces, U+2581, BOM, U+FFFD) become a space.
- `Strip`: remove leading / trailing whitespace (Unicode White_Space, as Rust's `char::is_whitespace`).
- `Prepend`: put a string in front of a non-empty text (its characters stand for the first character).
- `ByteLevel`: every UTF-8 byte as its GPT-2 printable character.
- `Replace`: every match of a literal string or a regex (HF compiles it with Oniguruma; here the `regex`
  module, which reads the patterns tokenizer files use alike); the replacement's characters stand for the
  last character of the match.
- `Precompiled`: SentencePiece's charsmap (`precompiled.py`).
"""

from __future__ import annotations

import base64

import regex

from llmlab.errors import LlmlabError
from llmlab.tokenizer.byte_level import to_byte_level
from llmlab.tokenizer.normalize import (
    BertNormalizer,
    Lowercase,
    Normalizer,
    Sequence,
    StripAccents,
    UnicodeForm,
)
from llmlab.tokenizer.precompiled import CharsMap, precompiled_normalize

_NMT_DROP = {c: None for c in [*range(0x01, 0x09), 0x0B, *range(0x0E, 0x20), 0x7F, 0x8F, 0x9F]}
_NMT_SPACE = {c: " " for c in [0x09, 0x0A, 0x0C, 0x0D, 0x1680, *range(0x200B, 0x2010), 0x2028, 0x2029]}
_NMT_TABLE = _NMT_DROP | _NMT_SPACE | {0x2581: " ", 0xFEFF: " ", 0xFFFD: " "}
_LEADING_SPACE = regex.compile(r"\A\p{White_Space}+")
_TRAILING_SPACE = regex.compile(r"\p{White_Space}+\Z")


class Nmt(Normalizer):
    """sentencepiece's NMT clean-up: control characters out, whitespace-like characters to a space."""

    def normalize(self, text: str) -> str:
        return text.translate(_NMT_TABLE)

    def to_hf(self) -> dict:
        return {"type": "Nmt"}


class Strip(Normalizer):
    """Remove leading and/or trailing whitespace."""

    def __init__(self, left: bool = True, right: bool = True):
        self.left = left
        self.right = right

    def _bounds(self, text: str) -> tuple[int, int]:
        lead = _LEADING_SPACE.match(text) if self.left else None
        trail = _TRAILING_SPACE.search(text) if self.right else None
        start = lead.end() if lead else 0
        return start, max(trail.start() if trail else len(text), start)

    def normalize(self, text: str) -> str:
        start, end = self._bounds(text)
        return text[start:end]

    def normalize_aligned(self, text: str) -> tuple[str, list[int] | None]:
        start, end = self._bounds(text)
        if (start, end) == (0, len(text)):
            return text, None
        return text[start:end], list(range(start, end))

    def to_hf(self) -> dict:
        return {"type": "Strip", "strip_left": self.left, "strip_right": self.right}


class Prepend(Normalizer):
    """Put `prepend` in front of a non-empty text."""

    def __init__(self, prepend: str):
        self.prepend = prepend

    def normalize(self, text: str) -> str:
        return self.prepend + text if text else text

    def normalize_aligned(self, text: str) -> tuple[str, list[int] | None]:
        if not text or not self.prepend:
            return text, None
        return self.prepend + text, [0] * len(self.prepend) + list(range(len(text)))

    def to_hf(self) -> dict:
        return {"type": "Prepend", "prepend": self.prepend}


class ByteLevel(Normalizer):
    """Every UTF-8 byte as its GPT-2 printable character."""

    def normalize(self, text: str) -> str:
        return to_byte_level(text)

    def to_hf(self) -> dict:
        return {"type": "ByteLevel"}


class Replace(Normalizer):
    """Replace every match of a literal string or a regex with `content`."""

    def __init__(self, pattern: str, content: str, is_regex: bool = False):
        self.pattern = pattern
        self.content = content
        self.is_regex = is_regex
        self._regex = compile_pattern(pattern, is_regex, "Replace")

    def normalize(self, text: str) -> str:
        return self._regex.sub(lambda _: self.content, text) if self.pattern else text

    def normalize_aligned(self, text: str) -> tuple[str, list[int] | None]:
        if not self.pattern or self._regex.search(text) is None:
            return text, None
        parts: list[str] = []
        align: list[int] = []
        last = 0
        for m in self._regex.finditer(text):
            start, end = m.span()
            parts += [text[last:start], self.content]
            align += range(last, start)
            align += [max(end - 1, 0)] * len(self.content)  # HF: the alignment of the character before
            last = end
        parts.append(text[last:])
        align += range(last, len(text))
        return "".join(parts), align

    def to_hf(self) -> dict:
        kind = "Regex" if self.is_regex else "String"
        return {"type": "Replace", "pattern": {kind: self.pattern}, "content": self.content}


class Precompiled(Normalizer):
    """SentencePiece's precompiled charsmap (see `precompiled.py`)."""

    def __init__(self, charsmap: bytes):
        """Raises: LlmlabError: the charsmap does not parse."""
        self.charsmap = CharsMap(charsmap)

    def normalize(self, text: str) -> str:
        return precompiled_normalize(self.charsmap, text)[0]

    def normalize_aligned(self, text: str) -> tuple[str, list[int] | None]:
        return precompiled_normalize(self.charsmap, text)

    def to_hf(self) -> dict:
        encoded = base64.b64encode(self.charsmap.data).decode("ascii")
        return {"type": "Precompiled", "precompiled_charsmap": encoded}


def normalizer_from_hf(d: dict | None) -> Normalizer | None:
    """Build a normalizer from the `normalizer` object of an HF tokenizer.json (None stays None).

    Raises:
        LlmlabError: an unknown or malformed normalizer, or a Precompiled charsmap that does not parse.
    """
    if d is None:
        return None
    kind = d.get("type") if isinstance(d, dict) else None
    try:
        if kind == "BertNormalizer":
            return BertNormalizer(
                d["clean_text"], d["handle_chinese_chars"], d.get("strip_accents"), d["lowercase"]
            )
        if kind in ("NFC", "NFD", "NFKC", "NFKD"):
            return UnicodeForm(kind)
        if kind in _SIMPLE:
            return _SIMPLE[kind]()
        if kind == "Strip":
            return Strip(bool(d.get("strip_left", True)), bool(d.get("strip_right", True)))
        if kind == "Prepend":
            return Prepend(_string(d["prepend"], "prepend"))
        if kind == "Replace":
            pattern, is_regex = pattern_from_hf(d["pattern"], "Replace")
            return Replace(pattern, _string(d["content"], "content"), is_regex)
        if kind == "Precompiled":
            return _precompiled(d["precompiled_charsmap"])
        if kind == "Sequence":
            return Sequence([normalizer_from_hf(n) for n in d["normalizers"]])
    except (KeyError, TypeError, AttributeError, ValueError) as e:
        raise LlmlabError(f"malformed normalizer {kind!r}: missing or bad field {e}") from None
    raise LlmlabError(f"unsupported normalizer {kind!r}")


def compile_pattern(pattern: str, is_regex: bool, owner: str) -> regex.Pattern:
    """A `Replace` / `Split` pattern: a regex, or a literal string matched as it is.

    Raises:
        LlmlabError: an invalid regex (naming `owner`).
    """
    try:
        return regex.compile(pattern if is_regex else regex.escape(pattern))
    except regex.error as e:
        raise LlmlabError(f"{owner} pattern {pattern!r} is not a valid regex: {e}") from None


def pattern_from_hf(d: object, owner: str) -> tuple[str, bool]:
    """(pattern, is_regex) from tokenizer.json's {"String": ...} or {"Regex": ...}.

    Raises:
        LlmlabError: anything else.
    """
    if not isinstance(d, dict) or len(d) != 1 or not isinstance(next(iter(d.values())), str):
        raise LlmlabError(f"{owner} pattern must be {{'String': ...}} or {{'Regex': ...}}, not {d!r}")
    ((kind, pattern),) = d.items()
    if kind not in ("String", "Regex"):
        raise LlmlabError(f"{owner} pattern must be {{'String': ...}} or {{'Regex': ...}}, not {d!r}")
    return pattern, kind == "Regex"


_SIMPLE = {"Lowercase": Lowercase, "StripAccents": StripAccents, "Nmt": Nmt, "ByteLevel": ByteLevel}


def _string(value: object, field: str) -> str:
    if not isinstance(value, str):
        raise LlmlabError(f"{field} must be a string, not {value!r}")
    return value


def _precompiled(encoded: object) -> Precompiled:
    try:
        data = base64.b64decode(_string(encoded, "precompiled_charsmap"), validate=True)
    except ValueError:
        raise LlmlabError("Precompiled: precompiled_charsmap is not valid base64") from None
    try:
        return Precompiled(data)
    except LlmlabError as e:
        raise LlmlabError(f"Precompiled: {e}") from None
