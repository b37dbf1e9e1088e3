"""The compiled core's committed Unicode tables (tables/core_runs.py, read by core_tables.py) equal a fresh
scan of the pure-Python stages (tables/scan.py), so the core still classifies every code point as Python does;
their text form reads back exactly; a normalizer whose table is not committed is scanned and runs on the core
with Python's results."""

from __future__ import annotations

import unicodedata

import pytest
import regex
from hypothesis import given, settings
from hypothesis import strategies as st

from llmlab.tokenizer import core_tables, normalize
from llmlab.tokenizer.tables import core_runs, scan

same_unicode = pytest.mark.skipif(
    (unicodedata.unidata_version, regex.__version__) != (core_runs.UNICODE, core_runs.REGEX),
    reason="tables committed for other Unicode data: core_tables scans instead (regenerate with tables/scan.py)",
)
TABLES = {
    "bert": (lambda: core_tables.read_runs(core_runs.BERT), scan.bert_classes),
    "gpt2": (lambda: core_tables.read_runs(core_runs.GPT2), scan.gpt2_classes),
    "added": (
        lambda: (core_tables.read_runs(core_runs.WORD_CHARS), core_tables.read_runs(core_runs.SPACES)),
        scan.added_token_classes,
    ),
}


@pytest.mark.slow
@same_unicode
@pytest.mark.parametrize("name", list(TABLES))
def test_committed_split_tables_equal_a_fresh_scan(name):
    committed, scanned = TABLES[name]
    assert committed() == scanned()


@pytest.mark.slow
@same_unicode
@pytest.mark.parametrize("normalizer", scan.COMMITTED, ids=core_tables.normalizer_key)
def test_committed_normalizer_tables_equal_a_fresh_scan(normalizer):
    classes, forms = core_runs.NORMALIZERS[core_tables.normalizer_key(normalizer)]
    committed = {"classes": core_tables.read_runs(classes), "forms": core_tables.read_forms(forms)}
    assert committed == scan.normalizer_table(normalizer)


def test_every_listed_normalizer_is_committed():
    assert sorted(core_runs.NORMALIZERS) == sorted(map(core_tables.normalizer_key, scan.COMMITTED))


CODE_POINTS = st.integers(0, 0x10FFFF).filter(lambda cp: not 0xD800 <= cp < 0xE000)


@settings(max_examples=300, deadline=None, database=None)
@given(st.dictionaries(CODE_POINTS, st.text(st.characters(codec="utf-8"), min_size=1, max_size=4)))
def test_forms_read_back_exactly(forms):
    # runs of consecutive code points whose forms' last character steps by one, as A-Z or Hangul syllables
    forms |= {0x41 + i: "a" + chr(0x61 + i) for i in range(26)}
    assert core_tables.read_forms(scan.forms_text(forms)) == forms


@settings(max_examples=300, deadline=None, database=None)
@given(st.lists(st.integers(0, 9), min_size=1, max_size=50), st.data())
def test_runs_read_back_exactly(classes, data):
    starts = [
        0,
        *sorted(
            data.draw(st.sets(st.integers(1, 0x10FFFF), min_size=len(classes) - 1, max_size=len(classes) - 1))
        ),
    ]
    table = (starts, bytes(classes))
    assert core_tables.read_runs(scan.runs_text(table)) == table


@pytest.mark.slow
def test_a_normalizer_without_committed_table_is_scanned_and_matches_python(minilm_dir):
    from llmlab.tokenizer import Tokenizer, core

    if core._corelib is None:
        pytest.skip("the compiled tokenizer core is not built here")
    nfd_lower = normalize.Sequence(
        [normalize.UnicodeForm("NFD"), normalize.Lowercase(), normalize.StripAccents()]
    )
    assert core_tables.normalizer_key(nfd_lower) not in core_runs.NORMALIZERS
    made = {}
    with pytest.MonkeyPatch.context() as mp:
        for engine, pure in (("core", "0"), ("python", "1")):
            mp.setenv("LLMLAB_PURE_PYTHON", pure)
            made[engine] = Tokenizer.load(minilm_dir / "tokenizer.json")
            made[engine].normalizer = nfd_lower
            assert made[engine].engine == engine
    texts = ["Héllo Wörld", "Ångström ﬁ ①", "ΣΑΣ straße", "한국어 텍스트", "q\u0307\u0323 e\u0301", "Ǆ ǅ ǆ"]
    fast, pure = (made[e].encode_batch(texts) for e in ("core", "python"))
    assert [(e.ids, e.offsets) for e in fast] == [(e.ids, e.offsets) for e in pure]
