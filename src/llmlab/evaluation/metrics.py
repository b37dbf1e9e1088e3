"""Classification metrics from predicted probabilities: scikit-learn computes, llmlab gathers and reports.

Every number comes from `sklearn.metrics` (accuracy_score, precision_recall_fscore_support, roc_auc_score,
average_precision_score, confusion_matrix, log_loss, classification_report) and is tested equal to it to
1e-12. Conventions, stated once:
- the prediction is the most probable class (`argmax`, ties to the lowest class id);
- precision / recall / F1 use `zero_division=0` (a class never predicted has precision 0), averaged
  "binary" (positive class 1, two classes only), "macro", "micro" and "weighted" over all K classes;
- ROC-AUC is binary (score of class 1) or one-vs-rest macro; PR-AUC is average precision (binary, or
  one-vs-rest macro). When y_true lacks a class the AUC is undefined: the value is None and a note says why;
- log-loss is natural-log cross-entropy with sklearn's clipping to [eps, 1 - eps];
- ECE is the top-label expected calibration error over equal-width bins (`llmlab.evaluation.calibration`).

`headline(K)` names the metrics that get bootstrap confidence intervals; each is a `Metric` whose `fn(y, proba)`
gives one float and whose optional `batched(y, proba, idx)` scores all resamples `idx` (B, N) at once;
`bootstrap_ci` (from `llmlab.evaluation.bootstrap`) is re-exported here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from sklearn import metrics as skm
from sklearn.preprocessing import label_binarize

from llmlab.evaluation.bootstrap import Metric, bootstrap_ci
from llmlab.evaluation.calibration import N_BINS, expected_calibration_error

__all__ = ["Metric", "bootstrap_ci", "classification_metrics", "headline", "metrics_with_ci"]

AVERAGES = ("binary", "macro", "micro", "weighted")


def predictions(proba: np.ndarray) -> np.ndarray:
    """The predicted class of each row: argmax, ties to the lowest class id. (N, K) -> (N,)."""
    return np.asarray(proba).argmax(axis=1)


def accuracy(y: np.ndarray, proba: np.ndarray) -> float:
    """Share of rows whose argmax is the true class (sklearn accuracy_score)."""
    return float(skm.accuracy_score(y, predictions(proba)))


def _accuracy_batched(y: np.ndarray, proba: np.ndarray, idx: np.ndarray) -> np.ndarray:
    correct = (predictions(proba) == y).astype(np.float64)  # (N,)
    return correct[idx].mean(axis=1)  # (B,)


def prf(y: np.ndarray, proba: np.ndarray, average: str) -> tuple[float, float, float]:
    """(precision, recall, F1) with `average` in AVERAGES; zero_division=0."""
    k = proba.shape[1]
    p, r, f, _ = skm.precision_recall_fscore_support(
        y,
        predictions(proba),
        labels=None if average == "binary" else list(range(k)),
        average=average,
        zero_division=0,
    )
    return float(p), float(r), float(f)


def _confusions(y: np.ndarray, pred: np.ndarray, idx: np.ndarray, k: int) -> np.ndarray:
    """Confusion matrices of the resamples: idx (B, N) -> (B, K, K), [b, true, pred] counts."""
    b = np.arange(len(idx))[:, None]  # (B, 1)
    codes = (b * k * k + y[idx] * k + pred[idx]).ravel()  # (B*N,)
    return np.bincount(codes, minlength=len(idx) * k * k).reshape(len(idx), k, k).astype(np.float64)


def _divide(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, and 0 where den is 0 (sklearn's zero_division=0)."""
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


