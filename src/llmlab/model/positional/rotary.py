"""Rotary position embedding (RoPE), with both channel layouts and five ways to run past the trained length.

Paper: Su et al. (2021), "RoFormer: Enhanced Transformer with Rotary Position Embedding". Each pair of
channels of a query or key at position m is rotated by the angle m · θ_i, θ_i = theta^(-2i/D),
i = 0 .. D/2 - 1, so q_m · k_n depends on m - n only (tested on random vectors over a grid of positions).

Layouts (which channels form a pair), both tested to agree under the permutation that maps one to the other:
- "half": channel i pairs with i + D/2 — HF Llama / GPT-NeoX `rotate_half`.
- "interleaved": channel 2i pairs with 2i + 1 — GPT-J, and Meta's Llama (`torch.view_as_complex`).

Context extension (`linear`, `ntk`, `dynamic`, `yarn`, `llama3`) changes the θ_i and may scale cos/sin by an
attention factor; the equations, papers and the transformers parity are in rope_scaling.py.

Dynamic NTK and the KV cache. The base of `dynamic` depends on the length L, so "the" rotation of a token
is a choice. transformers rotates every position with b'(L) in a full pass but keeps cached keys with the
rotation of the length they were written at, so its cached generation differs from recomputing the whole
sequence (its issue #25104). The YaRN paper's remedy, caching keys unrotated and rotating them all again at
each step, still cannot make a cache equal a full pass: the cached keys and values of layer 2 and above
were computed from hidden states of the old base (measured: 1e-5 on the logits of a random 2-layer model).
Here each token keeps the frequencies of the length at which it is written, L = position + 1, in a full
pass as under a cache: position m is rotated by m · θ'_i(m + 1). A hidden state then depends on its
prefix only, so a KV cache equals full recomputation exactly in every layer (tested past L0), and the
tokens of a generation get what transformers' cached generation gives them (equal greedy tokens when the
prompt fits in L0; tests/model/test_llama.py). The cost: past L0, q_m · k_n no longer depends on m - n
alone (positions are warped, compressed the more the later they come); up to L0 it is plain RoPE.

No parameters: the frequencies are computed in float64 (once; per position for `dynamic`) and the angles in
float32 at least (float64 when the inputs are), so any length works.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from llmlab.model.positional.base import PositionalEncoding, angle_dtype
from llmlab.model.positional.rope_scaling import RopeScaling, inverse_frequencies

if TYPE_CHECKING:
    from llmlab.model.config import ModelConfig


class Rotary(PositionalEncoding):
    """`rope`: rotate each query/key channel pair by an angle proportional to its position."""

    def __init__(
        self,
        head_dim: int,
        theta: float = 10000.0,
        layout: str = "half",
        scaling: RopeScaling | None = None,
    ):
        """Set up the rotation (values are checked by ModelConfig).

        Args:
            head_dim: D, the size of one head (even).
            theta: the base of the frequencies.
            layout: "half" or "interleaved" (see the module docstring).
            scaling: the context-extension method, or None.
        """
        super().__init__()
        self.head_dim, self.theta, self.layout, self.scaling = head_dim, theta, layout, scaling
        self.per_position = scaling is not None and scaling.kind == "dynamic"
        # a plain tensor, not a buffer: casting the model to bf16 must not round the frequencies
        self.inv_freq, self.attention_factor = inverse_frequencies(head_dim, theta, scaling)  # (D/2,) float64

    @classmethod
    def from_config(cls, config: ModelConfig) -> Rotary:
        return cls(config.head_dim, config.rope_theta, config.rope_layout, RopeScaling.from_config(config))

    def angles(self, positions: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
        """(T, D/2) rotation angles m · θ'_i for positions (T,) (fractional positions allowed).

        For `dynamic`, position m uses the frequencies of length m + 1 (see the module docstring).
        """
        if self.per_position:
            lengths = positions.to(torch.float64) + 1  # (T,)
            inv_freq = inverse_frequencies(self.head_dim, self.theta, self.scaling, lengths)[0]  # (T, D/2)
            return positions.to(dtype)[:, None] * inv_freq.to(dtype)
        return positions.to(dtype)[:, None] * self.inv_freq.to(positions.device, dtype)  # (T, D/2)

    def rotate(self, q: Tensor, k: Tensor, q_pos: Tensor, k_pos: Tensor) -> tuple[Tensor, Tensor]:
        return self._rotate(q, q_pos), self._rotate(k, k_pos)

    def _rotate(self, x: Tensor, positions: Tensor) -> Tensor:
        angles = self.angles(positions, angle_dtype(x))  # (T, D/2)
        cos = (angles.cos() * self.attention_factor).to(x.dtype)
        sin = (angles.sin() * self.attention_factor).to(x.dtype)
        if self.layout == "half":
            x1, x2 = x.chunk(2, dim=-1)  # (B, H, T, D/2) each
            return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)
        x1, x2 = x[..., 0::2], x[..., 1::2]  # (B, H, T, D/2) each
        return torch.stack([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1).flatten(-2)
