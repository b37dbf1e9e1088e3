"""cross_entropy.py: float32 logits are `F.cross_entropy` itself; bfloat16 logits give the loss and gradient of
`F.cross_entropy(logits.float())` (loss within 1e-6 relative, float32 summation order; gradients equal to
within one bfloat16 rounding), with ignored rows and a row count that is not a multiple of the block."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from llmlab.model.cross_entropy import BLOCK_ROWS, cross_entropy


def _data(dtype: torch.dtype, rows: int = 2 * BLOCK_ROWS + 37, vocab: int = 300):
    torch.manual_seed(0)
    logits = (torch.randn(rows, vocab) * 4).to(dtype).requires_grad_()
    targets = torch.randint(0, vocab, (rows,))
    targets[::7] = -100
    return logits, targets


def _loss_and_grad(fn, logits, targets):
    logits.grad = None
    loss = fn(logits, targets)
    loss.backward()
    return loss.detach(), logits.grad.clone()


def test_float32_is_f_cross_entropy_bit_for_bit():
    logits, targets = _data(torch.float32)
    loss, grad = _loss_and_grad(cross_entropy, logits, targets)
    ref_loss, ref_grad = _loss_and_grad(F.cross_entropy, logits, targets)
    assert torch.equal(loss, ref_loss) and torch.equal(grad, ref_grad)


def test_bf16_matches_the_float32_cast_reference():
    logits, targets = _data(torch.bfloat16)
    loss, grad = _loss_and_grad(cross_entropy, logits, targets)
    ref_loss, ref_grad = _loss_and_grad(lambda x, y: F.cross_entropy(x.float(), y), logits, targets)
    assert loss.dtype == torch.float32 and math.isclose(loss.item(), ref_loss.item(), rel_tol=1e-6)
    assert grad.dtype == torch.bfloat16
    ulp = ref_grad.float().abs() * 2**-7 + 1e-12  # one bfloat16 step (8 significant bits)
    assert ((grad.float() - ref_grad.float()).abs() <= ulp).all()
    assert not grad[::7].any()  # ignored rows get no gradient


def test_every_row_ignored_is_nan_as_the_reference():
    logits, targets = _data(torch.bfloat16, rows=5)
    targets[:] = -100
    assert math.isnan(cross_entropy(logits, targets).item())
    assert math.isnan(F.cross_entropy(logits.float(), targets).item())
