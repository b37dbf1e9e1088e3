"""Unicode normalization forms as HF `tokenizers` computes them (its crate's Unicode 9.0), for the running Python.

HF tokenizers 0.23 normalizes with the crate unicode-normalization-alignments 0.1.12 (Unicode 9.0), not with
the Unicode version of today. The crate's data (combining classes, decompositions, compositions) equals
Python's `unicodedata` on every code point it knows (`tables/make_tables.py` checks, and Unicode's stability
policy keeps it so; the code points are committed in `tables/classes.py`), and every other code point neither
decomposes, composes nor reorders there. So `normalize` runs `unicodedata.normalize`, except on the code
points Python knows more of than the crate (added to Unicode since 9.0: `divergent`): they stay as they are
and cut the text, each piece between them normalized on its own. That is exactly the crate's result, as such
a code point is a starter that blocks every interaction across it. `combining`, `decomposition` and
`composition` give alignment.py the same data character by character.
"""

from __future__ import annotations

import functools
import unicodedata

import regex

from llmlab.tokenizer.tables import classes
from llmlab.tokenizer.unicode_classes import char_class, ranges

__all__ = ["combining", "composition", "decomposition", "divergent", "normalize"]

_N = 0x110000
_HANGUL = [(0x1100, 0x11FF), (0xAC00, 0xD7A3)]  # jamo and syllables: by algorithm, in the crate and in Python
_PROBE = ("\x00", "\u035d", "\u0334")  # a starter, marks of class 234 and 1 (no decomposition of their own)
_BLOCK = 1024  # probes normalized at once


@functools.cache
def divergent() -> frozenset[str]:
    """The characters Python's `unicodedata` normalizes (a combining class, a decomposition, a part of a
    canonical pair) and the normalization crate does not know: it leaves them as they are.

    Found by NFKD over all other code points, each as starter + mark(234) + c + mark(1): the piece changes
    exactly when c decomposes or has a combining class (the marks then reorder around it); a block of pieces
    that did not change is passed over whole.
    """
    import numpy as np  # here: importing the tokenizer stays light (numpy costs ~15 MiB of RSS)

    known = np.zeros(_N, dtype=bool)
    for first, last in ranges(classes.NORMALIZATION_KNOWN) + _HANGUL:
        known[first : last + 1] = True
    known[:0x80] = known[0xD800:0xE000] = True  # ASCII never decomposes; surrogates are not characters
    cps = np.flatnonzero(~known).astype(np.uint32)
    probe = np.empty((len(cps), 4), dtype=np.uint32)
    probe[:, 0], probe[:, 1], probe[:, 3] = (ord(c) for c in _PROBE)
    probe[:, 2] = cps
    found: set[str] = set()
    for start in range(0, len(cps), _BLOCK):
        text = probe[start : start + _BLOCK].astype("<u4").tobytes().decode("utf-32-le")
        out = unicodedata.normalize("NFKD", text)
        if out != text:
            pairs = zip(text.split(_PROBE[0])[1:], out.split(_PROBE[0])[1:], strict=True)
            found.update(piece[1] for piece, normalized in pairs if piece != normalized)
    for c in list(found):
        parts = unicodedata.decomposition(c).split()
        if len(parts) == 2 and not parts[0].startswith("<"):
            found.update(chr(int(p, 16)) for p in parts if not known[int(p, 16)])
    return frozenset(found)


@functools.cache
def _divergent_split() -> regex.Pattern:
    chars = sorted(map(ord, divergent()))
    return regex.compile(f"([{char_class([(cp, cp) for cp in chars])}])" if chars else "(?!)")


def normalize(form: str, text: str) -> str:
    """NFC, NFD, NFKC or NFKD of `text` as HF's normalization crate (Unicode 9.0) gives it.

    A text Python finds already normalized is one the crate does too (it knows less, and what it does not
    know only blocks), so that quick check comes first."""
    if text.isascii() or unicodedata.is_normalized(form, text):
        return text
    pieces = _divergent_split().split(text)
    if len(pieces) == 1:
        return unicodedata.normalize(form, text)
    return "".join(p if i % 2 else unicodedata.normalize(form, p) for i, p in enumerate(pieces))


def combining(char: str) -> int:
    """The canonical combining class of `char` in the crate."""
    return 0 if char in divergent() else unicodedata.combining(char)


def decomposition(char: str, form: str) -> str:
    """The full decomposition of `char` ("NFD" canonical, "NFKD" compatibility) in the crate."""
    return char if char in divergent() else unicodedata.normalize(form, char)


def composition(first: str, second: str) -> str | None:
    """The primary composite of two characters in the crate, or None."""
    if first in divergent() or second in divergent():
        return None
    out = unicodedata.normalize("NFC", first + second)
    return out if len(out) == 1 else None
