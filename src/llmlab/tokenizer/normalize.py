"""Normalizers: the first stage of the tokenizer pipeline, text in, cleaner text out.

Each normalizer follows the Hugging Face `tokenizers` component of the same name (normalizers.rs, bert.rs)
and reads/writes the same JSON. `BertNormalizer` follows Google's BERT `tokenization.py`: clean-text removes
NUL, U+FFFD and control characters (Cc, Cf, Co, but not tab/newline/CR; unassigned code points stay) and turns
whitespace into a space; CJK ideographs (BERT's code-point ranges) get a space on each side; accents are
stripped by NFD then dropping non-spacing marks (Mn); lowercasing is per character, as in HF (so a final
capital sigma becomes 'σ', not Python's context-sensitive 'ς'). The character classes and the normalization
forms are HF's, from the Unicode tables of its crates (`unicode_classes.py`, `unicode_normalize.py`), not the
running Python's.
Deviations: lone surrogates (which HF cannot be given) count as control characters; lowercasing is Python's
(Rust's may know characters added to Unicode since).

Offsets need to know which original character each normalized character came from. `normalize_aligned`
returns that alignment exactly as HF computes it (`alignment.py`): a normalizer that acts character by
character (most do) aligns each output character to the character it came from, computed once per distinct
character; NFC/NFKC composition, NFD reordering of marks, Precompiled, Replace, Strip and Prepend follow HF's
positional rules (`alignment.py`, `precompiled.py`). `None` means the identity (the text is unchanged, or every
character became exactly one character in place: lowercasing, say).

The SentencePiece-style normalizers (Nmt, Strip, Prepend, ByteLevel, Replace, Precompiled) and the
tokenizer.json reader of all normalizers (`normalizer_from_hf`) are in `normalize_sp.py`.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Sequence as SequenceOf
from itertools import chain, repeat

import regex

from llmlab.errors import LlmlabError
from llmlab.tokenizer import unicode_classes, unicode_normalize
from llmlab.tokenizer.alignment import compose_alignments, unicode_form_aligned
from llmlab.tokenizer.unicode_classes import COMBINING_MARK, CONTROL, NONSPACING_MARK, WHITE_SPACE

CJK_RANGES = (  # BERT's CJK ideographs (Google BERT `_is_chinese_char`)
    "\u4e00-\u9fff\u3400-\u4dbf\uf900-\ufaff"
    "\U00020000-\U0002a6df\U0002a700-\U0002b73f\U0002b740-\U0002b81f\U0002b920-\U0002ceaf\U0002f800-\U0002fa1f"
)
_CJK = regex.compile(f"[{CJK_RANGES}]")
_CONTROL = regex.compile(f"[[\\x00\\ufffd\\ud800-\\udfff{CONTROL}]--[\\t\\n\\r]]", regex.V1)
_SPACE = regex.compile(f"[{WHITE_SPACE}]")
_MARK = regex.compile(f"[{NONSPACING_MARK}]")
_ANY_MARK = regex.compile(f"[{COMBINING_MARK}]")
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
            (normalized, alignment): alignment is None for the identity (nothing changed, or each character
            became one character in place), else a non-decreasing list with, for each normalized character,
            the index of the original character it came from.
        """
        out = self.normalize(text)
        if out == text:
            return out, None
        parts = list(map(self._char_forms().__getitem__, text))
        if "".join(parts) != out:  # characters acted on each other (composition, reordering, ...)
            return self._aligned_across(text)
        return out, _expand(parts)

    def _aligned_across(self, text: str) -> tuple[str, list[int] | None]:
        """`normalize_aligned` where normalizing character by character does not rebuild the text."""
        raise NotImplementedError(f"{type(self).__name__} acts across characters but has no alignment")

    def _char_forms(self) -> _CharForms:
        """character -> its normalized form, remembered (a normalizer's settings are not changed after use)."""
        forms = self.__dict__.get("_forms")
        if forms is None:
            forms = self.__dict__["_forms"] = _CharForms(self.normalize)
        return forms


