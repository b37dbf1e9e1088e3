"""Numeric precision of training and inference: fp32, bf16-mixed or bf16, chosen from what the processor has.

Papers: Micikevicius et al. (2018), "Mixed Precision Training" (float32 master weights, low-precision compute);
Kalamkar et al. (2019), "A Study of BFLOAT16 for Deep Learning Training" (bfloat16 needs no loss scaling).
Reference implementation: `torch.autocast(device, dtype=torch.bfloat16)`, which is what HF `Trainer(bf16=True)`
and PyTorch Lightning's `precision="bf16-mixed"` run; our modes differ only in where the weights live:
- fp32: everything in float32 (the reference numerics; the demo pins it).
- bf16-mixed: trainable parameters and their AdamW state stay float32 (master weights); matrix products and
  attention run in bfloat16 under autocast; frozen weights of linear and embedding layers (the base of probe,
  prompt, prefix and LoRA) are stored in bfloat16 once, so no cast per step. Norm weights stay float32 (the
  CPU LayerNorm kernel then accumulates its statistics in float32), and losses are taken on float32 logits.
- bf16: every parameter, and so the optimizer state, in bfloat16 (least memory, least accuracy).
Inference in either bf16 mode stores every linear and embedding weight in bfloat16.

Detection (`bf16_support`): AMX tiles ("amx"), AVX-512 BF16 ("avx512_bf16") or neither ("none"), from
torch's own CPU probes (which also check that the OS enabled the AMX state), else /proc/cpuinfo; CUDA asks
`torch.cuda.is_bf16_supported()`. Setting LLMLAB_NO_BF16=1 makes detection report "none" (tests; or to pin
fp32). "auto" resolves to bf16-mixed where the support is native, else fp32, and says so once on stderr.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import Tensor, nn

from llmlab.errors import LlmlabError, notice

PRECISIONS = ("fp32", "bf16-mixed", "bf16")
CHOICES = ("auto", *PRECISIONS)
DISABLE_ENV = "LLMLAB_NO_BF16"
_announced: set[str] = set()


def bf16_support(device: torch.device | str | None = None) -> str:
    """What native bfloat16 support the device has: "amx", "avx512_bf16" (CPU), "cuda", or "none"."""
    if os.environ.get(DISABLE_ENV, "") not in ("", "0"):
        return "none"
    device = torch.device(device or default_device())
    if device.type == "cuda":
        return "cuda" if torch.cuda.is_bf16_supported() else "none"
    flags = _cpu_flags()
    if {"amx_bf16", "amx_tile"} <= flags:
        return "amx"
    return "avx512_bf16" if "avx512_bf16" in flags else "none"


def _cpu_flags() -> set[str]:
    """The CPU's bf16-related features: torch's probes when it has them, else the flags of /proc/cpuinfo."""
    probes = {"amx_tile": "_is_amx_tile_supported", "avx512_bf16": "_is_avx512_bf16_supported"}
    if all(hasattr(torch.cpu, fn) for fn in probes.values()):
        found = {name for name, fn in probes.items() if getattr(torch.cpu, fn)()}
        return found | ({"amx_bf16"} if "amx_tile" in found else set())
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return set()
    return {word for line in text.splitlines() if line.startswith("flags") for word in line.split()}


def default_device() -> torch.device:
    """The device training and inference use: the first GPU when there is one, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def resolve_precision(
    name: str | None, device: torch.device | str | None = None, announce: bool = True
) -> str:
    """The precision to run: `name` itself, or for "auto" (and None) bf16-mixed where bf16 is native, else fp32.

    Args:
        name: one of CHOICES ("auto", "fp32", "bf16-mixed", "bf16") or None (= "auto").
        device: where the model runs (default: `default_device()`).
        announce: say what "auto" chose, once per process, on stderr.

    Raises:
        LlmlabError: an unknown name, or "bf16" on a device without native bfloat16 (bf16-mixed still runs
            there, emulated: correct but slower than fp32).
    """
    name = "auto" if name is None else name
    if name not in CHOICES:
        raise LlmlabError(f"precision {name!r}: choose one of {', '.join(CHOICES)}")
    support = bf16_support(device)
    if name == "bf16" and support == "none":
        raise LlmlabError(
            "precision 'bf16': this processor has no native bfloat16 (no AMX, no avx512_bf16); use fp32"
        )
    chosen = name if name != "auto" else ("fp32" if support == "none" else "bf16-mixed")
    if announce and name == "auto" and chosen not in _announced:
        _announced.add(chosen)
        notice(f"precision: {chosen} (auto; bf16 support: {support})")  # held until work starts
    return chosen


