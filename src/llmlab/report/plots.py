"""Shared matplotlib figures for reports: ROC and PR curves, confusion matrix, reliability diagram, learning
and training curves. Each function returns a figure for `Report.figure` (which closes it); the Agg backend is
used, so nothing needs a display. Curves come from `sklearn.metrics.roc_curve` / `precision_recall_curve`.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)
import numpy as np  # noqa: E402

_SIZE = (5.0, 4.0)


def _curves(y: np.ndarray, proba: np.ndarray, labels: Sequence[str]):
    """(name, 0/1 truth, score) per curve: the positive class for two classes, one-vs-rest otherwise."""
    if proba.shape[1] == 2:
        return [(labels[1], y == 1, proba[:, 1])]
    return [(labels[k], y == k, proba[:, k]) for k in range(proba.shape[1])]


def roc_figure(models: dict[str, tuple[np.ndarray, np.ndarray]], labels: Sequence[str]):
    """ROC curves with AUC of each model {name: (y (N,), proba (N, K))}, e.g. a model and its baseline."""
    from sklearn.metrics import auc, roc_curve

    fig, ax = plt.subplots(figsize=_SIZE)
    for prefix, (yy, pp) in models.items():
        for name, truth, score in _curves(yy, pp, labels):
            if truth.all() or not truth.any():
                continue  # undefined with one class
            fpr, tpr, _ = roc_curve(truth, score)
            ax.plot(fpr, tpr, label=f"{prefix}: class {name} (AUC {auc(fpr, tpr):.3f})")
    ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC")
    ax.legend(fontsize=7)
    return fig


def pr_figure(models: dict[str, tuple[np.ndarray, np.ndarray]], labels: Sequence[str]):
    """Precision-recall curves of each model {name: (y, proba)}, with average precision in the legend."""
    from sklearn.metrics import average_precision_score, precision_recall_curve

    fig, ax = plt.subplots(figsize=_SIZE)
    for prefix, (yy, pp) in models.items():
        for name, truth, score in _curves(yy, pp, labels):
            if not truth.any():
                continue
            precision, recall, _ = precision_recall_curve(truth, score)
            ap = average_precision_score(truth, score)
            ax.step(recall, precision, where="post", label=f"{prefix}: class {name} (AP {ap:.3f})")
    ax.set(xlabel="recall", ylabel="precision", title="Precision-recall", ylim=(0, 1.02))
    ax.legend(fontsize=7)
    return fig


def confusion_figure(matrix: Sequence[Sequence[int]], labels: Sequence[str]):
    """A confusion matrix heat map with counts; rows are the true class, columns the predicted one."""
    cm = np.asarray(matrix)
    fig, ax = plt.subplots(figsize=_SIZE)
    ax.imshow(cm, cmap="Blues")
    for (i, j), v in np.ndenumerate(cm):
        ax.text(j, i, str(v), ha="center", va="center", color="white" if v > cm.max() / 2 else "black")
    ax.set_xticks(range(len(labels)), labels)
    ax.set_yticks(range(len(labels)), labels)
    ax.set(xlabel="predicted", ylabel="true", title="Confusion matrix")
    return fig


def reliability_figure(
    confidence: np.ndarray, accuracy: np.ndarray, count: np.ndarray, ece: float, n_bins: int
):
    """Reliability diagram: per-bin accuracy against mean confidence, the diagonal being perfect."""
    fig, ax = plt.subplots(figsize=_SIZE)
    ax.plot([0, 1], [0, 1], "k:", lw=0.8, label="perfect calibration")
    ax.scatter(
        confidence, accuracy, s=10 + 200 * count / max(count.max(), 1), alpha=0.7, label="bins (size = rows)"
    )
    ax.plot(confidence, accuracy, lw=1)
    ax.set(
        xlabel="mean confidence",
        ylabel="accuracy",
        xlim=(0, 1),
        ylim=(0, 1.02),
        title=f"Reliability ({n_bins} equal-width bins, ECE {ece:.3f})",
    )
    ax.legend(fontsize=7)
    return fig


def learning_curve_figure(points: Sequence[dict], metric: str = "accuracy"):
    """Train and dev score against the number of training examples (points: {"n", "train", "dev"})."""
    fig, ax = plt.subplots(figsize=_SIZE)
    n = [p["n"] for p in points]
    ax.plot(n, [p["train"] for p in points], "o-", label="train")
    ax.plot(n, [p["dev"] for p in points], "o-", label="dev")
    ax.set(xscale="log", xlabel="training examples", ylabel=metric, title="Learning curve by data size")
    ax.set_xticks(n, [str(v) for v in n], minor=False)
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    ax.legend()
    return fig


def history_figure(history: Sequence[dict], title: str = "Training history"):
    """Train and dev loss (left) and accuracy (right, where recorded) against the step."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(9.0, 3.6))
    steps = [r["step"] for r in history]
    for key, ax in (
        ("train_loss", left),
        ("dev_loss", left),
        ("train_accuracy", right),
        ("dev_accuracy", right),
    ):
        values = [r.get(key) for r in history]
        if any(v is not None for v in values):
            ax.plot(steps, [np.nan if v is None else v for v in values], "o-", ms=3, label=key)
    left.set(xlabel="step", ylabel="loss", title=title)
    right.set(xlabel="step", ylabel="accuracy")
    for ax in (left, right):
        if ax.get_legend_handles_labels()[0]:  # accuracy is optional in a history
            ax.legend(fontsize=7)
    return fig