def _prf_batched(average: str, which: int) -> Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]:
    """Vectorised precision (0) / recall (1) / F1 (2) over resamples, as sklearn computes them."""

    def batched(y: np.ndarray, proba: np.ndarray, idx: np.ndarray) -> np.ndarray:
        cm = _confusions(y, predictions(proba), idx, proba.shape[1])  # (B, K, K)
        tp, true, pred = np.einsum("bkk->bk", cm), cm.sum(axis=2), cm.sum(axis=1)  # each (B, K)
        if average == "micro":
            tp, true, pred = tp.sum(1, keepdims=True), true.sum(1, keepdims=True), pred.sum(1, keepdims=True)
        if average == "binary":
            tp, true, pred = tp[:, 1:2], true[:, 1:2], pred[:, 1:2]
        score = [_divide(tp, pred), _divide(tp, true), _divide(2 * tp, true + pred)][which]  # (B, K')
        if average != "weighted":
            return score.mean(axis=1)
        return _divide((score * true).sum(axis=1), true.sum(axis=1))

    return batched


def log_loss(y: np.ndarray, proba: np.ndarray) -> float:
    """Mean natural-log cross-entropy over all K classes (sklearn log_loss, labels 0..K-1)."""
    return float(skm.log_loss(y, proba, labels=list(range(proba.shape[1]))))


def _log_loss_batched(y: np.ndarray, proba: np.ndarray, idx: np.ndarray) -> np.ndarray:
    eps = np.finfo(proba.dtype).eps  # sklearn clips to [eps, 1 - eps]
    nll = -np.log(np.clip(proba[np.arange(len(y)), y], eps, 1 - eps))  # (N,)
    return nll[idx].mean(axis=1)


def auc_problem(y: np.ndarray, k: int) -> str | None:
    """Why ROC-AUC / PR-AUC are undefined for these labels, or None when they are defined."""
    present = np.unique(y)
    if len(present) < 2:
        return f"AUC undefined: y_true holds one class only ({int(present[0]) if len(present) else 'none'})"
    if k > 2 and len(present) < k:
        missing = sorted(set(range(k)) - set(present.tolist()))
        return f"AUC undefined: one-vs-rest needs every class in y_true; missing {missing}"
    return None


def roc_auc(y: np.ndarray, proba: np.ndarray) -> float | None:
    """Binary ROC-AUC of class 1, or one-vs-rest macro ROC-AUC; None when undefined (`auc_problem`)."""
    if auc_problem(y, proba.shape[1]):
        return None
    if proba.shape[1] == 2:
        return float(skm.roc_auc_score(y, proba[:, 1]))
    return float(
        skm.roc_auc_score(y, proba, multi_class="ovr", average="macro", labels=list(range(proba.shape[1])))
    )


