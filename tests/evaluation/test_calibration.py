"""Reliability bins equal sklearn's calibration_curve; ECE equals its definition computed row by row."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.calibration import calibration_curve

from llmlab.evaluation.calibration import expected_calibration_error, reliability, top_label


def _ece_by_definition(y, proba, n_bins):
    """Guo et al. (2017), eq. 3, with bins (a, b] (the first [0, b]) and a plain Python loop."""
    conf, pred = proba.max(axis=1), proba.argmax(axis=1)
    total = 0.0
    for m in range(n_bins):
        lo, hi = m / n_bins, (m + 1) / n_bins
        rows = [i for i in range(len(y)) if (lo < conf[i] <= hi) or (m == 0 and conf[i] == 0)]
        if rows:
            acc = np.mean([pred[i] == y[i] for i in rows])
            total += len(rows) / len(y) * abs(acc - np.mean(conf[rows]))
    return total


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10**6), n=st.integers(5, 80), bins=st.integers(2, 20))
def test_binary_reliability_equals_sklearn_calibration_curve(seed, n, bins):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    p1 = np.round(rng.random(n), 2)  # rounding puts values on the bin edges
    prob_true, prob_pred = calibration_curve(y, p1, n_bins=bins, strategy="uniform")
    r = reliability(y == 1, p1, bins)
    np.testing.assert_allclose(r.accuracy, prob_true, atol=1e-12)
    np.testing.assert_allclose(r.confidence, prob_pred, atol=1e-12)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10**6), n=st.integers(1, 60), k=st.integers(2, 4))
def test_ece_equals_its_definition(seed, n, k):
    rng = np.random.default_rng(seed)
    proba = rng.dirichlet(np.ones(k), n)
    y = rng.integers(0, k, n)
    assert expected_calibration_error(y, proba, 15) == pytest.approx(
        _ece_by_definition(y, proba, 15), abs=1e-12
    )


def test_known_values():
    proba = np.array([[0.9, 0.1], [0.9, 0.1], [0.2, 0.8], [0.4, 0.6]])
    y = np.array([0, 1, 1, 1])
    # bins of 10: conf 0.9 (2 rows, accuracy 0.5), 0.8 (1 row, right), 0.6 (1 row, right)
    expected = 0.5 * abs(0.5 - 0.9) + 0.25 * abs(1 - 0.8) + 0.25 * abs(1 - 0.6)
    assert expected_calibration_error(y, proba, 10) == pytest.approx(expected, abs=1e-12)
    r = top_label(y, proba, 10)
    assert r.count.tolist() == [1, 1, 2] and r.count.sum() == 4


def test_perfectly_confident_and_right_is_calibrated():
    y = np.array([0, 1, 2, 1])
    assert expected_calibration_error(y, np.eye(3)[y], 15) == 0.0
