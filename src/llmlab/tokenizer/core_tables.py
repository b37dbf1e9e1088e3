"""Unicode tables for the compiled core (`_core/`), as the pure-Python stages classify every code point.

The core knows no Unicode property of its own: its tables are computed by running the Python stages
themselves over every code point (`tables/scan.py`, which says how), so both paths classify alike. A scan
takes seconds and tens of MiB, so the tables of the standard stages are scanned once and committed
(`tables/core_runs.py`, with the Unicode versions of the Python and `regex` that made them;
tests/tokenizer/test_core_tables.py scans again and compares). Here they are read back; a stage whose table is
not committed, or a Python or `regex` whose Unicode data differs from the committed tables', is scanned at
first use (and kept for the process). Tables are runs: (start code point, class).
"""

from __future__ import annotations

import functools
import json
import unicodedata

import regex

Table = tuple[list[int], bytes]  # run starts, class of each run

_SCANNED: dict[str, dict] = {}  # normalizer settings -> its table, where it had to be scanned


def normalizer_key(normalizer) -> str:
    """The normalizer's settings as one string (its table is kept and committed under it)."""
    return type(normalizer).__name__ + json.dumps(normalizer.to_hf(), sort_keys=True)


def normalizer_table(normalizer) -> dict:
    """{"classes": runs, "forms": {code point: form}} for a per-character normalizer (see tables/scan.py)."""
    key = normalizer_key(normalizer)
    committed = _committed()
    if committed is not None and key in committed.NORMALIZERS:  # read each time: milliseconds, nothing kept
        classes, forms = committed.NORMALIZERS[key]
        return {"classes": read_runs(classes), "forms": read_forms(forms)}
    if key not in _SCANNED:
        _SCANNED[key] = _scan().normalizer_table(normalizer)
    return _SCANNED[key]


@functools.cache
def bert_classes() -> Table:
    """BERT's split: word, punctuation (a word of its own) or whitespace (dropped), per code point."""
    committed = _committed()
    return _scan().bert_classes() if committed is None else read_runs(committed.BERT)


@functools.cache
def gpt2_classes() -> Table:
    """The GPT-2 split's letter / number / other / whitespace, per code point."""
    committed = _committed()
    return _scan().gpt2_classes() if committed is None else read_runs(committed.GPT2)


@functools.cache
def added_token_classes() -> tuple[Table, Table]:
    """(word characters, whitespace) as added_tokens.py matches them (single_word; lstrip / rstrip)."""
    committed = _committed()
    if committed is None:
        return _scan().added_token_classes()
    return read_runs(committed.WORD_CHARS), read_runs(committed.SPACES)


def read_runs(text: str) -> Table:
    """Runs from their committed form: space-separated `start:class`, start in hex."""
    starts, classes = [], bytearray()
    for run in text.split():
        start, cls = run.split(":")
        starts.append(int(start, 16))
        classes.append(int(cls))
    return starts, bytes(classes)


def read_forms(text: str) -> dict[int, str]:
    """{code point: form} from the committed form (see tables/core_runs.py)."""
    forms: dict[int, str] = {}
    for item in text.split():
        where, form = item.split(":")
        first, _, last = where.partition("-")
        head = [int(c, 16) for c in form.split(",")]
        first_cp = int(first, 16)
        for cp in range(first_cp, int(last or first, 16) + 1):
            forms[cp] = "".join(map(chr, head[:-1])) + chr(head[-1] + cp - first_cp)
    return forms


@functools.cache
def _committed():
    """The committed tables, or None where this Python's or regex's Unicode data is not theirs."""
    from llmlab.tokenizer.tables import core_runs

    if (unicodedata.unidata_version, regex.__version__) != (core_runs.UNICODE, core_runs.REGEX):
        return None
    return core_runs


def _scan():
    from llmlab.tokenizer.tables import scan  # numpy and a second or two: only for what is not committed

    return scan
