"""Sequence classification on a Transformer: the pooled hidden state, the head, batching texts, predicting.

Reference implementations, tested against (with peft on top): HF `BertForSequenceClassification` and
`GPT2ForSequenceClassification` (transformers/models/{bert,gpt2}/modeling_*.py).
- An encoder (BERT, MiniLM) pools the hidden state at position 0 through BERT's pooler, tanh(W h + b), then
  dropout and a linear classifier. The pooler starts from the HF checkpoint's `pooler.dense` when the base
  has one (llmlab's import drops it, so `methods.load_base` reads it separately), else it is fresh (N(0, 0.02),
  zero bias). It belongs to the head and is trained with it in every method (peft freezes it).
  With prompt tuning, position 0 is the first virtual token, exactly as peft over BertForSequenceClassification
  (the virtual tokens come before [CLS]): that token attends to the whole input, so it can learn the role.
- A causal model pools the last non-padding token's final hidden state (left or right padding), then dropout
  and a linear classifier.

Dimensions: B batch, T tokens, C d_model, K classes.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from llmlab.model.dropout import Dropout
from llmlab.model.precision import autocast, store_weights
from llmlab.tokenizer.pipeline import Tokenizer


class ClassificationHead(nn.Module):
    """Pool one position of the final hidden states, (pooler,) dropout, linear classifier: (B, T, C) -> (B, K)."""

    def __init__(self, d_model: int, n_labels: int, causal: bool, dropout: float):
        super().__init__()
        self.causal = causal
        self.pooler = None if causal else nn.Linear(d_model, d_model)  # BERT's pooler.dense, then tanh
        self.dropout = Dropout(dropout)
        self.classifier = nn.Linear(d_model, n_labels)
        for layer in (self.pooler, self.classifier):
            if layer is not None:
                nn.init.normal_(layer.weight, std=0.02)  # BERT's initializer_range
                nn.init.zeros_(layer.bias)

    def forward(self, hidden: Tensor, attention_mask: Tensor | None) -> Tensor:
        """hidden (B, T, C), attention_mask (B, T) or None -> logits (B, K)."""
        pooled = last_token(hidden, attention_mask) if self.causal else hidden[:, 0]  # (B, C)
        if self.pooler is not None:
            pooled = torch.tanh(self.pooler(pooled))
        return self.classifier(self.dropout(pooled))


def last_token(hidden: Tensor, attention_mask: Tensor | None) -> Tensor:
    """The hidden state (B, C) of each row's last non-padding token (the last position without a mask)."""
    if attention_mask is None:
        return hidden[:, -1]
    T = hidden.shape[1]
    index = (torch.arange(T, device=hidden.device) * attention_mask).argmax(dim=1)  # (B,)
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), index]


@dataclass
class Batch:
    input_ids: Tensor  # (B, T)
    attention_mask: Tensor  # (B, T)
    token_type_ids: Tensor  # (B, T)


def encode_texts(
    tokenizer: Tokenizer,
    texts: Sequence[str],
    pairs: Sequence[str] | None,
    max_length: int,
    pad_id: int = 0,
) -> Batch:
    """Tokenize texts (with their pairs) truncated to `max_length`, padded on the right to the longest.

    A shallow copy of the tokenizer carries these settings, so the model's own stays untouched (thread-safe).
    """
    inputs = list(texts) if pairs is None else list(zip(texts, pairs, strict=True))
    tokenizer = copy.copy(tokenizer)
    tokenizer.enable_truncation(max_length)
    tokenizer.no_padding()
    encodings = tokenizer.encode_batch(inputs)
    T = max((len(e.ids) for e in encodings), default=0)
    ids = torch.full((len(encodings), T), pad_id, dtype=torch.long)
    mask = torch.zeros((len(encodings), T), dtype=torch.long)
    types = torch.zeros((len(encodings), T), dtype=torch.long)
    for row, e in enumerate(encodings):
        n = len(e.ids)
        ids[row, :n], mask[row, :n], types[row, :n] = (torch.tensor(x) for x in (e.ids, [1] * n, e.type_ids))
    return Batch(ids, mask, types)


class FinetunedClassifier:
    """A `llmlab.evaluation.predictor.Predictor` over a classification FinetuneModel (eval mode, no gradients)."""

    def __init__(self, model: nn.Module, name: str, precision: str = "fp32"):
        self.model = store_weights(model.eval(), precision, training=False)  # bf16 modes: weights in bf16
        self.labels, self.name, self.precision = list(model.labels), name, precision

    def predict_proba(
        self, texts: Sequence[str], text_pairs: Sequence[str] | None = None, batch_size: int = 64
    ) -> np.ndarray:
        """(N, K) float64 class probabilities, rows summing to 1; batches are formed from similar lengths
        (sorted by characters), and run in the classifier's precision (softmax in float64)."""
        order = np.argsort([len(t) for t in texts], kind="stable")  # less padding per batch
        out = np.zeros((len(texts), len(self.labels)), dtype=np.float64)
        device = next(self.model.parameters()).device
        pad = self.model.base.config.pad_token_id or 0
        with torch.inference_mode(), autocast(self.precision, device):
            for start in range(0, len(texts), batch_size):
                rows = order[start : start + batch_size]
                pairs = None if text_pairs is None else [text_pairs[i] for i in rows]
                b = encode_texts(
                    self.model.tokenizer, [texts[i] for i in rows], pairs, self.model.max_length, pad
                )
                logits = self.model(
                    b.input_ids.to(device), b.attention_mask.to(device), b.token_type_ids.to(device)
                )
                out[rows] = torch.softmax(logits.double(), dim=-1).cpu().numpy()
        return out
