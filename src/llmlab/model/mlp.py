"""The feed-forward half of a block, and the norm around it: plain or gated MLP, LayerNorm or RMSNorm.

- Plain MLP (Vaswani et al. 2017; GPT-2, BERT):   proj(act(fc(x))).
- Gated MLP (Shazeer 2020, "GLU Variants Improve Transformer"):   proj(act(gate(x)) * fc(x)); with SiLU it
  is Llama's SwiGLU, `LlamaMLP`'s down_proj(silu(gate_proj(x)) * up_proj(x)) with fc = up_proj.
- RMSNorm (Zhang & Sennrich 2019, "Root Mean Square Layer Normalization"): x / √(mean(x²) + eps) · g, no
  centring and no bias; `torch.nn.RMSNorm`, tested against transformers' `LlamaRMSNorm` through the Llama
  parity tests (tests/model/test_llama.py).
"""

from __future__ import annotations

from functools import partial

from torch import Tensor, nn

from llmlab.model.config import ModelConfig
from llmlab.model.dropout import Dropout

ACTIVATIONS = {  # the names of config.ACTIVATIONS -> module class
    "gelu": nn.GELU,
    "gelu_tanh": partial(nn.GELU, approximate="tanh"),  # GPT-2's "gelu_new"
    "relu": nn.ReLU,
    "silu": nn.SiLU,
}


class MLP(nn.Module):
    """fc -> activation -> proj, with an optional gate (F the hidden size)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.fc = nn.Linear(config.d_model, config.ff_dim, bias=config.bias)
        self.gate = nn.Linear(config.d_model, config.ff_dim, bias=config.bias) if config.gated_mlp else None
        self.act = ACTIVATIONS[config.activation]()
        self.proj = nn.Linear(config.ff_dim, config.d_model, bias=config.bias)
        self.dropout = Dropout(config.dropout)

    def forward(self, x: Tensor) -> Tensor:
        if self.gate is None:
            return self.dropout(self.proj(self.act(self.fc(x))))  # (B, T, C) -> (B, T, F) -> (B, T, C)
        return self.dropout(self.proj(self.act(self.gate(x)) * self.fc(x)))


def build_norm(config: ModelConfig) -> nn.Module:
    """The norm `config.norm_type` names over d_model: LayerNorm (with a bias when config.bias) or RMSNorm."""
    if config.norm_type == "rms":
        return nn.RMSNorm(config.d_model, eps=config.layer_norm_eps)
    return nn.LayerNorm(config.d_model, eps=config.layer_norm_eps, bias=config.bias)
