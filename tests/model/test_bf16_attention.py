"""bf16_attention.py: the three-kernel bf16 attention against SDPA's math in float32 with the same dropout mask,
when the Transformer takes it, and bf16 masks that stay finite.

Tolerance: outputs and gradients within 2% (relative Frobenius norm) of float32 (bfloat16 keeps 8 bits;
measured below 0.6%).
"""

from __future__ import annotations

import math

import pytest
import torch

from llmlab.model import ModelConfig, Transformer
from llmlab.model import precision as mp
from llmlab.model import transformer as tr
from llmlab.model.bf16_attention import bf16_attention, bf16_attention_pays
from llmlab.model.dropout import keep_mask


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.float() - b.float()).norm() / b.float().norm()).item()


def _reference(q, k, v, attn_mask, p, seed):
    """float32 softmax(q kᵀ/√D + mask), times keep_mask / (1 - p) drawn as bf16_attention draws it, times v."""
    probs = (q @ k.transpose(-2, -1) / math.sqrt(q.size(-1)) + attn_mask).softmax(-1)
    if p:
        torch.manual_seed(seed)
        probs = probs * keep_mask(probs.shape, 1 - p, torch.float32, "cpu") / (1 - p)
    return probs @ v


@pytest.mark.parametrize("p", [0.0, 0.1])
def test_matches_float32_attention_with_the_same_mask_forward_and_backward(p):
    torch.manual_seed(0)
    B, H, T, S, D = 2, 3, 24, 30, 16  # S = T + 6 prefix keys
    q32, k32, v32 = (torch.randn(B, H, n, D, requires_grad=True) for n in (T, S, S))
    attn_mask = torch.zeros(B, 1, T, S).masked_fill(
        torch.rand(B, 1, T, S) < 0.2, torch.finfo(torch.float32).min
    )
    attn_mask[..., 0] = 0.0  # every query sees a key
    grad = torch.randn(B, H, T, D)
    reference = _reference(q32, k32, v32, attn_mask, p, seed=7)
    reference.backward(grad)
    q, k, v = (t.detach().bfloat16().requires_grad_() for t in (q32, k32, v32))
    torch.manual_seed(7)
    ours = bf16_attention(q, k, v, tr._add(None, attn_mask, torch.bfloat16), p)
    ours.backward(grad.bfloat16())
    assert ours.dtype == torch.bfloat16 and _rel(ours, reference) < 0.02
    for low, high in ((q, q32), (k, k32), (v, v32)):
        assert _rel(low.grad, high.grad) < 0.02


def test_pays_only_for_bf16_on_the_cpu_with_dropout_or_a_backward():
    x = torch.randn(1, 1, 4, 8)
    low, low_grad = x.bfloat16(), x.bfloat16().requires_grad_()
    assert not bf16_attention_pays(x, x, x, 0.1)  # float32: SDPA, as ever
    assert not bf16_attention_pays(low, low, low, 0.0)  # inference: SDPA's fused forward
    assert bf16_attention_pays(low, low, low, 0.1)
    assert bf16_attention_pays(low_grad, low, low, 0.0)
    with torch.no_grad():
        assert not bf16_attention_pays(low_grad, low, low, 0.0)


def _lm(dropout: float) -> Transformer:
    torch.manual_seed(0)
    config = ModelConfig(vocab_size=50, d_model=32, n_layers=2, n_heads=4, max_seq_len=16, dropout=dropout)
    return Transformer(config)


def test_transformer_training_in_bf16_takes_it_and_fp32_never(monkeypatch):
    calls = []
    monkeypatch.setattr(tr, "bf16_attention", lambda *a: calls.append(1) or bf16_attention(*a))
    ids = torch.randint(0, 50, (2, 16))
    model = _lm(0.1).train()
    model(ids).logits.sum().backward()
    assert not calls
    with mp.training_autocast("bf16-mixed", "cpu"):
        logits = model(ids).logits
    assert calls and torch.isfinite(logits).all()
    calls.clear()
    with torch.no_grad(), mp.autocast("bf16-mixed", "cpu"):
        model.eval()(ids)
    assert not calls  # inference keeps SDPA


def test_left_padding_in_bf16_training_stays_finite():
    """float32's mask minimum overflows bfloat16 to -inf; a query with only padding before it would be NaN."""
    model = _lm(0.0).train()
    ids = torch.randint(0, 50, (2, 16))
    attention_mask = torch.ones(2, 16, dtype=torch.long)
    attention_mask[0, :5] = 0  # left padding: the first queries see no real key
    with mp.training_autocast("bf16-mixed", "cpu"):
        logits = model(ids, attention_mask=attention_mask).logits
    assert torch.isfinite(logits).all()
    logits.float().sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
