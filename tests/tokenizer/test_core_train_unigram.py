"""The compiled kernels of the Unigram trainer equal the Python ones: the lattices (_core/unigram_lattice.cpp,
lattice.py) and the suffix sort and candidate seeds (_core/unigram_seeds.cpp, seeds.py).

The suffix order, common prefixes and candidate seeds are identical. Viterbi counts and second-best segmentations are identical (the same ties, the same additions in the same
order); expected counts agree to 1e-12 relative (the same sums, exp and log from another library). Trained on
real text, both give the same pieces with scores equal to 1e-9 (they are written with 12 significant digits).
Compression against sentencepiece runs on both paths in test_unigram.py (`engine` fixture).
"""

from __future__ import annotations

import os
from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmlab.tokenizer import core
from llmlab.tokenizer.unigram import seeds as unigram_seeds
from llmlab.tokenizer.unigram.lattice import CoreLattice, Lattice
from llmlab.tokenizer.unigram.seeds import Corpus, seeds
from llmlab.tokenizer.unigram.trainer import train_unigram
from llmlab.tokenizer.word_table import WordTable

pytestmark = pytest.mark.skipif(core._corelib is None, reason="the compiled tokenizer core is not built here")


def both_lattices(word_counts: dict[str, int], coverage: float = 1.0):
    """(Python lattice, compiled lattice, seed pieces' lengths and reps) of the same corpus and seeds."""
    corpus = Corpus(word_counts)
    required = corpus.require(coverage, 6)
    pieces, _, reps, edges = seeds(corpus, required, 6, 200)
    copy = [e.copy() for e in edges]
    return Lattice(corpus, edges), CoreLattice(corpus, copy), pieces.lengths, reps


def assert_same(python: Lattice, compiled: CoreLattice, lengths, reps, scores, alive) -> None:
    np.testing.assert_allclose(compiled.expected_counts(scores), python.expected_counts(scores), rtol=1e-12)
    assert np.array_equal(compiled.viterbi_counts(scores), python.viterbi_counts(scores))
    multi = np.flatnonzero(alive & (lengths > 1))
    want_score, (want_win, want_token) = python.second_best(reps[multi], lengths[multi], scores)
    got_score, (got_win, got_token) = compiled.second_best(reps[multi], lengths[multi], scores)
    assert np.array_equal(got_score, want_score)
    assert np.array_equal(got_win, want_win) and np.array_equal(got_token, want_token)


words_st = st.text(alphabet="▁abcab字é", min_size=1, max_size=14)


@settings(max_examples=150, deadline=None)
@given(
    st.dictionaries(words_st, st.integers(1, 20), min_size=1, max_size=30),
    st.integers(0, 2**32 - 1),
    st.sampled_from([1.0, 0.9]),
)
def test_compiled_lattice_equals_python(word_counts, seed, coverage):
    """Random scores (ties included: rounded to a few values), then pieces dying, as the EM and pruning do."""
    python, compiled, lengths, reps = both_lattices(word_counts, coverage)
    rng = np.random.default_rng(seed)
    for _ in range(3):
        scores = np.round(rng.uniform(-8, -1, len(lengths) + 1), int(rng.integers(0, 3)))
        alive = rng.random(len(lengths)) < 0.8 if python.alive is not None else np.ones(len(lengths), bool)
        alive &= python.alive if python.alive is not None else True
        python.keep(alive)
        compiled.keep(alive)
        assert_same(python, compiled, lengths, reps, np.where(np.append(alive, True), scores, -np.inf), alive)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(words_st, st.integers(1, 5), min_size=1, max_size=40), st.integers(1, 20))
def test_compiled_suffix_sort_equals_python(word_counts, depth):
    """Repeated substrings, separators and the end of the array (padding) decide the order and the prefixes."""
    corpus = Corpus(word_counts)
    corpus.require(1.0, depth)
    with mock.patch.dict(os.environ, {"LLMLAB_PURE_PYTHON": "0"}):
        got = unigram_seeds._sorted_suffixes(corpus, depth)
    with mock.patch.dict(os.environ, {"LLMLAB_PURE_PYTHON": "1"}):
        want = unigram_seeds._sorted_suffixes(corpus, depth)
    assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(words_st, st.integers(1, 5), min_size=1, max_size=40), st.integers(1, 12))
