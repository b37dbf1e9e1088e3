"""The Python API: one call per step of the command line, with the CLI's defaults.

    import llmlab
    tok = llmlab.train_tokenizer(["corpus.txt"], model="unigram", vocab_size=8000)
    model, tok = llmlab.load_model("runs/lm")                 # an llmlab folder, or an HF BERT / GPT-2 folder
    run = llmlab.finetune("base/", "train.csv", "dev.csv", method="lora", out="runs/lora")
    run.metrics["best_accuracy"], run.out_dir
    llmlab.evaluate("runs/lora", "test.csv")["metrics"]["accuracy"]
    llmlab.compare("runs/full", "runs/lora", "test.csv")["verdict"]

Each function is a thin front over its topic package (`llmlab.tokenizer`, `llmlab.model`, `llmlab.pretraining`,
`llmlab.finetuning`, `llmlab.evaluation`, `llmlab.abtest`), which hold the settings classes for finer control.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmlab.io import read_json
from llmlab.tokenizer.corpus import read_corpus
from llmlab.tokenizer.pipeline import Tokenizer
from llmlab.tokenizer.train import train_tokenizer as train_on_lines
from llmlab.validate import check_output

if TYPE_CHECKING:  # the functions below import torch-based modules when called, so tokenizers stay light
    from llmlab.finetuning.trainer import TrainResult
    from llmlab.model.transformer import Transformer

__all__ = ["FinetuneRun", "compare", "evaluate", "finetune", "load_model", "pretrain", "train_tokenizer"]

PathLike = str | os.PathLike


def train_tokenizer(
    files: PathLike | Sequence[PathLike],
    model: str = "unigram",
    vocab_size: int = 8000,
    min_frequency: int = 0,
    special_tokens: Sequence[str] | None = None,
    **options: Any,
) -> Tokenizer:
    """Train a tokenizer ("wordpiece", "bpe" or "unigram") on UTF-8 text, one sentence per line: files,
    folders or globs, plain or compressed (.gz, .bz2, .zst), streamed.

    `options` go to `llmlab.tokenizer.train.train_tokenizer` (`max_memory`, `sample`, `seed`, ...) and the
    trainer (`character_coverage`, `byte_fallback`, `criterion`, ...). Save the result with
    `tok.save("tokenizer.json")`.
    """
    paths = [files] if isinstance(files, (str, os.PathLike)) else list(files)
    lines = read_corpus(paths)
    source = ", ".join(map(str, paths))
    return train_on_lines(model, lines, vocab_size, min_frequency, special_tokens, source=source, **options)


def load_model(path: PathLike) -> tuple[Transformer, Tokenizer]:
    """(model in eval mode, tokenizer) from an llmlab checkpoint folder or a Hugging Face BERT / GPT-2 folder."""
    from llmlab.model.checkpoint import load_model as load_llmlab_folder
    from llmlab.model.hf_import import from_hf

    folder = Path(path)
    config = folder / "config.json"
    is_hf = config.is_file() and "model_type" in read_json(
        config, "model config"
    )  # HF configs name their type
    return from_hf(folder) if is_hf else load_llmlab_folder(folder)


def pretrain(
    train: PathLike | Sequence[PathLike],
    valid: PathLike | Sequence[PathLike],
    tokenizer: PathLike,
    out: PathLike,
    positional: str | None = None,
    steps: int = 1000,
    progress: bool = True,
    precision: str = "auto",
    objective: str = "causal",
    **settings: Any,
) -> Path:
    """Pretrain a causal LM (`objective="causal"`) or a BERT-style masked-LM encoder (`objective="mlm"`);
    returns the latest checkpoint folder. `positional` defaults to rope (causal) or learned (mlm).
    `settings`: any `PretrainConfig` field (context_length, batch_size, lr, seed, resume; for mlm mask_prob,
    whole_word_masking, segmenter "tokenizer" or "jieba", ...) or a `model` dict of ModelConfig fields.
    `precision`: auto, fp32, bf16-mixed or bf16 (`llmlab.model.precision`)."""
    from llmlab.pretraining.loop import PretrainConfig
    from llmlab.pretraining.loop import pretrain as run_pretraining

    _output_folder(out, [*_paths(train), *_paths(valid), tokenizer])
    positional = positional or ("learned" if objective == "mlm" else "rope")
    model = {"positional": positional, **settings.pop("model", {})}
    config = PretrainConfig(
        _paths(train),
        _paths(valid),
        tokenizer,
        out,
        model=model,
        steps=steps,
        precision=precision,
        objective=objective,
        **settings,
    )
    return run_pretraining(config, progress=progress)


@dataclass
class FinetuneRun:
    """What `finetune` returns: the saved folder, the headline metrics and the trainer's full result."""

    out_dir: Path
    metrics: dict[str, Any]
    result: TrainResult


