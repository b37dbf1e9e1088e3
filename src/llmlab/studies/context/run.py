"""`llmlab study context`: train short, extend by each RoPE method, measure perplexity and passkey retrieval.

Protocol (after Peng et al. 2023, "YaRN", sections 4.2-4.3, at toy scale, on one CPU):
1. Data: the embedded demo corpus (Python's own documentation, llmlab.stdlib_text), 90% train / 10% valid
   by line, plus passkey documents (passkey.py) for a `passkey_share` of the training documents, so that
   the small model learns retrieval at its training length at all (a pretrained LLM brings that skill).
   A BPE tokenizer is trained on the train text and the passkey sentences.
2. Base models: a Llama-shaped LM (RMSNorm, SwiGLU, RoPE) and the same with ALiBi, trained from scratch at
   L0 = `short` tokens on documents of L0 tokens, through the fine-tuning loop (`finetuning.train`, full,
   task lm), which keeps documents whole (a passkey must not be cut off from its question).
3. Extension to s·L0 for s in `scales`, by each method (model/extend.py): none, linear (factor s), ntk
   (s), dynamic (factor 1: at any length L its base is NTK's for s = L / L0), yarn (s, β 32/1), llama3
   (s, low/high frequency factors 1/4); ALiBi as it is. Each is measured zero-shot and after the same short
   fine-tune at s·L0 (`tune_steps` steps of `tune_tokens` tokens, the same data mixture).
4. Measures: perplexity on the first `eval_tokens` valid tokens in non-overlapping windows of k·L0 for k in
   `eval_scales`; passkey accuracy (greedy, exact) at the same lengths, keys at each of `depths`.
Every run folder is kept under out_dir and reused, so an interrupted study continues where it stopped.
`QUICK` checks the mechanics (CI, about a minute); `FULL` gives the README's numbers.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from llmlab.errors import LlmlabError
from llmlab.finetuning.methods import MethodSettings, build_model
from llmlab.finetuning.trainer import TrainConfig, train
from llmlab.io import atomic_write_json
from llmlab.model.checkpoint import load_model, save_model
from llmlab.model.config import ModelConfig
from llmlab.model.extend import extend_context
from llmlab.model.transformer import Transformer
from llmlab.pretraining.data import evaluate_loss
from llmlab.studies.context.data import StudyData, documents, prepare_data
from llmlab.studies.context.passkey import passkey_accuracy
from llmlab.studies.positions.run import torch_threads

METHODS = ("none", "linear", "ntk", "dynamic", "yarn", "llama3")


@dataclass(frozen=True)
class ContextSizes:
    """The budget of the study; every method gets the same."""

    short: int = 64  # L0, the training length
    scales: tuple[int, ...] = (4, 8)  # extension targets s: fine-tune at s * L0
    eval_scales: tuple[int, ...] = (1, 2, 4, 8)
    depths: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)
    trials: int = 8  # passkey documents per (length, depth)
    vocab: int = 1024
    d_model: int = 96
    n_layers: int = 3
    n_heads: int = 4
    base_steps: int = 2400
    base_lr: float = 3e-3
    batch_size: int = 16
    tune_steps: int = 40
    tune_lr: float = 5e-4
    tune_tokens: int = 2048  # per fine-tuning step: batch = tune_tokens // (s * L0)
    passkey_share: float = 0.5
    eval_tokens: int = 8192
    seed: int = 0


FULL = ContextSizes()
QUICK = ContextSizes(
    short=64, scales=(4,), eval_scales=(1, 2, 4), depths=(0.0, 0.5, 1.0), trials=2, vocab=1024, d_model=32,
    n_layers=2, n_heads=2, base_steps=30, batch_size=8, tune_steps=3, tune_tokens=512, eval_tokens=1024,
)  # fmt: skip


def method_fields(method: str, scale: int, short: int) -> dict[str, Any]:
    """The `rope_*` fields that extend a model trained at `short` tokens by `scale` with `method`."""
    if method == "none":
        return {}
    fields: dict[str, Any] = {"rope_scaling": method, "rope_scaling_factor": float(scale)}
    if method == "dynamic":
        fields["rope_scaling_factor"] = 1.0
    if method in ("dynamic", "yarn", "llama3"):
        fields["rope_original_max_position"] = short
    return fields


def run_context_study(
    out_dir: Path,
    quick: bool = False,
    progress: bool = True,
    threads: int | None = 1,
    sizes: ContextSizes | None = None,
) -> dict[str, Any]:
    """Run the study; write out_dir/context.json (the results) and out_dir/report.html.

    Args:
        out_dir: created if missing; holds the tokenizer and every run (reused when finished).
        quick: QUICK sizes instead of FULL (ignored when `sizes` is given).
        progress: progress bars and one line per measured model on stderr.
        threads: torch threads while the study runs (None: leave as is).
        sizes: the budget; default FULL or QUICK.

    Returns:
        The results, as written to context.json; their tables are checked (`check_results`).

    Raises:
        LlmlabError: a perplexity that is not finite or an accuracy outside [0, 1].
    """
    from llmlab.studies.context.report import write_report

    sizes = sizes or (QUICK if quick else FULL)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with torch_threads(threads):
        data = prepare_data(out_dir, sizes)
        rows = [
            row
            for positional in ("rope", "alibi")
            for row in _variants(out_dir, data, sizes, positional, progress)
        ]
    results = {
        "sizes": dataclasses.asdict(sizes),
        "rows": rows,
        "wall_seconds": time.perf_counter() - started,
    }
    check_results(results)
    atomic_write_json(out_dir / "context.json", results)
    write_report(out_dir, results)
    return results


def _variants(
    out_dir: Path, data: StudyData, sizes: ContextSizes, positional: str, progress: bool
) -> list[dict]:
    """Every measured model of one base: zero-shot and fine-tuned, per method and scale."""
    base = _base(out_dir, data, sizes, positional, progress)
    methods = METHODS if positional == "rope" else ("none",)
    rows = []
    for stage in ("zero-shot", "fine-tuned"):
        for method in methods:
            for scale in sizes.scales:
                if stage == "zero-shot" and method == "none" and scale != sizes.scales[0]:
                    continue  # plain zero-shot is the base itself: measured once
                model, seconds = _extended(
                    out_dir, data, sizes, base, positional, method, scale, stage, progress
                )
                rows.append(_measure(model, data, sizes, positional, method, scale, stage, seconds, progress))
    return rows


def _base(out_dir: Path, data: StudyData, sizes: ContextSizes, positional: str, progress: bool) -> Path:
    """Train (or reuse) the base model at L0; returns its folder."""
    folder = out_dir / f"base-{positional}"
    if (folder / "config.json").is_file():
        return folder
    config = ModelConfig(
        vocab_size=data.tokenizer.vocab_size,
        d_model=sizes.d_model,
        n_layers=sizes.n_layers,
        n_heads=sizes.n_heads,
        d_ff=(8 * sizes.d_model // 3 + 7) // 8 * 8,
        max_seq_len=sizes.short,
        positional=positional,
        norm_type="rms",
        gated_mlp=True,
        activation="silu",
        bias=False,
        tie_embeddings=True,
        layer_norm_eps=1e-6,
    )
    init = out_dir / f"init-{positional}"
    save_model(init, _seeded(config, sizes.seed), data.tokenizer)
    docs = documents(data, sizes, sizes.short, sizes.seed)
    settings = TrainConfig(
        lr=sizes.base_lr,
        batch_size=sizes.batch_size,
        max_steps=sizes.base_steps,
        max_length=sizes.short,
        schedule="cosine",
        warmup_ratio=0.05,
        weight_decay=0.1,
        metric="loss",
        eval_every=sizes.base_steps,
        seed=sizes.seed,
    )
    _train(init, docs, data.dev, settings, MethodSettings(), folder, progress)
    return folder


def _seeded(config: ModelConfig, seed: int) -> Transformer:
    torch.manual_seed(seed)
    return Transformer(config)


def _extended(out_dir, data, sizes, base: Path, positional, method, scale, stage, progress):
    """(model, fine-tuning seconds): the base extended by `method` to `scale`, fine-tuned when stage says."""
    fields = method_fields(method, scale, sizes.short)
    if stage == "zero-shot":
        return extend_context(load_model(base, data.tokenizer)[0], fields), 0.0
    folder = out_dir / f"tuned-{positional}-{method}-{scale}x"
    if not (folder / "config.json").is_file():
        length = scale * sizes.short
        settings = TrainConfig(
            lr=sizes.tune_lr,
            batch_size=max(1, sizes.tune_tokens // length),
            max_steps=sizes.tune_steps,
            max_length=length,
            schedule="cosine",
            warmup_ratio=0.1,
            weight_decay=0.1,
            metric="loss",
            eval_every=sizes.tune_steps,
            seed=sizes.seed,
        )
        docs = documents(data, sizes, length, sizes.seed + scale)
        seconds = _train(
            base, docs, data.dev, settings, MethodSettings(rope_scaling=fields or None), folder, progress
        )
        atomic_write_json(folder / "seconds.json", seconds)
    seconds = float((folder / "seconds.json").read_text())
    return load_model(folder, data.tokenizer)[0], seconds


def _train(
    base: Path, docs, dev, settings: TrainConfig, method: MethodSettings, folder: Path, progress
) -> float:
    """Full fine-tuning of `base` on `docs` (task lm) into `folder`; returns the seconds it took."""
    started = time.perf_counter()
    model = build_model(base, "full", "lm", [], method, seed=settings.seed)
    (folder / "run").mkdir(parents=True, exist_ok=True)
    train(model, docs, dev, settings, folder / "run", progress=progress)
    save_model(folder, model.base, model.tokenizer)
    return time.perf_counter() - started


def _measure(
    model: Transformer,
    data: StudyData,
    sizes: ContextSizes,
    positional,
    method,
    scale,
    stage,
    seconds,
    progress,
):
    """One table row: perplexity and passkey accuracy at every evaluation length."""
    ppl, passkey = {}, {}
    for k in sizes.eval_scales:
        length = k * sizes.short
        loss = evaluate_loss(
            model, data.valid_tokens, length, sizes.eval_tokens, batch=max(1, 4096 // length)
        )
        ppl[str(k)] = math.exp(min(loss, 50.0))
        passkey[str(k)] = {
            str(d): passkey_accuracy(model, data.tokenizer, length, d, sizes.trials, sizes.seed)
            for d in sizes.depths
        }
    row = {
        "positional": positional,
        "method": method,
        "scale": scale,
        "stage": stage,
        "perplexity": ppl,
        "passkey": passkey,
        "tune_seconds": seconds,
    }
    if progress:
        mean = {k: round(sum(v.values()) / len(v), 2) for k, v in passkey.items()}
        print(f"{positional} {method} {scale}x {stage}: ppl {_short(ppl)} passkey {mean}", file=sys.stderr)
    return row


def _short(values: dict[str, float]) -> str:
    return " ".join(f"{k}x={v:.1f}" for k, v in values.items())


def check_results(results: dict[str, Any]) -> None:
    """The study's own check of its tables: every perplexity finite, every accuracy in [0, 1].

    Raises:
        LlmlabError: the first value that breaks this, named.
    """
    for row in results["rows"]:
        name = f"{row['positional']} {row['method']} {row['scale']}x {row['stage']}"
        for k, value in row["perplexity"].items():
            if not math.isfinite(value) or value < 1:
                raise LlmlabError(f"context study: {name}: perplexity at {k}x is {value}")
        for k, cells in row["passkey"].items():
            for depth, value in cells.items():
                if not 0 <= value <= 1:
                    raise LlmlabError(
                        f"context study: {name}: passkey accuracy {value} at {k}x, depth {depth}"
                    )
