"""Always-valid inference: a mixture sequential probability ratio test (mSPRT) that may be peeked at any time.

Follows Johari, Pekelis & Walsh (2017), "Always Valid Inference: Continuous Monitoring of A/B Tests"
(arXiv:1512.04922), the normal-mixture mSPRT that Optimizely's stats engine uses. With the estimate
d_n = mean_B - mean_A after n observations, its (plug-in) variance v_n = s_A^2/n_A + s_B^2/n_B, and a
normal mixing distribution N(0, tau^2) over the true difference, the mixture likelihood ratio is

    Lambda_n = sqrt(v_n / (v_n + tau^2)) * exp( tau^2 d_n^2 / (2 v_n (v_n + tau^2)) )

(their eq. for two-sample normal data, with 2 sigma^2 / n replaced by v_n), and the always-valid p-value is
the running minimum p_n = min(p_{n-1}, 1 / Lambda_n). P(p_n <= alpha for some n) <= alpha under H0, so one
may stop the first time p_n <= alpha. Proportions are the special case of 0/1 outcomes.

tau (the mixing standard deviation, in the metric's units) should be about the size of the effects one
expects. Default here: tau = 0.1 x the pooled per-observation standard deviation of the metric, i.e. a prior
on standardised effects (Cohen's d) of about 0.1, typical of online experiments. Deviation from the paper:
the variance is estimated from the data (as in practice; the paper's guarantee assumes it known), and no look
before `min_n` observations per arm counts, so that a tiny-sample variance estimate cannot cause a rejection.
"""

from __future__ import annotations

import numpy as np

from llmlab.errors import LlmlabError

DEFAULT_TAU_SD = 0.1  # tau in units of the metric's pooled standard deviation


def log_likelihood_ratio(estimate: np.ndarray, variance: np.ndarray, tau: float | np.ndarray) -> np.ndarray:
    """log Lambda of the normal-mixture SPRT, elementwise (any shape; variance > 0)."""
    tau2 = np.asarray(tau, float) ** 2
    total = variance + tau2
    return 0.5 * np.log(variance / total) + tau2 * estimate**2 / (2 * variance * total)


def always_valid_pvalues(
    estimate: np.ndarray, variance: np.ndarray, tau: float | np.ndarray, valid: np.ndarray | None = None
) -> np.ndarray:
    """Always-valid p-values along the last axis (the looks), as the running minimum of 1 / Lambda.

    Args:
        estimate: (..., L) the difference B - A at each look.
        variance: (..., L) its variance at each look.
        tau: mixing standard deviation (broadcastable to estimate).
        valid: (..., L) bool; looks where it is False (too few observations) leave the p-value unchanged.

    Returns:
        (..., L) non-increasing p-values in (0, 1].
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.minimum(1.0, np.exp(-log_likelihood_ratio(estimate, variance, tau)))
    ok = np.isfinite(p) & (variance > 0)
    if valid is not None:
        ok &= valid
    return np.minimum.accumulate(np.where(ok, p, 1.0), axis=-1)


def always_valid_test(
    is_b: np.ndarray, values: np.ndarray, tau: float | None = None, alpha: float = 0.05, min_n: int = 100
) -> dict:
    """mSPRT of mean(B) = mean(A) over a stream, looking after every observation.

    Args:
        is_b: (N,) bool, True where the observation is from B, in arrival order.
        values: (N,) the metric (0/1 for a conversion rate).
        tau: mixing standard deviation; None: DEFAULT_TAU_SD x the pooled standard deviation of `values`.
        alpha: level at which to reject.
        min_n: looks before this many observations in each arm are skipped.

    Returns:
        {"pvalue" (always valid, at the last look), "reject", "tau", "looks", "stopped_at" (first n where
        p <= alpha, or None)}.

    Raises:
        LlmlabError: one arm is empty.
    """
    is_b, y = np.asarray(is_b, bool), np.asarray(values, float)
    if is_b.all() or not is_b.any():
        raise LlmlabError("sequential test: both variants need observations")
    if tau is None:
        tau = DEFAULT_TAU_SD * float(y.std(ddof=1)) if y.size > 1 else 0.0
    mean_a, var_a, n_a = _running_moments(np.where(is_b, 0.0, y), ~is_b)  # each (N,)
    mean_b, var_b, n_b = _running_moments(np.where(is_b, y, 0.0), is_b)
    with np.errstate(divide="ignore", invalid="ignore"):
        variance = var_a / n_a + var_b / n_b
    valid = (n_a >= max(min_n, 2)) & (n_b >= max(min_n, 2))
    p = always_valid_pvalues(mean_b - mean_a, np.nan_to_num(variance), tau, valid) if tau > 0 else np.ones(1)
    hits = np.flatnonzero(p <= alpha)
    return {
        "pvalue": float(p[-1]),
        "reject": bool(p[-1] <= alpha),
        "tau": float(tau),
        "looks": int(valid.sum()),
        "stopped_at": int(hits[0] + 1) if hits.size else None,
    }


def _running_moments(y: np.ndarray, member: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean, sample variance (ddof 1) and count of one arm after each prefix of the stream; each (N,)."""
    n = np.cumsum(member)
    s = np.cumsum(y)
    ss = np.cumsum(y * y)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = s / n
        var = np.maximum(ss - n * mean**2, 0.0) / (n - 1)
    return np.nan_to_num(mean), np.nan_to_num(var), n