def finetune(
    base: PathLike,
    train: PathLike,
    dev: PathLike,
    method: str = "lora",
    out: PathLike = "runs/finetune",
    task: str = "classification",
    lr: float | None = None,
    progress: bool = True,
    precision: str = "auto",
    **settings: Any,
) -> FinetuneRun:
    """Fine-tune `base` (an llmlab or HF folder) by `method` (full, probe, prompt, prefix, lora) on train/dev
    CSV or JSONL files, keep the best dev step and save it in `out`.

    `settings`: any `TrainConfig` field (epochs, max_steps, batch_size, max_length, seed, patience, ...) or
    `MethodSettings` field (lora_rank, lora_targets, num_virtual_tokens, ...). `lr` defaults to the method's
    rate (`DEFAULT_LR`). `precision`: auto, fp32, bf16-mixed or bf16 (`llmlab.model.precision`).
    """
    from llmlab.finetuning.methods import DEFAULT_LR, MethodSettings
    from llmlab.finetuning.run import FinetuneSettings
    from llmlab.finetuning.run import finetune as run_finetune
    from llmlab.finetuning.trainer import TrainConfig

    _output_folder(out, [base, train, dev])
    method_fields = set(MethodSettings.__dataclass_fields__)
    method_settings = MethodSettings(**{k: v for k, v in settings.items() if k in method_fields})
    train_settings = {k: v for k, v in settings.items() if k not in method_fields}
    lr = DEFAULT_LR.get(method, 5e-5) if lr is None else lr
    config = TrainConfig(lr=lr, precision=precision, **train_settings)
    run = FinetuneSettings(base, method, train, dev, out, config, method_settings, task=task)
    result = run_finetune(run, progress=progress)
    metric = "loss" if task == "lm" else config.metric
    metrics = {
        f"best_{metric}": result.best_metric,
        "best_step": result.best_step,
        "steps": len(result.step_losses),
    }
    return FinetuneRun(Path(out), metrics, result)


def evaluate(models: PathLike | list[PathLike], data: PathLike, **options: Any) -> dict[str, Any]:
    """Metrics with 95% bootstrap intervals for model folders on a labelled file: `llmlab.evaluation.evaluate`
    (options: baseline, baseline_train, n_boot, seed, batch_size), the dict `llmlab evaluate --json` prints."""
    from llmlab.evaluation.evaluate_models import evaluate as evaluate_models

    return evaluate_models(models, data, **options)


def compare(model_a: PathLike, model_b: PathLike, data: PathLike, **options: Any) -> dict[str, Any]:
    """Offline A/B comparison of two model folders on the same labelled rows: `llmlab.abtest.compare`
    (options: n_boot, n_perm, alpha, seed); the result's "verdict" says which is better, if either."""
    from llmlab.abtest.compare_models import compare as compare_models

    return compare_models(model_a, model_b, data, **options)


def _output_folder(out: PathLike, inputs: list[PathLike]) -> None:
    """The command line's guard (never inside or equal to an input), then the parents made, as `mkdir -p`."""
    check_output(out, inputs, kind="folder", parents=True)
    Path(out).parent.mkdir(parents=True, exist_ok=True)


def _paths(value: PathLike | Sequence[PathLike]) -> list[Path]:
    return [Path(value)] if isinstance(value, (str, os.PathLike)) else [Path(p) for p in value]
