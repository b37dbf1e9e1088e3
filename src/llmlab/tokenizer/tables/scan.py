"""The compiled core's Unicode tables, computed by running the pure-Python stages over every code point.

The core knows no Unicode property of its own. Each table here is obtained by running the Python stage on
every code point at once (one long string, the characters kept apart so they cannot interact), so the core
classifies exactly as the Python path does, whatever tables that path uses:
- normalizer: each character's normalized form (`normalize_aligned` aligns per character), and the characters
  for which per-character normalization may not rebuild the text (combining marks that reorder or compose
  across characters, lone surrogates): texts holding one go to the Python path;
- BERT pre-tokenizer: word / punctuation / whitespace, read off the split of "a" + c + "a" + ...;
- GPT-2 split: letter / number / other / whitespace, read off which characters start a word when each is put
  after a letter, a digit or a "!";
- added tokens: Rust regex's `\\w` and White_Space, from the patterns `added_tokens.py` matches with.

A scan takes a second or two and tens of MiB, so its results for the standard stages are committed in
`core_runs.py`, written by

    python -m llmlab.tokenizer.tables.scan

(run it after a change to a Python stage or to the Unicode data; tests/tokenizer/test_core_tables.py fails
until then). `core_tables.py` reads them, and scans only what is not there.
"""

from __future__ import annotations

import functools
import json
import sys
import unicodedata
from pathlib import Path

import numpy as np
import regex

from llmlab.tokenizer import added_tokens, normalize, pretokenize, unicode_normalize
from llmlab.tokenizer.core_tables import normalizer_key

# Normalizer classes (as normalizer.h)
SAME, MAPPED, HARD, SPACED, DROPPED = 0, 1, 2, 3, 4
# Pre-tokenizer classes (as pretokenizer.h)
BERT_WORD, BERT_PUNCT, BERT_WHITE = 0, 1, 2
GPT2_OTHER, GPT2_LETTER, GPT2_NUMBER, GPT2_SPACE = 0, 1, 2, 3

# The normalizers whose tables are committed: the standard pipelines' (train.py, BERT cased and uncased)
COMMITTED = (
    normalize.BertNormalizer(lowercase=True),
    normalize.BertNormalizer(lowercase=False),
    normalize.UnicodeForm("NFKC"),
    normalize.UnicodeForm("NFC"),
    normalize.Lowercase(),
)
OUT = Path(__file__).with_name("core_runs.py")

_N = 0x110000
_SURROGATES = np.arange(0xD800, 0xE000)
_BARRIER = "|~|"  # ASCII starters that compose and reorder with nothing

Table = tuple[list[int], bytes]  # run starts, class of each run


def runs(classes: np.ndarray) -> Table:
    """A class per code point as runs: (start of each run, its class)."""
    starts = np.flatnonzero(np.diff(classes)) + 1
    starts = np.concatenate([[0], starts])
    return starts.tolist(), classes[starts].astype(np.uint8).tobytes()


@functools.cache
def _codepoints() -> np.ndarray:
    """Every code point but the surrogates (which no str of real text holds, and utf-32 cannot carry)."""
    cps = np.arange(_N, dtype=np.uint32)
    return cps[(cps < 0xD800) | (cps >= 0xE000)]


def _chunks(size: int = 1 << 16):
    """Every code point but the surrogates, a block at a time (the tables' peak memory stays small)."""
    cps = _codepoints()
    for start in range(0, len(cps), size):
        yield cps[start : start + size]


def _text(cps: np.ndarray) -> str:
    return cps.astype("<u4").tobytes().decode("utf-32-le")


def _interleaved(sep: str, cps: np.ndarray | None = None) -> tuple[str, np.ndarray]:
    """sep + c1 + sep + c2 + ... + sep (every code point, or `cps`), and the position of each c."""
    cps = _codepoints() if cps is None else cps
    arr = np.full(2 * len(cps) + 1, ord(sep), dtype=np.uint32)
    arr[1::2] = cps
    return _text(arr), np.arange(1, 2 * len(cps), 2)


# ---------------------------------------------------------------- normalizers


def _forms(normalizer, chars: list[str]) -> list[str]:
    """normalize(c) for every c, in one call: the characters kept apart by a barrier."""
    text = _BARRIER + _BARRIER.join(chars) + _BARRIER
    barrier = normalizer.normalize(_BARRIER)
    parts = normalizer.normalize(text).split(barrier) if barrier else []
    if len(parts) == len(chars) + 2:
        return parts[1:-1]
    return [normalizer.normalize(c) for c in chars]  # some form holds the barrier: one by one


