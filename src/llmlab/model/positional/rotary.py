"""Rotary position embedding (RoPE), with both channel layouts and two ways to stretch the context.

Paper: Su et al. (2021), "RoFormer: Enhanced Transformer with Rotary Position Embedding". Each pair of
channels of a query or key at position m is rotated by the angle m * theta^(-2i/D), i = 0 .. D/2 - 1, so
q_m · k_n depends on m - n only (tested on random vectors over a grid of absolute positions).

Layouts (which channels form a pair), both tested to agree under the permutation that maps one to the other:
- "half": channel i pairs with i + D/2 — HF Llama / GPT-NeoX `rotate_half`.
- "interleaved": channel 2i pairs with 2i + 1 — GPT-J, and Meta's Llama (`torch.view_as_complex`).

Scaling, to run past the trained length:
- "linear": position interpolation (Chen et al. 2023, "Extending Context Window of Large Language Models via
  Positional Interpolation"): positions are divided by the factor s (tested: equal to rotating at m / s).
- "ntk": the NTK-aware base change (bloc97, 2023, "NTK-Aware Scaled RoPE", r/LocalLLaMA):
  theta' = theta * s^(D / (D - 2)), which stretches the slowest frequency by s and barely moves the fastest.

No parameters and no table: angles are computed for the positions asked, in float32 at least (float64 when
the inputs are), so any length works. The rotation is applied to new keys before they enter a KV cache.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from llmlab.model.positional.base import PositionalEncoding, angle_dtype

if TYPE_CHECKING:
    from llmlab.model.config import ModelConfig


class Rotary(PositionalEncoding):
    """`rope`: rotate each query/key channel pair by an angle proportional to its position."""

    def __init__(
        self,
        head_dim: int,
        theta: float = 10000.0,
        layout: str = "half",
        scaling: str | None = None,
        factor: float = 1.0,
    ):
        """Set up the rotation (values are checked by ModelConfig).

        Args:
            head_dim: D, the size of one head (even).
            theta: the base of the frequencies.
            layout: "half" or "interleaved" (see the module docstring).
            scaling: None, "linear" or "ntk".
            factor: the scaling factor s (ignored when `scaling` is None).
        """
        super().__init__()
        self.head_dim = head_dim
        self.layout = layout
        self.base = theta * factor ** (head_dim / (head_dim - 2)) if scaling == "ntk" else theta
        self.position_scale = 1.0 / factor if scaling == "linear" else 1.0

    @classmethod
    def from_config(cls, config: ModelConfig) -> Rotary:
        return cls(
            config.head_dim,
            config.rope_theta,
            config.rope_layout,
            config.rope_scaling,
            config.rope_scaling_factor,
        )

    def angles(self, positions: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
        """(T, D/2) rotation angles m * base^(-2i/D) for positions (T,) (fractional positions allowed)."""
        two_i = torch.arange(0, self.head_dim, 2, device=positions.device, dtype=dtype)  # (D/2,)
        inv_freq = self.base ** (-two_i / self.head_dim)
        return (positions.to(dtype) * self.position_scale)[:, None] * inv_freq  # (T, D/2)

    def rotate(self, q: Tensor, k: Tensor, q_pos: Tensor, k_pos: Tensor) -> tuple[Tensor, Tensor]:
        return self._rotate(q, q_pos), self._rotate(k, k_pos)

    def _rotate(self, x: Tensor, positions: Tensor) -> Tensor:
        angles = self.angles(positions, angle_dtype(x))  # (T, D/2)
        cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
        if self.layout == "half":
            x1, x2 = x.chunk(2, dim=-1)  # (B, H, T, D/2) each
            return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)
        x1, x2 = x[..., 0::2], x[..., 1::2]  # (B, H, T, D/2) each
        return torch.stack([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1).flatten(-2)
