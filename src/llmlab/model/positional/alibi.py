"""ALiBi: attention with linear biases, a per-head penalty proportional to the distance.

Paper: Press, Smith & Lewis (2022), "Train Short, Test Long: Attention with Linear Biases Enables Input
Length Extrapolation". Reference: the authors' `get_slopes` (ofirpress/attention_with_linear_biases,
fairseq/models/transformer.py) and HF BLOOM `_get_alibi_slopes`, which compute the same slopes.

Slopes: for n heads, n a power of two, the geometric sequence starting at 2^(-8/n) with that ratio
(8 heads: 1/2, 1/4, ..., 1/256). Otherwise take the slopes of the closest smaller power of two c, then every
other slope of the 2c-head sequence for the remaining heads (12 heads: 2^-1 .. 2^-8, then 2^-0.5, 2^-1.5,
2^-2.5, 2^-3.5). Both are tested against the paper's values written out.

Bias: -m * |i - j| for query i and key j. On every key a causal query can see (j <= i) this is the paper's
-m * (i - j); for a bidirectional encoder it is the symmetric form (a deliberate extension: the paper only
treats causal LMs). No parameters, no table, any length; no position embedding is added under ALiBi.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from llmlab.model.positional.base import PositionalEncoding, relative_positions

if TYPE_CHECKING:
    from llmlab.model.config import ModelConfig


def alibi_slopes(n_heads: int) -> list[float]:
    """The paper's slope for each of `n_heads` heads, largest first."""
    if math.log2(n_heads).is_integer():
        start = 2.0 ** (-8.0 / n_heads)
        return [start ** (h + 1) for h in range(n_heads)]
    closest = 2 ** math.floor(math.log2(n_heads))
    return alibi_slopes(closest) + alibi_slopes(2 * closest)[0::2][: n_heads - closest]


class ALiBi(PositionalEncoding):
    """`alibi`: add -slope * distance to each head's scores."""

    def __init__(self, n_heads: int):
        super().__init__()
        # a plain list, not a buffer: fixed by the head count, and kept exact when the model is cast to bf16
        self.slopes = alibi_slopes(n_heads)  # (H,)

    @classmethod
    def from_config(cls, config: ModelConfig) -> ALiBi:
        return cls(config.n_heads)

    def bias(self, q: Tensor, q_pos: Tensor, k_pos: Tensor) -> Tensor:
        distance = -relative_positions(q_pos, k_pos).abs().float()  # (Tq, Tk) -|i - j|: -(i - j) for j <= i
        slopes = torch.tensor(self.slopes, device=distance.device)  # (H,)
        return (slopes[:, None, None] * distance)[None]  # (1, H, Tq, Tk)
