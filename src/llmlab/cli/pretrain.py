"""`llmlab pretrain`: causal LM or masked-LM encoder pretraining (Python: `llmlab.pretraining`)."""

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
    objective: Annotated[
        str,
        Opt(
            help="causal: next-token prediction by a decoder; mlm: BERT's masked LM by an encoder "
            "(BERT-shaped unless --model-config says otherwise)."
        ),
    ] = "causal",
    whole_word_masking: Annotated[
        bool, Opt(help="mlm: mask whole words (every token of a chosen word) instead of single tokens.")
    ] = False,
    segmenter: Annotated[
        str,
        Opt(
            help="Whole-word masking: the words of the 'tokenizer' (its pre-tokenizer) or of 'jieba' "
            "(Chinese; the extra 'zh')."
        ),
    ] = "tokenizer",
    mask_prob: Annotated[
        float,
        Opt(min=0, max=1, help="mlm: share of the tokens predicted (80% [MASK], 10% random, 10% kept)."),
    ] = 0.15,
    documents: Annotated[
        str,
        Opt(
            help="causal: 'none' lets windows cross documents (nanoGPT); 'file' or 'line' makes each file or "
            "line a document ending in <|endoftext|> and keeps attention inside it (packed windows)."
        ),
    ] = "none",
    model_config: Annotated[
        Path | None,
        Opt(
            help="JSON object of model settings (ModelConfig fields, e.g. a model folder's config.json; its "
            "vocab_size comes from the tokenizer); the options below override it."
        ),
    ] = None,
    positional: Annotated[
        str | None,
        Opt(help="none, sinusoidal, learned, relative, t5, rope, alibi (default: rope; mlm: learned)."),
    ] = None,
    steps: Annotated[int, Opt(min=1, max=10**9, help="Optimizer steps.")] = 1000,
    context: Annotated[int, Opt(min=1, max=2**20, help="Tokens per training window.")] = 128,
    batch_size: Annotated[int, Opt(min=1, max=2**20, help="Windows per step.")] = 32,
    lr: Annotated[
        float, Opt(min=1e-12, max=10, help="Peak learning rate (warmup, then cosine decay).")
    ] = 1e-3,
    warmup: Annotated[int, Opt(min=0, max=10**9, help="Warmup steps.")] = 100,
    d_model: Annotated[int | None, Opt(min=1, max=2**16, help="Model width (default 256).")] = None,
    n_layers: Annotated[int | None, Opt(min=1, max=1024, help="Transformer blocks (default 4).")] = None,
    n_heads: Annotated[int | None, Opt(min=1, max=1024, help="Attention heads (default 4).")] = None,
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
    """Pretrain a causal LM (or, with --objective mlm, a BERT-style encoder) on text files with a saved llmlab
    tokenizer; resumes exactly with --resume."""
    from llmlab.model.extend import rope_fields
    from llmlab.model.positional.rope_scaling import NEEDS_ORIGINAL
    from llmlab.pretraining.loop import PretrainConfig
    from llmlab.pretraining.loop import pretrain as run_pretraining

    given = {"positional": positional, "d_model": d_model, "n_layers": n_layers, "n_heads": n_heads}
    model = _model_settings(model_config, objective) | {k: v for k, v in given.items() if v is not None}
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
        objective=objective,
        whole_word_masking=whole_word_masking,
        segmenter=segmenter,
        mask_prob=mask_prob,
        documents=documents,
    )
    check_output(
        output, [*train, *valid, tokenizer, *([model_config] if model_config else [])], kind="folder"
    )
    with undo_on_failure(output):  # a refused run leaves no folder, cache or config behind
        print(run_pretraining(config, progress=not quiet))


def _model_settings(path: Path | None, objective: str) -> dict:
    """The ModelConfig fields of a --model-config file, less those the tokenizer sets; without one, the
    architecture options' defaults."""
    from llmlab.errors import LlmlabError
    from llmlab.io import read_json

    if path is None:
        positional = "learned" if objective == "mlm" else "rope"
        return {"positional": positional, "d_model": 256, "n_layers": 4, "n_heads": 4}
    settings = read_json(path, "model config")
    if not isinstance(settings, dict):
        raise LlmlabError(f"{path}: a model config must be a JSON object, not {type(settings).__name__}")
    return {k: v for k, v in settings.items() if k not in ("vocab_size", "tokenizer_fingerprint")}


def register(app: typer.Typer) -> None:
    """Add this topic's command to `app`."""
    app.command("pretrain")(pretrain)
