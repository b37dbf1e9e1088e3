"""CUPED: variance reduction with a pre-experiment covariate.

Deng, Xu, Kohavi & Walker (2013), "Improving the Sensitivity of Online Controlled Experiments by Utilizing
Pre-Experiment Data" (WSDM): Y_cv = Y - theta (X - mean X) with theta = cov(Y, X) / var(X) estimated on both
variants pooled. X is measured before the experiment, so it is independent of the assignment and the
difference of means of Y_cv is unbiased for the difference of means of Y, with variance reduced by the factor
1 - corr(Y, X)^2. The reduction reported here is the realised 1 - var(Y_cv) / var(Y), which equals
corr(Y, X)^2 exactly on the pooled sample.
"""

from __future__ import annotations

import numpy as np

from llmlab.errors import LlmlabError


def cuped_adjust(y: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Remove from y the part that the covariate x predicts linearly.

    Args:
        y: (N,) the metric, both variants together.
        x: (N,) the pre-period covariate of the same units.

    Returns:
        (y_cv (N,), theta, variance_reduction).

    Raises:
        LlmlabError: the shapes differ, or x is constant.
    """
    y, x = np.asarray(y, float), np.asarray(x, float)
    if y.shape != x.shape:
        raise LlmlabError(f"CUPED: metric has shape {y.shape}, covariate {x.shape}")
    xc = x - x.mean()
    var_x = float(xc @ xc)
    if var_x == 0:
        raise LlmlabError("CUPED: the covariate is constant, it cannot reduce variance")
    theta = float((y - y.mean()) @ xc / var_x)
    y_cv = y - theta * xc
    var_y = y.var()
    reduction = 1.0 - y_cv.var() / var_y if var_y > 0 else 0.0
    return y_cv, theta, float(reduction)


def covariate_for(units: list[str], covariate: dict[str, float]) -> np.ndarray:
    """The covariate of each unit; units without one get the mean of the known values (so no adjustment).

    Raises:
        LlmlabError: no unit has a covariate.
    """
    known = [covariate[u] for u in units if u in covariate]
    if not known:
        raise LlmlabError("CUPED: no user in the experiment has a covariate value")
    fill = float(np.mean(known))
    return np.array([covariate.get(u, fill) for u in units], float)