def check_precision(name: str) -> str | None:
    """A problem with a stored precision name (one of PRECISIONS), or None."""
    return None if name in PRECISIONS else f"precision={name!r}: choose one of {', '.join(CHOICES)}"


def autocast(precision: str, device: torch.device | str | None = None) -> contextlib.AbstractContextManager:
    """The context a forward pass runs in: bfloat16 autocast for the bf16 modes, nothing for fp32."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device or default_device()).type, dtype=torch.bfloat16)


@contextlib.contextmanager
def training_autocast(precision: str, device: torch.device | str | None = None) -> Iterator[None]:
    """The context a training forward pass runs in: `autocast`, and in the bf16 modes SDPA's unfused kernel
    kept in bfloat16.

    Attention dropout keeps the CPU's SDPA off its fused kernel; the unfused one then casts q, k, v and the
    (B, H, T, T) scores of a bfloat16 run to float32 first, so it costs more time and memory than float32
    itself (MiniLM probe: peak 75 vs 67 MB). With PyTorch's `allow_fp16_bf16_reduction_math_sdp` (it applies
    to the CPU too) it computes in bfloat16 as HF's eager attention under autocast does; the softmax still
    accumulates its max and sum in float32 and only the probabilities are rounded. Restored on exit.
    """
    if precision == "fp32":
        yield
        return
    before = torch.backends.cuda.fp16_bf16_reduction_math_sdp_allowed()
    torch.backends.cuda.allow_fp16_bf16_reduction_math_sdp(True)
    try:
        with autocast(precision, device):
            yield
    finally:
        torch.backends.cuda.allow_fp16_bf16_reduction_math_sdp(before)


def autocast_input(x: Tensor) -> Tensor:
    """`x` in autocast's dtype when autocast is on for its device, else `x` itself.

    Autocast casts a float32 input again for every layer that reads it; a tensor several projections share
    (attention's q, k, v and their LoRA paths) is cast once here instead. The values are the same.
    """
    device = x.device.type
    if not (x.is_floating_point() and torch.is_autocast_enabled(device)):
        return x
    return x.to(torch.get_autocast_dtype(device))


def store_weights(model: nn.Module, precision: str, training: bool = True) -> nn.Module:
    """Put `model`'s parameters in the dtypes `precision` keeps them in (in place; returns the model).

    fp32: every parameter float32. bf16: every parameter bfloat16. bf16-mixed: the weights and biases of
    linear and embedding layers that are not trained (all of them when `training` is False) in bfloat16, the
    rest float32. Buffers (rotary tables, masks) are left alone.
    """
    low: set[int] = set()
    if precision == "bf16":
        low = {id(p) for p in model.parameters()}
    elif precision == "bf16-mixed":
        low = {id(p) for p in _layer_weights(model) if not (training and p.requires_grad)}
    with torch.no_grad():
        for p in model.parameters():
            if p.is_floating_point():
                p.data = p.data.to(torch.bfloat16 if id(p) in low else torch.float32)
    return model


def _layer_weights(model: nn.Module) -> Iterator[nn.Parameter]:
    """The weight (and bias) of every linear and embedding layer (not LoRA's A and B, which sit beside)."""
    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.Embedding)):
            yield from (p for p in (module.weight, getattr(module, "bias", None)) if p is not None)


def optimizer_options(precision: str, device: torch.device | str | None = None) -> dict[str, bool]:
    """Keyword arguments for `torch.optim.AdamW`: the fused kernel in the bf16 modes (one pass over all
    trainable tensors instead of a loop of small ops); fp32 keeps the default loop and its exact numerics."""
    if precision == "fp32":
        return {}
    return {"fused": True}
