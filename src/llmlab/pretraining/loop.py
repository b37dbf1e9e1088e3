"""Pretraining a language model on text files, with checkpoints that resume exactly.

Recipe: nanoGPT `train.py` (Karpathy) — the text tokenized once into a flat token array, random windows,
AdamW with weight decay on the 2-D weights only, a linear warmup then a cosine decay to `min_lr_ratio * lr`
(Loshchilov & Hutter 2017, "SGDR"), gradient clipping by global norm. The objective (objectives.py) is
next-token prediction by a causal LM (`objective="causal"`, windows of `context_length + 1` tokens) or BERT's
masked LM by an encoder (`objective="mlm"`, mlm.py: windows [CLS] + tokens + [SEP], token or whole-word
masking, a fresh mask per window; unless the settings say otherwise the model is BERT-shaped, config.py).
Validation loss is measured on the first `eval_tokens` of the valid files in non-overlapping windows (MLM:
with masks of a generator seeded afresh), so it draws nothing from the training generator and every
evaluation sees the same text.

Exact resume: a checkpoint holds the model (`save_model`) and, in `trainer_state.pt`, the step, the AdamW
state, the numpy window generator and the torch RNG. The learning rate is a pure function of the step. A
run resumed from step N therefore logs the same losses, bit for bit, as one that never stopped (tested), on
the same machine and thread count. Resuming refuses a different tokenizer, a train or valid file whose
content changed (sha256 recorded in the checkpoint), or any other changed setting that shapes the trajectory
(`RESUME_MAY_CHANGE` in config.py lists the ones that may change). A loss that is not finite stops the run
with a one-line `RunStopped` naming the step, before it is logged; the last checkpoint stays the run's latest.

Precision (`llmlab.model.precision`): bf16-mixed keeps float32 weights and AdamW state and runs the forward
passes under bfloat16 autocast, the loss on float32 logits; resume is exact within one precision, and
changing it is a changed setting.

Output folder:
    metrics.jsonl                   one object per step: step, loss, lr, tokens_per_s (+ val_loss, val_ppl)
    pretrain_config.json            this run's PretrainConfig
    tokens-<key>.npy                cached token arrays, keyed by tokenizer fingerprint and file identities
    words-<key>.npy                 whole-word masking: which tokens start a word (words.py), keyed likewise
    checkpoints/step-000200/        config.json, model.safetensors, tokenizer.json, trainer_state.pt
    checkpoints/latest.json         {"step": 200, "folder": "step-000200"}: the newest complete checkpoint
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from llmlab.errors import LlmlabError, RunStopped
from llmlab.io import atomic_write_bytes, atomic_write_json, file_sha256, latest_step_folder, new_step_folder
from llmlab.model import precision as mp
from llmlab.model.checkpoint import load_model, save_model
from llmlab.model.transformer import Transformer
from llmlab.pretraining.config import RESUME_MAY_CHANGE, PretrainConfig
from llmlab.pretraining.data import open_metrics, read_metrics, write_metrics
from llmlab.pretraining.objectives import Objective, build_objective
from llmlab.progress import progress_bar
from llmlab.tokenizer.pipeline import Tokenizer, check_fingerprint

_STATE_FILE = "trainer_state.pt"


def pretrain(config: PretrainConfig, progress: bool = True) -> Path:
    """Train (or resume training) a causal LM or a masked-LM encoder as `config` says.

    Args:
        config: the run's settings.
        progress: show a progress bar and a status line per evaluation on stderr.

    Returns:
        The folder of the last checkpoint written (loadable with `load_model`).

    Raises:
        LlmlabError: unreadable files, too little text, an existing run without `resume`, a tokenizer
            without [CLS], [SEP] or [MASK] (mlm), or (on resume) no checkpoint, a different tokenizer or a
            changed setting.
    """
    out = config.output_dir
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = Tokenizer.load(config.tokenizer)
    objective = build_objective(config, tokenizer, progress)
    data = _data_files(config)
    run = _resume(config, tokenizer, data) if config.resume else _fresh(config, tokenizer)
    run.data_sha256 = {path: sha for _, path, sha in data}
    atomic_write_json(out / "pretrain_config.json", config.to_dict())
    return _train(config, tokenizer, run, objective, progress)


@dataclass
class _Run:
    """The training state that a checkpoint captures."""

    model: Transformer
    optimizer: torch.optim.AdamW
    rng: np.random.Generator  # draws the window starts (and the masks)
    step: int  # steps done
    data_sha256: dict[str, str] = field(default_factory=dict)  # train / valid file -> content sha256


def _fresh(config: PretrainConfig, tokenizer: Tokenizer) -> _Run:
    if latest_checkpoint(config.output_dir) is not None:
        raise LlmlabError(
            f"{config.output_dir}: holds a pretraining run already; resume it or pick a new folder"
        )
    torch.manual_seed(config.seed)
    model = Transformer(config.model_config(tokenizer.vocab_size, tokenizer.fingerprint))
    write_metrics(config.output_dir, [])
    return _Run(model, _optimizer(model, config), np.random.default_rng(config.seed), 0)


def _resume(config: PretrainConfig, tokenizer: Tokenizer, data: list[tuple[str, str, str]]) -> _Run:
    latest = latest_checkpoint(config.output_dir)
    if latest is None:
        raise LlmlabError(f"{config.output_dir}: no checkpoint to resume from")
    state_path = latest / _STATE_FILE
    state = _load_state(state_path)
    check_fingerprint(state["tokenizer_fingerprint"], tokenizer.fingerprint, f"checkpoint {latest}")
    old = state["pretrain_config"]
    new = config.to_dict()
    defaults = {f.name: f.default for f in dataclasses.fields(PretrainConfig)}  # settings added since
    changed = [k for k in new if k not in RESUME_MAY_CHANGE and old.get(k, defaults.get(k)) != new[k]]
    old_data = state.get("data_sha256")
    if old_data is not None:
        changed += [f"{role} {path}" for role, path, sha in data if old_data.get(path) != sha]
    if changed:
        raise LlmlabError(f"{state_path}: cannot resume with changed settings: {', '.join(changed)}")
    model, _ = load_model(latest, tokenizer)
    optimizer = _optimizer(model, config)
    optimizer.load_state_dict(state["optimizer"])
    rng = np.random.default_rng()
    rng.bit_generator.state = state["numpy_rng"]
    torch.set_rng_state(state["torch_rng"])
    kept = [r for r in read_metrics(config.output_dir) if r["step"] <= state["step"]]
    write_metrics(config.output_dir, kept)  # drop steps logged after the checkpoint
    return _Run(model, optimizer, rng, state["step"])


def _load_state(path: Path) -> dict[str, Any]:
    try:
        return torch.load(path, weights_only=True)
    except FileNotFoundError:
        raise LlmlabError(f"{path}: missing from the checkpoint folder") from None
    except Exception as e:  # a truncated or foreign file: pickle, zip and torch errors alike
        raise LlmlabError(f"{path}: not a readable trainer state ({type(e).__name__})") from None


def _train(config, tokenizer, run: _Run, objective: Objective, progress: bool) -> Path:
    last = config.stop_after or config.steps
    folder = latest_checkpoint(config.output_dir)
    run.model.train()
    clock = time.perf_counter()
    with progress_bar("pretraining", enabled=progress) as bar, open_metrics(config.output_dir) as log:
        bar(run.step, config.steps)
        while run.step < last:
            lr = learning_rate(run.step, config)
            loss = _train_step(run, config, objective, lr)
            _check_finite(loss, "training loss", run.step + 1, folder)
            run.step += 1
            tokens_per_s = config.batch_size * config.context_length / (time.perf_counter() - clock)
            record = {"step": run.step, "loss": loss, "lr": lr, "tokens_per_s": tokens_per_s}
            if run.step % config.eval_every == 0 or run.step == config.steps:
                record["val_loss"] = objective.evaluate(run.model)
                _check_finite(record["val_loss"], "validation loss", run.step, folder)
                record["val_ppl"] = math.exp(min(record["val_loss"], 50.0))
                _status(record, config.steps, progress)
            log.write(json.dumps(record) + "\n")
            log.flush()
            if run.step % config.checkpoint_every == 0 or run.step == last:
                folder = save_checkpoint(run, config, tokenizer)
            bar(run.step, config.steps)
            clock = time.perf_counter()  # evaluation and checkpoints are not training time
    return folder


def _check_finite(loss: float, what: str, step: int, kept: Path | None) -> None:
    """Stop the run (RunStopped, one line naming the step) when `loss` is NaN or infinite."""
    if not math.isfinite(loss):
        where = f"the last good checkpoint {kept} is kept" if kept else "no checkpoint was written"
        raise RunStopped(
            f"{what} is {loss} at step {step}: the run diverged and stopped ({where}); "
            "lower --lr or clip gradients",
            kept,
        )


def _data_files(config: PretrainConfig) -> list[tuple[str, str, str]]:
    """(role, path, sha256 of the content) of every train and valid file."""
    files = [("train file", p) for p in config.train_files] + [("valid file", p) for p in config.valid_files]
    return [(role, str(p), file_sha256(p)) for role, p in files]


def _train_step(run: _Run, config: PretrainConfig, objective: Objective, lr: float) -> float:
    """One AdamW step on a fresh batch of the objective; returns the batch loss."""
    for group in run.optimizer.param_groups:
        group["lr"] = lr
    loss = objective.loss(run.model, run.rng)
    run.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if config.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(run.model.parameters(), config.grad_clip)
    run.optimizer.step()
    return loss.item()


def learning_rate(step: int, config: PretrainConfig) -> float:
    """The learning rate of step `step` (0-based): linear warmup, then cosine decay to lr * min_lr_ratio."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    floor = config.lr * config.min_lr_ratio
    return floor + 0.5 * (1.0 + math.cos(math.pi * progress)) * (config.lr - floor)


