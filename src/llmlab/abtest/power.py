"""Planning a two-proportion A/B test: sample size per variant for a given power, and power for a given size.

Two normal approximations, both two-sided, with n_A = n and n_B = ratio * n:
- Cohen's h: h = 2 asin(sqrt p_B) - 2 asin(sqrt p_A) (Cohen 1988, ch. 6); power as
  `statsmodels.stats.power.NormalIndPower().power(h, n, alpha, ratio)` (both tails), sample size solved from
  it as `NormalIndPower().solve_power` / `zt_ind_solve_power` does (here with scipy's brentq);
- the pooled-variance formula (Fleiss, Levin & Paik 2003, sec. 4.2, without continuity correction): the null
  standard error uses the pooled p = (p_A + ratio p_B) / (1 + ratio), the alternative one the separate p's;
  power as `statsmodels.stats.proportion.power_proportions_2indep` (both tails), sample size in closed form
  as `samplesize_proportions_2indep_onetail` (the far tail ignored).
"""

from __future__ import annotations

import math

from scipy import optimize, stats

from llmlab.errors import LlmlabError


def cohens_h(p_a: float, p_b: float) -> float:
    """Cohen's effect size for two proportions: 2 asin(sqrt(p_b)) - 2 asin(sqrt(p_a))."""
    return 2 * math.asin(math.sqrt(p_b)) - 2 * math.asin(math.sqrt(p_a))


def power_cohens_h(p_a: float, p_b: float, n: float, alpha: float = 0.05, ratio: float = 1.0) -> float:
    """Power of the two-sided z-test on arcsine-transformed proportions with n and ratio * n observations."""
    effective = 1.0 / (1.0 / n + 1.0 / (n * ratio))
    return _two_tail_power(abs(cohens_h(p_a, p_b)) * math.sqrt(effective), 1.0, alpha)


def power_pooled(p_a: float, p_b: float, n: float, alpha: float = 0.05, ratio: float = 1.0) -> float:
    """Power of the two-sided pooled two-proportion z-test with n and ratio * n observations."""
    std_null, std_alt = _pooled_stds(p_a, p_b, ratio)
    return _two_tail_power(abs(p_b - p_a) * math.sqrt(n) / std_alt, std_null / std_alt, alpha)


def sample_size_cohens_h(
    p_a: float, p_b: float, alpha: float = 0.05, power: float = 0.8, ratio: float = 1.0
) -> float:
    """n (for A; B gets ratio * n) at which `power_cohens_h` reaches `power`, unrounded.

    Raises:
        LlmlabError: p_a == p_b, or the power is not above alpha.
    """
    _check_plan(p_a, p_b, alpha, power)

    def shortfall(n: float) -> float:
        return power_cohens_h(p_a, p_b, n, alpha, ratio) - power

    high = 2.0
    while shortfall(high) < 0:
        high *= 2
    return optimize.brentq(shortfall, 1e-3, high, xtol=1e-12, rtol=1e-15)


def sample_size_pooled(
    p_a: float, p_b: float, alpha: float = 0.05, power: float = 0.8, ratio: float = 1.0
) -> float:
    """n (for A; B gets ratio * n) from the pooled-variance formula, unrounded:
    n = (z_{alpha/2} sd_null + z_{beta} sd_alt)^2 / (p_B - p_A)^2.

    Raises:
        LlmlabError: p_a == p_b, or the power is not above alpha.
    """
    _check_plan(p_a, p_b, alpha, power)
    std_null, std_alt = _pooled_stds(p_a, p_b, ratio)
    z_alpha = stats.norm.isf(alpha / 2)
    z_beta = stats.norm.ppf(power)
    return float((max(z_alpha * std_null + z_beta * std_alt, 0.0) / (p_b - p_a)) ** 2)


def plan(
    p_a: float,
    mde: float,
    relative: bool = False,
    alpha: float = 0.05,
    power: float = 0.8,
    ratio: float = 1.0,
    n: int | None = None,
) -> dict:
    """Everything `llmlab abtest plan` prints.

    Args:
        p_a: the baseline (control) conversion rate.
        mde: the minimum detectable effect, absolute (p_B - p_A) or relative (p_B / p_A - 1).
        relative: read `mde` as relative.
        alpha, power, ratio: the test's level, the desired power, n_B / n_A.
        n: also give the power at this many users in A.

    Returns:
        {"p_a", "p_b", "cohens_h", "n_cohens_h", "n_pooled" (per variant A, rounded up), "total_*", and with
        n: "power_cohens_h", "power_pooled"}.
    """
    p_b = p_a * (1 + mde) if relative else p_a + mde
    _check_plan(p_a, p_b, alpha, power)
    out = {
        "p_a": p_a,
        "p_b": p_b,
        "alpha": alpha,
        "power": power,
        "ratio": ratio,
        "cohens_h": cohens_h(p_a, p_b),
    }
    for method, solve in (("cohens_h", sample_size_cohens_h), ("pooled", sample_size_pooled)):
        size = math.ceil(solve(p_a, p_b, alpha, power, ratio))
        out[f"n_{method}"] = size
        out[f"total_{method}"] = size + math.ceil(size * ratio)
    if n is not None:
        out["n"] = n
        out["power_cohens_h"] = power_cohens_h(p_a, p_b, n, alpha, ratio)
        out["power_pooled"] = power_pooled(p_a, p_b, n, alpha, ratio)
    return out


def _pooled_stds(p_a: float, p_b: float, ratio: float) -> tuple[float, float]:
    """Standard deviations of p_B - p_A times sqrt(n_A), under H0 (pooled p) and under the alternative."""
    pooled = (p_a + ratio * p_b) / (1 + ratio)
    std_null = math.sqrt(pooled * (1 - pooled) * (1 + 1 / ratio))
    std_alt = math.sqrt(p_a * (1 - p_a) + p_b * (1 - p_b) / ratio)
    return std_null, std_alt


def _two_tail_power(shift: float, std_ratio: float, alpha: float) -> float:
    """P(|Z| > crit) where Z ~ N(shift, 1) and crit = z_{alpha/2} * std_ratio (both tails)."""
    crit = stats.norm.isf(alpha / 2) * std_ratio
    return float(stats.norm.sf(crit - shift) + stats.norm.cdf(-crit - shift))


def _check_plan(p_a: float, p_b: float, alpha: float, power: float) -> None:
    if not (0 < p_a < 1 and 0 < p_b < 1):
        raise LlmlabError(f"plan: rates must lie in (0, 1), got baseline {p_a} and treatment {p_b}")
    if p_a == p_b:
        raise LlmlabError("plan: the minimum detectable effect must not be 0")
    if not 0 < alpha < power < 1:
        raise LlmlabError(f"plan: need 0 < alpha < power < 1, got alpha {alpha} and power {power}")