def _roc_auc_batched(y: np.ndarray, proba: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Binary ROC-AUC of each resample as the Mann-Whitney U statistic, U / (n_pos n_neg), with average
    ranks for ties (equal to roc_auc_score); NaN where a resample holds one class."""
    from scipy.stats import rankdata

    ranks = rankdata(proba[:, 1][idx], axis=1)  # (B, N), ties get their average rank
    positive = y[idx] == 1  # (B, N)
    n_pos = positive.sum(axis=1).astype(np.float64)
    n_neg = idx.shape[1] - n_pos
    u = (ranks * positive).sum(axis=1) - n_pos * (n_pos + 1) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where((n_pos > 0) & (n_neg > 0), u / (n_pos * n_neg), np.nan)


def pr_auc(y: np.ndarray, proba: np.ndarray) -> float | None:
    """Average precision of class 1, or one-vs-rest macro; None when undefined (`auc_problem`)."""
    if auc_problem(y, proba.shape[1]):
        return None
    if proba.shape[1] == 2:
        return float(skm.average_precision_score(y, proba[:, 1]))
    onehot = label_binarize(y, classes=list(range(proba.shape[1])))  # (N, K)
    return float(skm.average_precision_score(onehot, proba, average="macro"))


def ece(y: np.ndarray, proba: np.ndarray) -> float:
    """Top-label expected calibration error with `N_BINS` equal-width bins."""
    return expected_calibration_error(y, proba, N_BINS)


def headline(k: int) -> dict[str, Metric]:
    """The metrics reported with confidence intervals for K classes, in table order."""
    averages = ("binary", "macro") if k == 2 else ("macro", "weighted")
    table = {"accuracy": Metric(accuracy, _accuracy_batched)}
    for average in averages:
        for which, name in enumerate(("precision", "recall", "f1")):
            table[f"{name}_{average}"] = Metric(
                lambda y, p, a=average, w=which: prf(y, p, a)[w], _prf_batched(average, which)
            )
    table["roc_auc"] = Metric(roc_auc, _roc_auc_batched if k == 2 else None)
    table["pr_auc"] = Metric(pr_auc)
    table["log_loss"] = Metric(log_loss, _log_loss_batched)
    table["ece"] = Metric(ece)
    return table


def classification_metrics(
    y_true: Sequence[int] | np.ndarray, proba: np.ndarray, labels: Sequence[str] | None = None
) -> dict:
    """Every classification metric of predicted probabilities against true class ids.

    Args:
        y_true: (N,) class ids 0..K-1.
        proba: (N, K) probabilities, rows summing to 1 (see `predictions.check_probabilities`).
        labels: the K class names (default "0".."K-1"), used in the per-class report.

    Returns:
        {"n", "n_classes", "labels", "accuracy", "{precision,recall,f1}_{binary (K=2 only),macro,micro,
        weighted}", "roc_auc", "pr_auc" (None when undefined), "log_loss", "ece", "ece_bins",
        "confusion_matrix" (K x K lists, rows = true class), "per_class" (sklearn's classification_report
        dict), "notes" (list of str: undefined metrics, conventions)}.
    """
    y, proba = np.asarray(y_true, dtype=np.int64), np.asarray(proba, dtype=np.float64)
    k = proba.shape[1]
    names = list(labels) if labels is not None else [str(i) for i in range(k)]
    out: dict = {"n": len(y), "n_classes": k, "labels": names, "accuracy": accuracy(y, proba)}
    for average in AVERAGES if k == 2 else AVERAGES[1:]:
        scores = prf(y, proba, average)
        out.update(
            {f"{name}_{average}": s for name, s in zip(("precision", "recall", "f1"), scores, strict=True)}
        )
    out.update(roc_auc=roc_auc(y, proba), pr_auc=pr_auc(y, proba), log_loss=log_loss(y, proba))
    out.update(ece=ece(y, proba), ece_bins=N_BINS)
    out["confusion_matrix"] = skm.confusion_matrix(y, predictions(proba), labels=list(range(k))).tolist()
    out["per_class"] = skm.classification_report(
        y, predictions(proba), labels=list(range(k)), target_names=names, output_dict=True, zero_division=0
    )
    out["notes"] = [n for n in [auc_problem(y, k)] if n] + [
        "precision/recall/F1 use zero_division=0; prediction = argmax of the probabilities",
        f"ECE: top-label confidence, {N_BINS} equal-width bins (biased upward on resamples: its interval"
        " can lie above the point value)",
    ]
    return out


def metrics_with_ci(
    y_true: Sequence[int] | np.ndarray,
    proba: np.ndarray,
    labels: Sequence[str] | None = None,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict:
    """`classification_metrics` plus "ci": {headline metric: [low, high]} (95% percentile bootstrap,
    `n_boot` resamples, `seed`; [None, None] where undefined) and "ci_method", a sentence saying so."""
    y, proba = np.asarray(y_true, dtype=np.int64), np.asarray(proba, dtype=np.float64)
    out = classification_metrics(y, proba, labels)
    out["ci"] = {
        name: list(bootstrap_ci(y, proba, m, n_boot, seed)) for name, m in headline(proba.shape[1]).items()
    }
    out["ci_method"] = f"95% percentile bootstrap, {n_boot} resamples, seed {seed}"
    return out
