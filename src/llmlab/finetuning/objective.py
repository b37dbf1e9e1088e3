"""What fine-tuning minimises and how the dev set scores it: summed losses, and dev loss / accuracy / F1.

Classification: cross-entropy with optional label smoothing (Szegedy et al. 2016, "Rethinking the Inception
Architecture"; `torch.nn.functional.cross_entropy(label_smoothing=ε)`). Causal LM: next-token cross-entropy,
position t predicting token t+1, padding ignored (as transformers' causal-LM loss with labels -100 on padding).
Losses are returned as (sum, count) so that gradient accumulation and data-parallel shards can divide by the
size of the whole global batch: k accumulated micro-batches then give the gradient of one big batch.
Dev metrics: loss without smoothing, accuracy, and macro-averaged F1 (`sklearn.metrics.f1_score`,
average="macro"); for the LM task the loss per token and its perplexity.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from llmlab.finetuning.data import Example

HIGHER_IS_BETTER = {"accuracy": True, "f1": True, "loss": False}


def loss_sum(
    logits: Tensor, batch: dict[str, Tensor], task: str, label_smoothing: float
) -> tuple[Tensor, Tensor]:
    """The summed loss of a batch and the number of terms in it.

    Args:
        logits: (B, K) for classification, (B, T, V) for lm.
        batch: the collated batch (labels (B,) for classification; attention_mask (B, T) for lm).
        task: "classification" or "lm".
        label_smoothing: ε of label smoothing (0 for none).

    Returns:
        (sum of per-example or per-token losses, count of them), both 0-dim tensors.
    """
    if task == "classification":
        labels = batch["labels"]
        total = F.cross_entropy(logits.float(), labels, reduction="sum", label_smoothing=label_smoothing)
        return total, torch.tensor(float(labels.numel()), device=logits.device)
    targets = batch["input_ids"][:, 1:]  # (B, T-1): token t+1 is the target of position t
    keep = batch["attention_mask"][:, 1:].to(logits.dtype)
    per_token = F.cross_entropy(
        logits[:, :-1].flatten(0, 1).float(),
        targets.flatten(),
        reduction="none",
        label_smoothing=label_smoothing,
    )  # (B·(T-1),)
    return (per_token * keep.flatten()).sum(), keep.sum()


def batches(items: Sequence, size: int):
    """Consecutive slices of `items` of `size` (the last may be shorter)."""
    return (items[i : i + size] for i in range(0, len(items), size))


@torch.no_grad()
def evaluate(
    model: nn.Module,
    examples: Sequence[Example],
    collate: Callable[[Sequence[Example]], dict[str, Tensor]],
    task: str,
    batch_size: int,
    device: torch.device,
) -> dict[str, float | None]:
    """Dev metrics of `model` (put in eval mode, then back to the mode it had).

    Returns:
        {"dev_loss", "dev_accuracy", "dev_f1"} for classification; {"dev_loss", "dev_perplexity",
        "dev_accuracy": None, "dev_f1": None} for lm.
    """
    was_training = model.training
    model.eval()
    total, count, predictions, labels = 0.0, 0.0, [], []
    for chunk in batches(examples, batch_size):
        batch = {k: v.to(device) for k, v in collate(chunk).items()}
        logits = model(batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids"))
        s, n = loss_sum(logits, batch, task, 0.0)
        total, count = total + s.item(), count + n.item()
        if task == "classification":
            predictions.append(logits.argmax(-1).cpu().numpy())
            labels.append(batch["labels"].cpu().numpy())
    model.train(was_training)
    loss = total / max(count, 1.0)
    if task != "classification":
        return {
            "dev_loss": loss,
            "dev_perplexity": math.exp(min(loss, 50.0)),
            "dev_accuracy": None,
            "dev_f1": None,
        }
    from sklearn.metrics import f1_score

    y_pred = np.concatenate(predictions)
    y_true = np.concatenate(labels)
    return {
        "dev_loss": loss,
        "dev_accuracy": float((y_pred == y_true).mean()),
        "dev_f1": float(f1_score(y_true, y_pred, average="macro")),
    }


def improved(value: float, best: float | None, metric: str) -> bool:
    """Whether a dev `metric` value beats the best so far (strictly)."""
    if best is None:
        return True
    return value > best if HIGHER_IS_BETTER[metric] else value < best
