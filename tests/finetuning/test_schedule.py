"""Warmup + linear / cosine / constant schedules equal transformers.optimization's, value for value."""

from __future__ import annotations

import pytest
import torch

from llmlab.finetuning.schedule import build_scheduler, lr_multiplier, warmup_steps

optimization = pytest.importorskip("transformers.optimization")

REFERENCE = {
    "linear": optimization.get_linear_schedule_with_warmup,
    "cosine": optimization.get_cosine_schedule_with_warmup,
    "constant": lambda opt, warmup, total: optimization.get_constant_schedule_with_warmup(opt, warmup),
}


def _lrs(make, steps: int) -> list[float]:
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=3e-4)
    scheduler = make(opt)
    lrs = []
    for _ in range(steps):
        lrs.append(scheduler.get_last_lr()[0])
        opt.step()
        scheduler.step()
    return lrs


@pytest.mark.parametrize("schedule", ["linear", "cosine", "constant"])
@pytest.mark.parametrize("total, ratio", [(100, 0.06), (37, 0.1), (10, 0.0), (5, 1.0)])
def test_schedule_equals_transformers(schedule, total, ratio):
    warmup = warmup_steps(total, ratio)
    ours = _lrs(lambda opt: build_scheduler(opt, schedule, warmup, total), total + 3)
    theirs = _lrs(lambda opt: REFERENCE[schedule](opt, warmup, total), total + 3)
    assert ours == theirs  # exactly: the same float operations


def test_warmup_counts_as_training_arguments_does():
    assert warmup_steps(1000, 0.06) == 60 and warmup_steps(37, 0.1) == 4 and warmup_steps(10, 0.0) == 0


def test_known_values():
    assert lr_multiplier(0, "linear", 10, 110) == 0.0
    assert lr_multiplier(5, "linear", 10, 110) == 0.5
    assert lr_multiplier(60, "linear", 10, 110) == 0.5
    assert lr_multiplier(60, "cosine", 10, 110) == pytest.approx(0.5)
    assert lr_multiplier(110, "cosine", 10, 110) == pytest.approx(0.0)
