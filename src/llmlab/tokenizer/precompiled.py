"""SentencePiece's precompiled normalizer: a double-array trie over UTF-8 strings and their replacements.

Spec: sentencepiece `src/normalizer.cc` and darts-clone's `Darts::DoubleArray` (the `precompiled_charsmap` of a
SentencePiece model's NormalizerSpec). Reference implementation, matched character for character and offset
for offset (tested on SentencePiece's test model and the nmt_nfkc map): Hugging Face `tokenizers`
`normalizers.Precompiled` (the `spm_precompiled` crate and tokenizers/src/normalizers/precompiled.rs).

The charsmap is `[u32 little-endian: trie size in bytes][trie: u32 units][replacements: NUL-terminated UTF-8]`.
A trie unit packs a label (the byte that leads to it), an offset to its children (XOR-ed with the position)
and a has-leaf flag; a leaf's value is the byte position of the replacement string. As HF does:
- the text is cut into extended grapheme clusters; a cluster shorter than 6 bytes is looked up whole, and
  else (or when it has no entry) character by character;
- a lookup takes the *first* (shortest) prefix of the key that has an entry, so the whole cluster is
  replaced by that prefix's replacement (HF: "Yes, this seems broken ... you don't pass" otherwise);
- alignments follow HF's `replace`: a longer replacement's extra characters are new characters, a shorter
  one removes characters after its last character (or, when empty, after the character before it).
"""

from __future__ import annotations

import struct

import regex

from llmlab.errors import LlmlabError
from llmlab.tokenizer.alignment import Change, apply_changes

__all__ = ["CharsMap", "precompiled_normalize"]

_GRAPHEME = regex.compile(r"\X", regex.DOTALL)


class CharsMap:
    """A parsed `precompiled_charsmap`: the trie and the replacement strings."""

    def __init__(self, data: bytes):
        """Parse the charsmap bytes.

        Raises:
            LlmlabError: too short for its trie, or replacements that are not UTF-8.
        """
        if len(data) < 4:
            raise LlmlabError(f"precompiled_charsmap of {len(data)} bytes is too short to hold a trie size")
        (trie_size,) = struct.unpack_from("<I", data)
        n_units = trie_size // 4
        if 4 + 4 * n_units > len(data) or n_units == 0:
            raise LlmlabError(
                f"precompiled_charsmap says its trie has {trie_size} bytes but holds {len(data) - 4}"
            )
        self.data = bytes(data)
        self.units = struct.unpack_from(f"<{n_units}I", data, 4)
        self.normalized = self.data[4 + 4 * n_units :]
        try:
            self.normalized.decode("utf-8")
        except UnicodeDecodeError as e:
            raise LlmlabError(f"precompiled_charsmap replacements are not UTF-8 (byte {e.start})") from None
        self.plans: dict[str, tuple[tuple[str, str | None], ...]] = {}  # grapheme -> `_plan`

    def _first_prefix_value(self, key: bytes) -> int | None:
        """The value of the shortest prefix of `key` that is in the trie (darts' commonPrefixSearch, first hit)."""
        units = self.units
        try:
            unit = units[0]
            pos = _offset(unit)
            for byte in key:
                if byte == 0:
                    break
                pos ^= byte
                unit = units[pos]
                if unit & 0x800000FF != byte:
                    return None
                pos ^= _offset(unit)
                if (unit >> 8) & 1:
                    return units[pos] & 0x7FFFFFFF
        except IndexError:
            raise LlmlabError("precompiled_charsmap: the trie points outside itself") from None
        return None

    def transform(self, chunk: str) -> str | None:
        """The replacement of `chunk` (of its first prefix that has one), or None when it has none."""
        value = self._first_prefix_value(chunk.encode("utf-8"))
        if value is None:
            return None
        if value > len(self.normalized):
            raise LlmlabError(f"precompiled_charsmap: replacement at byte {value} is past the end")
        end = self.normalized.find(b"\0", value)
        try:
            return self.normalized[value : len(self.normalized) if end < 0 else end].decode("utf-8")
        except UnicodeDecodeError:
            raise LlmlabError(
                f"precompiled_charsmap: replacement at byte {value} is cut inside a character"
            ) from None


def _offset(unit: int) -> int:
    return (unit >> 10) << ((unit & (1 << 9)) >> 6)


def _plan(charsmap: CharsMap, grapheme: str) -> tuple[tuple[str, str | None], ...]:
    """How one grapheme is rewritten: (part, replacement or None to keep it) pieces, as HF decides."""
    if len(grapheme.encode("utf-8")) < 6:
        whole = charsmap.transform(grapheme)
        if whole is not None:
            return ((grapheme, whole),)
    return tuple((c, charsmap.transform(c)) for c in grapheme)


def precompiled_normalize(charsmap: CharsMap, text: str) -> tuple[str, list[int] | None]:
    """Normalize `text` with the charsmap, with HF's alignment (None when nothing changed).

    Raises:
        LlmlabError: the trie or its replacements are corrupt where the text reaches them.
    """
    plans = charsmap.plans
    changes: list[Change] = []
    modified = False
    for grapheme in _GRAPHEME.findall(text):
        plan = plans.get(grapheme)
        if plan is None:
            plan = plans[grapheme] = _plan(charsmap, grapheme)
        for part, new in plan:
            if new is None:
                changes.append((part, 0))
            else:
                modified = True
                _replace(changes, len(part), new)
    if not modified:
        return text, None
    return apply_changes(changes, len(text))


def _replace(changes: list[Change], n_old: int, new: str) -> None:
    """HF's `replace`: the new characters replace the old ones in place; extra ones are new characters, and
    fewer remove the rest after the last character written so far."""
    changes.extend((c, 0) for c in new)
    diff = len(new) - n_old
    if diff > 0:
        changes[-diff:] = [(c, 1) for c, _ in changes[-diff:]]
    elif diff < 0 and changes:
        c, change = changes[-1]
        changes[-1] = (c, change + diff)
