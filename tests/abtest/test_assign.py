"""Variant assignment: the sha256 scheme by hand, stability, the split's shares, independence, parsing."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.stats import chi2_contingency, chisquare

from llmlab.abtest.assign import assign_variant, check_split, hash_unit, parse_split
from llmlab.errors import LlmlabError

USERS = [f"user-{i}" for i in range(20000)]


def test_hash_unit_is_the_first_8_bytes_of_sha256_as_a_fraction():
    digest = hashlib.sha256(b"exp\x00alice").hexdigest()
    assert hash_unit("exp", "alice") == int(digest[:16], 16) / 2**64


def test_known_assignments_do_not_change_between_releases():
    # pinned values: changing the scheme would silently move every running experiment's users
    users = ("1", "2", "3", "4", "5", "6")
    assert [round(hash_unit("checkout", u), 6) for u in users] == [
        0.737922,
        0.719116,
        0.29262,
        0.709357,
        0.960861,
        0.646891,
    ]
    assert [assign_variant("checkout", u, {"A": 0.5, "B": 0.5}) for u in users] == list("BBABBB")
    assert [assign_variant("checkout", u, {"z": 0.5, "x": 0.2, "y": 0.3}) for u in users] == list("zzyzzz")


@given(st.text(max_size=30), st.text(max_size=30), st.floats(0.01, 0.99))
def test_same_user_same_variant_whatever_the_dict_order(experiment, user, share):
    split = {"A": share, "B": 1 - share}
    reordered = {"B": 1 - share, "A": share}
    assert assign_variant(experiment, user, split) == assign_variant(experiment, user, reordered)


@given(st.text(max_size=20), st.floats(0.05, 0.9), st.floats(0.01, 0.09))
def test_growing_a_share_only_moves_users_into_it(user, share, extra):
    # the first variant by name owns [0, share): widening it keeps everyone already in it
    before = assign_variant("ramp", user, {"A": share, "B": 1 - share})
    after = assign_variant("ramp", user, {"A": share + extra, "B": 1 - share - extra})
    assert before != "A" or after == "A"


@pytest.mark.parametrize(
    "split", [{"A": 0.5, "B": 0.5}, {"A": 0.9, "B": 0.1}, {"x": 0.2, "y": 0.3, "z": 0.5}]
)
def test_shares_match_the_split(split):
    names = sorted(split)
    counts = [0] * len(names)
    for u in USERS:
        counts[names.index(assign_variant("shares", u, split))] += 1
    assert chisquare(counts, [split[n] * len(USERS) for n in names]).pvalue > 1e-3


def test_experiments_assign_independently():
    split = {"A": 0.5, "B": 0.5}
    table = [[0, 0], [0, 0]]
    for u in USERS:
        table[assign_variant("one", u, split) == "B"][assign_variant("two", u, split) == "B"] += 1
    assert chi2_contingency(table).pvalue > 1e-3
    assert min(min(row) for row in table) > 4000  # not the same partition under another name


def test_parse_split():
    assert parse_split("50/50", ["A", "B"]) == {"A": 0.5, "B": 0.5}
    assert parse_split("1/1/2", ["c", "b", "a"]) == {"c": 0.25, "b": 0.25, "a": 0.5}
    assert parse_split("90/10", ["B", "A"]) == {"B": 0.9, "A": 0.1}


@pytest.mark.parametrize(
    ("text", "variants", "message"),
    [
        ("50-50", ["A", "B"], "numbers separated by '/'"),
        ("50/50/0", ["A", "B", "C"], "must be a positive number"),
        ("50/50", ["A", "B", "C"], "2 shares for 3 variants"),
        ("0/0", ["A", "B"], "must be positive"),
        ("100", ["A"], "at least two variants"),
    ],
)
def test_parse_split_errors(text, variants, message):
    with pytest.raises(LlmlabError, match=message):
        parse_split(text, variants)


def test_check_split_wants_shares_summing_to_one():
    with pytest.raises(LlmlabError, match="sum to"):
        check_split({"A": 0.5, "B": 0.6})
    with pytest.raises(LlmlabError, match="positive"):
        check_split({"A": float("nan"), "B": 0.6})