def save_checkpoint(run: _Run, config: PretrainConfig, tokenizer: Tokenizer) -> Path:
    """Write checkpoints/step-NNNNNN/ (model + trainer state), point latest.json at it, drop older ones."""
    root = config.output_dir / "checkpoints"
    state = {
        "step": run.step,
        "optimizer": run.optimizer.state_dict(),
        "numpy_rng": run.rng.bit_generator.state,
        "torch_rng": torch.get_rng_state(),
        "pretrain_config": config.to_dict(),
        "tokenizer_fingerprint": tokenizer.fingerprint,
        "data_sha256": run.data_sha256,
    }
    buffer = io.BytesIO()
    torch.save(state, buffer)
    with new_step_folder(root, run.step) as folder:  # hidden until complete: no empty step folder on failure
        save_model(folder, run.model, tokenizer)
        atomic_write_bytes(folder / _STATE_FILE, buffer.getvalue())
    return root / f"step-{run.step:06d}"


def latest_checkpoint(out: Path) -> Path | None:
    """The newest complete checkpoint folder of a run, or None."""
    return latest_step_folder(out / "checkpoints")


def _optimizer(model: Transformer, config: PretrainConfig) -> torch.optim.AdamW:
    """AdamW; weight decay on matrices and embeddings only (nanoGPT), never on biases and norms. The model's
    weights are first stored as the precision keeps them; the bf16 modes use the fused AdamW kernel."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": config.weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    mp.store_weights(model, config.precision)
    options = mp.optimizer_options(config.precision, "cpu")
    return torch.optim.AdamW(groups, lr=config.lr, betas=(0.9, 0.95), **options)


def _status(record: dict[str, Any], total: int, enabled: bool) -> None:
    if enabled:
        print(
            f"step {record['step']}/{total}  loss {record['loss']:.3f}  lr {record['lr']:.2e}  "
            f"{record['tokens_per_s']:,.0f} tok/s  val loss {record['val_loss']:.3f}  "
            f"val ppl {record['val_ppl']:.1f}",
            file=sys.stderr,
        )
