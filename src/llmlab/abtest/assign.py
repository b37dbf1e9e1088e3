"""Deterministic variant assignment: a user always sees the same variant of an experiment.

The usual hashing scheme of online experiment platforms (Kohavi, Tang & Xu, "Trustworthy Online Controlled
Experiments", 2020, ch. 14; Google's overlapping experiment infrastructure, Tang et al. 2010):
u = first 8 bytes of sha256(experiment + "\\0" + user_id) read as a big-endian integer, divided by 2**64, is
uniform on [0, 1) and independent across experiments; the variant is the one whose slice of the cumulative
split holds u. Variants are taken in sorted name order, so the order of the split dict does not matter.
"""

from __future__ import annotations

import hashlib
import math

from llmlab.errors import LlmlabError


def hash_unit(experiment: str, user_id: str) -> float:
    """The user's point in [0, 1) for this experiment."""
    digest = hashlib.sha256(f"{experiment}\0{user_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def assign_variant(experiment: str, user_id: str, split: dict[str, float]) -> str:
    """The variant `user_id` sees in `experiment`.

    Args:
        experiment: the experiment's name (a salt: the same user lands independently in two experiments).
        user_id: any string identifying the user.
        split: variant -> share, shares positive and summing to 1 (see `check_split`).

    Returns:
        A key of `split`.
    """
    u = hash_unit(experiment, user_id)
    edge = 0.0
    names = sorted(split)
    for name in names[:-1]:
        edge += split[name]
        if u < edge:
            return name
    return names[-1]


def check_split(split: dict[str, float]) -> dict[str, float]:
    """Return `split` unchanged when every share is positive and they sum to 1 (within 1e-9).

    Raises:
        LlmlabError: fewer than two variants, a share that is not positive, or shares not summing to 1.
    """
    if len(split) < 2:
        raise LlmlabError(f"split {split}: an experiment needs at least two variants")
    bad = [name for name, share in split.items() if not (math.isfinite(share) and share > 0)]
    if bad:
        raise LlmlabError(f"split {split}: the share of {bad[0]!r} must be a positive number")
    if abs(sum(split.values()) - 1) > 1e-9:
        raise LlmlabError(f"split {split}: shares sum to {sum(split.values())}, not 1")
    return split


def parse_split(text: str, variants: list[str]) -> dict[str, float]:
    """Turn "50/50" (or "90/10", "1/1/2") into shares for `variants`, in the order given.

    Raises:
        LlmlabError: not numbers separated by "/", or not one number per variant.
    """
    try:
        weights = [float(part) for part in text.split("/")]
    except ValueError:
        raise LlmlabError(f"--split {text!r}: expected numbers separated by '/', e.g. 50/50") from None
    if len(weights) != len(variants):
        raise LlmlabError(
            f"--split {text!r}: {len(weights)} shares for {len(variants)} variants ({', '.join(variants)})"
        )
    total = sum(weights)
    if not all(0 <= w < float("inf") for w in weights) or not total > 0:
        raise LlmlabError(f"--split {text!r}: the shares must be positive and finite (some may be 0)")
    return check_split({name: w / total for name, w in zip(variants, weights, strict=True)})
