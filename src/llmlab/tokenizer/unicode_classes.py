"""The character classes HF `tokenizers` splits and cleans text with, matched fast and exactly.

HF tokenizers 0.23 asks the crate unicode_categories 0.1.1 (Unicode 8.0 tables) and Rust's
`char::is_whitespace`, not the Unicode version of today. The classes are committed in `tables/classes.py`
(made by `tables/make_tables.py`, which names the sources):
`CONTROL` (BERT's clean-text: Cc, Cf, Co; unassigned code points are not control), `PUNCTUATION` (P*),
`NONSPACING_MARK` (Mn, BERT's strip_accents), `COMBINING_MARK` (M, StripAccents; from the normalization
crate, Unicode 9.0) and `WHITE_SPACE`.

Speed: a `regex` character class of hundreds of ranges tests them one by one (~1 µs a character), its Unicode
properties are fast. So each class is used in patterns as the property of today (the bodies below, e.g.
`f"[{PUNCTUATION}]"`), which agrees with HF's table on all but a few characters (added or recategorised
since; `exceptions`, found on first use by comparing the two on every code point). A pattern is run on
`stand_in(text)`: the text itself, or, when it holds one of those characters, a copy of the same length in
which each is replaced by a character the properties class as HF does; spans found there hold for the text.
`sub` does that for a substitution.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING

import regex

from llmlab.tokenizer.tables import classes

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "COMBINING_MARK",
    "CONTROL",
    "NONSPACING_MARK",
    "PUNCTUATION",
    "WHITE_SPACE",
    "char_class",
    "exceptions",
    "ranges",
    "stand_in",
    "sub",
]

CONTROL = r"\p{Cc}\p{Cf}\p{Co}"
PUNCTUATION = r"\p{P}"
NONSPACING_MARK = r"\p{Mn}"
COMBINING_MARK = r"\p{M}"
WHITE_SPACE = r"\p{White_Space}"
_CLASSES = {  # name in tables/classes.py -> the property body used in patterns
    "CONTROL": CONTROL,
    "PUNCTUATION": PUNCTUATION,
    "NONSPACING_MARK": NONSPACING_MARK,
    "COMBINING_MARK": COMBINING_MARK,
    "WHITE_SPACE": WHITE_SPACE,
}
_STAND_INS = "a\x01!\u0300\u0903 "  # a letter, controls, punctuation, marks (Mn, Mc), a space


def ranges(table: str) -> list[tuple[int, int]]:
    """`first-last ...` (hex) as (first, last) pairs."""
    return [tuple(int(x, 16) for x in item.split("-")) for item in table.split()]


def char_class(pairs: list[tuple[int, int]]) -> str:
    """(first, last) ranges as the body of a regex character class."""
    return "".join(f"\\U{a:08x}" if a == b else f"\\U{a:08x}-\\U{b:08x}" for a, b in pairs)


def _memberships(chars: str, body: str) -> np.ndarray:
    import numpy as np  # here: importing the tokenizer stays light (numpy costs ~15 MiB of RSS)

    hits = [m.start() for m in regex.finditer(f"[{body}]", chars)]
    out = np.zeros(len(chars), dtype=bool)
    out[hits] = True
    return out


@functools.cache
def exceptions() -> dict[int, str]:
    """Code point -> stand-in, for every character on which a property disagrees with HF's table of it: the
    stand-in is in exactly the classes the character is in by HF's tables."""
    import numpy as np  # here: importing the tokenizer stays light

    cps = np.arange(0x110000, dtype=np.uint32)
    cps = cps[(cps < 0xD800) | (cps >= 0xE000)]
    chars = cps.astype("<u4").tobytes().decode("utf-32-le")
    wanted = np.zeros((len(_CLASSES), 0x110000), dtype=bool)
    for k, name in enumerate(_CLASSES):
        for first, last in ranges(getattr(classes, name)):
            wanted[k, first : last + 1] = True
    wanted = wanted[:, cps]
    have = np.stack([_memberships(chars, body) for body in _CLASSES.values()])
    stand_ins = {tuple(_memberships(c, b)[0] for b in _CLASSES.values()): c for c in reversed(_STAND_INS)}
    out = {}
    for i in np.flatnonzero((wanted != have).any(axis=0)).tolist():
        out[int(cps[i])] = stand_ins[tuple(wanted[:, i].tolist())]  # KeyError: a combination without stand-in
    return out


@functools.cache
def _exception_chars() -> frozenset[str]:
    return frozenset(map(chr, exceptions()))


def stand_in(text: str) -> str:
    """`text`, or a copy of the same length whose characters the class properties class as HF's tables do."""
    if _exception_chars().isdisjoint(text):
        return text
    return text.translate(exceptions())


def sub(pattern: regex.Pattern, repl: str | Callable[[regex.Match], str], text: str) -> str:
    """`pattern.sub(repl, text)` with the pattern matched on `stand_in(text)` (a function `repl` sees that
    match: the stand-ins, not the characters they stand for)."""
    probe = stand_in(text)
    if probe is text:
        return pattern.sub(repl, text)
    parts, last = [], 0
    for m in pattern.finditer(probe):
        parts += (text[last : m.start()], repl(m) if callable(repl) else repl)
        last = m.end()
    parts.append(text[last:])
    return "".join(parts)
