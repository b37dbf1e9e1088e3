"""`training_autocast`: autocast plus SDPA's unfused (dropout) kernel kept in bfloat16, and nothing else changed.

Tolerance: attention with dropout under it lies within 2% (relative Frobenius norm) of float32 with the same
dropout mask (measured 0.6%, against 0.3% for plain autocast, whose kernel upcasts to float32 first).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from llmlab.model import precision as mp


def _attention(seed: int = 1) -> torch.Tensor:
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 4, 64, 32) for _ in range(3))  # (B, H, T, D)
    torch.manual_seed(seed)  # the same dropout mask in every precision
    return F.scaled_dot_product_attention(q, k, v, dropout_p=0.1)


def _flag() -> bool:
    return torch.backends.cuda.fp16_bf16_reduction_math_sdp_allowed()


def test_bf16_modes_keep_the_dropout_kernel_in_bf16_within_tolerance():
    reference = _attention()
    with mp.autocast("bf16-mixed", "cpu"):
        plain = _attention()
    for precision in ("bf16-mixed", "bf16"):
        with mp.training_autocast(precision, "cpu"):
            assert _flag()
            y = _attention()
        assert y.dtype == torch.bfloat16
        assert not torch.equal(y, plain)  # the bf16 path really ran (plain autocast upcasts)
        assert ((y.float() - reference).norm() / reference.norm()).item() < 0.02


def test_fp32_is_untouched_and_the_flag_is_restored():
    before = _flag()
    with mp.training_autocast("fp32", "cpu"):
        assert _flag() == before and not torch.is_autocast_enabled("cpu")
        assert torch.equal(_attention(), _attention())
    with pytest.raises(RuntimeError), mp.training_autocast("bf16-mixed", "cpu"):
        raise RuntimeError("a failing step")
    assert _flag() == before and not torch.is_autocast_enabled("cpu")
