"""Classical (fixed-horizon) tests for an A/B experiment, each matching its reference implementation.

- two-proportion z-test with the pooled variance under H0 = `statsmodels.stats.proportion.proportions_ztest`;
  its interval is the unpooled Wald interval = `confint_proportions_2indep(method="wald", compare="diff")`;
- Welch's t-test and interval = `scipy.stats.ttest_ind(b, a, equal_var=False)` (+ `.confidence_interval()`);
- sample-ratio mismatch (SRM): Pearson's chi-square against the configured split = `scipy.stats.chisquare`
  (Fabijan et al. 2019, "Diagnosing Sample Ratio Mismatch in Online Controlled Experiments");
- Holm (1979) and Benjamini-Hochberg (1995) adjusted p-values = `statsmodels.stats.multitest.multipletests`
  with method "holm" / "fdr_bh";
- a latency guardrail: a percentile bootstrap (groups resampled independently) of the ratio of the 99th
  percentiles of B and A.
Every difference is B minus A (treatment minus control).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

from llmlab.errors import LlmlabError

SRM_ALPHA = 0.001  # below this the split is broken and no other result should be trusted


@dataclass
class TestResult:
    """One hypothesis test of B against A.

    Attributes:
        test: the test's name.
        estimate: the effect (B minus A) the test is about.
        ci_low, ci_high: its two-sided (1 - alpha) confidence interval.
        statistic: the test statistic (z, t, chi-square, ...).
        pvalue: two-sided p-value.
    """

    test: str
    estimate: float
    ci_low: float
    ci_high: float
    statistic: float
    pvalue: float

    def to_dict(self) -> dict:
        return asdict(self)


def two_proportion_ztest(count_a: int, n_a: int, count_b: int, n_b: int, alpha: float = 0.05) -> TestResult:
    """z-test of p_B = p_A with the pooled proportion in the null variance; Wald interval for p_B - p_A.

    Raises:
        LlmlabError: a group is empty.
    """
    if min(n_a, n_b) <= 0:
        raise LlmlabError(f"z-test: both groups need observations (got {n_a} and {n_b})")
    p_a = count_a / n_a
    p_b = count_b / n_b
    pooled = (count_a + count_b) / (n_a + n_b)
    if pooled in (0, 1):  # no variance at all: both groups all 0 or all 1, so no difference (p = 1)
        return TestResult("two-proportion z", 0.0, 0.0, 0.0, 0.0, 1.0)
    z = (p_b - p_a) / np.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    half = stats.norm.isf(alpha / 2) * np.sqrt(p_a * (1 - p_a) / n_a + p_b * (1 - p_b) / n_b)
    return TestResult("two-proportion z", p_b - p_a, p_b - p_a - half, p_b - p_a + half, z, _two_sided_z(z))


def welch_ttest(a: np.ndarray, b: np.ndarray, alpha: float = 0.05) -> TestResult:
    """Welch's unequal-variance t-test of mean(b) = mean(a), with the Welch-Satterthwaite degrees of freedom.

    Raises:
        LlmlabError: a group has fewer than two observations.
    """
    a, b = np.asarray(a, float), np.asarray(b, float)
    if min(a.size, b.size) < 2:
        raise LlmlabError(f"Welch t-test: each group needs 2+ observations (got {a.size} and {b.size})")
    va = a.var(ddof=1) / a.size
    vb = b.var(ddof=1) / b.size
    diff = b.mean() - a.mean()
    se = np.sqrt(va + vb)
    if se == 0:  # both groups constant: the difference is exact (p = 1 when none, 0 otherwise)
        return TestResult(
            "Welch t", diff, diff, diff, 0.0 if diff == 0 else math.copysign(math.inf, diff), float(diff == 0)
        )
    df = (va + vb) ** 2 / (va**2 / (a.size - 1) + vb**2 / (b.size - 1))
    t = diff / se
    half = stats.t.isf(alpha / 2, df) * se
    return TestResult("Welch t", diff, diff - half, diff + half, t, 2 * stats.t.sf(abs(t), df))


def srm_check(counts: dict[str, int], split: dict[str, float]) -> dict:
    """Pearson chi-square of the observed assignments per variant against the configured split.

    Args:
        counts: assignments per variant.
        split: the configured shares (normalised here).

    Returns:
        {"statistic", "pvalue", "expected": {variant: count}, "mismatch": pvalue < SRM_ALPHA}.

    Raises:
        LlmlabError: a variant was assigned that the split does not name.
    """
    unknown = set(counts) - set(split)
    if unknown:
        raise LlmlabError(f"SRM check: variants {sorted(unknown)} are not in the split {split}")
    names = list(split)
    observed = np.array([counts.get(v, 0) for v in names], float)
    shares = np.array([split[v] for v in names], float)
    expected = observed.sum() * shares / shares.sum()
    statistic = float(((observed - expected) ** 2 / expected).sum())
    pvalue = float(stats.chi2.sf(statistic, len(names) - 1))
    return {
        "statistic": statistic,
        "pvalue": pvalue,
        "expected": dict(zip(names, expected.tolist(), strict=True)),
        "mismatch": pvalue < SRM_ALPHA,
    }


def multipletests(pvalues, method: str = "holm", alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Adjust p-values for multiple comparisons (family-wise: Holm; false discovery rate: BH).

    Args:
        pvalues: (M,) raw p-values.
        method: "holm" or "bh".
        alpha: the level at which `reject` is decided.

    Returns:
        (reject (M,) bool, adjusted (M,) float), in the input order.

    Raises:
        LlmlabError: an unknown method.
    """
    p = np.asarray(pvalues, float)
    order = np.argsort(p)
    sorted_p = p[order]
    m = p.size
    if method == "holm":
        adjusted = np.maximum.accumulate(sorted_p * np.arange(m, 0, -1))
        passes = sorted_p <= alpha / np.arange(m, 0, -1)  # step down: reject until the first failure
        reject = np.cumprod(passes).astype(bool)
    elif method == "bh":
        rank_share = np.arange(1, m + 1) / m
        adjusted = np.minimum.accumulate((sorted_p / rank_share)[::-1])[::-1]
        passes = np.flatnonzero(sorted_p <= rank_share * alpha)  # step up: reject up to the last success
        reject = np.arange(m) <= (passes[-1] if passes.size else -1)
    else:
        raise LlmlabError(f"correction {method!r}: expected 'holm' or 'bh'")
    out = np.empty(m)
    rejected = np.empty(m, bool)
    out[order], rejected[order] = np.minimum(adjusted, 1.0), reject
    return rejected, out


