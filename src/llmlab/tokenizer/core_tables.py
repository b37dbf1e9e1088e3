"""Unicode tables for the compiled core (`_core/`), computed from the pure-Python stages themselves.

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

Tables are computed once per process and stage setting, and handed over as runs (start code point, class).
"""

from __future__ import annotations

import functools
import json
import unicodedata

import numpy as np

from llmlab.tokenizer import added_tokens, normalize, pretokenize, unicode_normalize

# Normalizer classes (as normalizer.h)
SAME, MAPPED, HARD, SPACED, DROPPED = 0, 1, 2, 3, 4
# Pre-tokenizer classes (as pretokenizer.h)
BERT_WORD, BERT_PUNCT, BERT_WHITE = 0, 1, 2
GPT2_OTHER, GPT2_LETTER, GPT2_NUMBER, GPT2_SPACE = 0, 1, 2, 3

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


_TABLES: dict[str, dict] = {}  # normalizer settings -> its table


def normalizer_table(normalizer) -> dict:
    """{"classes": runs, "forms": {code point: form}} for a per-character normalizer (see module docstring)."""
    key = type(normalizer).__name__ + json.dumps(normalizer.to_hf(), sort_keys=True)
    if key not in _TABLES:
        _TABLES[key] = _build_normalizer_table(normalizer)
    return _TABLES[key]


def _forms(normalizer, chars: list[str]) -> list[str]:
    """normalize(c) for every c, in one call: the characters kept apart by a barrier."""
    text = _BARRIER + _BARRIER.join(chars) + _BARRIER
    barrier = normalizer.normalize(_BARRIER)
    parts = normalizer.normalize(text).split(barrier) if barrier else []
    if len(parts) == len(chars) + 2:
        return parts[1:-1]
    return [normalizer.normalize(c) for c in chars]  # some form holds the barrier: one by one


def _build_normalizer_table(normalizer) -> dict:
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


@functools.cache
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


@functools.cache
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


@functools.cache
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
