"""Normalizers: the first stage of the tokenizer pipeline, text in, cleaner text out.

Each normalizer follows the Hugging Face `tokenizers` component of the same name (normalizers.rs, bert.rs)
and reads/writes the same JSON. `BertNormalizer` follows Google's BERT `tokenization.py`: clean-text removes
NUL, U+FFFD and control characters (Unicode Cc/Cf/Cn/Co/Cs, but not tab/newline/CR) and turns whitespace into a
space; CJK ideographs (BERT's code-point ranges) get a space on each side; accents are stripped by NFD then
dropping non-spacing marks (Mn); lowercasing is per character, as in HF (so a final capital sigma becomes
'σ', not Python's context-sensitive 'ς').

Offsets need to know which original character each normalized character came from. `normalize_aligned`
returns that alignment: `None` when the text kept its length (each character maps to itself, the fast and
common path), otherwise one original index per output character, computed grapheme by grapheme.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence as SequenceOf

import regex

from llmlab.errors import LlmlabError

_CJK_RANGES = (
    "\u4e00-\u9fff\u3400-\u4dbf\uf900-\ufaff"
    "\U00020000-\U0002a6df\U0002a700-\U0002b73f\U0002b740-\U0002b81f\U0002b920-\U0002ceaf\U0002f800-\U0002fa1f"
)
_CJK = regex.compile(f"[{_CJK_RANGES}]")
_CONTROL = regex.compile(r"[\x00\ufffd\p{Cc}\p{Cf}\p{Cn}\p{Co}\p{Cs}--[\t\n\r]]", regex.V1)
_SPACE = regex.compile(r"[\t\n\r\p{Zs}\u2028\u2029]")
_MARK = regex.compile(r"\p{Mn}")
_GRAPHEME = regex.compile(r"\X", regex.DOTALL)
_ASCII_CLEAN = {i: None for i in range(32) if chr(i) not in "\t\n\r"} | {9: " ", 10: " ", 13: " ", 127: None}


class Normalizer:
    """Base class: subclasses implement `normalize` and `to_hf`."""

    def normalize(self, text: str) -> str:
        raise NotImplementedError

    def to_hf(self) -> dict:
        raise NotImplementedError

    def normalize_aligned(self, text: str) -> tuple[str, list[int] | None]:
        """Normalize `text` and say where each output character came from.

        Returns:
            (normalized, alignment): alignment is None when the length did not change (identity), else a list
            with, for each normalized character, the index of the original character it came from.
        """
        out = self.normalize(text)
        if len(out) == len(text):
            return out, None
        pieces: list[str] = []
        alignment: list[int] = []
        for m in _GRAPHEME.finditer(text):
            piece = self.normalize(m.group())
            pieces.append(piece)
            alignment.extend([m.start()] * len(piece))
        return "".join(pieces), alignment


class BertNormalizer(Normalizer):
    """BERT's normalizer: clean text, space out CJK ideographs, strip accents, lowercase."""

    def __init__(
        self,
        clean_text: bool = True,
        handle_chinese_chars: bool = True,
        strip_accents: bool | None = None,
        lowercase: bool = True,
    ):
        self.clean_text = clean_text
        self.handle_chinese_chars = handle_chinese_chars
        self.strip_accents = strip_accents
        self.lowercase = lowercase

    def normalize(self, text: str) -> str:
        if self.clean_text:
            text = clean_text(text)
        if self.handle_chinese_chars and not text.isascii():
            text = _CJK.sub(r" \g<0> ", text)
        if self.lowercase if self.strip_accents is None else self.strip_accents:
            text = strip_accents(text)
        if self.lowercase:
            text = lowercase(text)
        return text

    def to_hf(self) -> dict:
        return {
            "type": "BertNormalizer",
            "clean_text": self.clean_text,
            "handle_chinese_chars": self.handle_chinese_chars,
            "strip_accents": self.strip_accents,
            "lowercase": self.lowercase,
        }


def clean_text(text: str) -> str:
    """Drop NUL, U+FFFD and control characters; turn every whitespace character into a space."""
    if text.isascii():
        return text.translate(_ASCII_CLEAN)
    return _SPACE.sub(" ", _CONTROL.sub("", text))


def strip_accents(text: str) -> str:
    """NFD, then drop non-spacing marks (Unicode category Mn)."""
    if text.isascii():
        return text
    return _MARK.sub("", unicodedata.normalize("NFD", text))


def lowercase(text: str) -> str:
    """Per-character lowercase (HF semantics: no final-sigma rule)."""
    return text.replace("Σ", "σ").lower() if "Σ" in text else text.lower()


class Lowercase(Normalizer):
    """Lowercase every character."""

    def normalize(self, text: str) -> str:
        return lowercase(text)

    def to_hf(self) -> dict:
        return {"type": "Lowercase"}


class StripAccents(Normalizer):
    """Drop non-spacing marks (Mn); as in HF, it strips accents only after an NFD/NFKD normalizer."""

    def normalize(self, text: str) -> str:
        return text if text.isascii() else _MARK.sub("", text)

    def to_hf(self) -> dict:
        return {"type": "StripAccents"}


class UnicodeForm(Normalizer):
    """One of the four Unicode normalization forms: NFC, NFD, NFKC, NFKD."""

    def __init__(self, form: str):
        if form not in ("NFC", "NFD", "NFKC", "NFKD"):
            raise LlmlabError(f"unknown Unicode normalization form {form!r}")
        self.form = form

    def normalize(self, text: str) -> str:
        return text if text.isascii() else unicodedata.normalize(self.form, text)

    def to_hf(self) -> dict:
        return {"type": self.form}


class Replace(Normalizer):
    """Replace every occurrence of a literal string (HF `Replace` with a String pattern)."""

    def __init__(self, pattern: str, content: str):
        self.pattern = pattern
        self.content = content

    def normalize(self, text: str) -> str:
        return text.replace(self.pattern, self.content)

    def to_hf(self) -> dict:
        return {"type": "Replace", "pattern": {"String": self.pattern}, "content": self.content}


class Sequence(Normalizer):
    """Apply several normalizers in order."""

    def __init__(self, normalizers: SequenceOf[Normalizer]):
        self.normalizers = list(normalizers)

    def normalize(self, text: str) -> str:
        for n in self.normalizers:
            text = n.normalize(text)
        return text

    def to_hf(self) -> dict:
        return {"type": "Sequence", "normalizers": [n.to_hf() for n in self.normalizers]}


def normalizer_from_hf(d: dict | None) -> Normalizer | None:
    """Build a normalizer from the `normalizer` object of an HF tokenizer.json (None stays None).

    Raises:
        LlmlabError: an unknown or malformed normalizer.
    """
    if d is None:
        return None
    kind = d.get("type") if isinstance(d, dict) else None
    try:
        if kind == "BertNormalizer":
            return BertNormalizer(
                d["clean_text"], d["handle_chinese_chars"], d["strip_accents"], d["lowercase"]
            )
        if kind in ("NFC", "NFD", "NFKC", "NFKD"):
            return UnicodeForm(kind)
        if kind == "Lowercase":
            return Lowercase()
        if kind == "StripAccents":
            return StripAccents()
        if kind == "Replace" and "String" in d["pattern"]:
            return Replace(d["pattern"]["String"], d["content"])
        if kind == "Sequence":
            return Sequence([normalizer_from_hf(n) for n in d["normalizers"]])
    except (KeyError, TypeError) as e:
        raise LlmlabError(f"malformed normalizer {kind!r}: missing or bad field {e}") from None
    raise LlmlabError(f"unsupported normalizer {kind!r}")
