"""The learning-rate range test: train briefly with an exponentially growing lr and read off a good one.

Paper: Smith (2017), "Cyclical Learning Rates for Training Neural Networks", section 3.3; reference
implementation fastai `callback/schedule.py` (`LRFinder`, `lr_find`, the `steep` suggestion): the lr grows
geometrically from `start_lr` to `end_lr` over `num_steps` steps, the loss is smoothed with a debiased
exponential moving average (β = 0.98), the test stops once the smoothed loss exceeds 4× its minimum, and the
suggestion is the lr where the smoothed loss falls fastest against log lr, the first 10% and last 5 points
left out as fastai does. The model's trainable weights are put back afterwards. Precision: the test runs in
`config.precision` as `trainer.train` does (weights stored by `llmlab.model.precision`, forward under its
autocast, fused AdamW in the bf16 modes), so the suggestion is for the run it precedes.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from llmlab.finetuning.data import Collator, epoch_examples
from llmlab.finetuning.objective import loss_sum
from llmlab.finetuning.schedule import build_optimizer
from llmlab.finetuning.trainer import TrainConfig, collator_for
from llmlab.model import precision as mp


@dataclass
class LrFindResult:
    lrs: list[float]
    losses: list[float]  # smoothed
    suggestion: float  # lr at the steepest descent of the smoothed loss

    def to_dict(self) -> dict:
        return {"lrs": self.lrs, "losses": self.losses, "suggestion": self.suggestion}


def lr_find(
    model: nn.Module,
    train_set,
    config: TrainConfig,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    num_steps: int = 100,
    diverge: float = 4.0,
) -> LrFindResult:
    """Run the range test on `model` (restored afterwards) with `config`'s batch size, decay and smoothing.

    Args:
        model: a FinetuneModel.
        train_set: a list of Examples or a StreamingExamples (cycled through when short).
        config: batch_size, weight_decay, label_smoothing, max_length, seed and precision are used.
        start_lr, end_lr: the range, swept geometrically.
        num_steps: steps at most.
        diverge: stop once the smoothed loss exceeds this many times its minimum.

    Returns:
        The lrs tried, their smoothed losses, and the suggested lr. The model comes back in float32, as
        after `train` (frozen weights rounded through bfloat16 in the bf16 modes).
    """
    snapshot = model.trainable_state_dict()
    mp.store_weights(model, config.precision)
    options = mp.optimizer_options(config.precision)
    optimizer = build_optimizer(model, start_lr, config.weight_decay, **options)
    collate = collator_for(model, config)
    batches = _batches(train_set, config, collate)
    lrs = []
    losses = []
    average = 0.0
    best = math.inf
    model.train()
    for i in range(num_steps):
        lr = start_lr * (end_lr / start_lr) ** (i / max(1, num_steps - 1))
        loss = _step(model, optimizer, next(batches), lr, config)
        average = 0.98 * average + 0.02 * loss
        smoothed = average / (1 - 0.98 ** (i + 1))  # debiased, as fastai's AvgSmoothLoss
        lrs.append(lr)
        losses.append(smoothed)
        best = min(best, smoothed)
        if smoothed > diverge * best or not math.isfinite(smoothed):
            break
    mp.store_weights(model, "fp32")
    model.load_trainable_state_dict(snapshot)
    return LrFindResult(lrs, losses, steepest(lrs, losses))


def steepest(lrs: list[float], losses: list[float]) -> float:
    """fastai's `steep`: the lr where d(loss)/d(log lr) is most negative, ends trimmed when there are enough."""
    n = len(lrs)
    lo, hi = (n // 10, n - 5) if n >= 20 else (0, n)
    x = np.log(np.array(lrs[lo:hi]))
    y = np.array(losses[lo:hi])
    if len(x) < 2:
        return lrs[0]
    slopes = np.diff(y) / np.diff(x)
    return float(lrs[lo + int(np.argmin(slopes))])


def _batches(train_set, config: TrainConfig, collate: Collator):
    examples = itertools.chain.from_iterable(
        epoch_examples(train_set, config.seed, e) for e in itertools.count()
    )
    while True:
        yield collate(list(itertools.islice(examples, config.batch_size)))


def _step(
    model: nn.Module, optimizer: torch.optim.Optimizer, batch: dict, lr: float, config: TrainConfig
) -> float:
    for group in optimizer.param_groups:
        group["lr"] = lr
    device = next(model.parameters()).device
    batch = {k: v.to(device) for k, v in batch.items()}
    with mp.training_autocast(config.precision, device):
        logits = model(batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids"))
    total, count = loss_sum(logits, batch, model.task, config.label_smoothing)
    loss = total / count
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if config.max_grad_norm > 0:
        nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], config.max_grad_norm)
    optimizer.step()
    return loss.item()


def lr_find_figure(result: LrFindResult):
    """A matplotlib figure: smoothed loss against lr (log scale), the suggestion marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(result.lrs, result.losses)
    ax.axvline(
        result.suggestion, color="tab:red", linestyle="--", label=f"suggestion {result.suggestion:.2e}"
    )
    ax.set(xscale="log", xlabel="learning rate", ylabel="smoothed training loss", title="LR range test")
    ax.legend()
    fig.tight_layout()
    return fig
