"""The evaluation section of an HTML report, and the same results as a terminal table.

`evaluation_section` runs a `Predictor` (and optionally the linear baseline) over labelled examples, scores
them (`metrics.metrics_with_ci`) and adds to a `Report`: the metric table with 95% bootstrap intervals, the
model beside the baseline; ROC and precision-recall curves; the confusion matrix; the reliability diagram;
the per-class report; the baseline's most telling n-grams; and, when given, the fit diagnosis of the
training history and the learning curve by data size. Figures come from `llmlab.report.plots`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from llmlab.evaluation.calibration import top_label
from llmlab.evaluation.diagnose import Diagnosis
from llmlab.evaluation.metrics import headline, metrics_with_ci
from llmlab.evaluation.predictions import check_labels, check_probabilities
from llmlab.report import plots
from llmlab.report.html import Report


@dataclass
class Scored:
    """One model's predictions on the data and their metrics."""

    name: str
    y: np.ndarray  # (N,) true class ids
    proba: np.ndarray  # (N, K)
    metrics: dict
    predictor: object = None  # the Predictor, when the predictions came from one


def predict(
    predictor, examples: Sequence, source: str = "data", batch_size: int = 64
) -> tuple[np.ndarray, np.ndarray]:
    """(y (N,), proba (N, K)) of a predictor on examples (objects with .text, .label, .text_pair).

    Raises:
        LlmlabError: a label outside the predictor's classes, or probabilities that are NaN, outside [0, 1]
            or do not sum to 1 (naming `source` and the line).
    """
    y = np.array([e.label for e in examples], dtype=np.int64)
    check_labels(y, len(predictor.labels), source)
    pairs = [getattr(e, "text_pair", None) for e in examples]
    pairs = [p or "" for p in pairs] if any(pairs) else None  # a pair set with a few empty second texts
    proba = predictor.predict_proba([e.text for e in examples], pairs, batch_size)
    check_probabilities(
        np.asarray(proba, dtype=np.float64), f"{source} (model {predictor.name})", first_line=2
    )
    return y, np.asarray(proba, dtype=np.float64)


def score(
    predictor,
    examples: Sequence,
    source: str = "data",
    n_boot: int = 1000,
    seed: int = 0,
    batch_size: int = 64,
) -> Scored:
    """Predict and compute every metric with bootstrap intervals (see `predict` for the errors)."""
    y, proba = predict(predictor, examples, source, batch_size)
    return Scored(
        predictor.name, y, proba, metrics_with_ci(y, proba, predictor.labels, n_boot, seed), predictor
    )


def evaluation_section(
    report: Report,
    predictor,
    examples: Sequence,
    baseline=None,
    *,
    source: str = "data",
    n_boot: int = 1000,
    seed: int = 0,
) -> dict:
    """Score `predictor` (and `baseline`, a Predictor, when given) on `examples` and add the section.

    Returns:
        {"model": name, "metrics": {...}} plus "baseline": {"model", "metrics"} when a baseline was given.
    """
    scored = [score(predictor, examples, source, n_boot, seed)]
    if baseline is not None:
        scored.append(score(baseline, examples, source, n_boot, seed))
    add_scored(report, scored, source)
    return as_json(scored)


def as_json(scored: Sequence[Scored]) -> dict:
    """The JSON form of the results: the first model, then the baseline when there is one."""
    out = {"model": scored[0].name, "metrics": scored[0].metrics}
    if len(scored) > 1:
        out["baseline"] = {"model": scored[1].name, "metrics": scored[1].metrics}
    return out


def _ci(metrics: dict, name: str) -> str:
    low, high = metrics["ci"].get(name, (None, None))
    return "undefined" if low is None else f"[{low:.4f}, {high:.4f}]"


def _value(metrics: dict, name: str) -> object:
    value = metrics[name]
    return "undefined" if value is None else value


def metric_rows(scored: Sequence[Scored]) -> list[list[object]]:
    """Rows of (metric, value, CI) for each model side by side."""
    k = scored[0].proba.shape[1]
    return [
        [name, *(x for s in scored for x in (_value(s.metrics, name), _ci(s.metrics, name)))]
        for name in headline(k)
    ]


