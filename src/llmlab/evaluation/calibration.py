"""Calibration: reliability diagrams and the expected calibration error (ECE).

Follows Guo et al. (2017), "On Calibration of Modern Neural Networks": the top-label confidence (the
largest probability of each row) is put into M equal-width bins over [0, 1] (M = 15, as in the paper); ECE is
the count-weighted mean gap between each bin's accuracy and mean confidence,
    ECE = sum_m |B_m| / N * |acc(B_m) - conf(B_m)|.
Bins are (a, b], the first one [0, b], exactly as `sklearn.calibration.calibration_curve(strategy="uniform")`
assigns them; the binary reliability curve of the positive class is tested equal to that function.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

N_BINS = 15


@dataclass
class Reliability:
    """Per-bin statistics of a reliability diagram; empty bins are left out. Arrays are (M',)."""

    confidence: np.ndarray  # mean predicted probability in the bin
    accuracy: np.ndarray  # observed frequency (accuracy, or fraction of positives) in the bin
    count: np.ndarray  # rows in the bin
    n_bins: int


def reliability(hit: np.ndarray, confidence: np.ndarray, n_bins: int = N_BINS) -> Reliability:
    """Bin `confidence` into `n_bins` equal-width bins and average `hit` (0/1 outcomes) and confidence.

    Args:
        hit: (N,) 1 where the event happened (prediction correct, or the positive class), else 0.
        confidence: (N,) predicted probability of that event, in [0, 1].
        n_bins: the number of equal-width bins over [0, 1].
    """
    inner = np.linspace(0.0, 1.0, n_bins + 1)[1:-1]  # (M-1,) inner edges
    bins = np.searchsorted(inner, confidence)  # (N,) bin of each row, (a, b] intervals
    count = np.bincount(bins, minlength=n_bins)
    full = count > 0
    conf = np.bincount(bins, weights=confidence, minlength=n_bins)[full] / count[full]
    acc = np.bincount(bins, weights=hit.astype(np.float64), minlength=n_bins)[full] / count[full]
    return Reliability(conf, acc, count[full], n_bins)


def top_label(y: np.ndarray, proba: np.ndarray, n_bins: int = N_BINS) -> Reliability:
    """The top-label reliability diagram: is the prediction right as often as its probability says?"""
    return reliability(proba.argmax(axis=1) == y, proba.max(axis=1), n_bins)


def expected_calibration_error(y: np.ndarray, proba: np.ndarray, n_bins: int = N_BINS) -> float:
    """Top-label ECE of probabilities proba (N, K) against class ids y (N,), in [0, 1]."""
    r = top_label(np.asarray(y), np.asarray(proba, dtype=np.float64), n_bins)
    return float(np.sum(r.count * np.abs(r.accuracy - r.confidence)) / np.sum(r.count))
