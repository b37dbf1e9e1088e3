"""The `UnicodeScripts` pre-tokenizer: a cut wherever the Unicode script changes.

Follows Hugging Face `tokenizers` (tokenizers/src/pre_tokenizers/unicode_scripts/), whose script table (from
sentencepiece's) is committed as data in `tables/scripts.py` with the script that made it
(`tables/make_tables.py`), and is tested against it: Hiragana, Katakana and U+30FC count as Han, and a space
belongs to the run before it (HF's `fixed_script`).
"""

from __future__ import annotations

from bisect import bisect_right
from functools import lru_cache

from llmlab.tokenizer.pretokenize import PreTokenizer

__all__ = ["UnicodeScripts"]


class UnicodeScripts(PreTokenizer):
    """A cut wherever the Unicode script changes (a space goes with what precedes it)."""

    def split_spans(self, text: str) -> tuple[list[str], list[tuple[int, int]]]:
        cuts, last = [], None
        for i, char in enumerate(text):
            script = _fixed_script(char)
            if script != "Any" and last != "Any" and last != script:
                cuts.append(i)
            if script != "Any":
                last = script
        cuts.append(len(text))
        spans = [(a, b) for a, b in zip(cuts, cuts[1:]) if b > a]  # noqa: B905 (one shorter on purpose)
        return [text[a:b] for a, b in spans], spans

    def to_hf(self) -> dict:
        return {"type": "UnicodeScripts"}


@lru_cache(maxsize=65536)
def _fixed_script(char: str) -> str:
    """HF's `fixed_script`: the script, with Hiragana, Katakana and U+30FC as Han and a space as Any."""
    if char == "\u30fc":
        return "Han"
    if char == " ":
        return "Any"
    script = _script(ord(char))
    return "Han" if script in ("Hiragana", "Katakana") else script


def _script(code: int) -> str:
    starts, ends, names = _script_table()
    i = bisect_right(starts, code) - 1
    return names[i] if i >= 0 and code <= ends[i] else "Any"


@lru_cache(maxsize=1)
def _script_table() -> tuple[list[int], list[int], list[str]]:
    from llmlab.tokenizer.tables.scripts import NAMES, RANGES  # a large table: loaded on first use

    starts, ends, names = [], [], []
    for item in "".join(RANGES).split():
        span, index = item.split(":")
        first, last = span.split("-")
        starts.append(int(first, 16))
        ends.append(int(last, 16))
        names.append(NAMES[int(index)])
    return starts, ends, names
