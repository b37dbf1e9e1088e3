"""Compare fine-tuning methods on one base and one data set: cost, accuracy, learning curves, an ensemble.

Each method runs through the one training path, `llmlab.finetuning.run.finetune`, into OUT/<method>, with its
own default learning rate (`DEFAULT_LR`, from the papers and HF PEFT's examples: full fine-tuning 5e-5 as
Devlin et al.; a linear probe 1e-3; prompt tuning 3e-2 as PEFT's prompt-tuning examples (Lester et al. use
0.3 with Adafactor); prefix tuning 1e-3 (PEFT's examples and P-tuning v2 use 1e-2, but with the MLP
reparameterisation 1e-2 drove MiniLM on SST-2 to chance within 50 steps, measured: the prefixes grow until they
take all the attention; 1e-3 reached 79% dev accuracy in 80 steps; Li & Liang used 5e-5 to 8e-5 on GPT-2);
LoRA 5e-4 as Hu et al. for RoBERTa-base on GLUE). The table takes trainable parameters, peak memory, step time and wall time from
each run's history.json, and dev accuracy / macro-F1 from the saved model scored again through
`load_classifier`; the soft-voting `llmlab.evaluation.predictor.Ensemble` of all the models adds a row of its own.

Peak memory on a CPU: by default each method runs in a fresh process (multiprocessing "spawn"), which reports
its peak resident size (`VmHWM` in /proc/self/status, reset by exec, unlike `ru_maxrss`, which a child
inherits from its parent) minus its resident size before the run, i.e. the model, optimizer state and
activations. `isolate=False` runs everything in this process, faster, and takes history.json's figure (the
growth of `ru_maxrss`, which never falls: later methods only show growth above the earlier ones). On CUDA
history.json's `torch.cuda.max_memory_allocated` is used either way.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch

from llmlab.errors import LlmlabError
from llmlab.evaluation.metrics import classification_metrics
from llmlab.evaluation.predictor import Ensemble
from llmlab.finetuning.data import read_examples
from llmlab.finetuning.methods import DEFAULT_LR, METHODS, MethodSettings, load_classifier
from llmlab.finetuning.run import FinetuneSettings, finetune
from llmlab.finetuning.trainer import TrainConfig
from llmlab.io import atomic_write_json, ensure_folder, read_json
from llmlab.memory import status_mb
from llmlab.report.html import Report

COLUMNS = (
    "method",
    "lr",
    "trainable",
    "trainable %",
    "peak MB",
    "step s",
    "wall s",
    "dev accuracy",
    "dev F1",
)


def compare_methods(
    base: str | os.PathLike,
    train_path: str | os.PathLike,
    dev_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    methods: tuple[str, ...] = METHODS,
    train: TrainConfig | None = None,
    method_settings: MethodSettings | None = None,
    max_train_examples: int | None = None,
    lrs: dict[str, float] | None = None,
    isolate: bool = True,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Fine-tune `base` with each method, score them and their ensemble, write comparison.json + report.html.

    Args:
        base, train_path, dev_path: as `llmlab finetune` takes them (classification data).
        out_dir: the comparison folder; each method's run goes to out_dir/<method>.
        methods: names from METHODS, run in this order.
        train: the training settings shared by all methods (their `lr` is replaced per method).
        method_settings: the methods' settings.
        max_train_examples: use only the first N training rows.
        lrs: learning rate per method, over DEFAULT_LR.
        isolate: run each method in a fresh process (true peak memory on a CPU).
        progress: progress bars on stderr.

    Returns:
        The table rows (dicts keyed by COLUMNS), the ensemble's last.

    Raises:
        LlmlabError: an unknown method, a learning rate for a method not run, or any error of a run.
    """
    unknown = [m for m in list(methods) + list(lrs or {}) if m not in METHODS]
    if unknown or not methods:
        raise LlmlabError(f"methods {unknown or '(none)'}: choose from {', '.join(METHODS)}")
    out = ensure_folder(out_dir)
    rates = DEFAULT_LR | (lrs or {})
    train, histories = train or TrainConfig(), {}
    for method in methods:
        settings = FinetuneSettings(
            base,
            method,
            train_path,
            dev_path,
            out / method,
            dataclasses.replace(train, lr=rates[method]),
            method_settings or MethodSettings(),
            max_train_examples,
        )
        peak = _run(settings, isolate, progress)
        history = read_json(out / method / "history.json", "run history")
        histories[method] = history | ({} if peak is None else {"peak_memory_mb": peak})
    rows = _score(out, methods, histories, read_examples(dev_path), rates)
    atomic_write_json(out / "comparison.json", {"rows": rows, "histories": histories})
    write_report(out / "report.html", rows, histories, train.metric)
    return rows


