"""One fine-tuning run end to end: read the data, build the model, train, keep the best, save, record.

What `llmlab finetune` does (and hyperparameter search calls): `finetune(settings)` reads CSV/JSONL (or a text
file for the causal-LM task), builds the method's model (`methods.build_model`), trains with `trainer.train`
(best dev weights restored at the end), saves the model with `model.save(out_dir)`, and writes
out_dir/history.json, train_config.json and step_losses.json. Also here: the learning-rate range test as a
run (`run_lr_find`: lr_find.json and an HTML plot) and the EDA ablation (`augmentation_ablation`).
Resources recorded: the peak memory training adds to the built model (`llmlab.memory.measure_peak`), the
median optimizer-step time, the share of padding in the training batches and the wall time.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from llmlab.finetuning.checkpoint import run_identity
from llmlab.finetuning.data import StreamingExamples, iter_examples, label_names, read_examples, read_texts
from llmlab.finetuning.distributed import setup_world
from llmlab.finetuning.methods import MethodSettings, build_model
from llmlab.finetuning.trainer import TrainConfig, TrainResult, train
from llmlab.io import atomic_write_json, ensure_folder
from llmlab.memory import measure_peak

_NOT_IDENTITY = ("base", "train_path", "dev_path", "out_dir", "train")  # fingerprinted, or checked by train()


@dataclass
class FinetuneSettings:
    """Everything one run needs: where the base and data are, the method, and the training settings."""

    base: str | Path
    method: str
    train_path: str | Path
    dev_path: str | Path
    out_dir: str | Path
    train: TrainConfig = field(default_factory=TrainConfig)
    method_settings: MethodSettings = field(default_factory=MethodSettings)
    max_train_examples: int | None = None
    task: str = "classification"  # "classification" | "lm"
    dropout: float | None = None  # replaces the base's dropout; None keeps it
    stream_buffer: int | None = None  # read the train set from disk each epoch through a shuffle buffer

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d.update(train=self.train.to_dict(), method_settings=self.method_settings.to_dict())
        return {k: str(v) if isinstance(v, Path) else v for k, v in d.items()}


def load_data(settings: FinetuneSettings) -> tuple[Any, list, list[str]]:
    """(train set, dev examples, class names) as the task reads them."""
    if settings.task == "lm":
        return read_texts(settings.train_path, settings.max_train_examples), read_texts(settings.dev_path), []
    dev = read_examples(settings.dev_path)
    if settings.stream_buffer:
        train_set = StreamingExamples(Path(settings.train_path), settings.stream_buffer)
        return train_set, dev, label_names(list(iter_examples(settings.train_path)), dev, settings.dev_path)
    train_set = read_examples(settings.train_path, settings.max_train_examples)
    return train_set, dev, label_names(train_set, dev, settings.dev_path)


def new_model(settings: FinetuneSettings, labels: list[str]):
    """The run's fresh FinetuneModel (seeded by the training seed)."""
    return build_model(
        settings.base,
        settings.method,
        settings.task,
        labels,
        settings.method_settings,
        dropout=settings.dropout,
        seed=settings.train.seed,
    )


def finetune(
    settings: FinetuneSettings,
    progress: bool = True,
    on_eval: Callable[[dict], None] | None = None,
    resume: bool = False,
) -> TrainResult:
    """Fine-tune as `settings` say and write the run folder (rank 0 only under torchrun).

    Args:
        settings: the run.
        progress: a progress bar on stderr.
        on_eval: called with each dev evaluation record (exceptions propagate).
        resume: continue from out_dir/checkpoint.

    Returns:
        The TrainResult.

    Raises:
        LlmlabError: bad data files, settings or base folder (one line naming the file).
    """
    world = setup_world()
    out = ensure_folder(settings.out_dir)
    train_set, dev, labels = load_data(settings)
    model = new_model(settings, labels)
    identity = _identity(settings) if resume or settings.train.checkpoint_every else None
    started = time.perf_counter()
    with measure_peak() as peak:  # gradients, optimizer state, activations: what training adds to the model
        result = train(
            model, train_set, dev, settings.train, out, resume, progress and world.is_main, on_eval, identity
        )
    if world.is_main:
        model.cpu().save(out)
        atomic_write_json(out / "history.json", _summary(settings, model, result, peak.mb, started))
        atomic_write_json(out / "train_config.json", settings.to_dict())
        atomic_write_json(out / "step_losses.json", result.step_losses)
    return result


def _identity(settings: FinetuneSettings) -> dict:
    """What a resume must share with the checkpointed run: base and data by content, the other settings."""
    shaping = {k: v for k, v in settings.to_dict().items() if k not in _NOT_IDENTITY}
    data = {"train data": settings.train_path, "dev data": settings.dev_path}
    return run_identity(settings.base, data, shaping)


def _summary(
    settings: FinetuneSettings, model, result: TrainResult, peak_mb: float | None, started: float
) -> dict:
    return {
        "history": result.history,
        "best_step": result.best_step,
        "best_metric": result.best_metric,
        "metric": "loss" if settings.task == "lm" else settings.train.metric,
        "stopped_early": result.stopped_early,
        "method": settings.method,
        "trainable_parameters": model.num_parameters(trainable_only=True),
        "total_parameters": model.num_parameters(),
        "peak_memory_mb": peak_mb,
        "step_time_s": statistics.median(result.step_times) if result.step_times else None,
        "padding_share": result.padding_share,
        "wall_time_s": round(time.perf_counter() - started, 3),
        "train_config": settings.train.to_dict(),
        "method_settings": settings.method_settings.to_dict(),
    }


def run_lr_find(settings: FinetuneSettings, num_steps: int = 100) -> float:
    """The LR range test on this run's model and data: writes out_dir/lr_find.json and lr_find.html.

    Returns:
        The suggested learning rate.
    """
    from llmlab.finetuning.lr_find import lr_find, lr_find_figure
    from llmlab.report.html import Report

    out = ensure_folder(settings.out_dir)
    train_set, _, labels = load_data(settings)
    torch.manual_seed(settings.train.seed)
    result = lr_find(new_model(settings, labels), train_set, settings.train, num_steps=num_steps)
    atomic_write_json(out / "lr_find.json", result.to_dict())
    report = Report(f"LR range test: {settings.method} on {settings.train_path}")
    report.section("Loss against learning rate")
    report.figure(
        lr_find_figure(result),
        "Smoothed training loss; the dashed line is the suggested lr "
        "(steepest descent, Smith 2017 / fastai).",
    )
    report.save(out / "lr_find.html")
    return result.suggestion


def augmentation_ablation(
    settings: FinetuneSettings, rate: float = 0.1, progress: bool = True
) -> dict[str, float]:
    """Train the same run without and with EDA (rate `rate`) and report both best dev metrics.

    Each run goes to out_dir/eda-0 and out_dir/eda-<rate>.

    Returns:
        {"no_augmentation": metric, "eda_<rate>": metric}.
    """
    out = ensure_folder(settings.out_dir)
    scores = {}
    for name, r in (("no_augmentation", 0.0), (f"eda_{rate}", rate)):
        run = dataclasses.replace(
            settings, out_dir=out / name, train=dataclasses.replace(settings.train, augment_rate=r)
        )
        scores[name] = finetune(run, progress=progress).best_metric
    return scores
