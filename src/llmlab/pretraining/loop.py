"""Pretraining a causal language model on text files, with checkpoints that resume exactly.

Recipe: nanoGPT `train.py` (Karpathy) — the text tokenized once into a flat token array, random windows of
`context_length + 1` tokens, AdamW with weight decay on the 2-D weights only, a linear warmup then a cosine
decay to `min_lr_ratio * lr` (Loshchilov & Hutter 2017, "SGDR"), gradient clipping by global norm.
Validation loss is measured on the first `eval_tokens` of the valid files in non-overlapping windows, so it
draws no random numbers and every evaluation sees the same text.

Exact resume: a checkpoint holds the model (`save_model`) and, in `trainer_state.pt`, the step, the AdamW
state, the numpy window generator and the torch RNG. The learning rate is a pure function of the step. A
run resumed from step N therefore logs the same losses, bit for bit, as one that never stopped (tested), on
the same machine and thread count. Resuming refuses a different tokenizer, a train or valid file whose
content changed (sha256 recorded in the checkpoint), or any other changed setting that shapes the trajectory
(`RESUME_MAY_CHANGE` lists the ones that may change). A loss that is not finite stops the run with a one-line
`RunStopped` naming the step, before it is logged; the last checkpoint stays the run's latest.

Precision (`llmlab.model.precision`): bf16-mixed keeps float32 weights and AdamW state and runs the forward
passes under bfloat16 autocast, the loss on float32 logits; resume is exact within one precision, and
changing it is a changed setting.

Output folder:
    metrics.jsonl                   one object per step: step, loss, lr, tokens_per_s (+ val_loss, val_ppl)
    pretrain_config.json            this run's PretrainConfig
    tokens-<key>.npy                cached token arrays, keyed by tokenizer fingerprint and file identities
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
import torch.nn.functional as F

from llmlab.errors import LlmlabError, RunStopped
from llmlab.io import atomic_write_bytes, atomic_write_json, file_sha256, latest_step_folder, new_step_folder
from llmlab.model import precision as mp
from llmlab.model.checkpoint import load_model, save_model
from llmlab.model.config import ModelConfig
from llmlab.model.transformer import Transformer
from llmlab.pretraining.data import (
    evaluate_loss,
    open_metrics,
    random_windows,
    read_metrics,
    token_array,
    write_metrics,
)
from llmlab.progress import progress_bar
from llmlab.tokenizer.pipeline import Tokenizer, check_fingerprint

RESUME_MAY_CHANGE = {
    "resume",
    "stop_after",
    "eval_every",
    "checkpoint_every",
    "token_cache_dir",
    "tokenizer",
    "output_dir",
}
_FROM_TOKENIZER = ("vocab_size", "tokenizer_fingerprint")  # ModelConfig fields pretraining fills in itself
_STATE_FILE = "trainer_state.pt"


@dataclass
class PretrainConfig:
    """Every setting of one pretraining run; validated on construction (one-line LlmlabError)."""

    train_files: list[Path]
    valid_files: list[Path]
    tokenizer: Path  # a tokenizer.json saved by llmlab (Tokenizer.save)
    output_dir: Path
    model: dict[str, Any] = field(default_factory=dict)  # ModelConfig fields; vocab comes from the tokenizer
    context_length: int = 128
    batch_size: int = 32
    steps: int = 1000
    lr: float = 1e-3
    min_lr_ratio: float = 0.1  # the cosine ends at lr * min_lr_ratio
    warmup_steps: int | None = None  # None: 10% of the steps, at most 100
    weight_decay: float = 0.1
    grad_clip: float = 1.0  # max global gradient norm; 0 turns clipping off
    eval_every: int = 100
    eval_tokens: int = 32768  # valid tokens per evaluation
    checkpoint_every: int = 500
    seed: int = 0
    resume: bool = False
    stop_after: int | None = None  # end this invocation after that step (checkpointed), as if interrupted
    token_cache_dir: Path | None = None  # where tokens-<key>.npy live; None: output_dir
    text_errors: str = "strict"  # invalid UTF-8 in the text files: "strict" stops, "replace" goes on
    precision: str = "fp32"  # fp32 | bf16-mixed | bf16 (llmlab.model.precision); "auto" resolves here

    def __post_init__(self) -> None:
        self.train_files = [Path(p) for p in self.train_files]
        self.valid_files = [Path(p) for p in self.valid_files]
        self.tokenizer, self.output_dir = Path(self.tokenizer), Path(self.output_dir)
        self.token_cache_dir = None if self.token_cache_dir is None else Path(self.token_cache_dir)
        if self.warmup_steps is None and isinstance(self.steps, int):
            self.warmup_steps = min(100, self.steps // 10)
        if self.precision in mp.CHOICES:
            self.precision = mp.resolve_precision(self.precision, "cpu")
        problem = self._number_problem() or mp.check_precision(self.precision)
        problem = problem or self._model_problem() or self._file_problem()
        if problem:
            raise LlmlabError(f"pretrain config: {problem}")

    def _number_problem(self) -> str | None:
        counts = ["context_length", "batch_size", "steps", "eval_every", "eval_tokens", "checkpoint_every"]
        for name in counts:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                return f"{name}={value!r} must be a positive integer"
        if not isinstance(self.warmup_steps, int) or not 0 <= self.warmup_steps <= self.steps:
            return f"warmup_steps={self.warmup_steps!r} must be an integer in [0, steps={self.steps}]"
        ranges = {
            "lr": (0, math.inf),
            "min_lr_ratio": (0, 1),
            "weight_decay": (0, math.inf),
            "grad_clip": (0, math.inf),
        }
        for name, (low, high) in ranges.items():
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not low <= value <= high:
                return f"{name}={value!r} must be a number in [{low}, {high}]"
            if not math.isfinite(value):
                return f"{name}={value!r} must be finite"
        if self.lr == 0:
            return "lr must be above 0"
        if self.stop_after is not None and not 1 <= self.stop_after <= self.steps:
            return f"stop_after={self.stop_after} must lie in [1, steps={self.steps}]"
        if self.text_errors not in ("strict", "replace"):
            return f"text_errors={self.text_errors!r}; choose strict or replace"
        return None

    def _model_problem(self) -> str | None:
        if not isinstance(self.model, dict):
            return f"model must be a dict of ModelConfig fields, not {type(self.model).__name__}"
        known = {f.name for f in dataclasses.fields(ModelConfig)} - set(_FROM_TOKENIZER)
        unknown = sorted(set(self.model) - known)
        if unknown:
            return f"unknown model settings: {', '.join(unknown)}"
        if self.model.get("causal", True) is not True:
            return "pretraining trains a causal LM; model causal must be true"
        table = self.model.get("max_seq_len", self.context_length)
        if self.model.get("positional") == "learned" and table < self.context_length:
            return f"context_length={self.context_length} exceeds the learned position table of {table}"
        try:
            self.model_config(vocab_size=1 << 30, tokenizer_fingerprint=None)
        except LlmlabError as e:
            return str(e)
        return None

    def _file_problem(self) -> str | None:
        if not self.train_files or not self.valid_files:
            return "give at least one train file and one valid file"
        for path in [*self.train_files, *self.valid_files, self.tokenizer]:
            if not path.is_file():
                return f"{path}: file not found"
        return None

    def model_config(self, vocab_size: int, tokenizer_fingerprint: str | None) -> ModelConfig:
        """The ModelConfig of the model: these settings, a causal LM, the table sized to the context."""
        fields = {"max_seq_len": self.context_length, **self.model, "causal": True}
        return ModelConfig(vocab_size=vocab_size, tokenizer_fingerprint=tokenizer_fingerprint, **fields)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: paths as strings."""
        d = dataclasses.asdict(self)
        return json.loads(json.dumps(d, default=str))


