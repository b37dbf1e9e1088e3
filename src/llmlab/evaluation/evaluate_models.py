"""Evaluate classifiers on a labelled file: what `llmlab evaluate MODEL... DATA` computes, callable from Python.

    from llmlab.evaluation import evaluate
    result = evaluate("runs/ft", "dev.csv")          # {"model": ..., "metrics": {...}, "diagnosis": {...}}
    result["metrics"]["accuracy"], result["metrics"]["ci"]["accuracy"]

The layout (also what `--json` prints): `model` (the model's name), `metrics` (accuracy, precision/recall/F1
by averaging, ROC-AUC, PR-AUC, log-loss, ECE, `ci` with the 95% bootstrap intervals, confusion matrix,
per-class report, notes), `baseline` ({model, metrics}, when a linear baseline is scored beside the model) and
`diagnosis` (the fit diagnosis of a single fine-tuned folder with a history.json).
"""

from __future__ import annotations

import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from llmlab.errors import LlmlabError
from llmlab.evaluation.baseline import LinearBaseline
from llmlab.evaluation.diagnose import diagnose, read_history
from llmlab.evaluation.predictor import load_predictor
from llmlab.evaluation.report import Scored, as_json, score
from llmlab.finetuning.data import Example, read_examples
from llmlab.model.precision import resolve_precision

__all__ = ["evaluate", "fit_history", "results_json", "score_models"]


def evaluate(
    models: str | Path | list[str | Path],
    data: str | Path,
    baseline: str | Path | None = None,
    baseline_train: str | Path | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    batch_size: int = 64,
    precision: str = "auto",
) -> dict[str, Any]:
    """Score model folders (several: their ensemble) on a labelled CSV/JSONL file.

    Args:
        models: a fine-tuned or baseline folder, or a list of them (averaged probabilities).
        data: labelled CSV (text,label) or JSONL.
        baseline: a linear-baseline folder scored beside the model; or `baseline_train`, a training file
            to fit one on.
        n_boot: bootstrap resamples for the 95% intervals; seed: their seed.
        batch_size: examples per forward pass (inputs sorted by length, so each batch pads little).
        precision: "auto" (bf16-mixed where the processor has native bfloat16, else fp32), "fp32",
            "bf16-mixed" or "bf16": what the fine-tuned models run in (`llmlab.model.precision`).

    Returns:
        The metrics dict laid out as the module docstring says.

    Raises:
        LlmlabError: a missing folder, a bad data file, labels outside the model's classes, an unknown
            precision or bf16 on a processor without it.
    """
    precision = resolve_precision(precision)
    folders = [Path(m) for m in (models if isinstance(models, list) else [models])]
    base = Path(baseline) if baseline is not None else None
    train = Path(baseline_train) if baseline_train is not None else None
    scored, _ = score_models(folders, Path(data), base, train, n_boot, seed, batch_size, precision)
    return results_json(scored, fit_history(folders))


def score_models(
    models: list[Path],
    data: Path,
    baseline: Path | None,
    baseline_train: Path | None,
    n_boot: int,
    seed: int,
    batch_size: int,
    precision: str = "fp32",
) -> tuple[list[Scored], list[Example]]:
    """(the model's score, then the baseline's when asked for; the examples read from `data`)."""
    examples = read_examples(data)
    predictors = [load_predictor(models, precision)]
    if baseline is not None or baseline_train is not None:
        predictors.append(_baseline(baseline, baseline_train))
    return [score(p, examples, str(data), n_boot, seed, batch_size) for p in predictors], examples


def _baseline(folder: Path | None, train: Path | None) -> LinearBaseline:
    if folder is not None:
        return LinearBaseline.load(folder)
    examples = read_examples(train)
    print(f"training the linear baseline on {train} ({len(examples)} examples)", file=sys.stderr)
    model = LinearBaseline().fit([e.text for e in examples], [e.label for e in examples])
    model.name = "linear-baseline"
    return model


def fit_history(models: list[Path]):
    """(history, diagnosis) of a single model folder with history.json, else None (a history too short to
    diagnose is said on stderr: the evaluation goes on without it)."""
    if len(models) != 1 or not (models[0] / "history.json").is_file():
        return None
    history = read_history(models[0])
    try:
        return history, diagnose(history)
    except LlmlabError as e:
        print(f"{models[0] / 'history.json'}: no fit diagnosis: {e}", file=sys.stderr)
        return None


def results_json(scored: list[Scored], history) -> dict[str, Any]:
    """The result dict: the model's metrics, the baseline's beside it, the fit diagnosis."""
    result = as_json(scored)
    if history is not None:
        result["diagnosis"] = asdict(history[1])
    return result
