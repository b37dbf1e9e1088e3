"""Feature importance and feature selection for the linear baseline.

- Importance: the logistic-regression coefficients per class (for two classes sklearn keeps one row w for
  class 1; class 0's evidence is -w). The top features of a class are its largest coefficients.
- Correlation pruning: among the `top_n` features by importance (largest |coefficient| over classes), walk
  them in order of importance and drop a feature whose |Pearson r| with an already kept one exceeds the
  threshold. r is computed exactly over all rows from the sparse TF-IDF matrix, cov = X'X/N - mean mean'
  (tested equal to `numpy.corrcoef`).
- Recursive feature elimination: `sklearn.feature_selection.RFE` with a logistic regression on the `top_n`
  features, removing `step` (a fraction of them) per round until `n_select` remain (Guyon et al. 2002).
After selection the baseline is refitted on the kept n-grams only (`LinearBaseline.fit(vocabulary=...)`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from llmlab.errors import LlmlabError
from llmlab.evaluation.baseline import LinearBaseline

SELECTIONS = ("none", "corr", "rfe")


def importance(model: LinearBaseline) -> np.ndarray:
    """(K, F) per-class coefficients: row k is the evidence each feature gives for class k."""
    coef = model.classifier.coef_  # (K, F), or (1, F) for two classes
    return np.vstack([-coef[0], coef[0]]) if coef.shape[0] == 1 else coef


def top_features(model: LinearBaseline, n: int = 10) -> dict[str, list[tuple[str, float]]]:
    """The `n` n-grams with the largest coefficient for each class: {class name: [(term, weight), ...]}."""
    weights = importance(model)
    terms = model.terms
    return {
        name: [(str(terms[j]), float(weights[k, j])) for j in np.argsort(-weights[k], kind="stable")[:n]]
        for k, name in enumerate(model.labels)
    }


def ranked_columns(model: LinearBaseline, top_n: int) -> np.ndarray:
    """The `top_n` feature columns by max |coefficient| over classes, most important first."""
    score = np.abs(importance(model)).max(axis=0)  # (F,)
    return np.argsort(-score, kind="stable")[:top_n]


def pearson_matrix(x) -> np.ndarray:
    """Pearson correlation of the columns of x (N, F') (sparse or dense) -> (F', F'); constant columns 0."""
    n = x.shape[0]
    mean = np.asarray(x.mean(axis=0)).ravel()  # (F',)
    gram = x.T @ x
    cov = (gram.toarray() if hasattr(gram, "toarray") else np.asarray(gram)) / n - np.outer(mean, mean)
    std = np.sqrt(np.clip(np.diag(cov), 0, None))  # (F',)
    return np.divide(cov, np.outer(std, std), out=np.zeros_like(cov), where=np.outer(std, std) > 0)


def correlation_prune(x, columns: np.ndarray, threshold: float = 0.9) -> np.ndarray:
    """Keep each of `columns` (in order) unless |r| with an already kept one exceeds `threshold`."""
    r = np.abs(pearson_matrix(x[:, columns]))  # (C, C)
    kept: list[int] = []
    for i in range(len(columns)):
        if not kept or r[i, kept].max() <= threshold:
            kept.append(i)
    return columns[kept]


def rfe_select(
    x, y: np.ndarray, columns: np.ndarray, n_select: int, step: float, seed: int = 0
) -> np.ndarray:
    """The `n_select` of `columns` that sklearn's RFE keeps with a logistic regression, in column order."""
    from sklearn.feature_selection import RFE
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    estimator = LogisticRegression(max_iter=1000, random_state=seed)
    with threadpool_limits(1):  # as in LinearBaseline.fit
        rfe = RFE(estimator, n_features_to_select=n_select, step=step).fit(x[:, columns], y)
    return np.sort(columns[rfe.support_])


def select_features(
    model: LinearBaseline,
    texts: Sequence[str],
    labels: Sequence[int],
    method: str,
    top_n: int = 2000,
    threshold: float = 0.9,
    n_select: int = 500,
    step: float = 0.1,
) -> tuple[LinearBaseline, dict]:
    """Select features of a fitted baseline and refit it on them.

    Args:
        model: a fitted `LinearBaseline`.
        texts, labels: its training data.
        method: "none" (return `model`), "corr" (correlation pruning) or "rfe" (recursive elimination).
        top_n: candidates: the most important features.
        threshold: |r| above which "corr" drops the less important feature of a pair.
        n_select: features "rfe" keeps; step: the share of `top_n` it removes per round.

    Returns:
        (the refitted baseline, {"method", "features_before", "features_after", ...settings}).

    Raises:
        LlmlabError: an unknown method.
    """
    if method not in SELECTIONS:
        raise LlmlabError(f"--select: unknown method {method!r}; choose one of {', '.join(SELECTIONS)}")
    info = {"method": method, "features_before": len(model.terms)}
    if method == "none":
        return model, {**info, "features_after": len(model.terms)}
    x = model.features(texts)
    columns = ranked_columns(model, top_n)
    if method == "corr":
        kept, info = (
            correlation_prune(x, columns, threshold),
            {**info, "top_n": top_n, "threshold": threshold},
        )
    else:
        y = np.asarray(labels)
        kept = rfe_select(x, y, columns, min(n_select, len(columns)), step, model.seed)
        info = {**info, "top_n": top_n, "n_select": n_select, "step": step}
    refit = LinearBaseline(model.c, model.min_df, model.analyzer, model.seed)
    refit.fit(texts, labels, vocabulary=model.terms[np.sort(kept)].tolist())
    return refit, {**info, "features_after": len(kept)}