def latency_guardrail(
    latency_a: np.ndarray,
    latency_b: np.ndarray,
    max_increase: float = 0.10,
    quantile: float = 0.99,
    alpha: float = 0.05,
    n_boot: int = 2000,
    seed: int = 0,
) -> dict:
    """Is B's p99 latency worse than A's by more than `max_increase` (relative)?

    The relative increase r = q_B / q_A - 1 gets a one-sided (1 - alpha) percentile-bootstrap interval
    (groups resampled independently). "flagged": even its lower bound exceeds `max_increase` (B is shown
    to be too slow); "ok": its upper bound is below `max_increase` (B is shown to be fast enough);
    otherwise "inconclusive".

    Returns:
        {"quantile", "latency_a", "latency_b", "increase", "lower", "upper", "max_increase", "status"}.
    """
    a = np.asarray(latency_a, float)
    b = np.asarray(latency_b, float)
    rng = np.random.default_rng(seed)
    boot = _bootstrap_quantile(b, quantile, n_boot, rng) / _bootstrap_quantile(a, quantile, n_boot, rng) - 1
    lower, upper = np.quantile(boot, [alpha, 1 - alpha])
    status = "flagged" if lower > max_increase else "ok" if upper < max_increase else "inconclusive"
    point_a = np.quantile(a, quantile)
    point_b = np.quantile(b, quantile)
    return {
        "quantile": quantile,
        "latency_a": float(point_a),
        "latency_b": float(point_b),
        "increase": float(point_b / point_a - 1),
        "lower": float(lower),
        "upper": float(upper),
        "max_increase": max_increase,
        "status": status,
    }


def _bootstrap_quantile(x: np.ndarray, quantile: float, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """(n_boot,) quantiles of resamples of x, drawn in chunks of about 4M values to bound memory."""
    chunk = max(1, 4_000_000 // x.size)
    parts = [
        np.quantile(x[rng.integers(0, x.size, (min(chunk, n_boot - i), x.size))], quantile, axis=1)
        for i in range(0, n_boot, chunk)
    ]
    return np.concatenate(parts)


def _two_sided_z(z: float) -> float:
    return float(2 * stats.norm.sf(abs(z)))
