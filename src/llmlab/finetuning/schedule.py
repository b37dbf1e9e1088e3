"""The optimizer and learning-rate schedule of fine-tuning: AdamW, warmup, then linear / cosine / constant.

Optimizer: AdamW (Loshchilov & Hutter 2019, "Decoupled Weight Decay Regularization"), as BERT fine-tuning
uses it, without weight decay on parameters of fewer than two dimensions (biases, LayerNorm) nor on soft
prompts and prefixes (names containing "prompt" or "prefix"): decaying a prompt pulls it toward the zero
embedding, which no real token has.
Schedules: the multipliers of `transformers.optimization.get_linear_schedule_with_warmup`,
`get_cosine_schedule_with_warmup` (half a cosine) and `get_constant_schedule_with_warmup`, value for value
(parity-tested); the warmup lasts ceil(warmup_ratio · total_steps) steps, as `TrainingArguments` counts it.
"""

from __future__ import annotations

import math
from functools import partial

import torch
from torch import nn

SCHEDULES = ("linear", "cosine", "constant")
NO_DECAY_NAMES = ("prompt", "prefix")


def decays(name: str, param: nn.Parameter) -> bool:
    """Whether AdamW's weight decay applies to this parameter (matrices only, never prompts or prefixes)."""
    return param.ndim >= 2 and not any(word in name for word in NO_DECAY_NAMES)


def build_optimizer(
    model: nn.Module, lr: float, weight_decay: float, fused: bool | None = None
) -> torch.optim.AdamW:
    """AdamW over the trainable parameters of `model`, in two groups: decayed and not decayed.

    Args:
        model: the model; parameters with requires_grad False are left out.
        lr: the peak learning rate.
        weight_decay: the decoupled decay of the decayed group.
        fused: PyTorch's fused AdamW kernel (one pass over all tensors; `precision.optimizer_options`).

    Returns:
        The optimizer (betas 0.9, 0.999, eps 1e-8: the BERT / transformers defaults).
    """
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    groups = [
        {"params": [p for n, p in named if decays(n, p)], "weight_decay": weight_decay},
        {"params": [p for n, p in named if not decays(n, p)], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(
        [g for g in groups if g["params"]], lr=lr, betas=(0.9, 0.999), eps=1e-8, fused=fused
    )


def warmup_steps(total_steps: int, warmup_ratio: float) -> int:
    """ceil(total_steps · warmup_ratio), as `transformers.TrainingArguments.get_warmup_steps`."""
    return math.ceil(total_steps * warmup_ratio)


def lr_multiplier(step: int, schedule: str, warmup: int, total: int) -> float:
    """The factor applied to the peak lr at optimizer step `step` (0-based), as transformers computes it."""
    if step < warmup:
        return float(step) / float(max(1, warmup))
    if schedule == "constant":
        return 1.0
    progress = float(step - warmup) / float(max(1, total - warmup))
    if schedule == "linear":
        return max(0.0, float(total - step) / float(max(1, total - warmup)))
    return max(0.0, 0.5 * (1.0 + math.cos(math.pi * 2.0 * 0.5 * progress)))  # num_cycles = 0.5


def build_scheduler(
    optimizer: torch.optim.Optimizer, schedule: str, warmup: int, total: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """A LambdaLR stepping through `lr_multiplier`; call `.step()` after each optimizer step."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, partial(lr_multiplier, schedule=schedule, warmup=warmup, total=total)
    )
