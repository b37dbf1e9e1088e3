"""Alignments: which character of the text each normalized character came from, as Hugging Face tracks it.

Follows Hugging Face `tokenizers` `NormalizedString::transform_range` (tokenizers/src/tokenizer/normalizer.rs)
and the `unicode-normalization-alignments` crate it normalizes with (a fork of `unicode-normalization` that
yields a change with each character). A normalizer describes its output as `(char, change)` pairs:
0 replaces the next character of the input, -n replaces it and removes the n after it, +1 is a new character.
Reading them in order (`apply_changes`), a replacing character points at the input character it consumes and a
new one at the last consumed character; so HF's alignments are positional: when NFD reorders combining marks
the i-th mark of the output points at the i-th mark of the input, whichever mark it is, and a composed
character points at its first input character. HF keeps a byte range per normalized byte; every such range is
one input character here, so an alignment is one input index per output character (a token's span is then
`(align[start], align[end - 1] + 1)`, HF's `expand_alignments`).

`unicode_form_aligned` reproduces the crate's decomposition (canonical reordering by a stable sort of each
run of marks, the changes moving with their characters) and its recomposition state machine exactly, with the
crate's data (Unicode 9.0; `unicode_normalize.py`: Python's `unicodedata`, less what was added since).
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

from llmlab.tokenizer.unicode_normalize import combining, composition, decomposition

__all__ = ["apply_changes", "compose_alignments", "unicode_form_aligned"]

Change = tuple[str, int]


def apply_changes(changes: Iterable[Change], n_input: int, initial_offset: int = 0) -> tuple[str, list[int]]:
    """HF's `transform`: the new text and, for each of its characters, the input index it aligns to.

    Args:
        changes: (char, change) for each output character (see the module docstring).
        n_input: how many characters the input has.
        initial_offset: input characters removed at the very start.

    Returns:
        (text, alignment): alignment[i] is the input index output character i comes from.
    """
    chars: list[str] = []
    align: list[int] = []
    offset = initial_offset
    last = max(n_input - 1, 0)
    for char, change in changes:
        chars.append(char)
        if change > 0:  # a new character shares the alignment of the one before it (HF: (0, 0) at the start)
            align.append(min(max(offset - 1, 0), last))
        else:
            align.append(min(offset, last))
            offset += 1 - change
    return "".join(chars), align


def compose_alignments(first: list[int] | None, second: list[int] | None) -> list[int] | None:
    """The alignment of two normalizations in a row (None is the identity)."""
    if first is None:
        return second
    if second is None:
        return first
    return [first[i] for i in second]


def unicode_form_aligned(form: str, text: str) -> tuple[str, list[int]]:
    """NFD, NFKD, NFC or NFKC of `text` with HF's alignment.

    Returns:
        (normalized, alignment) as `apply_changes` gives them.
    """
    compat = form in ("NFKD", "NFKC")
    changes = _decompose(text, "NFKD" if compat else "NFD")
    if form in ("NFC", "NFKC"):
        changes = _recompose(changes)
    return apply_changes(changes, len(text))


def _decompose(text: str, form: str) -> list[Change]:
    """Each character's full decomposition (first part 0, the rest +1), each run of marks stably sorted by
    combining class (the crate's `Decompositions`)."""
    out: list[Change] = []
    pending: list[tuple[int, str, int]] = []  # (class, char, change) since the last starter
    for char in text:
        for k, part in enumerate(_decomposition(char, form)):
            cls = combining(part)
            if cls == 0 and pending:
                out += [(c, ch) for _, c, ch in sorted(pending, key=_CLASS)]
                pending = []
            pending.append((cls, part, 0 if k == 0 else 1))
    out += [(c, ch) for _, c, ch in sorted(pending, key=_CLASS)]
    return out


def _CLASS(entry: tuple[int, str, int]) -> int:  # noqa: N802  (a sort key, named like a constant)
    return entry[0]


_decomposition = lru_cache(maxsize=65536)(decomposition)
_compose = lru_cache(maxsize=65536)(composition)  # the primary composite of a starter and the next, or None


def _recompose(decomposed: list[Change]) -> list[Change]:
    """The crate's `Recompositions` state machine over (char, change) pairs: a composed character's change is
    the sum of its parts' changes minus one; blocked marks wait in a buffer behind their starter."""
    out: list[Change] = []
    buffer: list[Change] = []
    composee: Change | None = None
    last_class: int | None = None
    for char, change in decomposed:
        cls = combining(char)
        if composee is None:
            if cls != 0:
                out.append((char, change))
            else:
                composee = (char, change)
            continue
        if last_class is not None and last_class >= cls:  # blocked from the starter
            if cls == 0:
                out.append(composee)
                out += buffer
                buffer, composee, last_class = [], (char, change), None
            else:
                buffer.append((char, change))
                last_class = cls
            continue
        composed = _compose(composee[0], char)
        if composed is not None:
            composee = (composed, composee[1] + change - 1)
        elif last_class is None and cls == 0:
            out.append(composee)
            composee = (char, change)
        else:
            buffer.append((char, change))
            last_class = cls
    if composee is not None:
        out.append(composee)
    return out + buffer
