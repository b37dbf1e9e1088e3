"""Dropout whose masks in the bfloat16 modes cost a fifth of `bernoulli_`'s, and float32 dropout unchanged.

Paper: Srivastava et al. (2014), "Dropout: A Simple Way to Prevent Neural Networks from Overfitting" (inverted
dropout: zero each element with probability p, scale the kept ones by 1/(1 - p)). Reference implementation:
`torch.nn.functional.dropout`, which float32 outside autocast runs itself, bit for bit (the HF parity tests
and the fp32 demo depend on its masks).
Deviation, on the CPU in the bf16 modes (a bfloat16/float16 input, or autocast on): the CPU's `bernoulli_`
draws one Mersenne-Twister number per element and costs the same in every dtype (18 ms for the 3.1M attention
probabilities of one MiniLM layer at 16 × 128, where the layer's matrix products take about 30 ms in bf16).
Here one 64-bit random word gives four elements their masks: an element is kept when its 16-bit chunk,
shifted right once to h in [0, 2¹⁵), satisfies h < round(q · 2¹⁵), q = 1 - p, so the keep probability is q to
within 2⁻¹⁶ (0.9 -> 29491 / 32768 = 0.899994); drawing and building a mask costs 3.4 ms where `bernoulli_`
costs 18. Kept elements are scaled by 1/q in float32 and rounded once to the input's dtype. The words come from the default generator, so `torch.manual_seed` and a saved RNG state
reproduce the masks (exact resume). Tested against `F.dropout` by keep rate, scale, chunk independence and
reproducibility (tests/model/test_dropout.py). CUDA keeps `F.dropout` (its Philox generator is cheap already).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

CHUNKS_PER_WORD = 4  # one 64-bit random word makes the masks of four elements, 16 bits each
_ONE_BITS = {torch.bfloat16: 0x3F80, torch.float16: 0x3C00}  # the bit pattern of 1.0


def cheap_masks_apply(x: Tensor) -> bool:
    """Whether `dropout` draws its masks from 16-bit chunks for `x`: a CPU tensor in a bf16 mode."""
    low = x.dtype in (torch.bfloat16, torch.float16) or torch.is_autocast_enabled("cpu")
    return low and x.device.type == "cpu"


def dropout(x: Tensor, p: float, training: bool = True) -> Tensor:
    """Inverted dropout of `x` (any shape) with drop probability `p`; `F.dropout` unless `cheap_masks_apply`."""
    if not (training and 0.0 < p < 1.0 and cheap_masks_apply(x)):
        return F.dropout(x, p, training=training)
    keep = 1.0 - p
    return x * keep_mask(x.shape, keep, x.dtype, x.device) * (1.0 / keep)


def keep_mask(shape: torch.Size | tuple[int, ...], keep: float, dtype: torch.dtype, device) -> Tensor:
    """1 with probability round(keep · 2¹⁵) / 2¹⁵ and 0 otherwise, independently per element, in `dtype`.

    Built with int16 arithmetic, which the CPU vectorises (a comparison into bool costs twice as much): the
    15-bit value h (a chunk shifted right once) minus the threshold is negative exactly when kept, so its sign
    bit smeared over all 16 bits, ANDed with the bit pattern of 1.0, is the mask's bf16/fp16 bit pattern.

    Args:
        shape: the mask's shape.
        keep: the keep probability q, in [0, 1].
        dtype: the mask's dtype (the input's, so that applying it is one multiplication in that dtype).
        device: where to draw it (the default generator of that device).

    Returns:
        The 0/1 mask of `shape`.
    """
    n = math.prod(shape)
    words = torch.empty(-(-n // CHUNKS_PER_WORD), dtype=torch.int64, device=device).random_(-(2**63), None)
    h = words.view(torch.int16)[:n] >> 1  # uniform on [-2¹⁴, 2¹⁴): 15 random bits
    threshold = round(keep * 2**15) - 2**14  # kept iff h < threshold; h - threshold cannot overflow int16
    sign = h.sub_(threshold).bitwise_right_shift_(15)  # -1 (all bits set) where kept, else 0
    bits_dtype = dtype if dtype in _ONE_BITS else torch.bfloat16
    mask = sign.bitwise_and_(_ONE_BITS[bits_dtype]).view(bits_dtype)
    return mask.to(dtype).view(shape)


class Dropout(nn.Dropout):
    """`nn.Dropout` whose masks are drawn by `dropout` (cheaply in the bf16 modes on the CPU)."""

    def forward(self, x: Tensor) -> Tensor:
        return dropout(x, self.p, self.training)
