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
from array import array
from collections.abc import Iterable, Iterator

import regex

Table = tuple[list[int], bytes]  # run starts, class of each run
PackedForms = tuple[bytes, bytes, bytes]  # see `pack_forms`

_SCANNED: dict[str, dict] = {}  # normalizer settings -> its table, where it had to be scanned


def normalizer_key(normalizer) -> str:
    """The normalizer's settings as one string (its table is kept and committed under it)."""
    return type(normalizer).__name__ + json.dumps(normalizer.to_hf(), sort_keys=True)


def normalizer_table(normalizer) -> dict:
    """{"classes": runs, "forms": `pack_forms`} for a per-character normalizer (see tables/scan.py)."""
    key = normalizer_key(normalizer)
    committed = _committed()
    if committed is not None and key in committed.NORMALIZERS:  # read each time: milliseconds, nothing kept
        classes, forms = committed.NORMALIZERS[key]
        return {"classes": read_runs(classes), "forms": pack_forms(iter_forms(forms))}
    if key not in _SCANNED:
        table = _scan().normalizer_table(normalizer)
        _SCANNED[key] = {"classes": table["classes"], "forms": pack_forms(table["forms"].items())}
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
    return dict(iter_forms(text))


def iter_forms(text: str) -> Iterator[tuple[int, str]]:
    """(code point, form) from the committed form, one at a time."""
    for match in regex.finditer(r"\S+", text):  # not split(): no list of every item at once (see pack_forms)
        where, form = match.group().split(":")
        first, _, last = where.partition("-")
        *head, tail = [int(c, 16) for c in form.split(",")]
        prefix, first_cp = "".join(map(chr, head)), int(first, 16)
        for cp in range(first_cp, int(last or first, 16) + 1):
            yield cp, prefix + chr(tail + cp - first_cp)


def pack_forms(forms: Iterable[tuple[int, str]]) -> PackedForms:
    """The forms as the core reads them: (code points, the code points of their forms one after another, where
    each form ends), each an array of uint32 as bytes. No Python object per form is kept: a dict of BERT's 14k
    forms left about 1 MiB of freed small objects in memory (issue 10: peak memory of encoding)."""
    codes, chars, ends = array("I"), array("I"), array("I")
    for cp, form in forms:
        codes.append(cp)
        chars.extend(map(ord, form))
        ends.append(len(chars))
    return codes.tobytes(), chars.tobytes(), ends.tobytes()


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
