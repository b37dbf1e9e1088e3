"""Parity of the classical A/B tests with scipy / statsmodels (1e-9), and CUPED's invariants."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from llmlab.abtest.cuped import covariate_for, cuped_adjust
from llmlab.abtest.stats import (
    latency_guardrail,
    multipletests,
    srm_check,
    two_proportion_ztest,
    welch_ttest,
)
from llmlab.errors import LlmlabError

proportion = pytest.importorskip("statsmodels.stats.proportion")
multitest = pytest.importorskip("statsmodels.stats.multitest")


@settings(max_examples=60, deadline=None)
@given(
    n_a=st.integers(2, 100_000),
    n_b=st.integers(2, 100_000),
    fa=st.floats(0.001, 0.999),
    fb=st.floats(0.001, 0.999),
    alpha=st.sampled_from([0.01, 0.05, 0.1]),
)
def test_ztest_matches_statsmodels(n_a, n_b, fa, fb, alpha):
    count_a, count_b = max(1, int(fa * n_a)), min(n_b - 1, max(1, int(fb * n_b)))
    ours = two_proportion_ztest(count_a, n_a, count_b, n_b, alpha)
    z, p = proportion.proportions_ztest([count_b, count_a], [n_b, n_a])
    low, high = proportion.confint_proportions_2indep(count_b, n_b, count_a, n_a, method="wald", alpha=alpha)
    assert ours.statistic == pytest.approx(z, rel=1e-9, abs=1e-12)
    assert ours.pvalue == pytest.approx(p, rel=1e-9, abs=1e-15)
    assert (ours.ci_low, ours.ci_high) == pytest.approx((low, high), rel=1e-9, abs=1e-12)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_a=st.integers(2, 300),
    n_b=st.integers(2, 300),
    scale=st.floats(0.01, 100),
)
def test_welch_matches_scipy(seed, n_a, n_b, scale):
    rng = np.random.default_rng(seed)
    a, b = rng.normal(0, 1, n_a), rng.normal(0.3, scale, n_b)
    ours = welch_ttest(a, b, alpha=0.05)
    ref = stats.ttest_ind(b, a, equal_var=False)
    ci = ref.confidence_interval(0.95)
    assert ours.statistic == pytest.approx(ref.statistic, rel=1e-9)
    assert ours.pvalue == pytest.approx(ref.pvalue, rel=1e-9, abs=1e-300)
    assert (ours.ci_low, ours.ci_high) == pytest.approx((ci.low, ci.high), rel=1e-9)


@settings(max_examples=60, deadline=None)
@given(
    counts=st.lists(st.integers(1, 10_000), min_size=2, max_size=5),
    shares=st.lists(st.floats(0.05, 1), min_size=5, max_size=5),
)
def test_srm_matches_scipy_chisquare(counts, shares):
    names = [f"v{i}" for i in range(len(counts))]
    split = dict(zip(names, shares[: len(counts)], strict=False))
    ours = srm_check(dict(zip(names, counts, strict=True)), split)
    f = np.array(shares[: len(counts)])
    ref = stats.chisquare(counts, f_exp=sum(counts) * f / f.sum())
    assert ours["statistic"] == pytest.approx(ref.statistic, rel=1e-9)
    assert ours["pvalue"] == pytest.approx(ref.pvalue, rel=1e-9, abs=1e-300)


def test_srm_flags_a_broken_split_and_unknown_variants():
    assert srm_check({"A": 5000, "B": 5000}, {"A": 0.5, "B": 0.5})["mismatch"] is False
    assert srm_check({"A": 5300, "B": 4700}, {"A": 0.5, "B": 0.5})["mismatch"] is True
    with pytest.raises(LlmlabError, match="not in the split"):
        srm_check({"A": 1, "C": 2}, {"A": 0.5, "B": 0.5})


@settings(max_examples=30, deadline=None)
@given(
    p=st.lists(st.floats(0, 1) | st.sampled_from([0.01, 0.02, 0.05]), min_size=1, max_size=12),
    method=st.sampled_from(["holm", "bh"]),
)
def test_multipletests_matches_statsmodels(p, method):
    reject, adjusted = multipletests(p, method, alpha=0.05)
    ref_reject, ref_adjusted, _, _ = multitest.multipletests(
        p, 0.05, {"holm": "holm", "bh": "fdr_bh"}[method]
    )
    np.testing.assert_allclose(adjusted, ref_adjusted, rtol=1e-9, atol=1e-15)
    np.testing.assert_array_equal(reject, ref_reject)


def test_multipletests_rejects_unknown_method():
    with pytest.raises(LlmlabError, match="holm"):
        multipletests([0.1], "bonferroni")


def test_latency_guardrail_flags_a_slow_variant_and_passes_an_equal_one():
    rng = np.random.default_rng(0)
    a = rng.lognormal(3, 0.5, 3000)
    slow = latency_guardrail(a, a * 1.5, max_increase=0.10, n_boot=300)
    same = latency_guardrail(a, rng.lognormal(3, 0.5, 3000), max_increase=0.25, n_boot=300)
    assert slow["status"] == "flagged" and slow["increase"] == pytest.approx(0.5)
    assert same["status"] == "ok" and same["lower"] < 0 < same["upper"]


def test_cuped_reduction_is_squared_correlation_and_keeps_the_difference_unbiased():
    rng = np.random.default_rng(1)
    n, rho = 20_000, 0.7
    x = rng.normal(size=n)
    y = rho * x + np.sqrt(1 - rho**2) * rng.normal(size=n)
    is_b = rng.random(n) < 0.5
    y = y + 0.1 * is_b
    y_cv, theta, reduction = cuped_adjust(y, x)
    assert reduction == pytest.approx(np.corrcoef(y, x)[0, 1] ** 2, rel=1e-9)
    assert theta == pytest.approx(rho, abs=0.03)
    plain, adjusted = welch_ttest(y[~is_b], y[is_b]), welch_ttest(y_cv[~is_b], y_cv[is_b])
    assert adjusted.estimate == pytest.approx(0.1, abs=0.02)
    width = lambda r: r.ci_high - r.ci_low  # noqa: E731
    assert width(adjusted) / width(plain) == pytest.approx(np.sqrt(1 - reduction), rel=0.02)


def test_cuped_errors_and_missing_covariates():
    with pytest.raises(LlmlabError, match="constant"):
        cuped_adjust(np.arange(3.0), np.ones(3))
    np.testing.assert_array_equal(covariate_for(["u1", "u2", "u3"], {"u1": 1.0, "u3": 3.0}), [1, 2, 3])
    with pytest.raises(LlmlabError, match="no user"):
        covariate_for(["u9"], {"u1": 1.0})
