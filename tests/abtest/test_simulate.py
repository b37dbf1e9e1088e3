"""The peeking simulation: fixed-horizon tests inflate the false-positive rate, the mSPRT does not."""

from __future__ import annotations

import numpy as np
import pytest

from llmlab.abtest.sequential import log_likelihood_ratio
from llmlab.abtest.simulate import peek_pvalues, peeking_figure, simulate_peeking
from llmlab.abtest.stats import two_proportion_ztest


def test_aa_peeking_inflates_the_fixed_test_and_not_the_sequential_one():
    run = simulate_peeking(0.10, 0.10, n_experiments=300, n_peeks=20, batch=500, seed=0)
    se = run["standard_error"]
    assert abs(run["fixed_once"] - 0.05) <= 3 * se  # one look at the horizon: the nominal level
    assert run["fixed_every_peek"] > 0.08
    assert run["sequential_every_peek"] <= 0.05 + 3 * se
    assert run == simulate_peeking(0.10, 0.10, n_experiments=300, n_peeks=20, batch=500, seed=0)


def test_true_effect_power_of_both_tests():
    run = simulate_peeking(0.10, 0.12, n_experiments=300, n_peeks=10, batch=500, seed=1)
    assert run["fixed_once"] > 0.8 and run["sequential_every_peek"] > 0.5


def test_peek_pvalues_equal_the_single_experiment_tests():
    rng = np.random.default_rng(2)
    conversions = rng.binomial(400, [0.1, 0.13], size=(1, 5, 2)).cumsum(axis=1)
    n = 400 * np.arange(1, 6)
    p_fixed, p_seq = peek_pvalues(conversions, n, tau=0.03)
    for j in range(5):
        ref = two_proportion_ztest(conversions[0, j, 0], n[j], conversions[0, j, 1], n[j])
        assert p_fixed[0, j] == pytest.approx(ref.pvalue, rel=1e-12)
        # the mSPRT on the raw 0/1 outcomes of this look (sample variances with ddof 1, as the report uses)
        users = [np.r_[np.ones(c), np.zeros(n[j] - c)] for c in conversions[0, j]]
        variance = sum(u.var(ddof=1) / u.size for u in users)
        direct = np.exp(-log_likelihood_ratio(users[1].mean() - users[0].mean(), variance, 0.03))
        assert p_seq[0, j] == pytest.approx(min(1.0, direct), rel=1e-9)


def test_figure_has_both_panels():
    null = simulate_peeking(n_experiments=50, n_peeks=5, batch=100)
    effect = simulate_peeking(p_b=0.13, n_experiments=50, n_peeks=5, batch=100)
    fig = peeking_figure(null, effect)
    assert len(fig.axes) == 2 and fig.axes[0].get_xlabel().startswith("number of peeks")
