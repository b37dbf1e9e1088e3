"""Offline comparison of two classifiers on the same labelled rows (paired tests).

- McNemar's test on paired correctness (McNemar 1947): exact binomial on the discordant pairs, and the
  chi-square with continuity correction; = `statsmodels.stats.contingency_tables.mcnemar(exact=True/False)`;
- a paired percentile bootstrap (Efron & Tibshirani 1993, ch. 13): rows resampled jointly for both models, for
  the differences of accuracy, macro F1 (= sklearn `f1_score(average="macro", zero_division=0)`) and AUC
  (binary; one-vs-rest macro for K > 2 = sklearn `roc_auc_score(multi_class="ovr")`). A resample is a
  (B, N) matrix of row counts, so every metric is a weighted sum and the whole bootstrap is vectorised;
- DeLong, DeLong & Clarke-Pearson (1988) for the difference of two correlated AUCs, computed with the
  O(N log N) midrank algorithm of Sun & Xu (2014, IEEE Signal Processing Letters 21(11)); binary only;
- a paired permutation test: each row's two predictions are swapped with probability 1/2;
- effect sizes: Cohen's h between the accuracies and the odds ratio of the discordant pairs (B right and
  A wrong over A right and B wrong) with its exact (Clopper-Pearson) interval.
Every difference is B minus A.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from llmlab.abtest.power import cohens_h
from llmlab.abtest.stats import TestResult
from llmlab.errors import LlmlabError

METRICS = ("accuracy", "macro_f1", "auc")
_CHUNK_VALUES = 4_000_000  # bootstrap count matrices are built in chunks of about this many entries


def mcnemar(correct_a: np.ndarray, correct_b: np.ndarray) -> dict:
    """McNemar's test of equal accuracy on paired rows.

    Args:
        correct_a, correct_b: (N,) bool, whether each model got each row right.

    Returns:
        {"table": [[both right, only A right], [only B right, both wrong]], "exact_pvalue",
         "chi2_statistic", "chi2_pvalue"} (chi-square with continuity correction; p = 1 without discordants).
    """
    a = np.asarray(correct_a, bool)
    b = np.asarray(correct_b, bool)
    only_a = int((a & ~b).sum())
    only_b = int((~a & b).sum())
    discordant = only_a + only_b
    exact = min(1.0, 2 * float(stats.binom.cdf(min(only_a, only_b), discordant, 0.5)))
    chi2 = (abs(only_a - only_b) - 1) ** 2 / discordant if discordant else 0.0
    return {
        "table": [[int((a & b).sum()), only_a], [only_b, int((~a & ~b).sum())]],
        "exact_pvalue": exact,
        "chi2_statistic": float(chi2),
        "chi2_pvalue": float(stats.chi2.sf(chi2, 1)) if discordant else 1.0,
    }


def weighted_metrics(weights: np.ndarray, y_true: np.ndarray, proba: np.ndarray) -> dict[str, np.ndarray]:
    """Accuracy, macro F1 and AUC of one model on R weighted copies of the rows (a weight = a row count).

    Args:
        weights: (R, N) non-negative row weights (ones for the plain metric; bootstrap counts).
        y_true: (N,) class ids 0..K-1.
        proba: (N, K) predicted probabilities.

    Returns:
        {metric: (R,)}; an AUC is nan where a class has no positive or no negative weight.
    """
    k = proba.shape[1]
    pred = proba.argmax(1)
    w = weights.astype(float)
    total = w.sum(1)  # (R,)
    f1 = np.zeros((w.shape[0], k))
    for c in range(k):
        tp = w @ ((y_true == c) & (pred == c))
        denominator = w @ (pred == c) + w @ (y_true == c)
        f1[:, c] = np.divide(2 * tp, denominator, out=np.zeros_like(tp), where=denominator > 0)
    if k == 2:
        auc = _weighted_auc(w, y_true == 1, proba[:, 1])
    else:
        auc = np.mean([_weighted_auc(w, y_true == c, proba[:, c]) for c in range(k)], axis=0)
    return {"accuracy": (w @ (pred == y_true)) / total, "macro_f1": f1.mean(1), "auc": auc}


def _weighted_auc(w: np.ndarray, positive: np.ndarray, score: np.ndarray) -> np.ndarray:
    """(R,) Mann-Whitney AUC with row weights: ties count 1/2; rows sorted once, tied scores grouped."""
    order = np.argsort(score, kind="stable")
    s = score[order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])  # first row of each group of equal scores
    ws = w[:, order]
    pos = positive[order]
    n_pos = np.add.reduceat(ws * pos, starts, axis=1)  # (R, G) positive weight per score group
    n_neg = np.add.reduceat(ws * ~pos, starts, axis=1)
    below = np.cumsum(n_neg, axis=1) - n_neg  # negative weight strictly below each group
    with np.errstate(divide="ignore", invalid="ignore"):
        return (n_pos * (below + 0.5 * n_neg)).sum(1) / (n_pos.sum(1) * n_neg.sum(1))


def bootstrap_counts(n: int, n_boot: int, rng: np.random.Generator):
    """Yield (R, n) matrices of row counts of bootstrap resamples, R <= n_boot in all, in chunks."""
    chunk = max(1, _CHUNK_VALUES // n)
    for start in range(0, n_boot, chunk):
        r = min(chunk, n_boot - start)
        idx = rng.integers(0, n, (r, n)) + n * np.arange(r)[:, None]
        yield np.bincount(idx.ravel(), minlength=r * n).reshape(r, n)


def paired_bootstrap(
    y_true: np.ndarray,
    proba_a: np.ndarray,
    proba_b: np.ndarray,
    n_boot: int = 2000,
    seed: int = 0,
    alpha: float = 0.05,
) -> dict[str, dict]:
    """Percentile intervals of metric(B) - metric(A), resampling rows jointly for both models.

    Returns:
        {metric: {"a", "b", "diff", "ci_low", "ci_high"}}.
    """
    y = np.asarray(y_true)
    point = [weighted_metrics(np.ones((1, y.size)), y, p) for p in (proba_a, proba_b)]
    diffs: dict[str, list] = {m: [] for m in METRICS}
    for counts in bootstrap_counts(y.size, n_boot, np.random.default_rng(seed)):
        ma = weighted_metrics(counts, y, proba_a)
        mb = weighted_metrics(counts, y, proba_b)
        for m in METRICS:
            diffs[m].append(mb[m] - ma[m])
    out = {}
    for m in METRICS:
        low, high = np.nanquantile(np.concatenate(diffs[m]), [alpha / 2, 1 - alpha / 2])
        a = float(point[0][m][0])
        b = float(point[1][m][0])
        out[m] = {"a": a, "b": b, "diff": b - a, "ci_low": float(low), "ci_high": float(high)}
    return out


def delong_test(
    y_true: np.ndarray, score_a: np.ndarray, score_b: np.ndarray, alpha: float = 0.05
) -> TestResult:
    """DeLong's test of AUC(B) = AUC(A) for two scores of the same rows (fast midrank version).

    Args:
        y_true: (N,) 0/1 labels.
        score_a, score_b: (N,) scores (higher = more likely class 1).

    Raises:
        LlmlabError: one class is missing.
    """
    y = np.asarray(y_true).astype(bool)
    m = int(y.sum())
    k = int((~y).sum())
    if m < 2 or k < 2:
        raise LlmlabError(f"DeLong: need 2+ rows of each class (got {m} positive, {k} negative)")
    scores = np.vstack([score_a, score_b]).astype(float)  # (2, N)
    x, z = scores[:, y], scores[:, ~y]  # (2, m) positives, (2, k) negatives
    tx = stats.rankdata(x, axis=1)
    tz = stats.rankdata(z, axis=1)
    t_all = stats.rankdata(np.hstack([x, z]), axis=1)  # midranks among all rows
    auc = (t_all[:, :m].sum(1) - m * (m + 1) / 2) / (m * k)  # (2,)
    v10 = (t_all[:, :m] - tx) / k  # (2, m) per positive: share of negatives below it
    v01 = 1 - (t_all[:, m:] - tz) / m  # (2, k) per negative: share of positives above it
    cov = np.cov(v10) / m + np.cov(v01) / k  # (2, 2)
    diff = float(auc[1] - auc[0])
    se = math.sqrt(max(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1], 0.0))
    z_stat = diff / se if se > 0 else 0.0
    half = stats.norm.isf(alpha / 2) * se
    return TestResult("DeLong", diff, diff - half, diff + half, z_stat, float(2 * stats.norm.sf(abs(z_stat))))


def permutation_test(
    correct_a: np.ndarray, correct_b: np.ndarray, n_perm: int = 10000, seed: int = 0
) -> dict:
    """Paired permutation test of the accuracy difference: swap each row's A and B predictions at random.

    A swap changes a row only when the models disagree on its correctness, so only those rows are drawn.

    Returns:
        {"diff", "pvalue" = (1 + #{|perm diff| >= |diff|}) / (1 + n_perm), "n_perm"}.
    """
    d = np.asarray(correct_b, float) - np.asarray(correct_a, float)  # (N,) in {-1, 0, 1}
    observed = d.sum() / d.size
    dd = d[d != 0]
    rng = np.random.default_rng(seed)
    chunk = max(1, _CHUNK_VALUES // max(dd.size, 1))
    extreme = 0
    for start in range(0, n_perm, chunk):
        signs = rng.integers(0, 2, (min(chunk, n_perm - start), dd.size)) * 2 - 1  # (r, D): swap or not
        extreme += int((np.abs(signs @ dd) / d.size >= abs(observed) - 1e-12).sum())
    return {"diff": float(observed), "pvalue": (1 + extreme) / (1 + n_perm), "n_perm": n_perm}


def effect_sizes(correct_a: np.ndarray, correct_b: np.ndarray, alpha: float = 0.05) -> dict:
    """Cohen's h between the accuracies, and the discordant-pair odds ratio with its exact interval."""
    a = np.asarray(correct_a, bool)
    b = np.asarray(correct_b, bool)
    only_a = int((a & ~b).sum())
    only_b = int((~a & b).sum())
    out = {"cohens_h": cohens_h(float(a.mean()), float(b.mean())), "odds_ratio": None}
    if only_a + only_b:
        ci = stats.binomtest(only_b, only_a + only_b).proportion_ci(1 - alpha, method="exact")
        odds = [p / (1 - p) if p < 1 else math.inf for p in (only_b / (only_a + only_b), ci.low, ci.high)]
        out.update(odds_ratio=odds[0], odds_ratio_ci=[odds[1], odds[2]])
    return out


def verdict(names: tuple[str, str], accuracy: dict, mcnemar_p: float, alpha: float = 0.05) -> str:
    """One line: which model is better (or neither), the accuracy difference in points with its CI, McNemar p."""
    a, b = names
    head = f"no significant difference between {a} and {b}"
    if mcnemar_p < alpha:
        head = f"{b} is better than {a}" if accuracy["diff"] > 0 else f"{a} is better than {b}"
    points = f"{100 * accuracy['diff']:+.1f} points [{100 * accuracy['ci_low']:.1f}, {100 * accuracy['ci_high']:.1f}]"
    return f"{head}: accuracy {points}, McNemar p={mcnemar_p:.3g}"


def compare_predictions(
    y_true: np.ndarray,
    proba_a: np.ndarray,
    proba_b: np.ndarray,
    names: tuple[str, str] = ("A", "B"),
    n_boot: int = 2000,
    n_perm: int = 10000,
    seed: int = 0,
    alpha: float = 0.05,
) -> dict:
    """Every paired comparison of two models' predicted probabilities on the same rows.

    Args:
        y_true: (N,) class ids; proba_a, proba_b: (N, K) probabilities.

    Returns:
        {"names", "n", "mcnemar", "bootstrap", "delong" (None for K > 2), "permutation", "effect", "verdict"}.

    Raises:
        LlmlabError: the shapes disagree.
    """
    y = np.asarray(y_true)
    pa = np.asarray(proba_a, float)
    pb = np.asarray(proba_b, float)
    if pa.shape != pb.shape or pa.shape[0] != y.size:
        raise LlmlabError(f"compare: labels {y.shape}, probabilities {pa.shape} and {pb.shape} disagree")
    correct_a, correct_b = pa.argmax(1) == y, pb.argmax(1) == y
    boot = paired_bootstrap(y, pa, pb, n_boot, seed, alpha)
    test = mcnemar(correct_a, correct_b)
    binary = pa.shape[1] == 2
    return {
        "names": list(names),
        "n": int(y.size),
        "mcnemar": test,
        "bootstrap": boot,
        "delong": delong_test(y, pa[:, 1], pb[:, 1], alpha).to_dict() if binary else None,
        "permutation": permutation_test(correct_a, correct_b, n_perm, seed),
        "effect": effect_sizes(correct_a, correct_b, alpha),
        "verdict": verdict(names, boot["accuracy"], test["exact_pvalue"], alpha),
    }
