"""What `llmlab tune` evaluates for one parameter set: fine-tuning (the default) or a cheap linear model.

An `Objective` is a function `evaluate(params, trial_dir, report) -> dev score` plus the default settings
(every tunable name and its untuned value; they type the `--param` values and make up trial 0). `report(step,
value)` is called after each dev evaluation; it raises `optuna.TrialPruned` when the pruner says so, and the
objective lets it propagate (the trainer's `on_eval` contract).

- "finetune": `llmlab.finetuning.run.finetune` with a TrainConfig and MethodSettings built from the parameters;
  the score is `TrainResult.best_metric` (maximised, or minimised for the loss).
- "linear": TF-IDF features and a logistic regression trained by SGD, one `partial_fit` epoch per evaluation
  step (sklearn.linear_model.SGDClassifier(loss="log_loss")). Seconds per trial: the cheap objective of the
  tests and of a first look at a data set.
"""

from __future__ import annotations

import csv
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmlab.errors import LlmlabError
from llmlab.evaluation.search_space import ParamSpec, default_space
from llmlab.io import atomic_open, read_json

Report = Callable[[int, float], None]
Evaluate = Callable[[dict[str, Any], Path, Report], float]

TRAIN_TUNABLE = (
    "lr",
    "weight_decay",
    "batch_size",
    "grad_accum",
    "epochs",
    "warmup_ratio",
    "schedule",
    "max_grad_norm",
    "label_smoothing",
    "augment_rate",
)
METHOD_TUNABLE = (
    "num_virtual_tokens",
    "prompt_init",
    "prefix_projection",
    "prefix_hidden",
    "lora_rank",
    "lora_alpha",
    "lora_dropout",
)


@dataclass(frozen=True)
class Objective:
    """A function to optimise: `evaluate(params, trial_dir, report)` returns the trial's dev score."""

    evaluate: Evaluate
    defaults: dict[str, Any]  # every tunable name -> its untuned value (trial 0)
    direction: str = "maximize"
    space: dict[str, ParamSpec] = dataclasses.field(default_factory=dict)  # searched when no --param


def finetune_objective(settings: dict[str, Any]) -> Objective:
    """Fine-tune `settings["base"]` with `settings["method"]` on the train/dev files, one run per trial.

    Args:
        settings: base, method, train, dev, max_train_examples, and fixed TrainConfig fields under "train"
            (e.g. {"max_steps": 60, "eval_every": 20, "metric": "accuracy"}).

    Raises:
        LlmlabError: no base, an unknown method, or invalid training settings.
    """
    from llmlab.finetuning.methods import MethodSettings
    from llmlab.finetuning.run import FinetuneSettings, finetune
    from llmlab.finetuning.trainer import TrainConfig

    if not settings.get("base"):
        raise LlmlabError(
            "tune: the finetune objective needs --base (an llmlab or Hugging Face model folder)"
        )
    fixed = TrainConfig(**settings.get("train", {}))
    base_dropout = _base_dropout(Path(settings["base"]))
    method_defaults = MethodSettings()
    defaults = {n: getattr(fixed, n) for n in TRAIN_TUNABLE} | {"dropout": base_dropout}
    defaults |= {n: getattr(method_defaults, n) for n in METHOD_TUNABLE}
    metric = fixed.metric

    def evaluate(params: dict[str, Any], trial_dir: Path, report: Report) -> float:
        train = dataclasses.replace(fixed, **{k: v for k, v in params.items() if k in TRAIN_TUNABLE})
        method = MethodSettings(**{k: v for k, v in params.items() if k in METHOD_TUNABLE})
        run = FinetuneSettings(
            base=settings["base"],
            method=settings["method"],
            train_path=settings["train_path"],
            dev_path=settings["dev_path"],
            out_dir=trial_dir,
            train=train,
            method_settings=method,
            max_train_examples=settings.get("max_train_examples"),
            dropout=None if params["dropout"] == base_dropout else params["dropout"],
        )
        result = finetune(run, progress=False, on_eval=lambda r: report(r["step"], r[f"dev_{metric}"]))
        return result.best_metric

    direction = "minimize" if metric == "loss" else "maximize"
    return Objective(evaluate, defaults, direction, default_space(settings["method"]))


def _base_dropout(base: Path) -> float:
    """The dropout of a base model folder: llmlab's config "dropout" or Hugging Face's "hidden_dropout_prob"."""
    config = read_json(base / "config.json", "model config")
    return float(config.get("dropout", config.get("hidden_dropout_prob", 0.0)))


LINEAR_DEFAULTS = {"lr": 0.01, "weight_decay": 1e-4, "max_features": 2000, "epochs": 5}


def linear_objective(settings: dict[str, Any]) -> Objective:
    """TF-IDF + SGD logistic regression; the score is the best dev accuracy over its epochs.

    Args:
        settings: train_path, dev_path, max_train_examples, seed.
    """
    from llmlab.finetuning.data import read_examples

    train = read_examples(settings["train_path"], settings.get("max_train_examples"))
    dev = read_examples(settings["dev_path"])

    def evaluate(params: dict[str, Any], trial_dir: Path, report: Report) -> float:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import SGDClassifier

        vectorizer = TfidfVectorizer(max_features=params["max_features"]).fit([e.text for e in train])
        x, y = vectorizer.transform([e.text for e in train]), [e.label for e in train]  # (N, F), (N,)
        x_dev = vectorizer.transform([e.text for e in dev])
        y_dev = [e.label for e in dev]
        model = SGDClassifier(
            loss="log_loss",
            alpha=params["weight_decay"],
            learning_rate="constant",
            eta0=params["lr"],
            random_state=settings.get("seed", 0),
        )
        best = 0.0
        for epoch in range(1, params["epochs"] + 1):
            model.partial_fit(x, y, classes=sorted(set(y)))
            best = max(best, float(model.score(x_dev, y_dev)))
            report(epoch, best)
        return best

    space = {
        "lr": ParamSpec("lr", "loguniform", 1e-3, 1.0),
        "weight_decay": ParamSpec("weight_decay", "loguniform", 1e-6, 1e-2),
        "max_features": ParamSpec("max_features", "int", 200, 8000),
    }
    return Objective(evaluate, dict(LINEAR_DEFAULTS), "maximize", space)


OBJECTIVES: dict[str, Callable[[dict[str, Any]], Objective]] = {
    "finetune": finetune_objective,
    "linear": linear_objective,
}


def write_subset(source: Path, max_examples: int, target: Path) -> Path:
    """Copy the first `max_examples` examples of a CSV/JSONL file to a CSV (a dev subset for every trial).

    Raises:
        LlmlabError: the source cannot be read (see llmlab.finetuning.data.read_examples).
    """
    from llmlab.finetuning.data import read_examples

    examples = read_examples(source, max_examples)
    if any(e.label is None for e in examples):
        raise LlmlabError(f"{source}: every dev example needs a label")
    with atomic_open(target, "w") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label", "text_pair"])
        writer.writerows([e.text, e.label, e.text_pair or ""] for e in examples)
    return target
