"""The `llmlab` subcommands of this topic; `register` adds them to the main app (see llmlab.cli)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from llmlab.cli.options import PRECISION_HELP
from llmlab.cli.pretrain import ROPE_HELP
from llmlab.errors import LlmlabError
from llmlab.validate import check_input, check_output, undo_on_failure

Opt = typer.Option
MAX_COUNT = 10**9  # the upper bound of step, example and epoch counts
GROUP_HELP = "Batches of similar length, as HF's group_by_length (SST-2: padding 67% -> 26%, half the time)."


def finetune(
    base: Annotated[Path, Opt(help="Base model folder: an llmlab checkpoint or an HF BERT / GPT-2 folder.")],
    train: Annotated[
        Path, Opt(help="Training data: CSV/JSONL with text,label[,text_pair]; a text file for lm.")
    ],
    dev: Annotated[Path, Opt(help="Dev data, same format; picks the best step and early-stops.")],
    out: Annotated[Path, Opt("-o", "--out", help="Run folder: model, history.json, checkpoint/.")],
    method: Annotated[str, Opt(help="full, probe, prompt, prefix or lora.")] = "full",
    task: Annotated[
        str, Opt(help="classification, or lm (causal LM on one document per line).")
    ] = "classification",
    epochs: Annotated[int, Opt(min=1, max=MAX_COUNT, help="Passes over the training set.")] = 3,
    max_steps: Annotated[
        int | None, Opt(min=1, max=MAX_COUNT, help="Optimizer steps (overrides --epochs).")
    ] = None,
    max_train_examples: Annotated[
        int | None, Opt(min=1, max=MAX_COUNT, help="Use only the first N training rows.")
    ] = None,
    lr: Annotated[
        float | None,
        Opt(
            min=1e-12,
            max=10,
            help="Peak learning rate; default by method: full 5e-5, probe 1e-3, prompt 3e-2, prefix 1e-3, lora 5e-4.",
        ),
    ] = None,
    batch_size: Annotated[int, Opt(min=1, max=2**20, help="Examples per micro-batch.")] = 32,
    grad_accum: Annotated[int, Opt(min=1, max=2**20, help="Micro-batches per optimizer step.")] = 1,
    weight_decay: Annotated[
        float, Opt(min=0, max=10, help="AdamW decay (not on norms, biases, prompts).")
    ] = 0.01,
    warmup_ratio: Annotated[float, Opt(min=0, max=1, help="Share of the steps spent warming up.")] = 0.06,
    schedule: Annotated[str, Opt(help="linear, cosine or constant after the warmup.")] = "linear",
    max_grad_norm: Annotated[float, Opt(min=0, max=1e9, help="Gradient clipping norm (0: none).")] = 1.0,
    label_smoothing: Annotated[float, Opt(min=0, max=1, help="Label smoothing epsilon.")] = 0.0,
    dropout: Annotated[
        float | None, Opt(min=0, max=1, help="Dropout of the base and head (default: the base's).")
    ] = None,
    max_length: Annotated[int, Opt(min=1, max=2**20, help="Truncate inputs to this many tokens.")] = 128,
    patience: Annotated[
        int | None, Opt(min=1, max=MAX_COUNT, help="Stop after N evaluations without improvement.")
    ] = None,
    metric: Annotated[str, Opt(help="Dev metric for the best step: accuracy, f1 or loss.")] = "accuracy",
    eval_every: Annotated[
        int | None, Opt(min=1, max=MAX_COUNT, help="Steps between dev evaluations (default: each epoch).")
    ] = None,
    checkpoint_every: Annotated[
        int | None, Opt(min=1, max=MAX_COUNT, help="Steps between checkpoints (and one at the end).")
    ] = None,
    augment_rate: Annotated[
        float, Opt(min=0, max=1, help="EDA rate (random deletion / swap / insertion); 0: off.")
    ] = 0.0,
    seed: Annotated[
        int, Opt(min=0, max=2**32 - 1, help="Seed for weights, data order, dropout and augmentation.")
    ] = 0,
    resume: Annotated[bool, Opt(help="Continue from the checkpoint in --out.")] = False,
    lr_find: Annotated[
        bool, Opt(help="Run the LR range test instead of training; print the suggestion.")
    ] = False,
    lr_find_steps: Annotated[int, Opt(min=2, max=100_000, help="Steps of the LR range test.")] = 100,
    stream_buffer: Annotated[
        int | None, Opt(min=1, max=MAX_COUNT, help="Stream the train set through a shuffle buffer of N.")
    ] = None,
    num_virtual_tokens: Annotated[int, Opt(min=1, max=100_000, help="prompt / prefix: virtual tokens.")] = 20,
    prompt_init: Annotated[str, Opt(help="prompt: random, vocab or text.")] = "random",
    prompt_init_text: Annotated[str | None, Opt(help="prompt: the text for --prompt-init text.")] = None,
    no_prefix_projection: Annotated[
        bool, Opt(help="prefix: no MLP reparameterisation (P-tuning v2).")
    ] = False,
    lora_rank: Annotated[int, Opt(min=1, max=2**16, help="lora: rank r.")] = 8,
    lora_alpha: Annotated[float, Opt(min=0, max=1e6, help="lora: alpha (scale alpha / r).")] = 16.0,
    lora_dropout: Annotated[float, Opt(min=0, max=1, help="lora: dropout on the LoRA input.")] = 0.0,
    lora_targets: Annotated[
        str, Opt(help="lora: comma-separated Linear names, e.g. q,v or q,k,v,o,fc,proj.")
    ] = "q,v",
    gradient_checkpointing: Annotated[
        bool, Opt(help="Recompute activations in backward (less memory).")
    ] = False,
    rope_scaling: Annotated[str | None, Opt(help=ROPE_HELP["scaling"] + " Extends the base first.")] = None,
    rope_factor: Annotated[float | None, Opt(min=1, max=1e4, help=ROPE_HELP["factor"])] = None,
    rope_original_length: Annotated[
        int | None, Opt(min=1, max=2**30, help=ROPE_HELP["original"].replace("the context", "the base's"))
    ] = None,
    rope_param: Annotated[list[str] | None, Opt(help=ROPE_HELP["param"])] = None,
    precision: Annotated[str, Opt(help=PRECISION_HELP)] = "auto",
    group_by_length: Annotated[bool, Opt(help=GROUP_HELP)] = True,
    quiet: Annotated[bool, Opt(help="No progress bar.")] = False,
) -> None:
    """Fine-tune a pretrained model on a classification (or LM) data set and save the best dev step's model."""
    from llmlab.finetuning.methods import DEFAULT_LR, MethodSettings
    from llmlab.finetuning.run import FinetuneSettings, run_lr_find
    from llmlab.finetuning.run import finetune as run_finetune
    from llmlab.finetuning.trainer import TrainConfig
    from llmlab.model.extend import rope_fields

    if task not in ("classification", "lm"):
        raise LlmlabError(f"--task {task!r}: choose classification or lm")
    _check_paths(base, [train, dev], out)
    config = TrainConfig(
        lr=DEFAULT_LR.get(method, 5e-5) if lr is None else lr,
        weight_decay=weight_decay,
        batch_size=batch_size,
        grad_accum=grad_accum,
        epochs=epochs,
        max_steps=max_steps,
        warmup_ratio=warmup_ratio,
        schedule=schedule,
        max_grad_norm=max_grad_norm,
        label_smoothing=label_smoothing,
        max_length=max_length,
        seed=seed,
        eval_every=eval_every,
        patience=patience,
        metric=metric,
        checkpoint_every=checkpoint_every,
        augment_rate=augment_rate,
        precision=precision,
        group_by_length=group_by_length,
    )
    method_settings = MethodSettings(
        num_virtual_tokens=num_virtual_tokens,
        prompt_init=prompt_init,
        prompt_init_text=prompt_init_text,
        prefix_projection=not no_prefix_projection,
        lora_rank=lora_rank,
        lora_alpha=lora_alpha,
        lora_dropout=lora_dropout,
        lora_targets=tuple(t for t in lora_targets.split(",") if t),
        gradient_checkpointing=gradient_checkpointing,
        rope_scaling=rope_fields(rope_scaling, rope_factor, rope_original_length, rope_param) or None,
    )
    settings = FinetuneSettings(
        base,
        method,
        train,
        dev,
        out,
        config,
        method_settings,
        max_train_examples,
        task,
        dropout,
        stream_buffer,
    )
    if lr_find:
        with undo_on_failure(out):
            suggestion = run_lr_find(settings, lr_find_steps)
        print(f"{out}: suggested lr {suggestion:.3g} (plot: {out / 'lr_find.html'})")
        return
    with undo_on_failure(out):  # a refused run leaves nothing; a diverged one keeps its last checkpoint
        result = run_finetune(settings, progress=not quiet, resume=resume)
    if os.environ.get("RANK", "0") != "0":
        return  # under torchrun, rank 0 reports
    metric_name = "loss" if task == "lm" else metric
    stop = "stopped early" if result.stopped_early else f"{len(result.step_losses)} steps"
    padding = "" if result.padding_share is None else f", {result.padding_share:.0%} padding"
    print(
        f"{out}: {method} best dev {metric_name} {result.best_metric:.4f} at step {result.best_step} "
        f"({stop}{padding})"
    )


