"""The one interface every positional encoding implements, and the encoding that does nothing.

Positions enter a Transformer in one of four places, and each encoding overrides only the hooks it needs;
every hook does nothing by default, so attention calls them all and never asks which encoding it holds:

- `embed`:  add a vector to the token embeddings (sinusoidal, learned; Vaswani et al. 2017)
- `rotate`: rotate queries and keys (RoPE; Su et al. 2021)
- `bias`:   add a term to the attention scores (T5, ALiBi, Shaw's relative keys)
- `values`: add a term to the attention output (Shaw's relative values; needs the probabilities)

Positions are absolute token indices: the first token of a sequence is 0 and a KV cache offsets the new
tokens by its length. Prefix-tuning keys have no position: hooks never see them, and attention gives them a
zero bias. Relative distances follow T5: `relative = key_position - query_position` (negative = the past).

`none` (`NoPositional`) is the NoPE baseline (Haviv et al. 2022, "Transformer Language Models without
Positional Encodings Still Learn Positional Information"): a causal model still infers order from its mask,
while a bidirectional one is exactly permutation-equivariant (tested).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from llmlab.errors import LlmlabError

if TYPE_CHECKING:
    from llmlab.model.config import ModelConfig


class PositionalEncoding(nn.Module):
    """Base class: four hooks that do nothing, plus the knobs attention reads.

    Attributes:
        max_positions: the longest sequence this encoding can place (learned tables), or None for any length.
        needs_probs: True when `values` is used, so attention computes the softmax itself instead of SDPA.
    """

    max_positions: int | None = None
    needs_probs: bool = False

    @classmethod
    def from_config(cls, config: ModelConfig) -> PositionalEncoding:
        """Build the encoding for a model; the registry calls this."""
        return cls()

    def for_layer(self, layer: int) -> PositionalEncoding:
        """The encoding layer `layer` uses: itself when shared across layers (the default), a part when not."""
        return self

    def check_length(self, n_positions: int) -> None:
        """Raise a clear error instead of an index error when a sequence is longer than the table.

        Raises:
            LlmlabError: `n_positions` exceeds `max_positions`.
        """
        if self.max_positions is not None and n_positions > self.max_positions:
            raise LlmlabError(
                f"sequence of {n_positions} positions exceeds the learned table of {self.max_positions} "
                "(max_seq_len)"
            )

    def embed(self, x: Tensor, positions: Tensor) -> Tensor:
        """Add position information to token embeddings x (B, T, C) at positions (T,); returns (B, T, C)."""
        return x

    def rotate(self, q: Tensor, k: Tensor, q_pos: Tensor, k_pos: Tensor) -> tuple[Tensor, Tensor]:
        """Rotate queries q (B, H, Tq, D) at q_pos (Tq,) and keys k (B, H, Tk, D) at k_pos (Tk,)."""
        return q, k

    def bias(self, q: Tensor, q_pos: Tensor, k_pos: Tensor) -> Tensor | None:
        """An additive score bias broadcastable to (B, H, Tq, Tk), added to q·k/√D; q is (B, H, Tq, D)."""
        return None

    def values(self, probs: Tensor, q_pos: Tensor, k_pos: Tensor) -> Tensor | None:
        """An extra attention-output term (B, H, Tq, D) from the probabilities probs (B, H, Tq, Tk)."""
        return None


class NoPositional(PositionalEncoding):
    """`none`: no position information at all (NoPE)."""


def relative_positions(q_pos: Tensor, k_pos: Tensor) -> Tensor:
    """(Tq, Tk) matrix of key_position - query_position: 0 on the diagonal, negative for past keys."""
    return k_pos[None, :] - q_pos[:, None]


def angle_dtype(x: Tensor) -> torch.dtype:
    """The dtype to compute angles in: float32 at least, float64 when x is float64 (exact tests)."""
    return torch.promote_types(x.dtype, torch.float32)
