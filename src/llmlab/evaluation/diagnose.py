"""Fit diagnosis from a training history: under-fitting, good fit or over-fitting, with remedies.

The rule (the bias-variance reading of learning curves, Goodfellow et al. 2016, "Deep Learning", 5.2 and
7.8 on early stopping), checked in this order on the evaluation records of history.json:
0. diverging: a train or dev loss is NaN or infinite, or the final train loss is more than `max_rise`
   (50%) above the first record's: the optimisation blew up (too high a learning rate, no gradient
   clipping), so no fit reading applies (Goodfellow et al. 8.2.4 on exploding gradients);
1. over-fitting: after its minimum, the dev loss rose at each of k consecutive evaluations (k = 2) while the
   train loss fell over them, ending at least 1% above its minimum; or, where train accuracy is recorded,
   the final train accuracy exceeds the final dev accuracy by more than 0.15;
2. under-fitting: the train loss stays high, i.e. the final train accuracy is below 0.70 where it is
   recorded, else the train loss fell by less than 25% from the first record, and dev is close to train
   (final |dev loss - train loss| <= 10% of the train loss);
3. otherwise: good fit.
Records are dicts with "step", "train_loss", "dev_loss" and optionally "train_accuracy", "dev_accuracy"
(the format of `llmlab.finetuning` history.json, see contracts). The thresholds are `Thresholds` fields; the
defaults label the three constructed SST-2 runs of the tests correctly (see `learning_curve.epoch_history`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from llmlab.errors import LlmlabError
from llmlab.io import read_json

DIVERGING = "diverging: a loss is NaN or infinite, or the final train loss is > {rise:.0%} above the first; "
RULE = (
    "over-fitting: dev loss rose at each of k={k} consecutive evaluations after its minimum while train loss "
    "fell (ending >= {rise:.0%} above the minimum), or final train accuracy - dev accuracy > {gap:.2f}; "
    "under-fitting: train loss stays high (final train accuracy < {acc:.2f} where recorded, else train loss "
    "fell < {drop:.0%} from the first record) and dev ~ train (|dev loss - train loss| <= {close:.0%} of train "
    "loss); otherwise good fit"
)
REMEDIES = {
    "diverging": [
        "a lower learning rate (try 10x lower, or `llmlab finetune --lr-find`)",
        "gradient clipping (--max-grad-norm 1.0)",
        "a longer warmup",
        "check the data for broken rows or labels",
    ],
    "over-fitting": [
        "more training data or data augmentation",
        "dropout",
        "weight decay (L2)",
        "early stopping at the dev-loss minimum",
        "a smaller model or fewer trainable parameters",
    ],
    "under-fitting": [
        "a larger model (more capacity or features)",
        "longer training",
        "a higher learning rate",
        "less regularisation (lower weight decay / dropout)",
    ],
    "good fit": ["none needed; more data may still help (see the learning curve)"],
}


_NUMBERS = ("train_loss", "dev_loss", "train_accuracy", "dev_accuracy")


@dataclass(frozen=True)
class Thresholds:
    """The numbers of the rule (see the module docstring)."""

    k: int = 2
    min_rise: float = 0.01
    max_gap: float = 0.15  # SST-2's train phrases vs dev sentences give even a well-fitted linear model ~0.13
    min_train_accuracy: float = 0.70
    min_loss_drop: float = 0.25
    close: float = 0.10
    max_rise: float = 0.50

    def rule(self) -> str:
        return DIVERGING.format(rise=self.max_rise) + RULE.format(
            k=self.k,
            rise=self.min_rise,
            gap=self.max_gap,
            acc=self.min_train_accuracy,
            drop=self.min_loss_drop,
            close=self.close,
        )


@dataclass
class Diagnosis:
    """The verdict, the rule it follows, the evidence that decided it, and the remedies that fit."""

    label: str  # "diverging" | "under-fitting" | "good fit" | "over-fitting"
    rule: str
    remedies: list[str]
    evidence: list[str] = field(default_factory=list)


def _series(history: Sequence[dict], key: str) -> np.ndarray | None:
    values = [r.get(key) for r in history]
    return None if any(v is None for v in values) else np.asarray(values, dtype=np.float64)


def _overfit_evidence(train: np.ndarray, dev: np.ndarray, t: Thresholds) -> str | None:
    best = int(np.argmin(dev))
    for end in range(best + t.k, len(dev)):
        window = slice(end - t.k, end + 1)
        rising = bool(np.all(np.diff(dev[window]) > 0))
        if rising and train[end] < train[end - t.k] and dev[-1] >= dev[best] * (1 + t.min_rise):
            return f"dev loss rose {dev[best]:.4f} -> {dev[end]:.4f} after its minimum at record {best} while train loss fell {train[end - t.k]:.4f} -> {train[end]:.4f}"
    return None


def diagnose(history: Sequence[dict], thresholds: Thresholds | None = None) -> Diagnosis:
    """Label a training history (see the module docstring for the rule).

    Args:
        history: evaluation records in order, each with "train_loss" and "dev_loss".
        thresholds: the rule's numbers (defaults as documented).

    Raises:
        LlmlabError: fewer than two records, or records without train_loss / dev_loss.
    """
    t = thresholds or Thresholds()
    train = _series(history, "train_loss")
    dev = _series(history, "dev_loss")
    if train is None or dev is None or len(history) < 2:
        raise LlmlabError("diagnose: need at least two records, each with train_loss and dev_loss")
    blown = _divergence_evidence(train, dev, t)
    if blown:
        return _verdict("diverging", t, [blown])
    train_acc = _series(history, "train_accuracy")
    dev_acc = _series(history, "dev_accuracy")
    evidence = [_overfit_evidence(train, dev, t)]
    if train_acc is not None and dev_acc is not None and train_acc[-1] - dev_acc[-1] > t.max_gap:
        evidence.append(
            f"final train accuracy {train_acc[-1]:.3f} exceeds dev accuracy {dev_acc[-1]:.3f} by more than {t.max_gap}"
        )
    if any(evidence):
        return _verdict("over-fitting", t, [e for e in evidence if e])
    if train_acc is not None:
        high, why = train_acc[-1] < t.min_train_accuracy, f"final train accuracy {train_acc[-1]:.3f}"
    else:
        drop = 1 - train[-1] / train[0]
        high, why = drop < t.min_loss_drop, f"train loss fell {drop:.1%} ({train[0]:.4f} -> {train[-1]:.4f})"
    close = abs(dev[-1] - train[-1]) <= t.close * train[-1]
    if high and close:
        return _verdict("under-fitting", t, [why, f"dev loss {dev[-1]:.4f} ~ train loss {train[-1]:.4f}"])
    return _verdict("good fit", t, [why, f"final train loss {train[-1]:.4f}, dev loss {dev[-1]:.4f}"])


def _divergence_evidence(train: np.ndarray, dev: np.ndarray, t: Thresholds) -> str | None:
    for name, losses in (("train", train), ("dev", dev)):
        bad = ~np.isfinite(losses)
        if bad.any():
            return f"{name} loss is {losses[bad][0]} at record {int(np.argmax(bad))}"
    if train[-1] > train[0] * (1 + t.max_rise):
        return f"train loss rose {train[0]:.4f} -> {train[-1]:.4f} (more than {t.max_rise:.0%})"
    return None


def _verdict(label: str, t: Thresholds, evidence: list[str]) -> Diagnosis:
    return Diagnosis(label, t.rule(), list(REMEDIES[label]), evidence)


def read_history(run_dir: str | os.PathLike) -> list[dict]:
    """The "history" list of RUN_DIR/history.json.

    Raises:
        LlmlabError: a missing or corrupt file, or one without a "history" list.
    """
    path = Path(run_dir) / "history.json"
    data = read_json(path, "training history")
    history = data.get("history") if isinstance(data, dict) else None
    if not isinstance(history, list) or not all(isinstance(r, dict) for r in history):
        raise LlmlabError(f"{path}: expected an object with a 'history' list of records")
    for i, record in enumerate(history):
        for key in _NUMBERS:
            value = record.get(key)
            if value is not None and (not isinstance(value, (int, float)) or isinstance(value, bool)):
                raise LlmlabError(f"{path}: record {i}: {key} is {str(value)[:30]!r}, not a number")
    return history


def format_diagnosis(d: Diagnosis) -> str:
    """The diagnosis as lines of text for the terminal."""
    lines = [f"diagnosis: {d.label}", *(f"  evidence: {e}" for e in d.evidence), f"  rule: {d.rule}"]
    return "\n".join([*lines, "  remedies:", *(f"    - {r}" for r in d.remedies)])