def _check_paths(base: Path, data: list[Path], out: Path) -> None:
    """Inputs exist as what they should be, and the run folder is none of them nor inside one."""
    check_input(base, "folder", "--base")
    for path in data:
        check_input(path, "file", "data")
    check_output(out, [base, *data], kind="folder")


def compare_methods(
    base: Annotated[Path, Opt(help="Base model folder: an llmlab checkpoint or an HF BERT / GPT-2 folder.")],
    train: Annotated[Path, Opt(help="Training data: CSV/JSONL with text,label[,text_pair].")],
    dev: Annotated[Path, Opt(help="Dev data, same format.")],
    out: Annotated[Path, Opt("-o", "--out", help="Comparison folder: one run per method, report.html.")],
    methods: Annotated[
        str, Opt(help="Comma-separated methods, in table order.")
    ] = "full,probe,prompt,prefix,lora",
    epochs: Annotated[int, Opt(min=1, max=MAX_COUNT, help="Passes over the training set.")] = 3,
    max_steps: Annotated[
        int | None, Opt(min=1, max=MAX_COUNT, help="Optimizer steps per method (overrides --epochs).")
    ] = None,
    max_train_examples: Annotated[
        int | None, Opt(min=1, max=MAX_COUNT, help="Use only the first N training rows.")
    ] = None,
    lr_for: Annotated[list[str] | None, Opt(help="METHOD=LR, repeatable (defaults: see compare.py).")] = None,
    batch_size: Annotated[int, Opt(min=1, max=2**20, help="Examples per batch.")] = 32,
    max_length: Annotated[int, Opt(min=1, max=2**20, help="Truncate inputs to this many tokens.")] = 128,
    eval_every: Annotated[
        int | None, Opt(min=1, max=MAX_COUNT, help="Steps between dev evaluations (default: max-steps / 10).")
    ] = None,
    seed: Annotated[int, Opt(min=0, max=2**32 - 1, help="Seed of every run.")] = 0,
    precision: Annotated[str, Opt(help=PRECISION_HELP)] = "auto",
    group_by_length: Annotated[bool, Opt(help=GROUP_HELP)] = True,
    same_process: Annotated[
        bool, Opt(help="No fresh process per method (faster; CPU peak memory then wrong).")
    ] = False,
    quiet: Annotated[bool, Opt(help="No progress bars.")] = False,
) -> None:
    """Fine-tune one base with several methods and compare cost, dev accuracy/F1 and an ensemble (report.html)."""
    from llmlab.evaluation.compare_methods import compare_methods as run_compare
    from llmlab.evaluation.compare_methods import format_table, parse_lrs
    from llmlab.finetuning.trainer import TrainConfig

    _check_paths(base, [train, dev], out)
    if eval_every is None and max_steps is not None:
        eval_every = max(1, max_steps // 10)
    config = TrainConfig(
        epochs=epochs,
        max_steps=max_steps,
        batch_size=batch_size,
        max_length=max_length,
        eval_every=eval_every,
        seed=seed,
        precision=precision,
        group_by_length=group_by_length,
    )
    lrs = parse_lrs(lr_for or [])
    with undo_on_failure(out):
        rows = run_compare(
            base,
            train,
            dev,
            out,
            tuple(m for m in methods.split(",") if m),
            config,
            max_train_examples=max_train_examples,
            lrs=lrs,
            isolate=not same_process,
            progress=not quiet,
        )
    print(format_table(rows))
    print(f"{out / 'report.html'}: report written")


def register(app: typer.Typer) -> None:
    """Add this topic's commands to `app`."""
    app.command("finetune")(finetune)
    app.command("compare-methods")(compare_methods)
