"""GPT-2's byte-level alphabet: each of the 256 byte values as a printable character.

Follows GPT-2 (Radford et al. 2019, openai/gpt-2 `encoder.py`, `bytes_to_unicode`), as Hugging Face
`tokenizers` does (pre_tokenizers/byte_level.rs): a byte-level model sees the UTF-8 bytes of a word, each as one
of these characters, so no byte is ever unknown. Used by the `ByteLevel` pre-tokenizer and decoder and by
byte-level BPE; `char_spans` turns spans of such bytes back into spans of the characters they encode.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import accumulate

import regex

__all__ = ["BYTE_TO_UNICODE", "UNICODE_TO_BYTE", "bytes_to_unicode", "char_spans", "to_byte_level"]


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
# 1 for the character of a byte that starts a UTF-8 character, 0 for a continuation byte (0x80-0xBF)
_STARTS_CHAR = {c: int(not 0x80 <= b < 0xC0) for b, c in BYTE_TO_UNICODE.items()}
_HIGH_BYTE = regex.compile("[" + "".join(regex.escape(BYTE_TO_UNICODE[b]) for b in range(0x80, 0x100)) + "]")


def to_byte_level(text: str) -> str:
    """The UTF-8 bytes of `text`, each as its GPT-2 printable character."""
    return text.encode("utf-8").decode("latin-1").translate(_LATIN1_TO_BYTELEVEL)


def char_spans(piece: str, spans: Sequence[tuple[int, int]]) -> tuple[Sequence[tuple[int, int]], int]:
    """Spans of bytes of byte-level `piece` as spans of the characters they encode, and how many characters
    `piece` encodes (a span that cuts a character covers all of it)."""
    if _HIGH_BYTE.search(piece) is None:  # every byte is a character
        return spans, len(piece)
    begun = [0, *accumulate(map(_STARTS_CHAR.__getitem__, piece))]  # begun[i]: characters begun in piece[:i]
    return [(begun[a + 1] - 1, begun[b]) for a, b in spans], begun[-1]
