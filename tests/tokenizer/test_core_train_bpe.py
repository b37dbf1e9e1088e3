"""The compiled BPE merge loop (_core/bpe_trainer.cpp) equals the Python trainer (bpe/trainer.py), its reference.

HF parity on real corpora runs on both paths in test_bpe.py (`engine` fixture); here: hypothesis on random
small corpora with every trainer option, 64-bit counts, the repetition invariant (which also holds for the
core's memory), the dispatch, and bad input to the binding.
"""

from __future__ import annotations

import os
from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmlab.tokenizer import core
from llmlab.tokenizer.bpe import trainer as bpe_train
from llmlab.tokenizer.bpe.trainer import train_bpe
from llmlab.tokenizer.word_table import WordTable, word_arrays

pytestmark = pytest.mark.skipif(core._corelib is None, reason="the compiled tokenizer core is not built here")


def trained(engine: str, word_counts, vocab_size: int, **options):
    """(vocab, merges) of `train_bpe` on the compiled loop ("core") or in Python ("python")."""
    with mock.patch.dict(os.environ, {"LLMLAB_PURE_PYTHON": "0" if engine == "core" else "1"}):
        bpe = train_bpe(word_counts, vocab_size, **options)
    return bpe.vocab, bpe.merges


# Small alphabets force ties, runs ("aaaa"), touching pairs ("abab") and, with the prefix "##", tokens built
# twice ("####": # ### ### ###); "é" and "字" are dropped when limit_alphabet leaves them out.
words_st = st.text(alphabet="ab#cé字", min_size=1, max_size=10)
options_st = st.fixed_dictionaries(
    {
        "min_frequency": st.sampled_from([0, 2, 5]),
        "max_token_length": st.sampled_from([None, 1, 2, 3, 5]),
        "continuing_subword_prefix": st.sampled_from([None, "##"]),
        "limit_alphabet": st.sampled_from([None, 3]),
        "special_tokens": st.sampled_from([[], ["<s>", "a"]]),
        "initial_alphabet": st.sampled_from([[], ["z", "#"]]),
    }
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(words_st, st.integers(1, 9), min_size=1, max_size=30), st.integers(6, 80), options_st)
def test_core_merges_equal_python(word_counts, vocab_size, options):
    needed = len(set(options["special_tokens"]) | {c for w in word_counts for c in w} | set("z#"))
    vocab_size = max(vocab_size, needed)
    assert trained("core", word_counts, vocab_size, **options) == trained(
        "python", word_counts, vocab_size, **options
    )


@settings(max_examples=50, deadline=None)
@given(st.dictionaries(st.text(min_size=1, max_size=6), st.integers(1, 3), min_size=1, max_size=40))
def test_core_merges_equal_python_on_any_unicode(word_counts):
    """Arbitrary code points (surrogates included) as characters and in the tokens the merges build."""
    assert trained("core", word_counts, 300) == trained("python", word_counts, 300)


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(st.text(alphabet="ab#é字\U0001f600", max_size=8), st.integers(0, 1 << 40), max_size=30)
)
def test_char_counts_on_the_core_equal_numpy(word_counts):
    """The alphabet's kernel (`char_counts`) equals its numpy reference: empty words, counts of 0 (a character
    still present), characters past the BMP, weights past 2^32."""
    arrays = word_arrays(word_counts)
    with mock.patch.dict(os.environ, {"LLMLAB_PURE_PYTHON": "0"}):
        compiled = bpe_train._char_counts(*arrays)
    with mock.patch.dict(os.environ, {"LLMLAB_PURE_PYTHON": "1"}):
        assert compiled == bpe_train._char_counts(*arrays)


def test_core_counts_are_64_bit():
    """Counts past 2^32 (and sums past 2^40) decide the merges exactly as Python's int64 counts do."""
    big = 1 << 40
    word_counts = {"abab": big + 1, "abc": big, "bcbc": 3 * big - 5, "cab": 2}
    table = WordTable.from_dict(word_counts)
    assert trained("core", table, 20) == trained("python", table, 20)


def test_repeated_corpus_gives_the_same_merges_and_memory():
    """k times the counts: the same merges, and the core's state (sized by distinct words and pairs, not by
    the corpus) is exactly as large."""
    rng = np.random.default_rng(0)
    words = {
        "".join(rng.choice(list("abcdefgh"), rng.integers(1, 12))): int(rng.integers(1, 50))
        for _ in range(3000)
    }
    table = WordTable.from_dict(words)
    base = _core_state(table, 400)
    repeated = _core_state(WordTable(table.codes, table.lengths, np.asarray(table.counts) * 16), 400)
    assert repeated == base
    assert trained("python", table, 400)[1] == trained("core", table, 400)[1]


def _core_state(table: WordTable, vocab_size: int) -> tuple[list[int], list[str], int]:
    """(merged pair keys, new tokens, peak state bytes) straight from the binding."""
    tokens = sorted(set(chr(c) for c in np.unique(table.codes).tolist()))
    vocab = {t: i for i, t in enumerate(tokens)}
    tables = bpe_train._id_tables(bpe_train._char_counts(*table.arrays()), vocab, tokens, None)
    merges, made, peak = core._corelib.learn_bpe_merges(
        *table.arrays(), *tables, tokens, vocab_size, 0, "", -1, None
    )
    return merges, made, peak


def test_train_bpe_runs_on_the_core_when_available():
    def python_loop(*args):
        raise AssertionError("the Python merge loop ran")

    with mock.patch.object(bpe_train, "_learn_merges_python", python_loop):
        assert trained("core", {"abab": 3, "ab": 2}, 10)[1][0] == ("a", "b")
        with pytest.raises(AssertionError, match="Python merge loop"):
            trained("python", {"abab": 3}, 10)
        with pytest.raises(AssertionError, match="Python merge loop"):  # the likelihood score: Python only
            trained("core", {"abab": 3}, 10, continuing_subword_prefix="##", score="likelihood")


def test_binding_rejects_arrays_that_do_not_fit():
    table = WordTable.from_dict({"ab": 1})
    ids = np.array([-1] * 97 + [0, 1], np.int32)
    with pytest.raises(ValueError, match="do not add up"):
        core._corelib.learn_bpe_merges(table.codes, np.array([3], np.int64), table.counts, ids, ids,
                                       ["a", "b"], 5, 0, "", -1, None)  # fmt: skip
    with pytest.raises(ValueError, match="negative length"):  # (adds up, but the first word would overrun)
        core._corelib.char_counts(table.codes, np.array([3, -1], np.int64), np.array([1, 1], np.int64))
    with pytest.raises(ValueError, match="differ in size"):
        core._corelib.learn_bpe_merges(*table.arrays(), ids, ids[:5], ["a", "b"], 5, 0, "", -1, None)
    with pytest.raises(ValueError, match="beyond the list"):
        core._corelib.learn_bpe_merges(*table.arrays(), ids + 1, ids, ["a", "b"], 5, 0, "", -1, None)
    with pytest.raises(ValueError, match="2\\^21"):
        core._corelib.learn_bpe_merges(*table.arrays(), ids, ids, ["a", "b"], 1 << 22, 0, "", -1, None)