def normalizer_table(normalizer) -> dict:
    """{"classes": runs, "forms": {code point: form}} for a per-character normalizer (see module docstring)."""
    classes = np.zeros(_N, dtype=np.uint8)
    mapped: dict[int, str] = {}
    for cps in _chunks():
        chars = list(_text(cps))
        for cp, c, form in zip(cps.tolist(), chars, _forms(normalizer, chars), strict=True):
            if form == c:
                continue
            if not form:
                classes[cp] = DROPPED
            elif form == f" {c} ":
                classes[cp] = SPACED
            else:
                classes[cp] = MAPPED
                mapped[cp] = form
    classes[_SURROGATES] = HARD
    classes[_hard_codepoints(normalizer)] = HARD
    return {"classes": runs(classes), "forms": mapped}


def _hard_codepoints(normalizer) -> list[int]:
    """Characters whose per-character form may not rebuild the whole text's (normalize.py aligns those by
    grapheme): a text holding one goes to the Python path."""
    parts = normalizer.normalizers if isinstance(normalizer, normalize.Sequence) else [normalizer]
    if all(type(p) is normalize.Lowercase for p in parts):
        return []
    if len(parts) == 1 and type(parts[0]) is normalize.BertNormalizer:
        bert = parts[0]
        strips = bert.lowercase if bert.strip_accents is None else bert.strip_accents
        # NFD reorders marks only: if every mark is Mn (dropped), nothing kept moved
        return _kept_marks() if strips else []
    return _interacting()


@functools.cache
def _ccc() -> np.ndarray:
    ccc = np.zeros(_N, dtype=np.uint8)
    for cp in _codepoints().tolist():
        k = unicodedata.combining(chr(cp))
        if k:
            ccc[cp] = k
    return ccc


@functools.cache
def _decomposable() -> list[int]:
    """Code points whose NFD or NFKD is not themselves (Hangul syllables included)."""
    return [cp for cp in _codepoints().tolist() if unicodedata.decomposition(chr(cp))] + list(
        range(0xAC00, 0xD7A4)
    )


@functools.cache
def _kept_marks() -> list[int]:
    """Characters whose NFD holds a combining mark (ccc > 0) that BERT's strip_accents keeps (not Mn in HF's table)."""
    ccc = _ccc()
    out = []
    for cp in set(np.flatnonzero(ccc).tolist()) | set(_decomposable()):
        nfd = unicode_normalize.normalize("NFD", chr(cp))
        if any(ccc[ord(d)] and normalize.strip_accents(d) for d in nfd):  # a mark it keeps
            out.append(cp)
    return sorted(out)


@functools.cache
def _interacting() -> list[int]:
    """Characters whose decomposition starts with a mark (it may reorder with the character before) or with
    a character that composes with the one before it (the second of a canonical pair, Hangul V and T jamo)."""
    ccc = _ccc()
    seconds = set(range(0x1161, 0x1176)) | set(range(0x11A8, 0x11C3))
    for cp in _decomposable():
        d = unicodedata.decomposition(chr(cp)).split()
        if len(d) == 2 and not d[0].startswith("<"):
            seconds.add(int(d[1], 16))
    hard = set(np.flatnonzero(ccc).tolist()) | seconds
    for cp in _decomposable():
        for form in ("NFD", "NFKD"):
            first = unicodedata.normalize(form, chr(cp))[:1]
            if first and (ccc[ord(first)] or ord(first) in seconds):
                hard.add(cp)
    return sorted(hard)


# ---------------------------------------------------------------- pre-tokenizers and added tokens


def bert_classes() -> Table:
    """BERT's split: word, punctuation (a word of its own) or whitespace (dropped), per code point."""
    classes = np.full(_N, BERT_WORD, dtype=np.uint8)
    for cps in _chunks():
        text, where = _interleaved("a", cps)
        _, spans = pretokenize.BertPreTokenizer().split_spans(text)
        bounds = np.array(spans, dtype=np.int64).reshape(-1, 2)
        cover = np.zeros(len(text) + 1, dtype=np.int64)
        np.add.at(cover, bounds[:, 0], 1)
        np.add.at(cover, bounds[:, 1], -1)
        covered = np.cumsum(cover)[:-1] > 0
        alone = np.zeros(len(text), dtype=bool)
        alone[bounds[bounds[:, 1] - bounds[:, 0] == 1, 0]] = True
        classes[cps[~covered[where]]] = BERT_WHITE
        classes[cps[covered[where] & alone[where]]] = BERT_PUNCT
    return runs(classes)


