"""LoRA: a frozen linear layer plus a trainable low-rank update, y = W x + b + (alpha / rank) · B A dropout(x).

Paper: Hu et al. (2021), "LoRA: Low-Rank Adaptation of Large Language Models". Reference implementation,
tested against: HF PEFT's `LoraLayer` / `lora.Linear` (peft/tuners/lora/layer.py): A (rank, in) is initialised
Kaiming-uniform with a = √5 (nn.Linear's default), B (out, rank) with zeros, so a fresh adapter leaves the
model exactly as it was; dropout acts on the input of the low-rank path only; scaling = alpha / rank.

`LoraLinear` subclasses `nn.Linear` and keeps the wrapped layer's own `weight` and `bias` parameters, so the
base tensors keep their names (`blocks.0.attn.q.weight`) and only `lora_A` / `lora_B` are new. `merge` adds
the update into the weight in place (inference at the cost of a plain linear layer), `unmerge` subtracts it.

Dimensions: N tokens (any leading dims), I in-features, O out-features, r rank.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from llmlab.errors import LlmlabError
from llmlab.model.dropout import Dropout

TARGETS = {  # name in MethodSettings.lora_targets -> the submodule of a Block
    "q": "attn.q",
    "k": "attn.k",
    "v": "attn.v",
    "o": "attn.o",
    "fc": "mlp.fc",
    "proj": "mlp.proj",
}


class LoraLinear(nn.Linear):
    """A linear layer (its weight frozen) with a trainable rank-`rank` update; merge/unmerge in place."""

    def __init__(self, linear: nn.Linear, rank: int, alpha: float, dropout: float = 0.0):
        nn.Module.__init__(self)
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.weight, self.bias = linear.weight, linear.bias  # the base's own parameters, same names
        self.weight.requires_grad_(False)
        if self.bias is not None:
            self.bias.requires_grad_(False)
        self.rank, self.alpha, self.scaling = rank, alpha, alpha / rank
        self.lora_A = nn.Parameter(torch.empty(rank, self.in_features, device=self.weight.device))  # (r, I)
        self.lora_B = nn.Parameter(torch.zeros(self.out_features, rank, device=self.weight.device))  # (O, r)
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))  # as peft (and nn.Linear)
        self.lora_dropout = Dropout(dropout) if dropout else nn.Identity()
        self.merged = False

    def forward(self, x: Tensor) -> Tensor:
        """x (..., I) -> (..., O)."""
        y = F.linear(x, self.weight, self.bias)  # (..., O)
        if self.merged:
            return y
        h = F.linear(self.lora_dropout(x), self.lora_A)  # (..., r)
        # y + scaling · h Bᵀ in one fused kernel on (N, ·) views
        out = torch.addmm(
            y.reshape(-1, self.out_features), h.reshape(-1, self.rank), self.lora_B.t(), alpha=self.scaling
        )
        return out.view(y.shape)

    def delta_weight(self) -> Tensor:
        """The update scaling · B A, (O, I)."""
        return (self.lora_B @ self.lora_A) * self.scaling

    @torch.no_grad()
    def merge(self) -> None:
        """W += scaling · B A, in place; forward then costs one plain linear layer."""
        if not self.merged:
            self.weight += self.delta_weight()
            self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        """W -= scaling · B A: the base weight back (up to float rounding)."""
        if self.merged:
            self.weight -= self.delta_weight()
            self.merged = False

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}, rank={self.rank}, alpha={self.alpha}"


def apply_lora(
    model: nn.Module,
    targets: tuple[str, ...] = ("q", "v"),
    rank: int = 8,
    alpha: float = 16.0,
    dropout: float = 0.0,
) -> list[str]:
    """Freeze `model` and replace the target linear layers of every block by `LoraLinear`.

    Args:
        model: a llmlab Transformer (anything with `blocks`, each with `attn.{q,k,v,o}` and `mlp.{fc,proj}`).
        targets: names from `TARGETS` ("q", "k", "v", "o", "fc", "proj").
        rank: r, at least 1.
        alpha: the scale numerator (scaling = alpha / rank).
        dropout: dropout on the input of the low-rank path, in [0, 1).

    Returns:
        The qualified names of the replaced modules.

    Raises:
        LlmlabError: an unknown or empty target list, rank < 1, or a dropout outside [0, 1).
    """
    check_lora_settings(targets, rank, dropout)
    model.requires_grad_(False)
    replaced = []
    for i, block in enumerate(model.blocks):
        for target in targets:
            parent_name, _, child = TARGETS[target].rpartition(".")
            parent = block.get_submodule(parent_name)
            setattr(parent, child, LoraLinear(getattr(parent, child), rank, alpha, dropout))
            replaced.append(f"blocks.{i}.{TARGETS[target]}")
    return replaced


def check_lora_settings(targets: tuple[str, ...], rank: int, dropout: float) -> None:
    """Raise an LlmlabError naming the first invalid LoRA setting."""
    unknown = [t for t in targets if t not in TARGETS]
    if unknown or not targets:
        raise LlmlabError(f"lora_targets {list(targets)}: choose one or more of {', '.join(TARGETS)}")
    if not isinstance(rank, int) or rank < 1:
        raise LlmlabError(f"lora_rank={rank!r} must be a positive integer")
    if not 0 <= dropout < 1:
        raise LlmlabError(f"lora_dropout={dropout!r} must be in [0, 1)")


def lora_layers(model: nn.Module) -> list[LoraLinear]:
    """Every LoraLinear inside `model`."""
    return [m for m in model.modules() if isinstance(m, LoraLinear)]


def merge_lora(model: nn.Module) -> None:
    """Merge every LoRA update of `model` into its base weight (idempotent)."""
    for layer in lora_layers(model):
        layer.merge()


def unmerge_lora(model: nn.Module) -> None:
    """Take every merged LoRA update out of its base weight again (idempotent)."""
    for layer in lora_layers(model):
        layer.unmerge()
