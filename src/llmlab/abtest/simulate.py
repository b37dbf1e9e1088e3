"""Why peeking breaks the fixed-horizon z-test and not the sequential test: simulated conversion experiments.

Each simulated experiment sends `batch` users to each variant per period and looks at the data after every
period (a "peek"). A user converts with probability p_A or p_B; the conversions of a batch are one binomial
draw, which has exactly the distribution of the sum of the users' Bernoulli outcomes, so all experiments and
all peeks are simulated at once as one (E, P, 2) array. At every peek two tests are run:
- the fixed-horizon pooled two-proportion z-test (as `llmlab.abtest.stats.two_proportion_ztest`);
- the normal-mixture mSPRT of `llmlab.abtest.sequential` (Johari et al. 2017), with tau fixed before the
  experiment from the known baseline rate: tau = DEFAULT_TAU_SD * sqrt(p_A (1 - p_A)).
An experiment "rejects after k peeks" when a test rejects at any of k looks spread evenly over the same
horizon; with p_A = p_B (A/A) the share that rejects is the false-positive rate, otherwise the power.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from llmlab.abtest.sequential import DEFAULT_TAU_SD, log_likelihood_ratio


def simulate_peeking(
    p_a: float = 0.10,
    p_b: float = 0.10,
    n_experiments: int = 1000,
    n_peeks: int = 20,
    batch: int = 500,
    alpha: float = 0.05,
    tau: float | None = None,
    seed: int = 0,
) -> dict:
    """Simulate `n_experiments` experiments of `n_peeks` periods and count the rejections of both tests.

    Args:
        p_a, p_b: true conversion rates of A and B (equal: an A/A test).
        n_experiments, n_peeks, batch: E experiments, P periods, users per variant per period.
        alpha: the level of both tests.
        tau: mSPRT mixing standard deviation; None: DEFAULT_TAU_SD * sqrt(p_a (1 - p_a)).
        seed: random seed.

    Returns:
        {"settings", "peeks": [1..P], "fixed": [rate after k peeks], "sequential": [...], "standard_error",
         "fixed_once", "fixed_every_peek", "sequential_every_peek"}; rates are shares of experiments.
    """
    tau = DEFAULT_TAU_SD * math.sqrt(p_a * (1 - p_a)) if tau is None else tau
    rng = np.random.default_rng(seed)
    conversions = rng.binomial(batch, [p_a, p_b], size=(n_experiments, n_peeks, 2)).cumsum(axis=1)  # (E,P,2)
    p_fixed, p_seq = peek_pvalues(conversions, batch * np.arange(1, n_peeks + 1), tau)
    fixed = [float(_rejects(p_fixed, k, alpha).mean()) for k in range(1, n_peeks + 1)]
    sequential = [float(_rejects(p_seq, k, alpha).mean()) for k in range(1, n_peeks + 1)]
    settings = dict(p_a=p_a, p_b=p_b, experiments=n_experiments, peeks=n_peeks, batch=batch, alpha=alpha)
    return {
        "settings": {**settings, "tau": tau, "seed": seed},
        "peeks": list(range(1, n_peeks + 1)),
        "fixed": fixed,
        "sequential": sequential,
        "standard_error": math.sqrt(alpha * (1 - alpha) / n_experiments),
        "fixed_once": fixed[0],
        "fixed_every_peek": fixed[-1],
        "sequential_every_peek": sequential[-1],
    }


def format_peeking(null: dict, alt: dict) -> str:
    """The text `llmlab abtest simulate` prints for the A/A and A/B runs of `simulate_peeking`."""
    s = null["settings"]
    return "\n".join(
        [
            f"{s['experiments']} experiments per scenario, {s['peeks']} peeks of {s['batch']} users per variant, "
            f"baseline {s['p_a']}, alpha {s['alpha']}, mSPRT tau {s['tau']:.4g}, seed {s['seed']}",
            f"A/A false-positive rate (standard error {null['standard_error']:.3f}):",
            f"  fixed-horizon z-test, one look at the end: {null['fixed_once']:.3f}",
            f"  fixed-horizon z-test, peeking every batch: {null['fixed_every_peek']:.3f}",
            f"  sequential mSPRT, peeking every batch:     {null['sequential_every_peek']:.3f}",
            f"A/B power (B = {alt['settings']['p_b']:.4g}):",
            f"  fixed-horizon z-test, one look at the end: {alt['fixed_once']:.3f}",
            f"  fixed-horizon z-test, peeking every batch: {alt['fixed_every_peek']:.3f} (not a valid test)",
            f"  sequential mSPRT, peeking every batch:     {alt['sequential_every_peek']:.3f}",
        ]
    )


def peek_pvalues(conversions: np.ndarray, n: np.ndarray, tau: float) -> tuple[np.ndarray, np.ndarray]:
    """p-values of both tests at every look (the mSPRT's before its running minimum).

    Args:
        conversions: (E, P, 2) cumulative conversions of A and B at each look.
        n: (P,) users per variant at each look.
        tau: mSPRT mixing standard deviation.

    Returns:
        (p_fixed (E, P), p_sequential (E, P)); 1 where a look has no variance to test with.
    """
    rate = conversions / n[:, None]  # (E, P, 2)
    diff = rate[..., 1] - rate[..., 0]  # (E, P)
    pooled = conversions.sum(-1) / (2 * n)
    variance = (rate * (1 - rate)).sum(-1) / (n - 1)  # plug-in, ddof 1, as in always_valid_test
    with np.errstate(divide="ignore", invalid="ignore"):
        p_fixed = 2 * stats.norm.sf(np.abs(diff) / np.sqrt(pooled * (1 - pooled) * 2 / n))
        p_seq = np.minimum(1.0, np.exp(-log_likelihood_ratio(diff, variance, tau)))
    return np.nan_to_num(p_fixed, nan=1.0), np.where(variance > 0, np.nan_to_num(p_seq, nan=1.0), 1.0)


def _rejects(pvalues: np.ndarray, k: int, alpha: float) -> np.ndarray:
    """(E,) whether a test rejects at any of k looks spread evenly over the P periods (the last one included)."""
    n_peeks = pvalues.shape[1]
    looks = np.ceil(np.arange(1, k + 1) * n_peeks / k).astype(int) - 1
    return (pvalues[:, looks] <= alpha).any(axis=1)


def peeking_figure(null: dict, effect: dict | None = None):
    """Matplotlib figure: false-positive rate (A/A) and, given, power (A/B) against the number of peeks."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = [("A/A: false-positive rate", null)] + ([("A/B: power", effect)] if effect else [])
    fig, axes = plt.subplots(1, len(runs), figsize=(6 * len(runs), 4), squeeze=False)
    for ax, (title, run) in zip(axes[0], runs, strict=True):
        ax.plot(run["peeks"], run["fixed"], "o-", label="fixed-horizon z-test")
        ax.plot(run["peeks"], run["sequential"], "s-", label="sequential (mSPRT)")
        ax.axhline(run["settings"]["alpha"], color="grey", ls="--", label="alpha")
        ax.set(
            title=title,
            xlabel="number of peeks over the same horizon",
            ylabel="share of experiments rejected",
        )
        ax.set_ylim(0, 1 if run is effect else max(0.1, 1.1 * max(run["fixed"])))
        ax.legend()
    fig.tight_layout()
    return fig
