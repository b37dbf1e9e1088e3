"""BERT's masked-LM head: a transform of the last hidden state before the decoder tied to the embeddings.

Paper: Devlin et al. (2019), "BERT", and its `cls/predictions` head. Reference implementation, tested
against: transformers' `BertLMPredictionHead` (`BertForMaskedLM.cls.predictions`):
    transform = LayerNorm(act(dense(x)))            dense C -> C, the encoder's activation and eps
    logits    = transform @ word_embeddings.T + bias   decoder tied to the token embeddings, bias (V,)
Here the transform is `MLMTransform` (the Transformer's `mlm_transform`) and the decoder is the Transformer's
tied `lm_head`, which gets its bias when `config.mlm_head`; hf_import.py maps `mlm_transform.*` and
`lm_head.bias` to `cls.predictions.*` (tests/model/test_mlm_head.py: logits within 1e-5, both ways).
The norm follows `norm_type` and `bias` like the model's other norms (BERT: LayerNorm with a bias).

Dimensions: B batch, T tokens, C d_model.
"""

from __future__ import annotations

from torch import Tensor, nn

from llmlab.model.config import ModelConfig
from llmlab.model.mlp import ACTIVATIONS, build_norm


class MLMTransform(nn.Module):
    """dense -> activation -> norm over d_model: what BERT's MLM head does before the tied decoder."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.dense = nn.Linear(config.d_model, config.d_model, bias=config.bias)
        self.act = ACTIVATIONS[config.activation]()
        self.norm = build_norm(config)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(self.act(self.dense(x)))  # (B, T, C) -> (B, T, C)
