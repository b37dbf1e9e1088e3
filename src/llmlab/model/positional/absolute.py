"""Absolute positional encodings added to the token embeddings: fixed sinusoids and a learned table.

`sinusoidal`: Vaswani et al. (2017), "Attention Is All You Need", section 3.5:
    PE[pos, 2i] = sin(pos / 10000^(2i/d)),   PE[pos, 2i+1] = cos(pos / 10000^(2i/d)),
interleaved exactly as written in the paper (tensor2tensor and fairseq concatenate all sines, then all
cosines, instead: the same encoding up to a fixed permutation of the channels). Computed on the fly for any
length, so it has no table and no limit; tested against `math.sin`/`math.cos` over a grid. As in section 3.4,
the token embeddings are multiplied by √d_model before the encoding is added: with embeddings initialised at
N(0, 0.02) the fixed sinusoids (norm √(d/2)) would otherwise drown the token identity.

`learned`: one trained vector per position (BERT, GPT-2 `wpe`): `nn.Embedding(max_seq_len, d_model)`.
A longer sequence raises a clear `LlmlabError` (checked by the Transformer through `check_length`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from llmlab.model.positional.base import PositionalEncoding, angle_dtype

if TYPE_CHECKING:
    from llmlab.model.config import ModelConfig


def sinusoidal_table(positions: Tensor, dim: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """The sinusoidal encodings of `positions` (T,): a (T, dim) tensor, sin on even channels, cos on odd."""
    two_i = torch.arange(0, dim, 2, device=positions.device, dtype=dtype)  # (ceil(dim/2),)
    angles = positions.to(dtype)[:, None] / 10000.0 ** (two_i / dim)  # (T, ceil(dim/2))
    table = torch.stack([angles.sin(), angles.cos()], dim=-1)  # (T, ceil(dim/2), 2)
    return table.flatten(1)[:, :dim]  # (T, dim): sin, cos, sin, cos, ...


class Sinusoidal(PositionalEncoding):
    """`sinusoidal`: fixed sin/cos vectors added to the √d_model-scaled embeddings; no parameters, any length."""

    def __init__(self, d_model: int):
        super().__init__()
        self.d_model = d_model

    @classmethod
    def from_config(cls, config: ModelConfig) -> Sinusoidal:
        return cls(config.d_model)

    def embed(self, x: Tensor, positions: Tensor) -> Tensor:
        table = sinusoidal_table(positions, self.d_model, angle_dtype(x))  # (T, C)
        return x * self.d_model**0.5 + table.to(x.dtype)  # section 3.4: embeddings scaled by √d_model


class Learned(PositionalEncoding):
    """`learned`: a trained table of `max_positions` vectors added to the embeddings."""

    def __init__(self, max_positions: int, d_model: int):
        super().__init__()
        self.max_positions = max_positions
        self.table = nn.Embedding(max_positions, d_model)

    @classmethod
    def from_config(cls, config: ModelConfig) -> Learned:
        return cls(config.max_seq_len, config.d_model)

    def embed(self, x: Tensor, positions: Tensor) -> Tensor:
        return x + self.table(positions)  # (B, T, C) + (T, C)