def pretrain(config: PretrainConfig, progress: bool = True) -> Path:
    """Train (or resume training) a causal LM as `config` says.

    Args:
        config: the run's settings.
        progress: show a progress bar and a status line per evaluation on stderr.

    Returns:
        The folder of the last checkpoint written (loadable with `load_model`).

    Raises:
        LlmlabError: unreadable files, too little text, an existing run without `resume`, or (on resume) no
            checkpoint, a different tokenizer or a changed setting.
    """
    out = config.output_dir
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = Tokenizer.load(config.tokenizer)
    cache = config.token_cache_dir or out
    train = token_array(config.train_files, tokenizer, cache, progress, config.text_errors)
    valid = token_array(config.valid_files, tokenizer, cache, progress, config.text_errors)
    _check_enough(train, valid, config, tokenizer)
    data = _data_files(config)
    run = _resume(config, tokenizer, data) if config.resume else _fresh(config, tokenizer)
    run.data_sha256 = {path: sha for _, path, sha in data}
    atomic_write_json(out / "pretrain_config.json", config.to_dict())
    return _train(config, tokenizer, run, train, valid, progress)


@dataclass
class _Run:
    """The training state that a checkpoint captures."""

    model: Transformer
    optimizer: torch.optim.AdamW
    rng: np.random.Generator  # draws the window starts
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