def gpt2_classes() -> Table:
    """The GPT-2 split's letter / number / other / whitespace, per code point: c is other when it does not
    start a word after "!", a letter when not after "a", a number when not after "0"; whitespace otherwise.
    (Each test runs on the characters the ones before left unclassified.)"""
    classes = np.full(_N, GPT2_SPACE, dtype=np.uint8)
    split = pretokenize.ByteLevel(add_prefix_space=False)
    for cps in _chunks():
        for sep, cls in (("!", GPT2_OTHER), ("a", GPT2_LETTER), ("0", GPT2_NUMBER)):
            text, where = _interleaved(sep, cps)
            _, spans = split.raw_split(text)
            starts = np.zeros(len(text) + 1, dtype=bool)
            starts[np.array([s for s, _ in spans], dtype=np.int64)] = True
            classes[cps[~starts[where]]] = cls
            cps = cps[starts[where]]
    return runs(classes)


def added_token_classes() -> tuple[Table, Table]:
    """(word characters, whitespace) as added_tokens.py matches them (single_word; lstrip / rstrip)."""
    cps = _codepoints()
    text = _text(cps)
    tables = []
    for pattern in (added_tokens.WORD_CHAR, added_tokens.SPACE_CHAR):
        classes = np.zeros(_N, dtype=np.uint8)
        hits = np.array([m.start() for m in pattern.finditer(text)], dtype=np.int64)
        classes[cps[hits]] = 1
        tables.append(runs(classes))
    return tables[0], tables[1]


# ---------------------------------------------------------------- the committed file


def runs_text(table: Table) -> str:
    """`start:class` for each run, hex start, space-separated."""
    return " ".join(f"{s:x}:{c}" for s, c in zip(table[0], table[1], strict=True))


def forms_text(forms: dict[int, str]) -> str:
    """`first[-last]:form` (the form's code points in hex, comma-separated), space-separated; over a range
    first..last, the form's last code point goes up by one with each code point (A-Z, Hangul syllables)."""
    ranges: list[list] = []  # [first, last, form of first]
    for cp in sorted(forms):
        form = forms[cp]
        if ranges:
            first, last, head = ranges[-1]
            if cp == last + 1 and form[:-1] == head[:-1] and ord(form[-1]) == ord(head[-1]) + cp - first:
                ranges[-1][1] = cp
                continue
        ranges.append([cp, cp, form])
    return " ".join(
        f"{first:x}{f'-{last:x}' if last > first else ''}:{','.join(f'{ord(c):x}' for c in form)}"
        for first, last, form in ranges
    )


def _literal(text: str, indent: str, width: int = 100) -> str:
    """A long str as parenthesized lines of at most `width` characters, cut after a space."""
    lines, line = [], ""
    for item in text.split(" "):
        if line and len(line) + len(item) + 1 > width:
            lines.append(line + " ")
            line = ""
        line += (" " if line else "") + item
    lines.append(line)
    body = "".join(f'{indent}    "{x}"\n' for x in lines)
    return f"(\n{body}{indent})"


def render() -> str:
    """The text of core_runs.py: every committed table, scanned now."""
    word_chars, spaces = added_token_classes()
    out = [
        '"""Generated by scan.py (`python -m llmlab.tokenizer.tables.scan`) from the pure-Python stages: do not',
        "edit. The compiled core's Unicode tables (see scan.py), for the Unicode data of the Python (UNICODE) and",
        "regex (REGEX) they were scanned with; core_tables.py scans again under others.",
        "",
        "Classes: space-separated `start:class`, the hex code point where a run of one class starts. Forms:",
        "space-separated `first[-last]:form`, the form's code points in hex; over a range first..last the",
        'form\'s last code point goes up by one with each code point."""',
        "",
        f"UNICODE = {json.dumps(unicodedata.unidata_version)}",
        f"REGEX = {json.dumps(regex.__version__)}",
        f"BERT = {_literal(runs_text(bert_classes()), '')}",
        f"GPT2 = {_literal(runs_text(gpt2_classes()), '')}",
        f"WORD_CHARS = {_literal(runs_text(word_chars), '')}",
        f"SPACES = {_literal(runs_text(spaces), '')}",
        "NORMALIZERS = {  # settings (scan.normalizer_key) -> (classes, forms)",
    ]
    for normalizer in COMMITTED:
        print(f"scanning {normalizer_key(normalizer)}", file=sys.stderr)
        table = normalizer_table(normalizer)
        classes, forms = runs_text(table["classes"]), forms_text(table["forms"])
        out += [f"    {normalizer_key(normalizer)!r}: ("]
        out += [
            f"        {_literal(classes, '        ')},",
            f"        {_literal(forms, '        ')},",
            "    ),",
        ]
    return "\n".join([*out, "}", ""])


if __name__ == "__main__":
    text = render()
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUT} ({len(text) / 1e3:.0f} kB)", file=sys.stderr)
