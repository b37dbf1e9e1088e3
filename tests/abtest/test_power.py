"""Sample size and power against statsmodels (NormalIndPower / zt_ind_solve_power, power_proportions_2indep)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmlab.abtest.power import (
    cohens_h,
    plan,
    power_cohens_h,
    power_pooled,
    sample_size_cohens_h,
    sample_size_pooled,
)
from llmlab.errors import LlmlabError

smp = pytest.importorskip("statsmodels.stats.power")
smprop = pytest.importorskip("statsmodels.stats.proportion")

rates = st.floats(0.01, 0.9)
effects = st.floats(0.005, 0.09) | st.floats(-0.009, -0.005)


@settings(max_examples=80, deadline=None)
@given(p_a=rates, mde=effects, n=st.integers(10, 10**6), ratio=st.sampled_from([0.5, 1.0, 2.0, 3.0]))
def test_power_matches_statsmodels(p_a, mde, n, ratio):
    p_b = p_a + mde
    h = smprop.proportion_effectsize(p_b, p_a)
    assert cohens_h(p_a, p_b) == pytest.approx(h, rel=1e-12)
    ref_h = smp.NormalIndPower().power(abs(h), n, 0.05, ratio=ratio)
    assert power_cohens_h(p_a, p_b, n, 0.05, ratio) == pytest.approx(ref_h, rel=1e-9, abs=1e-12)
    ref_pooled = smprop.power_proportions_2indep(p_a - p_b, p_b, n, ratio=ratio, return_results=False)
    assert power_pooled(p_a, p_b, n, 0.05, ratio) == pytest.approx(ref_pooled, rel=1e-9, abs=1e-12)


@settings(max_examples=40, deadline=None)
@given(p_a=rates, mde=effects, power=st.floats(0.5, 0.95), ratio=st.sampled_from([0.5, 1.0, 2.0]))
def test_sample_size_matches_statsmodels(p_a, mde, power, ratio):
    p_b = p_a + mde
    ref = smp.zt_ind_solve_power(abs(cohens_h(p_a, p_b)), None, 0.05, power, ratio)
    ours = sample_size_cohens_h(p_a, p_b, 0.05, power, ratio)
    assert ours == pytest.approx(ref, rel=1e-6)
    assert power_cohens_h(p_a, p_b, ours, 0.05, ratio) == pytest.approx(power, abs=1e-9)
    ref_pooled = smprop.samplesize_proportions_2indep_onetail(p_a - p_b, p_b, power, ratio=ratio)
    assert sample_size_pooled(p_a, p_b, 0.05, power, ratio) == pytest.approx(ref_pooled, rel=1e-9)


def test_plan_known_value_and_relative_mde():
    # 10% -> 11%, alpha 0.05, power 0.8: the textbook ~14,750 per group (pooled formula).
    out = plan(0.10, 0.01, alpha=0.05, power=0.8, n=14_751)
    assert out["n_pooled"] == math.ceil(sample_size_pooled(0.10, 0.11))
    assert 14_700 < out["n_pooled"] < 14_800 and 14_700 < out["n_cohens_h"] < 14_800
    assert out["power_pooled"] == pytest.approx(0.8, abs=0.001)
    assert plan(0.10, 0.10, relative=True)["p_b"] == pytest.approx(0.11)
    assert plan(0.10, 0.01, ratio=2)["total_pooled"] == 3 * plan(0.10, 0.01, ratio=2)["n_pooled"]


@pytest.mark.parametrize(
    ("p_a", "mde", "alpha", "power", "match"),
    [
        (0.1, 0.0, 0.05, 0.8, "must not be 0"),
        (0.1, 0.95, 0.05, 0.8, r"\(0, 1\)"),
        (0.1, 0.01, 0.5, 0.4, "alpha"),
    ],
)
def test_plan_rejects_bad_settings(p_a, mde, alpha, power, match):
    with pytest.raises(LlmlabError, match=match):
        plan(p_a, mde, alpha=alpha, power=power)
