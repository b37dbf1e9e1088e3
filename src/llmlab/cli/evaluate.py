"""The `llmlab` subcommands of this topic: evaluate, baseline, diagnose; `register` adds them to the main app
(see llmlab.cli). Results go to stdout (`--json`: one JSON object and nothing else), progress to stderr."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from llmlab.cli.options import PRECISION_HELP
from llmlab.errors import LlmlabError
from llmlab.validate import check_input, check_output, undo_on_failure


def _dumps(obj) -> str:
    """JSON with numpy scalars as Python numbers; NaN is written as null."""

    def default(o):
        if hasattr(o, "item"):  # numpy scalars
            return o.item()
        raise TypeError(f"{type(o).__name__} is not JSON serialisable")

    return json.dumps(_nan_to_none(obj), ensure_ascii=False, default=default)


def _nan_to_none(obj):
    if isinstance(obj, float) and obj != obj:
        return None
    if isinstance(obj, dict):
        return {k: _nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_nan_to_none(v) for v in obj]
    return obj


def _log(message: str) -> None:
    print(message, file=sys.stderr)


def evaluate(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(
            help="MODEL... DATA: model folders (several: an ensemble), then a labelled CSV/JSONL "
            "(text,label), or a .txt file for a language model (perplexity, bits per character)."
        ),
    ] = None,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print one JSON object of metrics, nothing else.")
    ] = False,
    predictions: Annotated[
        Path | None, typer.Option(help="Write per-row predictions CSV text,label,pred,prob_k.")
    ] = None,
    report: Annotated[
        Path | None, typer.Option(help="Write an HTML report with the evaluation section.")
    ] = None,
    baseline: Annotated[
        Path | None, typer.Option(help="A linear-baseline folder to show beside the model.")
    ] = None,
    baseline_train: Annotated[
        Path | None, typer.Option(help="Train the linear baseline on this file instead.")
    ] = None,
    learning_curve: Annotated[
        bool, typer.Option(help="With --baseline-train: baseline learning curve (10/30/100%) in the report.")
    ] = False,
    from_predictions: Annotated[
        Path | None,
        typer.Option(help="Score an existing predictions CSV (no model); DATA optional, checked against it."),
    ] = None,
    n_boot: Annotated[
        int, typer.Option(min=1, max=10**6, help="Bootstrap resamples for the 95% intervals.")
    ] = 1000,
    seed: Annotated[int, typer.Option(min=0, max=2**32 - 1, help="Seed of the bootstrap.")] = 0,
    batch_size: Annotated[int, typer.Option(min=1, max=2**20, help="Examples per forward pass.")] = 64,
    precision: Annotated[
        str, typer.Option(help="Classifiers and language models: " + PRECISION_HELP)
    ] = "auto",
) -> None:
    """Evaluate classifiers (metrics with bootstrap CIs, ROC/PR, calibration) or a language model (perplexity)."""
    from llmlab.evaluation.evaluate_models import fit_history, results_json, score_models
    from llmlab.evaluation.report import format_table

    paths = list(paths or [])
    _check_options(paths, from_predictions, predictions, baseline, baseline_train, learning_curve)
    inputs = [*paths, from_predictions, baseline, baseline_train]
    for output in (predictions, report):
        if output is not None:
            check_output(output, inputs)
    if predictions is not None and report is not None:
        check_output(report, [predictions])
    with undo_on_failure(predictions, report):  # no predictions file left behind by a failed report
        if from_predictions is not None:
            scored = _score_file(from_predictions, paths, n_boot, seed)
            data = None
        else:
            if len(paths) < 2:
                raise LlmlabError("evaluate: give MODEL... DATA (or --from-predictions FILE [DATA])")
            if paths[-1].suffix.lower() == ".txt":
                return _evaluate_lm(paths, json_out, precision)
            from llmlab.model.precision import resolve_precision

            precision = resolve_precision(precision)
            scored, data = score_models(
                paths[:-1], paths[-1], baseline, baseline_train, n_boot, seed, batch_size, precision
            )
            if predictions is not None:
                from llmlab.evaluation.predictions import write_predictions

                write_predictions(predictions, [e.text for e in data], scored[0].y, scored[0].proba)
        history = fit_history(paths[:-1]) if from_predictions is None else None
        result = results_json(scored, history)
        if report is not None:
            _write_report(report, scored, history, baseline_train if learning_curve else None, paths)
        print(_dumps(result) if json_out else format_table(scored))
        if history is not None and not json_out:
            from llmlab.evaluation.diagnose import format_diagnosis

            print(format_diagnosis(history[1]))


def _check_options(paths, from_predictions, predictions, baseline, baseline_train, learning_curve) -> None:
    """Refuse option combinations that would be silently ignored."""
    model_only = {"--predictions": predictions, "--baseline": baseline, "--baseline-train": baseline_train}
    given = [name for name, value in model_only.items() if value is not None]
    if from_predictions is not None and given:
        raise LlmlabError(f"evaluate: --from-predictions scores a file without a model; drop {given[0]}")
    if paths and paths[-1].suffix.lower() == ".txt" and given:
        raise LlmlabError(f"evaluate: {given[0]} is for classifiers; {paths[-1]} is a language-model text")
    if baseline is not None and baseline_train is not None:
        raise LlmlabError("evaluate: give --baseline DIR or --baseline-train FILE, not both")
    if learning_curve and baseline_train is None:
        raise LlmlabError("evaluate: --learning-curve needs --baseline-train FILE (the training set)")


def _score_file(path: Path, paths: list[Path], n_boot: int, seed: int) -> list:
    from llmlab.evaluation.metrics import metrics_with_ci
    from llmlab.evaluation.predictions import read_predictions
    from llmlab.evaluation.report import Scored
    from llmlab.finetuning.data import read_examples

    if len(paths) > 1:
        raise LlmlabError("evaluate --from-predictions FILE takes at most one DATA file, no model")
    examples = read_examples(paths[0]) if paths else None
    preds = read_predictions(path, len(examples) if examples else None, str(paths[0]) if paths else None)
    if examples is not None:
        import numpy as np

        differ = np.flatnonzero(preds.y != np.array([e.label for e in examples]))
        if len(differ):
            raise LlmlabError(
                f"{path}: line {differ[0] + 2}: label {preds.y[differ[0]]} differs from {paths[0]}"
            )
    labels = [str(k) for k in range(preds.proba.shape[1])]
    return [
        Scored(path.name, preds.y, preds.proba, metrics_with_ci(preds.y, preds.proba, labels, n_boot, seed))
    ]


def _write_report(path: Path, scored, history, curve_train: Path | None, paths: list[Path]) -> None:
    from llmlab.evaluation import report as section
    from llmlab.report.html import Report

    page = Report(f"llmlab evaluate: {scored[0].name}")
    source = str(paths[-1]) if paths else scored[0].name
    section.add_scored(page, scored, source)
    if history is not None:
        section.add_diagnosis(page, *history)
    if curve_train is not None:
        from llmlab.evaluation.learning_curve import by_data_size
        from llmlab.finetuning.data import read_examples

        _log("learning curve: fitting the baseline on 10%, 30%, 100% of the training set")
        points = by_data_size(read_examples(curve_train), read_examples(paths[-1]))
        section.add_learning_curve(page, points, "linear baseline")
    page.save(path)


def _evaluate_lm(paths: list[Path], json_out: bool, precision: str) -> None:
    from llmlab.evaluation.perplexity import lm_metrics

    if len(paths) != 2:
        raise LlmlabError("evaluate: a language model is evaluated alone: give one MODEL and one .txt file")
    result = lm_metrics(paths[0], paths[1], precision=precision)
    if json_out:
        print(_dumps(result))
        return
    for key in ("model", "data", "precision", "tokens", "characters", "context", "nll", "perplexity", "bpc"):
        value = result[key]
        print(f"{key:<11} {value:.4f}" if isinstance(value, float) else f"{key:<11} {value}")


def baseline(
    train: Annotated[Path, typer.Argument(help="Labelled training CSV/JSONL (text,label).")],
    output: Annotated[
        Path, typer.Option("-o", "--output", help="Folder for baseline.json + weights.safetensors.")
    ],
    dev: Annotated[Path | None, typer.Option(help="Labelled dev file: report its accuracy.")] = None,
    select: Annotated[
        str, typer.Option(help="Feature selection: none, corr (correlation pruning) or rfe.")
    ] = "none",
    c: Annotated[
        float, typer.Option(min=1e-6, max=1e6, help="Inverse L2 strength of the logistic regression.")
    ] = 4.0,
    top_n: Annotated[
        int, typer.Option(min=1, max=10**7, help="Selection candidates: the most important features.")
    ] = 2000,
    threshold: Annotated[
        float, typer.Option(min=0, max=1, help="corr: drop one of each pair with |Pearson r| above this.")
    ] = 0.9,
    n_select: Annotated[int, typer.Option(min=1, max=10**7, help="rfe: features to keep.")] = 500,
    step: Annotated[
        float, typer.Option(min=1e-3, max=1, help="rfe: share of the candidates removed per round.")
    ] = 0.1,
    top: Annotated[int, typer.Option(min=0, max=10**6, help="Top features printed per class.")] = 10,
) -> None:
    """Train the TF-IDF + logistic-regression baseline, print its top features per class, and save it."""
    from llmlab.evaluation.baseline import LinearBaseline
    from llmlab.evaluation.features import select_features, top_features
    from llmlab.evaluation.metrics import accuracy
    from llmlab.finetuning.data import read_examples

    check_output(output, [train, dev], kind="folder")
    examples = read_examples(train)
    dev_examples = read_examples(dev) if dev is not None else None
    texts, labels = [e.text for e in examples], [e.label for e in examples]
    model = LinearBaseline(c=c).fit(texts, labels)
    model, info = select_features(model, texts, labels, select, top_n, threshold, n_select, step)
    with undo_on_failure(output):
        model.save(output)
    print(
        f"{output}: linear baseline, {len(examples)} examples, {model.analyzer} n-grams, "
        f"{info['features_after']} features (selection {select}: {info['features_before']} before)"
    )
    if dev_examples is not None:
        proba = model.predict_proba([e.text for e in dev_examples])
        import numpy as np

        print(f"dev accuracy: {accuracy(np.array([e.label for e in dev_examples]), proba):.4f} ({dev})")
    for name, features in top_features(model, top).items():
        print(f"class {name}: " + ", ".join(f"{t} ({w:+.2f})" for t, w in features))


def diagnose(
    run_dir: Annotated[Path, typer.Argument(help="A run folder with history.json.")],
    json_out: Annotated[bool, typer.Option("--json", help="Print the diagnosis as one JSON object.")] = False,
    report: Annotated[
        Path | None, typer.Option(help="Write an HTML report with the training curves.")
    ] = None,
) -> None:
    """Label a training run under-fitting, good fit or over-fitting (rule printed) and suggest remedies."""
    from dataclasses import asdict

    from llmlab.evaluation import diagnose as fit
    from llmlab.evaluation.report import add_diagnosis
    from llmlab.report.html import Report

    check_input(run_dir, "folder", "run folder")
    if report is not None:
        check_output(report, [run_dir / "history.json"])
    history = fit.read_history(run_dir)
    verdict = fit.diagnose(history)
    if report is not None:
        page = Report(f"llmlab diagnose: {run_dir.name}")
        add_diagnosis(page, history, verdict)
        page.save(report)
    print(_dumps(asdict(verdict)) if json_out else fit.format_diagnosis(verdict))


def register(app: typer.Typer) -> None:
    """Add this topic's commands to `app` (one line each)."""
    app.command("evaluate")(evaluate)
    app.command("baseline")(baseline)
    app.command("diagnose")(diagnose)