def _expand(parts: list[str]) -> list[int] | None:
    """The alignment of a text whose i-th character became parts[i] (None when each is one character)."""
    lengths = list(map(len, parts))
    if lengths.count(1) == len(lengths):
        return None
    return list(chain.from_iterable(map(repeat, range(len(parts)), lengths)))


def local_aligned(normalize: Callable[[str], str], text: str) -> tuple[str, list[int] | None]:
    """Normalize character by character with `normalize`: the text and its alignment."""
    parts = list(map(normalize, text))
    return "".join(parts), _expand(parts)


class _CharForms(dict):
    """character -> its normalized form, computed on first use."""

    def __init__(self, normalize):
        super().__init__()
        self.normalize = normalize

    def __missing__(self, char: str) -> str:
        self[char] = out = self.normalize(char)
        return out


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

    def normalize_aligned(self, text: str) -> tuple[str, list[int] | None]:
        if text.isascii():  # on ASCII only control characters go (or turn into spaces), the rest maps 1:1
            out = self.normalize(text)
            if len(out) == len(text):
                return out, None
        return super().normalize_aligned(text)

    def _aligned_across(self, text: str) -> tuple[str, list[int] | None]:
        """HF's steps one after the other: NFD (to strip accents) reorders marks across characters."""
        local = BertNormalizer(self.clean_text, self.handle_chinese_chars, False, False)
        text, align = local_aligned(local.normalize, text)
        text, nfd = unicode_form_aligned("NFD", text)
        align = compose_alignments(align, nfd)
        text, rest = local_aligned(
            lambda c: lowercase(_MARK.sub("", c)) if self.lowercase else _MARK.sub("", c), text
        )
        return text, compose_alignments(align, rest)

    def without_cjk_spaces(self) -> BertNormalizer:
        """The same normalizer without the spaces around CJK ideographs (for a split that isolates them)."""
        return BertNormalizer(self.clean_text, False, self.strip_accents, self.lowercase)

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
    return unicode_classes.sub(_SPACE, " ", unicode_classes.sub(_CONTROL, "", text))


def strip_accents(text: str) -> str:
    """NFD, then drop non-spacing marks (Unicode category Mn)."""
    if text.isascii():
        return text
    return unicode_classes.sub(_MARK, "", unicode_normalize.normalize("NFD", text))


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
    """Drop combining marks (M: Mn, Mc, Me, as HF's `is_combining_mark`; BERT's strip_accents drops only Mn);
    as in HF, it strips accents only after an NFD/NFKD normalizer."""

    def normalize(self, text: str) -> str:
        return text if text.isascii() else unicode_classes.sub(_ANY_MARK, "", text)

    def to_hf(self) -> dict:
        return {"type": "StripAccents"}


class UnicodeForm(Normalizer):
    """One of the four Unicode normalization forms: NFC, NFD, NFKC, NFKD."""

    def __init__(self, form: str):
        if form not in ("NFC", "NFD", "NFKC", "NFKD"):
            raise LlmlabError(f"unknown Unicode normalization form {form!r}")
        self.form = form

    def normalize(self, text: str) -> str:
        return unicode_normalize.normalize(self.form, text)

    def _aligned_across(self, text: str) -> tuple[str, list[int] | None]:
        return unicode_form_aligned(self.form, text)

    def to_hf(self) -> dict:
        return {"type": self.form}


class Sequence(Normalizer):
    """Apply several normalizers in order."""

    def __init__(self, normalizers: SequenceOf[Normalizer]):
        self.normalizers = list(normalizers)

    def normalize(self, text: str) -> str:
        for n in self.normalizers:
            text = n.normalize(text)
        return text

    def normalize_aligned(self, text: str) -> tuple[str, list[int] | None]:
        align = None
        for n in self.normalizers:
            text, step = n.normalize_aligned(text)
            align = compose_alignments(align, step)
        return text, align

    def to_hf(self) -> dict:
        return {"type": "Sequence", "normalizers": [n.to_hf() for n in self.normalizers]}
