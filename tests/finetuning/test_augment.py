"""EDA properties (hypothesis): each op changes the length as the paper says, seeded, rate 0 is the identity."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from llmlab.finetuning.augment import (
    augment,
    example_rng,
    random_deletion,
    random_insertion,
    random_swap,
    words_of,
)

words = st.lists(st.text(alphabet="abcdefgh", min_size=1, max_size=6), min_size=1, max_size=30)
rates = st.floats(min_value=0.01, max_value=1.0)
seeds = st.integers(0, 2**32 - 1)


@given(words, rates, seeds)
def test_deletion_shortens_but_never_empties(ws, rate, seed):
    out = random_deletion(ws, rate, random.Random(seed))
    assert 1 <= len(out) <= len(ws)
    it = iter(ws)
    assert all(w in it for w in out)  # a subsequence: order kept


@given(words, rates, seeds)
def test_swap_keeps_length_and_multiset(ws, rate, seed):
    assert sorted(random_swap(ws, rate, random.Random(seed))) == sorted(ws)


@given(words, rates, seeds)
def test_insertion_adds_max_1_int_rate_n_words_from_the_text(ws, rate, seed):
    out = random_insertion(ws, rate, random.Random(seed))
    assert len(out) == len(ws) + max(1, int(rate * len(ws)))
    assert set(out) == set(ws)


@given(st.text(max_size=60), seeds)
def test_rate_zero_is_the_identity(text, seed):
    assert augment(text, 0.0, ("delete", "swap", "insert"), random.Random(seed)) == text


@given(st.text(alphabet="ab c", max_size=40), rates, seeds)
def test_deterministic_by_seed(text, rate, seed):
    ops = ("delete", "swap", "insert")
    assert augment(text, rate, ops, random.Random(seed)) == augment(text, rate, ops, random.Random(seed))


def test_text_without_spaces_is_edited_by_characters():
    units, sep = words_of("酒店很好")
    assert units == ["酒", "店", "很", "好"] and sep == ""
    out = augment("酒店很好", 0.5, ("insert",), random.Random(0))
    assert " " not in out and len(out) == 6


def test_each_example_has_its_own_stream():
    assert example_rng(0, 1, 5).random() == example_rng(0, 1, 5).random() != example_rng(0, 1, 6).random()
