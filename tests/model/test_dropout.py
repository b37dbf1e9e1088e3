"""dropout.py: float32 is `F.dropout` bit for bit; the bf16 masks keep the stated probability, scale exactly,
are a known function of the generator's words, independent across the chunks of a word, and reproducible.

Tolerances: keep rates over 2²² elements within 5 standard deviations (5 · 1.5e-4) of round(q · 2¹⁵) / 2¹⁵.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from llmlab.model.dropout import Dropout, dropout, keep_mask

N = 1 << 22


def test_float32_outside_autocast_is_f_dropout_bit_for_bit():
    x = torch.randn(64, 300, requires_grad=True)
    for p in (0.0, 0.1, 0.5, 1.0):
        torch.manual_seed(3)
        ours = dropout(x, p)
        torch.manual_seed(3)
        assert torch.equal(ours, F.dropout(x, p))
    module = Dropout(0.1)
    torch.manual_seed(5)
    a = module(x)
    torch.manual_seed(5)
    assert torch.equal(a, torch.nn.Dropout(0.1)(x))
    assert torch.equal(module.eval()(x), x)


@pytest.mark.parametrize("keep", [0.9, 0.5, 0.8765])
def test_bf16_keep_rate_is_the_stated_one(keep):
    torch.manual_seed(0)
    mask = keep_mask((N,), keep, torch.bfloat16, "cpu")
    assert set(mask.unique().tolist()) <= {0.0, 1.0}
    stated = round(keep * 2**15) / 2**15
    assert abs(stated - keep) <= 2**-16
    sd = (stated * (1 - stated) / N) ** 0.5
    assert abs(mask.float().mean().item() - stated) < 5 * sd


def test_bf16_mask_is_the_documented_function_of_the_generator_words():
    torch.manual_seed(1)
    mask = keep_mask((7, 9), 0.9, torch.bfloat16, "cpu")
    torch.manual_seed(1)
    words = torch.empty(16, dtype=torch.int64).random_(-(2**63), None)  # ceil(63 / 4) words
    chunks = words.view(torch.int16)[:63].long() + 2**15  # u in [0, 65536)
    expected = (chunks // 2) < round(0.9 * 2**15)
    assert torch.equal(mask.flatten().bool(), expected)


def test_bf16_chunks_of_one_word_are_independent():
    torch.manual_seed(2)
    mask = keep_mask((N // 4, 4), 0.5, torch.bfloat16, "cpu").bool()  # row i: the four chunks of word i
    for a, b in [(0, 1), (1, 2), (2, 3), (0, 3)]:
        both = (mask[:, a] & mask[:, b]).float().mean().item()
        assert abs(both - 0.25) < 5 * (0.25 * 0.75 / (N // 4)) ** 0.5


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_bf16_dropout_scales_kept_values_once_and_backpropagates_through_the_mask(dtype):
    x = torch.randn(300, 200).to(dtype).requires_grad_()
    torch.manual_seed(4)
    y = dropout(x, 0.1)
    torch.manual_seed(4)
    mask = keep_mask(x.shape, 0.9, dtype, "cpu")
    assert y.dtype == dtype
    assert torch.equal(y, ((x.detach().float() * mask.float()) * (1 / 0.9)).to(dtype))
    y.backward(torch.ones_like(y))
    assert torch.equal(x.grad, (mask.float() * (1 / 0.9)).to(dtype))


def test_autocast_makes_float32_inputs_take_the_cheap_masks_reproducibly():
    x = torch.randn(50, 60)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        torch.manual_seed(6)
        a = dropout(x, 0.2)
        torch.manual_seed(6)
        b = dropout(x, 0.2)
        c = dropout(x, 0.2)
    torch.manual_seed(6)
    mask = keep_mask(x.shape, 0.8, torch.float32, "cpu")
    assert a.dtype == torch.float32 and torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(a, x * mask * (1 / 0.8))
