"""Learned relative positions: Shaw et al.'s key and value embeddings, and T5's bucketed score bias.

`relative`: Shaw, Uszkoreit & Vaswani (2018), "Self-Attention with Relative Position Representations".
Every clipped distance clip(j - i, -k, k) has a learned key vector a^K and value vector a^V of the head size,
shared by the heads of a layer and separate per layer (as in tensor2tensor's `dot_product_attention_relative`,
the authors' code):
    e_ij = q_i · (k_j + a^K_ij) / √D,     z_i = Σ_j p_ij (v_j + a^V_ij)       (equations 3 and 4)
The first term of each is ordinary attention; this module supplies q_i · a^K_ij / √D as the score bias and
Σ_j p_ij a^V_ij as the extra value term (so attention computes the softmax explicitly for it).

`t5`: Raffel et al. (2020), "Exploring the Limits of Transfer Learning with a Unified Text-to-Text
Transformer": one learned scalar per head and distance bucket, added to the scores, shared by all layers (T5
computes it in the first layer and reuses it). Buckets: half exact for small distances, half logarithmic up
to `max_distance`, separate buckets for future keys when bidirectional — `relative_position_bucket` gives
the same ids as HF `T5Attention._relative_position_bucket` (tested on a grid, both directions).
Deviation: the bias is added to q·k/√D; T5 itself never divides by √D (it folds that into its init), so
importing T5 weights would need the queries scaled by √D.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from llmlab.model.positional.base import PositionalEncoding, relative_positions

if TYPE_CHECKING:
    from llmlab.model.config import ModelConfig


def shaw_relative_ids(q_pos: Tensor, k_pos: Tensor, max_distance: int) -> Tensor:
    """(Tq, Tk) table indices in [0, 2k]: the distance j - i clipped to ±k, shifted by k."""
    return relative_positions(q_pos, k_pos).clamp(-max_distance, max_distance) + max_distance


class ShawLayer(PositionalEncoding):
    """Relative key and value embeddings of one layer (what that layer's attention receives)."""

    needs_probs = True

    def __init__(self, head_dim: int, max_distance: int):
        super().__init__()
        self.max_distance = max_distance
        self.head_dim = head_dim
        self.rel_k = nn.Embedding(2 * max_distance + 1, head_dim)  # a^K, one row per clipped distance
        self.rel_v = nn.Embedding(2 * max_distance + 1, head_dim)  # a^V

    def bias(self, q: Tensor, q_pos: Tensor, k_pos: Tensor) -> Tensor:
        a_k = self.rel_k(shaw_relative_ids(q_pos, k_pos, self.max_distance))  # (Tq, Tk, D)
        return torch.einsum("bhqd,qkd->bhqk", q, a_k.to(q.dtype)) / math.sqrt(self.head_dim)

    def values(self, probs: Tensor, q_pos: Tensor, k_pos: Tensor) -> Tensor:
        a_v = self.rel_v(shaw_relative_ids(q_pos, k_pos, self.max_distance))  # (Tq, Tk, D)
        return torch.einsum("bhqk,qkd->bhqd", probs, a_v.to(probs.dtype))  # (B, H, Tq, D)


class ShawRelative(PositionalEncoding):
    """`relative`: one `ShawLayer` per layer; attention uses `for_layer(i)`, this container's hooks are no-ops."""

    needs_probs = True

    def __init__(self, n_layers: int, head_dim: int, max_distance: int):
        super().__init__()
        self.layers = nn.ModuleList(ShawLayer(head_dim, max_distance) for _ in range(n_layers))

    @classmethod
    def from_config(cls, config: ModelConfig) -> ShawRelative:
        return cls(config.n_layers, config.head_dim, config.relative_max_distance)

    def for_layer(self, layer: int) -> ShawLayer:
        return self.layers[layer]


def relative_position_bucket(
    relative_position: Tensor, bidirectional: bool = True, num_buckets: int = 32, max_distance: int = 128
) -> Tensor:
    """T5's bucket id for each relative position (key - query), in [0, num_buckets).

    Args:
        relative_position: integer tensor of key_position - query_position, any shape.
        bidirectional: separate buckets for future keys (encoder); when False (causal), future keys share
            bucket 0 with distance 0.
        num_buckets: the number of buckets (both directions together when bidirectional).
        max_distance: distances at or beyond this share the last bucket.

    Returns:
        A long tensor of the same shape.
    """
    buckets = torch.zeros_like(relative_position, dtype=torch.long)
    if bidirectional:
        num_buckets //= 2
        buckets += (relative_position > 0).long() * num_buckets  # future keys: the upper half
        distance = relative_position.abs()
    else:
        distance = (-relative_position).clamp(min=0)  # past keys only; the future counts as 0
    max_exact = num_buckets // 2  # one bucket per distance below this
    # logarithmic buckets from max_exact up to max_distance (clamp avoids log(0); those are exact anyway)
    log_ratio = torch.log(distance.clamp(min=1).float() / max_exact) / math.log(max_distance / max_exact)
    large = (max_exact + (log_ratio * (num_buckets - max_exact)).long()).clamp(max=num_buckets - 1)
    return buckets + torch.where(distance < max_exact, distance, large)


class T5Bias(PositionalEncoding):
    """`t5`: a learned per-head scalar for each distance bucket, shared by every layer."""

    def __init__(self, n_heads: int, num_buckets: int = 32, max_distance: int = 128, causal: bool = True):
        super().__init__()
        self.num_buckets, self.max_distance, self.causal = num_buckets, max_distance, causal
        self.relative_attention_bias = nn.Embedding(num_buckets, n_heads)  # HF T5's name

    @classmethod
    def from_config(cls, config: ModelConfig) -> T5Bias:
        return cls(config.n_heads, config.t5_num_buckets, config.t5_max_distance, config.causal)

    def bias(self, q: Tensor, q_pos: Tensor, k_pos: Tensor) -> Tensor:
        rel = relative_positions(q_pos, k_pos)  # (Tq, Tk)
        buckets = relative_position_bucket(rel, not self.causal, self.num_buckets, self.max_distance)
        return self.relative_attention_bias(buckets).permute(2, 0, 1)[None]  # (1, H, Tq, Tk)
