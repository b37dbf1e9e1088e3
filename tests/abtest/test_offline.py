"""Paired model comparison: McNemar vs statsmodels, weighted metrics vs sklearn, DeLong vs the O(N^2)
definition, the permutation test vs McNemar, and the coverage of the bootstrap and DeLong intervals."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from sklearn.metrics import f1_score, roc_auc_score

from llmlab.abtest.offline import (
    bootstrap_counts,
    compare_predictions,
    delong_test,
    mcnemar,
    paired_bootstrap,
    permutation_test,
    verdict,
    weighted_metrics,
)
from llmlab.errors import LlmlabError

contingency = pytest.importorskip("statsmodels.stats.contingency_tables")


@settings(max_examples=80, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 400), p_a=st.floats(0, 1), p_b=st.floats(0, 1))
def test_mcnemar_matches_statsmodels(seed, n, p_a, p_b):
    rng = np.random.default_rng(seed)
    a, b = rng.random(n) < p_a, rng.random(n) < p_b
    ours = mcnemar(a, b)
    table = np.array(ours["table"])
    assert table.sum() == n and table[0].sum() == a.sum() and table[:, 0].sum() == b.sum()
    exact = contingency.mcnemar(table, exact=True)
    assert ours["exact_pvalue"] == pytest.approx(exact.pvalue, rel=1e-9, abs=1e-300)
    if table[0, 1] + table[1, 0]:
        chi2 = contingency.mcnemar(table, exact=False, correction=True)
        assert ours["chi2_statistic"] == pytest.approx(chi2.statistic, rel=1e-9)
        assert ours["chi2_pvalue"] == pytest.approx(chi2.pvalue, rel=1e-9, abs=1e-300)


def _random_proba(rng, n, k, decimals=None):
    proba = rng.dirichlet(np.ones(k), n)
    if decimals is not None:  # coarse scores: many ties
        proba = np.round(proba, decimals)
        proba[:, -1] = 1 - proba[:, :-1].sum(1)
    return proba


@pytest.mark.parametrize("k", [2, 4])
@pytest.mark.parametrize("decimals", [None, 1])
def test_weighted_metrics_equal_sklearn_on_the_resampled_rows(k, decimals):
    rng = np.random.default_rng(k)
    n = 300
    y, proba = rng.integers(0, k, n), _random_proba(rng, n, k, decimals)
    counts = next(bootstrap_counts(n, 5, rng))  # (5, n)
    ours = weighted_metrics(counts, y, proba)
    for r, c in enumerate(counts):
        yy, pp = np.repeat(y, c), np.repeat(proba, c, axis=0)
        assert ours["accuracy"][r] == pytest.approx(np.mean(pp.argmax(1) == yy), abs=1e-12)
        f1 = f1_score(yy, pp.argmax(1), labels=range(k), average="macro", zero_division=0)
        assert ours["macro_f1"][r] == pytest.approx(f1, abs=1e-12)
        auc = (
            roc_auc_score(yy, pp[:, 1])
            if k == 2
            else roc_auc_score(yy, pp, multi_class="ovr", labels=range(k))
        )
        assert ours["auc"][r] == pytest.approx(auc, abs=1e-12)


def _delong_quadratic(y, score_a, score_b):
    """DeLong et al. (1988) from the definition: structural components over all positive-negative pairs."""
    comps = []
    for s in (score_a, score_b):
        x, z = s[y == 1], s[y == 0]
        psi = (x[:, None] > z[None, :]) + 0.5 * (x[:, None] == z[None, :])  # (m, k)
        comps.append((psi.mean(), psi.mean(1), psi.mean(0)))
    m, k = (y == 1).sum(), (y == 0).sum()
    s10 = np.cov(np.vstack([comps[0][1], comps[1][1]]))
    s01 = np.cov(np.vstack([comps[0][2], comps[1][2]]))
    cov = s10 / m + s01 / k
    diff = comps[1][0] - comps[0][0]
    z = diff / np.sqrt(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    return comps[0][0], comps[1][0], z, 2 * stats.norm.sf(abs(z))


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(10, 300), ties=st.booleans())
def test_delong_fast_equals_quadratic_definition(seed, n, ties):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    y[:2], y[2:4] = 0, 1
    a, b = y + rng.normal(0, 1.5, n), y + 0.5 * rng.normal(0, 1.5, n) + rng.normal(0, 0.8, n)
    if ties:
        a, b = np.round(a), np.round(b)
    ours = delong_test(y, a, b)
    auc_a, auc_b, z, p = _delong_quadratic(y, a, b)
    assert ours.estimate == pytest.approx(auc_b - auc_a, abs=1e-12)
    assert auc_a == pytest.approx(roc_auc_score(y, a), abs=1e-12)
    if np.isfinite(z):
        assert ours.statistic == pytest.approx(z, rel=1e-9, abs=1e-12)
        assert ours.pvalue == pytest.approx(p, rel=1e-9, abs=1e-300)


def test_delong_needs_both_classes():
    with pytest.raises(LlmlabError, match="2\\+ rows of each class"):
        delong_test(np.ones(5), np.arange(5.0), np.arange(5.0))


def test_permutation_agrees_with_mcnemar_exact():
    rng = np.random.default_rng(3)
    a, b = rng.random(500) < 0.80, rng.random(500) < 0.85
    perm = permutation_test(a, b, n_perm=20000, seed=0)
    assert perm["pvalue"] == pytest.approx(mcnemar(a, b)["exact_pvalue"], rel=0.1)
    assert perm == permutation_test(a, b, n_perm=20000, seed=0)  # seeded
    assert permutation_test(a, a, n_perm=100)["pvalue"] == 1.0


def test_verdict_lines():
    acc = {"diff": 0.021, "ci_low": 0.004, "ci_high": 0.038}
    assert (
        verdict(("A", "B"), acc, 0.012)
        == "B is better than A: accuracy +2.1 points [0.4, 3.8], McNemar p=0.012"
    )
    worse = {"diff": -0.021, "ci_low": -0.038, "ci_high": -0.004}
    assert verdict(("A", "B"), worse, 0.012).startswith("A is better than B")
    assert verdict(("A", "B"), acc, 0.2).startswith("no significant difference")


def test_compare_predictions_binary_and_multiclass():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    strong = np.clip(0.5 + 0.4 * (2 * y - 1) + rng.normal(0, 0.3, 400), 0.01, 0.99)
    weak = np.clip(0.5 + 0.1 * (2 * y - 1) + rng.normal(0, 0.3, 400), 0.01, 0.99)
    out = compare_predictions(
        y, np.c_[1 - weak, weak], np.c_[1 - strong, strong], ("weak", "strong"), 300, 500
    )
    assert out["verdict"].startswith("strong is better than weak")
    assert out["delong"]["estimate"] > 0 and out["delong"]["pvalue"] < 1e-6
    assert out["bootstrap"]["auc"]["ci_low"] > 0 and out["effect"]["odds_ratio"] > 1
    y4 = rng.integers(0, 4, 200)
    p4 = _random_proba(rng, 200, 4)
    out4 = compare_predictions(y4, p4, p4, n_boot=50, n_perm=50)
    assert out4["delong"] is None and out4["bootstrap"]["accuracy"]["diff"] == 0
    with pytest.raises(LlmlabError, match="disagree"):
        compare_predictions(y4, p4, p4[:10])


def _binormal(rng, n_pos, n_neg, mu_a, mu_b, rho):
    """Scores of two correlated models: (a, b) ~ N((mu_a, mu_b) * y, [[1, rho], [rho, 1]])."""
    y = np.r_[np.ones(n_pos, int), np.zeros(n_neg, int)]
    noise = rng.multivariate_normal([0, 0], [[1, rho], [rho, 1]], y.size)
    return y, noise[:, 0] + mu_a * y, noise[:, 1] + mu_b * y


def test_delong_and_bootstrap_intervals_cover_the_true_difference():
    mu_a, mu_b, rho, datasets = 1.0, 1.4, 0.5, 200
    true_auc = stats.norm.cdf(mu_b / np.sqrt(2)) - stats.norm.cdf(mu_a / np.sqrt(2))
    true_acc = stats.norm.cdf(mu_b / 2) - stats.norm.cdf(mu_a / 2)  # threshold at mu / 2, balanced classes
    rng = np.random.default_rng(0)
    hits = {"delong": 0, "auc": 0, "accuracy": 0}
    for i in range(datasets):
        y, a, b = _binormal(rng, 150, 150, mu_a, mu_b, rho)
        proba = [1 / (1 + np.exp(-(s - mu / 2))) for s, mu in ((a, mu_a), (b, mu_b))]
        d = delong_test(y, proba[0], proba[1])
        hits["delong"] += d.ci_low <= true_auc <= d.ci_high
        boot = paired_bootstrap(y, *(np.c_[1 - p, p] for p in proba), n_boot=400, seed=i)
        hits["auc"] += boot["auc"]["ci_low"] <= true_auc <= boot["auc"]["ci_high"]
        hits["accuracy"] += boot["accuracy"]["ci_low"] <= true_acc <= boot["accuracy"]["ci_high"]
    tolerance = 3 * np.sqrt(0.95 * 0.05 / datasets)
    for name, count in hits.items():
        assert abs(count / datasets - 0.95) <= tolerance, (name, count / datasets)