def test_compiled_branching_equals_python(word_counts, max_len):
    """The candidate seeds (groups of the sorted suffixes that branch, or end a word twice) are the same."""
    corpus = Corpus(word_counts)
    corpus.require(1.0, max_len)
    sa, lcp = unigram_seeds._sorted_suffixes(corpus, max_len + 1)
    with mock.patch.dict(os.environ, {"LLMLAB_PURE_PYTHON": "0"}):
        got = list(unigram_seeds._branching(corpus, sa, lcp, max_len))
    with mock.patch.dict(os.environ, {"LLMLAB_PURE_PYTHON": "1"}):
        want = list(unigram_seeds._branching(corpus, sa, lcp, max_len))
    for g, w in zip(got, want, strict=True):
        assert g.dtype == w.dtype and np.array_equal(g, w)


def trained(engine: str, word_counts, vocab_size: int, **options):
    with mock.patch.dict(os.environ, {"LLMLAB_PURE_PYTHON": "0" if engine == "core" else "1"}):
        return train_unigram(word_counts, vocab_size, **options).pieces


@pytest.mark.parametrize("corpus, vocab_size", [("gutenberg_en", 4000), ("zh_classic_novels", 6000)])
def test_trained_pieces_equal_python(shared_data, corpus, vocab_size):
    lines = (shared_data / corpus / "train.txt").read_text(encoding="utf-8").splitlines()[:4000]
    counts = WordTable.from_items(
        sorted({w: 1 for line in lines for w in ("▁" + line.replace(" ", " ▁")).split(" ") if w}.items())
    )
    ours = dict(trained("core", counts, vocab_size, special_tokens=["<unk>"]))
    ref = dict(trained("python", counts, vocab_size, special_tokens=["<unk>"]))
    assert ours.keys() == ref.keys()
    assert max(abs(ours[p] - ref[p]) for p in ref) <= 1e-9


@settings(max_examples=40, deadline=None)
@given(st.dictionaries(words_st, st.integers(1, 9), min_size=3, max_size=40), st.booleans())
def test_trained_pieces_equal_python_on_small_corpora(word_counts, byte_fallback):
    options = {"special_tokens": ["<s>"], "byte_fallback": byte_fallback, "max_piece_length": 6}
    size = 300 if byte_fallback else 40
    ours, ref = trained("core", word_counts, size, **options), trained("python", word_counts, size, **options)
    assert [p for p, _ in ours] == [p for p, _ in ref]
    np.testing.assert_allclose([s for _, s in ours], [s for _, s in ref], rtol=0, atol=1e-9)


def test_binding_rejects_edges_that_leave_the_corpus_or_their_word():
    start, end, count = np.array([0, 3]), np.array([2, 5]), np.ones(2)
    make = core._corelib.UnigramLattice
    with pytest.raises(ValueError, match="leaves its word"):
        make(start, end, count, 6, *(np.array(x, np.int32) for x in ([1], [4], [0])))
    with pytest.raises(ValueError, match="outside the corpus"):
        make(start, end, count, 6, *(np.array(x, np.int32) for x in ([0], [9], [0])))
    with pytest.raises(ValueError, match="a word outside"):
        make(start, np.array([2, 7]), count, 6, *(np.zeros(0, np.int32),) * 3)
    lattice = make(start, end, count, 6, *(np.array(x, np.int32) for x in ([0, 1], [1, 2], [0, 1])))
    with pytest.raises(ValueError, match="a score for every piece"):
        lattice.expected_counts(np.zeros(2))
    with pytest.raises(ValueError, match="outside the corpus"):
        lattice.second_best(np.array([4]), np.array([3]), np.zeros(3))
