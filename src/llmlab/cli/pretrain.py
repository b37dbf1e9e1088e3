"""`llmlab pretrain`: causal LM pretraining (Python: `llmlab.pretraining`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from llmlab.cli.options import PRECISION_HELP
from llmlab.validate import check_output, undo_on_failure

Opt = typer.Option
ROPE_HELP = {  # shared with `llmlab finetune`
    "scaling": "RoPE context extension: linear, ntk, dynamic, yarn or llama3.",
    "factor": "Its factor s: > 1 (dynamic: >= 1).",
    "original": "dynamic / yarn / llama3: the length the model was trained at (default: the context).",
    "param": "NAME=VALUE, repeatable: beta_fast, beta_slow, attention_factor (yarn); low_freq_factor, "
    "high_freq_factor (llama3).",
}


def pretrain(
    train: Annotated[list[Path], typer.Option(help="Training text file (repeat for several).")],
    valid: Annotated[list[Path], typer.Option(help="Validation text file (repeat for several).")],
    tokenizer: Annotated[Path, typer.Option(help="A tokenizer.json saved by llmlab.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Run folder: checkpoints, metrics.jsonl.")],
    positional: Annotated[
        str, typer.Option(help="none, sinusoidal, learned, relative, t5, rope, alibi.")
    ] = "rope",
    steps: Annotated[int, Opt(min=1, max=10**9, help="Optimizer steps.")] = 1000,
    context: Annotated[int, Opt(min=1, max=2**20, help="Tokens per training window.")] = 128,
    batch_size: Annotated[int, Opt(min=1, max=2**20, help="Windows per step.")] = 32,
    lr: Annotated[
        float, Opt(min=1e-12, max=10, help="Peak learning rate (warmup, then cosine decay).")
    ] = 1e-3,
    warmup: Annotated[int, Opt(min=0, max=10**9, help="Warmup steps.")] = 100,
    d_model: Annotated[int, Opt(min=1, max=2**16, help="Model width.")] = 256,
    n_layers: Annotated[int, Opt(min=1, max=1024, help="Transformer blocks.")] = 4,
    n_heads: Annotated[int, Opt(min=1, max=1024, help="Attention heads.")] = 4,
    eval_every: Annotated[int, Opt(min=1, max=10**9, help="Steps between validation perplexities.")] = 100,
    checkpoint_every: Annotated[int, Opt(min=1, max=10**9, help="Steps between checkpoints.")] = 500,
    seed: Annotated[int, Opt(min=0, max=2**32 - 1, help="Seed for weights and data order.")] = 0,
    resume: Annotated[bool, typer.Option(help="Continue from the latest checkpoint in --output.")] = False,
    errors: Annotated[
        str, Opt(help="Invalid UTF-8 in the text files: 'strict' stops, 'replace' puts U+FFFD in its place.")
    ] = "strict",
    rope_scaling: Annotated[str | None, Opt(help=ROPE_HELP["scaling"])] = None,
    rope_factor: Annotated[float | None, Opt(min=1, max=1e4, help=ROPE_HELP["factor"])] = None,
    rope_original_length: Annotated[int | None, Opt(min=1, max=2**30, help=ROPE_HELP["original"])] = None,
    rope_param: Annotated[list[str] | None, Opt(help=ROPE_HELP["param"])] = None,
    precision: Annotated[str, Opt(help=PRECISION_HELP)] = "auto",
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
) -> None:
    """Pretrain a causal LM on text files with a saved llmlab tokenizer; resumes exactly with --resume."""
    from llmlab.model.extend import rope_fields
    from llmlab.model.positional.rope_scaling import NEEDS_ORIGINAL
    from llmlab.pretraining.loop import PretrainConfig
    from llmlab.pretraining.loop import pretrain as run_pretraining

    model = {"positional": positional, "d_model": d_model, "n_layers": n_layers, "n_heads": n_heads}
    if rope_scaling in NEEDS_ORIGINAL and rope_original_length is None:
        rope_original_length = context  # scaled from the start: the training context is L0
    model |= rope_fields(rope_scaling, rope_factor, rope_original_length, rope_param)
    config = PretrainConfig(
        train,
        valid,
        tokenizer,
        output,
        model=model,
        context_length=context,
        batch_size=batch_size,
        steps=steps,
        lr=lr,
        warmup_steps=min(warmup, steps),
        eval_every=eval_every,
        checkpoint_every=checkpoint_every,
        seed=seed,
        resume=resume,
        text_errors=errors,
        precision=precision,
    )
    check_output(output, [*train, *valid, tokenizer], kind="folder")
    with undo_on_failure(output):  # a refused run leaves no folder, cache or config behind
        print(run_pretraining(config, progress=not quiet))


def register(app: typer.Typer) -> None:
    """Add this topic's command to `app`."""
    app.command("pretrain")(pretrain)
