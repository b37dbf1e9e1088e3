"""Attention as three bfloat16 kernels for training on the CPU, where they beat SDPA's.

Paper: Vaswani et al. (2017), "Attention Is All You Need", eq. 1, softmax(q·kᵀ/√D + mask) v, with dropout on
the probabilities as BERT and GPT-2 train. Reference implementation: `F.scaled_dot_product_attention`
(its math kernel with a given dropout mask), which the tests match within bf16 tolerance
(tests/model/test_bf16_attention.py).
Why: on a CPU with avx512_bf16 (AMD EPYC, 1 thread) SDPA's fused kernel refuses dropout and runs its backward
slower than three bf16 matrix products (GPT-2 shape 8 × 256, 6 heads of 64: 53 vs 36 ms a layer, forward and
backward), and its unfused kernel adds a NaN-safe softmax and `bernoulli_` masks (MiniLM 16 × 128, 12 heads of
32: 21.5 vs 16 ms without dropout). Arrangement: 1/√D scales q and dropout's 1/(1 - p) scales v, tensors T/D
times smaller than the (B, H, T, S) scores; the mask is added in place; the softmax of bf16 scores
accumulates in float32; dropout multiplies by `dropout.keep_mask` (exact 0/1). Forward-only passes without
dropout (inference) keep SDPA, whose fused forward is as fast or faster. Float32 never comes here.

Dimensions: B batch, H heads, T queries, S keys (prefix keys included), D head size.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from llmlab.model.dropout import keep_mask


def bf16_attention_pays(q: Tensor, k: Tensor, v: Tensor, p: float) -> bool:
    """Whether `bf16_attention` should replace SDPA: bfloat16 on the CPU, with dropout or a backward to come."""
    if q.dtype != torch.bfloat16 or q.device.type != "cpu":
        return False
    return p > 0 or (torch.is_grad_enabled() and any(t.requires_grad for t in (q, k, v)))


def bf16_attention(q: Tensor, k: Tensor, v: Tensor, attn_mask: Tensor | None, p: float) -> Tensor:
    """softmax(q·kᵀ/√D + attn_mask) with dropout `p`, times v.

    Args:
        q: (B, H, T, D) queries; k, v: (B, H, S, D) keys and values (bfloat16).
        attn_mask: additive (B|1, H|1, T, S) mask (finite minimum where hidden), or None.
        p: attention dropout probability (0 in evaluation).

    Returns:
        (B, H, T, D) attention outputs.
    """
    scores = (q * (1.0 / math.sqrt(q.size(-1)))) @ k.transpose(-2, -1)  # (B, H, T, S)
    if attn_mask is not None:
        scores.add_(attn_mask)
    probs = scores.softmax(dim=-1)
    if p > 0:
        probs = probs * keep_mask(probs.shape, 1.0 - p, probs.dtype, probs.device)
        v = v * (1.0 / (1.0 - p))
    return probs @ v  # (B, H, T, D)
