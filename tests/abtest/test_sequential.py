"""The normal-mixture mSPRT: its likelihood ratio against the mixture's closed form, always-valid p-values
that stay valid under continuous monitoring, and detection of a real effect."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate, stats

from llmlab.abtest.sequential import always_valid_pvalues, always_valid_test, log_likelihood_ratio
from llmlab.errors import LlmlabError


@settings(max_examples=50, deadline=None)
@given(z=st.floats(-5, 5), variance=st.floats(1e-4, 0.1), tau=st.floats(0.01, 1.0))
def test_likelihood_ratio_is_the_normal_mixture(z, variance, tau):
    sd = np.sqrt(variance)
    d = z * sd
    # Lambda = integral of N(d; theta, v) N(theta; 0, tau^2) dtheta / N(d; 0, v)
    mixture, _ = integrate.quad(
        lambda t: stats.norm.pdf(d, t, sd) * stats.norm.pdf(t, 0, tau),
        -10 * tau,
        10 * tau,
        points=[d],
        limit=200,
    )
    closed = stats.norm.pdf(d, 0, np.sqrt(variance + tau**2)) / stats.norm.pdf(d, 0, sd)
    assert np.exp(log_likelihood_ratio(d, variance, tau)) == pytest.approx(closed, rel=1e-9)
    assert closed == pytest.approx(mixture / stats.norm.pdf(d, 0, sd), rel=1e-5)


def test_pvalues_are_a_running_minimum_that_skips_invalid_looks():
    est, var = np.array([0.0, 0.5, 0.1, 0.6]), np.array([0.01, 0.01, 0.01, 0.0])
    p = always_valid_pvalues(est, var, 0.2, valid=np.array([True, False, True, True]))
    assert p[0] == 1.0 and p[1] == 1.0  # look 2 is invalid, look 4 has no variance
    assert p[2] == pytest.approx(min(1, np.exp(-log_likelihood_ratio(0.1, 0.01, 0.2))))
    assert p[3] == p[2] and np.all(np.diff(p) <= 0)


def _streams(rng, n_streams, n, p_a, p_b):
    is_b = rng.random((n_streams, n)) < 0.5
    y = (rng.random((n_streams, n)) < np.where(is_b, p_b, p_a)).astype(float)
    return is_b, y


def test_continuous_monitoring_keeps_the_false_positive_rate():
    """Looking after every one of 4,000 observations, 200 A/A streams: the mSPRT rejects at most alpha."""
    rng = np.random.default_rng(0)
    is_b, y = _streams(rng, 200, 4000, 0.2, 0.2)
    rejected = [always_valid_test(b, v, tau=0.05)["reject"] for b, v in zip(is_b, y, strict=True)]
    assert np.mean(rejected) <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / 200)
    naive = [
        (stats.norm.sf(np.abs(_running_z(b, v)[100:])) * 2 < 0.05).any() for b, v in zip(is_b, y, strict=True)
    ]
    assert np.mean(naive) > 0.2  # the same streams, z-test after every observation


def _running_z(is_b, y):
    n_b, n_a = np.cumsum(is_b), np.cumsum(~is_b)
    s_b, s_a = np.cumsum(y * is_b), np.cumsum(y * ~is_b)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = (s_a + s_b) / (n_a + n_b)
        return np.nan_to_num((s_b / n_b - s_a / n_a) / np.sqrt(p * (1 - p) * (1 / n_a + 1 / n_b)))


def test_a_real_effect_is_detected_and_the_stopping_point_reported():
    rng = np.random.default_rng(1)
    is_b, y = _streams(rng, 1, 20_000, 0.10, 0.14)
    out = always_valid_test(is_b[0], y[0])
    assert out["reject"] and out["pvalue"] < 0.05 and 200 < out["stopped_at"] < 20_000
    assert out["tau"] == pytest.approx(0.1 * y[0].std(ddof=1))
    with pytest.raises(LlmlabError, match="both variants"):
        always_valid_test(np.zeros(5, bool), np.ones(5))