def add_scored(report: Report, scored: Sequence[Scored], source: str) -> None:
    """The metric table, curves, confusion matrix, reliability diagram, per-class report, and the top n-grams
    of any linear baseline among `scored`."""
    main = scored[0]
    report.section(f"Evaluation: {main.name} on {source}")
    report.text(
        f"{main.metrics['n']} examples, {main.metrics['n_classes']} classes; {main.metrics['ci_method']}. "
        + "; ".join(main.metrics["notes"])
        + "."
    )
    headers = ["metric", *(h for s in scored for h in (s.name, "95% CI"))]
    report.table(headers, metric_rows(scored))
    models = {
        f"{s.name}" + (f" #{i + 1}" if s.name in {t.name for t in scored[:i]} else ""): (s.y, s.proba)
        for i, s in enumerate(scored)
    }
    labels = main.metrics["labels"]
    report.figure(plots.roc_figure(models, labels), "ROC curves (baseline beside the model)")
    report.figure(plots.pr_figure(models, labels), "Precision-recall curves, average precision")
    report.figure(
        plots.confusion_figure(main.metrics["confusion_matrix"], labels), f"Confusion matrix of {main.name}"
    )
    r = top_label(main.y, main.proba)
    report.figure(
        plots.reliability_figure(r.confidence, r.accuracy, r.count, main.metrics["ece"], r.n_bins),
        "Reliability diagram: top-label confidence against accuracy",
    )
    per_class = main.metrics["per_class"]
    rows = [
        [
            name,
            *(per_class[name][m] for m in ("precision", "recall", "f1-score")),
            int(per_class[name]["support"]),
        ]
        for name in labels
    ]
    report.table(["class", "precision", "recall", "F1", "support"], rows)
    for s in scored:
        if hasattr(s.predictor, "classifier"):  # a LinearBaseline: show what it learned
            add_top_features(report, s.predictor)


def add_top_features(report: Report, baseline, n: int = 10) -> None:
    """The n-grams with the largest logistic-regression coefficient for each class."""
    from llmlab.evaluation.features import top_features

    report.text(f"Linear baseline {baseline.name}: the {n} n-grams with the largest coefficient per class.")
    top = top_features(baseline, n)
    report.table(
        ["rank", *top], [[i + 1, *(f"{t[i][0]} ({t[i][1]:+.2f})" for t in top.values())] for i in range(n)]
    )


def add_diagnosis(report: Report, history: Sequence[dict], diagnosis: Diagnosis) -> None:
    """The training curves, the verdict, the rule and the remedies."""
    report.section("Fit diagnosis")
    report.figure(plots.history_figure(history), "Train and dev loss / accuracy by step")
    report.text(f"Diagnosis: {diagnosis.label}. Evidence: {'; '.join(diagnosis.evidence)}.")
    report.text(f"Rule: {diagnosis.rule}.")
    report.text("Remedies: " + "; ".join(diagnosis.remedies) + ".")


def add_learning_curve(report: Report, points: Sequence[dict], what: str) -> None:
    """Train and dev accuracy against the training-set size."""
    report.section(f"Learning curve by data size: {what}")
    report.figure(plots.learning_curve_figure(points), "Accuracy vs training examples (10%, 30%, 100%)")
    report.table(
        ["fraction", "examples", "train accuracy", "dev accuracy"],
        [[p["fraction"], p["n"], p["train"], p["dev"]] for p in points],
    )


def format_table(scored: Sequence[Scored]) -> str:
    """The headline metrics as a plain-text table for the terminal."""
    headers = ["metric", *(h for s in scored for h in (s.name[:28], "95% CI"))]
    rows = [[str(c) if not isinstance(c, float) else f"{c:.4f}" for c in row] for row in metric_rows(scored)]
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in [headers, *rows]]
    notes = [n for n in scored[0].metrics["notes"] if n.startswith("AUC")]
    return "\n".join(
        [*lines, f"({scored[0].metrics['n']} examples; {scored[0].metrics['ci_method']})", *notes]
    )