def parse_lrs(items: list[str]) -> dict[str, float]:
    """["lora=5e-4", ...] (the --lr-for options) -> {"lora": 5e-4, ...}.

    Raises:
        LlmlabError: an item that is not METHOD=LR with a number.
    """
    lrs = {}
    for item in items:
        name, _, value = item.partition("=")
        try:
            lrs[name.strip()] = float(value)
        except ValueError:
            raise LlmlabError(f"--lr-for {item!r}: expected METHOD=LR, e.g. lora=5e-4") from None
    return lrs


def _run(settings: FinetuneSettings, isolate: bool, progress: bool) -> float | None:
    """One method's run, in a fresh spawned process when `isolate` (its errors re-raised here).

    Returns:
        The isolated run's peak memory in MB on a Linux CPU (see the module docstring), else None.
    """
    if not isolate:
        finetune(settings, progress=progress)
        return None
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(_measured_finetune, settings, progress).result()


def _measured_finetune(settings: FinetuneSettings, progress: bool) -> float | None:
    """`finetune` in a fresh process; its peak resident size above the size before it, in MB (Linux CPU)."""
    before = status_mb("VmRSS")
    finetune(settings, progress=progress)
    peak = status_mb("VmHWM")
    return None if torch.cuda.is_available() or None in (before, peak) else round(peak - before, 1)


def _score(out: Path, methods, histories: dict, dev: list, rates: dict) -> list[dict[str, Any]]:
    """The table: one row per method from its history and its saved model on dev, then the ensemble."""
    y = np.array([e.label for e in dev])
    texts, pairs = [e.text for e in dev], [e.text_pair for e in dev]
    pairs = None if all(p is None for p in pairs) else [p or "" for p in pairs]
    members = [load_classifier(out / m) for m in methods]
    probas = [m.predict_proba(texts, pairs) for m in members]
    rows = []
    for method, proba in zip(methods, probas, strict=True):
        h = histories[method]
        scores = classification_metrics(y, proba)
        rows.append(
            {
                "method": method,
                "lr": rates[method],
                "trainable": h["trainable_parameters"],
                "trainable %": 100 * h["trainable_parameters"] / h["total_parameters"],
                "peak MB": h["peak_memory_mb"],
                "step s": h["step_time_s"],
                "wall s": h["wall_time_s"],
                "dev accuracy": scores["accuracy"],
                "dev F1": scores["f1_macro"],
            }
        )
    if len(members) > 1:
        scores = classification_metrics(y, Ensemble(members).predict_proba(texts, pairs))
        rows.append(
            {c: None for c in COLUMNS}
            | {
                "method": "ensemble (" + "+".join(methods) + ")",
                "dev accuracy": scores["accuracy"],
                "dev F1": scores["f1_macro"],
            }
        )
    return rows


def ensemble_verdict(rows: list[dict[str, Any]]) -> str:
    """One sentence: does the ensemble beat its best member on dev accuracy, and by how much."""
    members = rows[:-1]
    ensemble = rows[-1]
    best = max(members, key=lambda r: r["dev accuracy"])
    gap = ensemble["dev accuracy"] - best["dev accuracy"]
    verb = "beats" if gap > 0 else "does not beat"
    return (
        f"The ensemble {verb} its best member ({best['method']}, dev accuracy {best['dev accuracy']:.4f}) "
        f"by {gap:+.4f} accuracy; macro-F1 {ensemble['dev F1']:.4f} vs {best['dev F1']:.4f}."
    )


def format_table(rows: list[dict[str, Any]]) -> str:
    """The rows as an aligned text table for the terminal."""
    cells = [list(COLUMNS)] + [[_text(r[c]) for c in COLUMNS] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(COLUMNS))]
    return "\n".join(
        "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))
        for row in cells
    )


def _text(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def write_report(path: Path, rows: list[dict[str, Any]], histories: dict[str, dict], metric: str) -> None:
    """report.html: the table, the ensemble's verdict, and the learning curves (one line per method)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    report = Report("Fine-tuning methods compared")
    report.section("Cost and dev scores")
    report.table(COLUMNS, [[r[c] if r[c] is not None else "-" for c in COLUMNS] for r in rows])
    if len(rows) > len(histories):
        report.text(ensemble_verdict(rows))
    report.section("Learning curves")
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for method, h in histories.items():
        steps = [r["step"] for r in h["history"]]
        left.plot(steps, [r.get(f"dev_{metric}") for r in h["history"]], marker="o", label=method)
        right.plot(steps, [r.get("train_loss") for r in h["history"]], marker="o", label=method)
    left.set(xlabel="optimizer step", ylabel=f"dev {metric}", title=f"Dev {metric}")
    right.set(xlabel="optimizer step", ylabel="mean train loss since the last evaluation", title="Train loss")
    left.legend()
    report.figure(fig, f"Dev {metric} and train loss at each evaluation, one line per method.")
    report.save(path)
