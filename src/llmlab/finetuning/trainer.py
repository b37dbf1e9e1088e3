"""The one fine-tuning loop: every method, hyperparameter search and the A/B experiments call `train`.

Recipe: BERT fine-tuning (Devlin et al. 2019) as `transformers.Trainer` runs it — AdamW with warmup then
linear (or cosine) decay (`schedule.py`), gradient clipping by global norm, gradient accumulation, dev
evaluation every `eval_every` steps or each epoch, and early stopping with patience (Prechelt 1998, "Early
Stopping — But When?") that restores the best dev step's weights at the end (`load_best_model_at_end`).
Weights are handled through `model.trainable_state_dict()`, so the loop works for all five methods.

Exact resume: the data order of an epoch is a function of (seed, epoch), EDA draws a function of (seed,
epoch, index), and a checkpoint (`checkpoint.py`) holds the position in the epoch, the optimizer, scheduler
and RNG states; a resumed run logs the same per-step losses as one that never stopped (tested with SIGKILL).
Data parallel: see `distributed.py`; rank 0 alone writes files.
Precision (`llmlab.model.precision`): the forward passes run under its autocast (training ones under
`training_autocast`, which keeps SDPA's unfused dropout kernel in bfloat16), the weights are stored as
it says for the run and put back in float32 at the end; `group_by_length` orders each epoch as HF's
`LengthGroupedSampler` (`data.length_grouped`), and the result reports the share of padding positions.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from llmlab.errors import LlmlabError, RunStopped
from llmlab.finetuning import checkpoint as ckpt
from llmlab.finetuning.augment import OPS, augment, check_ops, example_rng
from llmlab.finetuning.data import Collator, Example, count_examples, epoch_examples, length_grouped
from llmlab.finetuning.distributed import World, all_sum, setup_world, shard
from llmlab.finetuning.objective import HIGHER_IS_BETTER, batches, evaluate, improved, loss_sum
from llmlab.finetuning.schedule import SCHEDULES, build_optimizer, build_scheduler, warmup_steps
from llmlab.io import ensure_folder
from llmlab.model import precision as mp
from llmlab.progress import progress_bar

RESUME_MAY_CHANGE = ("checkpoint_every",)


@dataclass
class TrainConfig:
    """Settings of one training run; batch_size × grad_accum examples make one optimizer step."""

    lr: float = 5e-5
    weight_decay: float = 0.01
    batch_size: int = 32
    grad_accum: int = 1
    epochs: int = 3
    max_steps: int | None = None  # overrides epochs
    warmup_ratio: float = 0.06
    schedule: str = "linear"
    max_grad_norm: float = 1.0  # 0: no clipping
    label_smoothing: float = 0.0
    max_length: int = 128
    seed: int = 0
    eval_every: int | None = None  # steps; None: each epoch
    patience: int | None = None  # evaluations without improvement before stopping; None: never stop
    metric: str = "accuracy"  # "accuracy" | "f1" | "loss"
    checkpoint_every: int | None = None  # steps, and then also at the end; None: no checkpoints
    augment_rate: float = 0.0
    augment_ops: tuple[str, ...] = OPS
    precision: str = "fp32"  # fp32 | bf16-mixed | bf16 (model/precision.py); "auto" resolves on construction
    group_by_length: bool = False  # batches of similar length (less padding), as HF's group_by_length

    def __post_init__(self) -> None:
        self.augment_ops = tuple(self.augment_ops)
        if self.precision in mp.CHOICES:
            self.precision = mp.resolve_precision(self.precision)
        problem = self._problem()
        if problem:
            raise LlmlabError(f"train config: {problem}")

    def _problem(self) -> str | None:
        for name in ("batch_size", "grad_accum", "epochs", "max_length"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                return f"{name}={getattr(self, name)!r} must be a positive integer"
        for name in ("max_steps", "eval_every", "patience", "checkpoint_every"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                return f"{name}={value!r} must be a positive integer or None"
        ranges = {
            "lr": (0, 10),
            "weight_decay": (0, 10),
            "warmup_ratio": (0, 1),
            "max_grad_norm": (0, 1e9),
            "label_smoothing": (0, 1),
            "augment_rate": (0, 1),
        }
        for name, (low, high) in ranges.items():
            if not low <= getattr(self, name) <= high:
                return f"{name}={getattr(self, name)!r} must lie in [{low}, {high}]"
        if self.lr <= 0:
            return "lr must be above 0"
        if self.schedule not in SCHEDULES:
            return f"schedule={self.schedule!r}; choose from {', '.join(SCHEDULES)}"
        if self.metric not in HIGHER_IS_BETTER:
            return f"metric={self.metric!r}; choose from {', '.join(HIGHER_IS_BETTER)}"
        return mp.check_precision(self.precision) or check_ops(self.augment_ops)

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "augment_ops": list(self.augment_ops)}


@dataclass
class TrainResult:
    history: list[dict]  # one record per dev evaluation
    best_step: int
    best_metric: float
    stopped_early: bool
    step_losses: list[float] = field(default_factory=list)  # the train loss of every optimizer step
    step_times: list[float] = field(default_factory=list)  # seconds per optimizer step (this invocation)
    padding_share: float | None = None  # share of padding in the training batches (this invocation)


@dataclass
class _State:
    """What a checkpoint records besides tensors (JSON-ready)."""

    step: int = 0
    epoch: int = 0
    position: int = 0  # examples of this epoch already consumed
    history: list[dict] = field(default_factory=list)
    step_losses: list[float] = field(default_factory=list)
    best_metric: float | None = None
    best_step: int = 0
    bad_evals: int = 0
    stopped_early: bool = False
    elapsed_s: float = 0.0


class _Run:
    """The live objects of one run: model (and its DDP wrapper), optimizer, scheduler, collator."""

    def __init__(
        self, model: nn.Module, config: TrainConfig, total: int, world: World, identity: dict | None
    ):
        self.model, self.config, self.total, self.world = model.to(world.device), config, total, world
        self.identity = identity  # base, data and settings fingerprints a resume must match (checkpoint.py)
        mp.store_weights(model, config.precision)  # before DDP, which keeps views of the parameters
        self.wrapped = model
        if world.size > 1:
            self.wrapped = nn.parallel.DistributedDataParallel(
                model, device_ids=[world.device.index] if world.device.type == "cuda" else None
            )
        options = mp.optimizer_options(config.precision, world.device)
        self.optimizer = build_optimizer(model, config.lr, config.weight_decay, **options)
        self.tokens = [0, 0]  # real tokens, all positions of the training batches
        self.trainable = [p for p in model.parameters() if p.requires_grad]  # what clipping looks at
        warmup = warmup_steps(total, config.warmup_ratio)
        self.scheduler = build_scheduler(self.optimizer, config.schedule, warmup, total)
        self.collate = collator_for(model, config)
        self.best: dict[str, torch.Tensor] | None = None
        self.last_lr = 0.0  # the lr of the latest step


def collator_for(model: nn.Module, config: TrainConfig) -> Collator:
    """The model's collator: its tokenizer, truncation to the shorter of config's and the model's max length,
    and token type ids when the model has a token-type embedding."""
    max_length = min(config.max_length, getattr(model, "max_length", config.max_length))
    token_types = any(getattr(m, "type_emb", None) is not None for m in model.modules())
    return Collator(model.tokenizer, max_length, token_types)


def total_steps(config: TrainConfig, n_train: int) -> int:
    """max_steps, or epochs × ceil(n_train / (batch_size · grad_accum))."""
    if config.max_steps is not None:
        return config.max_steps
    per_step = config.batch_size * config.grad_accum
    return config.epochs * -(-n_train // per_step)


def train(
    model: nn.Module,
    train_set,
    dev_set: list[Example],
    config: TrainConfig,
    out_dir: str | Path,
    resume: bool = False,
    progress: bool = True,
    on_eval: Callable[[dict], None] | None = None,
    identity: dict | None = None,
) -> TrainResult:
    """Fine-tune `model` on `train_set`, evaluating on `dev_set`; ends with the best dev step's weights.

    Args:
        model: a FinetuneModel (forward(input_ids, attention_mask, token_type_ids) -> logits; task,
            tokenizer, trainable_state_dict(), load_trainable_state_dict()).
        train_set: a list of Examples or a `StreamingExamples`.
        dev_set: the dev examples.
        config: the training settings.
        out_dir: the run folder (checkpoint/ goes there).
        resume: continue from out_dir/checkpoint (the settings must be the same).
        progress: a progress bar on stderr (rank 0).
        on_eval: called with each history record; an exception it raises propagates (search pruning).
        identity: `checkpoint.run_identity` of the run, saved with each checkpoint; a resume must match it.

    Returns:
        The TrainResult; the model holds the best weights.

    Raises:
        LlmlabError: a checkpoint already there without `resume`, none with it, or changed settings, base
            or data (named).
        RunStopped: a step's loss is not finite (the last committed checkpoint is kept).
    """
    out_dir, world = ensure_folder(out_dir), setup_world()
    torch.manual_seed(config.seed)
    n_train = count_examples(train_set)
    run = _Run(model, config, total_steps(config, n_train), world, identity)
    state = _restore(run, out_dir) if resume else _fresh(out_dir)
    step_times: list[float] = []
    description = f"fine-tuning ({getattr(model, 'method', 'model')})"
    with progress_bar(description, enabled=progress and world.is_main) as bar:
        while state.step < run.total and not state.stopped_early:
            _epoch(run, state, train_set, dev_set, n_train, out_dir, bar, step_times, on_eval)
        if not state.history or state.history[-1]["step"] != state.step:
            _evaluate(run, state, dev_set, n_train, on_eval)
        if config.checkpoint_every:
            _checkpoint(run, state, out_dir)  # the final state, so a finished run resumes to nothing
    mp.store_weights(model, "fp32")  # the caller gets a float32 model back, whatever trained it
    if run.best is not None:
        model.load_trainable_state_dict(run.best)
    return TrainResult(
        state.history,
        state.best_step,
        state.best_metric,
        state.stopped_early,
        state.step_losses,
        step_times,
        1 - run.tokens[0] / run.tokens[1] if run.tokens[1] else None,
    )


def _epoch(run: _Run, state: _State, train_set, dev_set, n_train, out_dir, bar, step_times, on_eval) -> None:
    """Train through the rest of epoch `state.epoch` (or until the last step / early stop)."""
    config = run.config
    ordered = epoch_examples(train_set, config.seed, state.epoch)
    if config.group_by_length:
        ordered = length_grouped(ordered, config.batch_size * config.grad_accum, n_train)
    stream = itertools.islice(ordered, state.position, None)
    per_step = config.batch_size * config.grad_accum
    while state.step < run.total:
        examples = _augmented(list(itertools.islice(stream, per_step)), config, state)
        if not examples:
            break
        started = time.perf_counter()
        state.step_losses.append(_finite(_step(run, examples), state.step + 1, out_dir))
        state.step, state.position = state.step + 1, state.position + len(examples)
        step_times.append(time.perf_counter() - started)
        state.elapsed_s += step_times[-1]
        bar(state.step, run.total)
        if config.eval_every and state.step % config.eval_every == 0:
            _evaluate(run, state, dev_set, n_train, on_eval)
        if config.checkpoint_every and state.step % config.checkpoint_every == 0:
            _checkpoint(run, state, out_dir)
        if state.stopped_early:
            return
    else:
        return  # max steps reached mid-epoch
    state.epoch, state.position = state.epoch + 1, 0
    if config.eval_every is None:
        _evaluate(run, state, dev_set, n_train, on_eval)


def _finite(loss: float, step: int, out_dir: Path) -> float:
    """`loss`, or a RunStopped naming the step when it is NaN or infinite (weights would be garbage)."""
    if math.isfinite(loss):
        return loss
    kept = ckpt.latest_checkpoint(out_dir)
    where = f"the last good checkpoint {kept} is kept" if kept else "no checkpoint was written"
    raise RunStopped(
        f"{out_dir}: training loss is {loss} at step {step}: the run diverged and stopped ({where}); "
        "lower --lr or clip gradients (--max-grad-norm)",
        kept,
    )


def _augmented(examples: list[Example], config: TrainConfig, state: _State) -> list[Example]:
    if config.augment_rate <= 0:
        return examples
    return [
        dataclasses.replace(
            e,
            text=augment(
                e.text,
                config.augment_rate,
                config.augment_ops,
                example_rng(config.seed, state.epoch, state.position + i),
            ),
        )
        for i, e in enumerate(examples)
    ]


def _step(run: _Run, examples: list[Example]) -> float:
    """One optimizer step on a global batch; returns its mean loss (over all ranks)."""
    config = run.config
    world = run.world
    micro = [shard(chunk, world) for chunk in batches(examples, config.batch_size)]
    collated = [({k: v.to(world.device) for k, v in run.collate(part).items()}, w) for part, w in micro]
    count = all_sum(sum(_count(b, run.model.task) * w for b, w in collated), world)
    total = 0.0
    for i, (batch, weight) in enumerate(collated):
        sync = i == len(collated) - 1 or world.size == 1
        with nullcontext() if sync else run.wrapped.no_sync():
            with mp.training_autocast(config.precision, world.device):
                logits = run.wrapped(batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids"))
            s, _ = loss_sum(logits, batch, run.model.task, config.label_smoothing)
            (s * (weight * world.size / count)).backward()
        total += s.item() * weight
        run.tokens[0] += int(batch["attention_mask"].sum()) if weight else 0
        run.tokens[1] += batch["attention_mask"].numel() if weight else 0
    run.last_lr = run.scheduler.get_last_lr()[0]
    if config.max_grad_norm > 0:
        nn.utils.clip_grad_norm_(run.trainable, config.max_grad_norm)
    run.optimizer.step()
    run.scheduler.step()
    run.optimizer.zero_grad(set_to_none=True)
    return all_sum(total, world) / count


def _count(batch: dict[str, torch.Tensor], task: str) -> float:
    """Loss terms in a batch: examples, or target tokens for the LM."""
    return (
        float(len(batch["labels"]))
        if task == "classification"
        else float(batch["attention_mask"][:, 1:].sum())
    )


def _evaluate(run: _Run, state: _State, dev_set, n_train: int, on_eval) -> None:
    """Score the dev set, log a history record, track the best weights and the patience count."""
    config = run.config
    with mp.autocast(config.precision, run.world.device):
        metrics = evaluate(
            run.model, dev_set, run.collate, run.model.task, config.batch_size, run.world.device
        )
    since = state.step_losses[state.history[-1]["step"] if state.history else 0 :]
    record = {
        "step": state.step,
        "epoch": round(state.epoch + state.position / max(n_train, 1), 4),
        "lr": run.last_lr,
        "train_loss": sum(since) / len(since) if since else None,
        **metrics,
        "time_s": round(state.elapsed_s, 3),
    }
    state.history.append(record)
    metric = "loss" if run.model.task != "classification" else config.metric
    value = record[f"dev_{metric}"]
    if improved(value, state.best_metric, metric):
        state.best_metric, state.best_step, state.bad_evals = value, state.step, 0
        run.best = {k: v.detach().clone() for k, v in run.model.trainable_state_dict().items()}
    else:
        state.bad_evals += 1
        state.stopped_early = config.patience is not None and state.bad_evals >= config.patience
    if on_eval is not None:
        on_eval(record)


def _checkpoint(run: _Run, state: _State, out_dir: Path) -> None:
    if not run.world.is_main:
        return
    rng = ckpt.capture_rng()
    torch_state = {
        "optimizer": run.optimizer.state_dict(),
        "scheduler": run.scheduler.state_dict(),
        "rng": rng.pop("torch"),
    }
    saved = {**dataclasses.asdict(state), "rng": rng, "config": run.config.to_dict(), "total": run.total}
    saved["identity"] = run.identity
    ckpt.save_checkpoint(out_dir, state.step, run.model.trainable_state_dict(), run.best, torch_state, saved)


def _fresh(out_dir: Path) -> _State:
    if ckpt.latest_checkpoint(out_dir) is not None:
        raise LlmlabError(
            f"{out_dir}: holds a fine-tuning checkpoint already; pass --resume or pick a new folder"
        )
    return _State()


def _restore(run: _Run, out_dir: Path) -> _State:
    saved = ckpt.load_checkpoint(out_dir)
    old = saved["state"]["config"]
    new = run.config.to_dict()
    changed = [k for k in new if k not in RESUME_MAY_CHANGE and old.get(k) != new[k]]
    old_identity = saved["state"].get("identity")
    if old_identity is not None and run.identity is not None:
        changed += ckpt.changed_keys(old_identity, run.identity)
    if changed:
        raise LlmlabError(
            f"{out_dir / ckpt.FOLDER}: cannot resume with changed settings: {', '.join(changed)}"
        )
    run.model.load_trainable_state_dict(saved["trainable"])
    run.best = saved["best"]
    run.optimizer.load_state_dict(saved["torch"]["optimizer"])
    run.scheduler.load_state_dict(saved["torch"]["scheduler"])
    ckpt.restore_rng({**saved["state"]["rng"], "torch": saved["torch"]["rng"]})
    fields = {f.name for f in dataclasses.fields(_State)}
    return _State(**{k: v for k, v in saved["state"].items() if k in fields})
