"""Percentile bootstrap confidence intervals for metrics of a fixed set of predictions.

Efron & Tibshirani (1993), "An Introduction to the Bootstrap", ch. 13: resample the N rows with replacement
B times, score each resample, and take the alpha/2 and 1 - alpha/2 percentiles (numpy's default linear
interpolation) of the B scores. The resamples are a seeded index matrix (B, N), drawn in chunks of rows so
that memory stays bounded for large N; a metric with a `batched` form scores a whole chunk in a few numpy
operations, any other metric is called once per resample. Resamples on which a metric is undefined (e.g. AUC
when a resample holds one class) are dropped, and the interval is taken over the rest.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

N_BOOT = 1000
_CELLS_PER_CHUNK = 4_000_000  # index-matrix entries held at once (32 MB of int64)


@dataclass(frozen=True)
class Metric:
    """A scalar metric of (y_true (N,), proba (N, K)); `batched` scores resamples idx (B, N) -> (B,)."""

    fn: Callable[[np.ndarray, np.ndarray], float | None]
    batched: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray] | None = None


def resample_chunks(n: int, n_boot: int, seed: int) -> Iterator[np.ndarray]:
    """The bootstrap index matrix, in consecutive chunks of rows: each (b, n) with the b summing to n_boot."""
    rng = np.random.default_rng(seed)
    per_chunk = max(1, _CELLS_PER_CHUNK // max(n, 1))
    for start in range(0, n_boot, per_chunk):
        yield rng.integers(0, n, size=(min(per_chunk, n_boot - start), n))


def bootstrap_values(
    y_true: np.ndarray, proba: np.ndarray, metric: Metric, n_boot: int = N_BOOT, seed: int = 0
) -> np.ndarray:
    """The metric on each of `n_boot` resamples, (n_boot,) float64, NaN where it is undefined."""
    y, proba = np.asarray(y_true, dtype=np.int64), np.asarray(proba, dtype=np.float64)
    parts = []
    for idx in resample_chunks(len(y), n_boot, seed):
        if metric.batched is not None:
            parts.append(metric.batched(y, proba, idx))
        else:
            parts.append(np.array([_or_nan(metric.fn(y[i], proba[i])) for i in idx], dtype=np.float64))
    return np.concatenate(parts)


def _or_nan(value: float | None) -> float:
    return np.nan if value is None else value


def bootstrap_ci(
    y_true: np.ndarray,
    proba: np.ndarray,
    metric_fn: Metric | Callable[[np.ndarray, np.ndarray], float | None],
    n_boot: int = N_BOOT,
    seed: int = 0,
    alpha: float = 0.05,
) -> tuple[float | None, float | None]:
    """The (1 - alpha) percentile bootstrap interval of a metric.

    Args:
        y_true: (N,) class ids.
        proba: (N, K) probabilities.
        metric_fn: a `Metric` (vectorised when it has `batched`) or a plain function (y, proba) -> float.
        n_boot: resamples.
        seed: seed of the resampling.
        alpha: 0.05 gives a 95% interval.

    Returns:
        (low, high), or (None, None) when the metric is undefined on every resample.
    """
    metric = metric_fn if isinstance(metric_fn, Metric) else Metric(metric_fn)
    values = bootstrap_values(y_true, proba, metric, n_boot, seed)
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return None, None
    low, high = np.percentile(values, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return float(low), float(high)


def confidence_intervals(
    y_true: np.ndarray, proba: np.ndarray, metrics: dict[str, Metric], n_boot: int = N_BOOT, seed: int = 0
) -> dict[str, tuple[float | None, float | None]]:
    """`bootstrap_ci` of each named metric, all on the same resamples (same seed)."""
    return {name: bootstrap_ci(y_true, proba, m, n_boot, seed) for name, m in metrics.items()}
