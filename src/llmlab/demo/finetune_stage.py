"""Demo stages 3 and 4: fine-tune the pretrained demo LM two ways, evaluate both, and A/B-compare them offline.

The task comes with Python too (`llmlab.stdlib_text.demo_classification`): is a standard-library docstring
about data (numbers, text, containers) or about the system (files, processes, network)? The stage splits it
70/15/15 with a fixed seed, fine-tunes the demo's RoPE LM by full fine-tuning and by LoRA, scores both on the
test split beside the TF-IDF + logistic-regression baseline, and runs the paired tests of `llmlab abtest
compare` (McNemar, bootstrap, DeLong) between the two fine-tuned models.
"""

from __future__ import annotations

import csv
import random
import time
from pathlib import Path
from typing import Any

import numpy as np

from llmlab.abtest.offline import compare_predictions
from llmlab.evaluation.baseline import LinearBaseline
from llmlab.evaluation.predictor import load_predictor
from llmlab.evaluation.report import evaluation_section, predict
from llmlab.finetuning.data import read_examples
from llmlab.finetuning.methods import MethodSettings
from llmlab.finetuning.run import FinetuneSettings, finetune
from llmlab.finetuning.trainer import TrainConfig
from llmlab.io import atomic_open, read_json
from llmlab.report import plots
from llmlab.report.html import Report
from llmlab.stdlib_text import TOPIC_LABELS, demo_classification

DEMO_METHODS = {  # method -> learning rate (LoRA trains a few parameters and takes a larger rate)
    "full": 1e-3,
    "lora": 5e-3,
}
DEMO_TRAIN = dict(epochs=6, batch_size=32, max_length=64, warmup_ratio=0.1, patience=2, seed=0)


def write_splits(folder: Path, seed: int = 0) -> dict[str, Path]:
    """The topic task as train/dev/test CSVs (text,label) in `folder`, split 70/15/15 after a seeded shuffle."""
    folder.mkdir(parents=True, exist_ok=True)
    examples = demo_classification()
    random.Random(seed).shuffle(examples)
    n = len(examples)
    cuts = {"train": (0, n * 70 // 100), "dev": (n * 70 // 100, n * 85 // 100), "test": (n * 85 // 100, n)}
    paths = {}
    for split, (start, end) in cuts.items():
        paths[split] = folder / f"{split}.csv"
        with atomic_open(paths[split], "w") as f:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(["text", "label"])
            writer.writerows(examples[start:end])
    return paths


def finetune_stage(
    report: Report, out: Path, base: Path, progress: bool = True, precision: str = "fp32"
) -> dict[str, Any]:
    """Fine-tune `base` by each of DEMO_METHODS in `precision` (fp32, bf16-mixed, bf16:
    `llmlab.model.precision`), evaluate both on the test split in it, compare the two; add sections."""
    start = time.perf_counter()
    folder = out / "finetune"
    data = write_splits(folder / "data")
    runs = {}
    for method, lr in DEMO_METHODS.items():
        settings = FinetuneSettings(
            base=base,
            method=method,
            train_path=data["train"],
            dev_path=data["dev"],
            out_dir=folder / method,
            train=TrainConfig(lr=lr, precision=precision, **DEMO_TRAIN),
            method_settings=MethodSettings(lora_rank=8),
        )
        runs[method] = finetune(settings, progress=progress)
    _training_section(report, folder, runs, base, precision)
    test = read_examples(data["test"])
    train = read_examples(data["train"])
    baseline = LinearBaseline().fit([e.text for e in train], [e.label for e in train])
    report.section("Evaluation on the held-out test split")
    scores = {  # the baseline is shown once, beside the first model
        m: evaluation_section(
            report,
            load_predictor(folder / m, precision),
            test,
            baseline if i == 0 else None,
            source=str(data["test"]),
        )
        for i, m in enumerate(DEMO_METHODS)
    }
    comparison = _comparison_section(report, folder, test, data["test"], precision)
    dev = {m: run.best_metric for m, run in runs.items()}
    return {"scores": scores, "dev": dev, "comparison": comparison, "seconds": time.perf_counter() - start}


def _training_section(report: Report, folder: Path, runs: dict, base: Path, precision: str) -> None:
    report.section("Fine-tuning: full vs LoRA on a docstring-topic task")
    report.text(
        f"The pretrained RoPE model ({base.name}) gets a classification head for the task "
        f"{' vs '.join(TOPIC_LABELS)} (standard-library docstrings labelled by module). Full fine-tuning "
        "trains every weight, LoRA only rank-8 adapters on the query and value projections plus the head. "
        f"Settings: {DEMO_TRAIN}; learning rates {DEMO_METHODS}; precision {precision}. Early stopping "
        "keeps the best dev step."
    )
    rows = []
    for method, result in runs.items():
        summary = _read_summary(folder / method)
        rows.append(
            [
                method,
                f"{summary['trainable_parameters']:,}",
                f"{100 * summary['trainable_parameters'] / summary['total_parameters']:.1f}%",
                result.best_step,
                f"{result.best_metric:.3f}",
                "yes" if result.stopped_early else "no",
                f"{summary['wall_time_s']:.1f}",
            ]
        )
    report.table(
        ["method", "trainable", "share", "best step", "dev accuracy", "stopped early", "wall s"], rows
    )
    for method, result in runs.items():
        report.figure(plots.history_figure(result.history, method), f"{method}: loss and accuracy per step.")


def _read_summary(run: Path) -> dict:
    return read_json(run / "history.json", "run summary")


def _comparison_section(report: Report, folder: Path, test: list, source: Path, precision: str) -> dict:
    a, b = (load_predictor(folder / m, precision) for m in DEMO_METHODS)
    (y, proba_a), (_, proba_b) = predict(a, test, str(source)), predict(b, test, str(source))
    result = compare_predictions(y, proba_a, proba_b, names=tuple(DEMO_METHODS), n_boot=2000, n_perm=5000)
    boot = result["bootstrap"]
    report.section("Offline A/B comparison of the two fine-tuned models")
    report.text(result["verdict"])
    report.table(
        ["metric", "difference (lora - full)", "95% CI"],
        [
            [m, f"{boot[m]['diff']:+.3f}", f"[{boot[m]['ci_low']:+.3f}, {boot[m]['ci_high']:+.3f}]"]
            for m in boot
            if boot[m] is not None
        ],
    )
    mc = result["mcnemar"]
    report.text(
        f"McNemar exact p = {mc['exact_pvalue']:.3g} on {int(np.sum(mc['table'][0][1] + mc['table'][1][0]))} "
        "discordant rows"
        + (f"; DeLong AUC p = {result['delong']['pvalue']:.3g}" if result.get("delong") else "")
        + "."
    )
    return result
