"""Prefix tuning: learnable keys and values in front of every layer's attention; the model stays frozen.

Papers: Li & Liang (2021), "Prefix-Tuning: Optimizing Continuous Prompts for Generation" (the MLP
reparameterisation while training, dropped afterwards); Liu et al. (2022), "P-Tuning v2" (deep prompts
trained directly, `projection=False`). Reference implementation, tested against: HF PEFT's `PrefixEncoder`
and `PeftModel.get_prompt` (peft/tuners/prefix_tuning/model.py, peft/peft_model.py): same parameter names
(`embedding`, `transform.0`, `transform.2`) and the same layout of the (P, n_layers·2·C) output, viewed as
(P, 2L, H, D) with layer i's keys at 2i and its values at 2i + 1.

The prefixes reach our attention through `Transformer.forward(prefix_kv=...)`: per layer (keys, values) of
shape (1, H, P, D), visible to every query, with no position of their own. Deliberate deviation: the real
tokens keep positions 0..T-1, whereas peft on an HF model hands the prefix over as a KV cache, so HF shifts
the tokens to positions P..P+T-1 (pass `position_ids` to peft to compare the two).

`fold` runs the MLP once and replaces it by the plain (P, n_layers·2·C) table it produces; saved adapters are
always folded (a fraction of the MLP's size).

Dimensions: P prefix length, L layers, H heads, D head size, C = H·D, F the MLP's hidden size.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from llmlab.errors import LlmlabError


class PrefixEncoder(nn.Module):
    """Learnable prefixes (P, L·2·C): an Embedding(P, C) through an MLP, or an Embedding(P, L·2·C) itself."""

    def __init__(
        self, n_layers: int, n_heads: int, d_model: int, num_virtual_tokens: int, hidden: int | None
    ):
        super().__init__()
        self.n_layers, self.n_heads, self.d_model = n_layers, n_heads, d_model
        width = n_layers * 2 * d_model
        if hidden is None:  # P-tuning v2, or a folded encoder
            self.embedding = nn.Embedding(num_virtual_tokens, width)  # (P, L·2·C)
            self.transform = None
        else:
            self.embedding = nn.Embedding(num_virtual_tokens, d_model)  # (P, C)
            self.transform = nn.Sequential(nn.Linear(d_model, hidden), nn.Tanh(), nn.Linear(hidden, width))

    @property
    def num_virtual_tokens(self) -> int:
        return self.embedding.num_embeddings

    def table(self) -> Tensor:
        """The prefixes as one (P, L·2·C) tensor (through the MLP when there is one)."""
        x = self.embedding.weight  # (P, C) or (P, L·2·C)
        return x if self.transform is None else self.transform(x)

    def forward(self) -> list[tuple[Tensor, Tensor]]:
        """Per layer (keys, values), each (1, H, P, D): the `prefix_kv` argument of Transformer.forward."""
        P = self.num_virtual_tokens
        L = self.n_layers
        H = self.n_heads
        kv = self.table().view(P, 2 * L, H, self.d_model // H).permute(1, 2, 0, 3)  # (2L, H, P, D)
        return [(kv[2 * i][None], kv[2 * i + 1][None]) for i in range(L)]

    @torch.no_grad()
    def fold(self) -> None:
        """Replace the MLP by the table it computes now; the output is unchanged (nothing to do without one)."""
        if self.transform is None:
            return
        table = self.table()  # (P, L·2·C)
        self.embedding = nn.Embedding(*table.shape, device=table.device, dtype=table.dtype)
        self.embedding.weight.copy_(table)
        self.transform = None


def apply_prefix(model: nn.Module, num_virtual_tokens: int, hidden: int | None) -> PrefixEncoder:
    """Freeze `model` and make a prefix encoder for it.

    Args:
        model: a llmlab Transformer (its config gives L, H, C).
        num_virtual_tokens: P, at least 1.
        hidden: F, the MLP's hidden size (Li & Liang); None for plain prefixes (P-tuning v2, or to load a
            folded adapter).

    Returns:
        A PrefixEncoder on the model's device.

    Raises:
        LlmlabError: P < 1 or F < 1.
    """
    if not isinstance(num_virtual_tokens, int) or num_virtual_tokens < 1:
        raise LlmlabError(f"num_virtual_tokens={num_virtual_tokens!r} must be a positive integer")
    if hidden is not None and (not isinstance(hidden, int) or hidden < 1):
        raise LlmlabError(f"prefix_hidden={hidden!r} must be a positive integer")
    model.requires_grad_(False)
    c = model.config
    # initial weights as peft's PrefixEncoder: N(0, 1) embeddings, nn.Linear's default init
    encoder = PrefixEncoder(c.n_layers, c.n_heads, c.d_model, num_virtual_tokens, hidden)
    return encoder.to(model.tok_emb.weight.device)