def _train(config, tokenizer, run: _Run, train: np.ndarray, valid: np.ndarray, progress: bool) -> Path:
    last = config.stop_after or config.steps
    folder = latest_checkpoint(config.output_dir)
    run.model.train()
    clock = time.perf_counter()
    with progress_bar("pretraining", enabled=progress) as bar, open_metrics(config.output_dir) as log:
        bar(run.step, config.steps)
        while run.step < last:
            lr = learning_rate(run.step, config)
            loss = _train_step(run, config, train, lr)
            _check_finite(loss, "training loss", run.step + 1, folder)
            run.step += 1
            tokens_per_s = config.batch_size * config.context_length / (time.perf_counter() - clock)
            record = {"step": run.step, "loss": loss, "lr": lr, "tokens_per_s": tokens_per_s}
            if run.step % config.eval_every == 0 or run.step == config.steps:
                with mp.autocast(config.precision, "cpu"):
                    record["val_loss"] = evaluate_loss(
                        run.model, valid, config.context_length, config.eval_tokens
                    )
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


def _train_step(run: _Run, config: PretrainConfig, tokens: np.ndarray, lr: float) -> float:
    """One AdamW step on a fresh batch of random windows; returns the batch loss."""
    x, y = random_windows(tokens, config.batch_size, config.context_length, run.rng)  # (B, T) each
    for group in run.optimizer.param_groups:
        group["lr"] = lr
    with mp.autocast(config.precision, "cpu"):
        logits = run.model(x).logits  # (B, T, V)
    loss = F.cross_entropy(logits.flatten(0, 1).float(), y.flatten())  # softmax statistics in float32
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


def _check_enough(train: np.ndarray, valid: np.ndarray, config: PretrainConfig, tokenizer: Tokenizer) -> None:
    for name, tokens in [("train", train), ("valid", valid)]:
        if len(tokens) <= config.context_length + 1:
            raise LlmlabError(
                f"{config.train_files[0] if name == 'train' else config.valid_files[0]}: the {name} files "
                f"hold {len(tokens)} tokens; context_length={config.context_length} needs more"
            )
    if len(train) and int(train.max()) >= tokenizer.vocab_size:
        raise LlmlabError(f"{config.tokenizer}: token id {int(train.max())} is beyond the vocabulary")


def _status(record: dict[str, Any], total: int, enabled: bool) -> None:
    if enabled:
        print(
            f"step {record['step']}/{total}  loss {record['loss']:.3f}  lr {record['lr']:.2e}  "
            f"{record['tokens_per_s']:,.0f} tok/s  val loss {record['val_loss']:.3f}  "
            f"val ppl {record['val_ppl']:.1f}",
            file=sys.stderr,
        )
