"""RoPE context extension: the inverse frequencies (and attention factor) of each scaling method.

Notation: D the head size, b the base (`rope_theta`), θ_i = b^(-2i/D) for i = 0 .. D/2 - 1 the unscaled
inverse frequencies, λ_i = 2π / θ_i their wavelengths, s the factor, L0 the length the model was trained at
(`original_max_position`), L the length of the current sequence (highest position + 1). A position m is
rotated by m · θ'_i, and cos/sin are multiplied by the attention factor a (on queries and keys, so the
scores by a²).

- `linear`, position interpolation (Chen et al. 2023, "Extending Context Window of Large Language Models via
  Positional Interpolation"):   θ'_i = θ_i / s                      (the same as rotating at m / s).
- `ntk`, NTK-aware base change (bloc97 2023, r/LocalLLaMA "NTK-Aware Scaled RoPE"):
      b' = b · s^(D / (D - 2)),   θ'_i = b'^(-2i/D)       (slowest frequency / s, fastest unchanged).
- `dynamic`, dynamic NTK (emozilla 2023, r/LocalLLaMA "Dynamically Scaled RoPE"): the base grows with the
  current length, unchanged up to L0:
      b'(L) = b · (s · max(L, L0) / L0 - (s - 1))^(D / (D - 2)).
  Which L a token gets, so that a KV cache stays exact, is rotary.py's business (there: L = position + 1).
- `yarn` (Peng et al. 2023, "YaRN: Efficient Context Window Extension of Large Language Models", eq. 17-21):
  a ramp over the dimensions by how many turns r_i = L0 / λ_i each makes within L0. The dimension making
  β turns is d(β) = D · ln(L0 / (2π β)) / (2 ln b); with lo = ⌊d(β_fast)⌋, hi = ⌈d(β_slow)⌉ (clamped to
  [0, D - 1]) and γ_i = clamp((i - lo) / (hi - lo), 0, 1):
      θ'_i = (1 - γ_i) · θ_i + γ_i · θ_i / s       (fast dimensions kept, slow ones interpolated)
      a = 0.1 · ln(s) + 1                             (√(1/t), the attention temperature; eq. 22)
  unless `attention_factor` gives a explicitly (as DeepSeek's mscale / mscale_all_dim ratio does).
- `llama3` (Meta 2024, "The Llama 3 Herd of Models", and its reference `apply_scaling`): with
  λ_hi = L0 / high_freq_factor and λ_lo = L0 / low_freq_factor,
      θ'_i = θ_i                    if λ_i < λ_hi     (high frequencies kept)
      θ'_i = θ_i / s                if λ_i > λ_lo     (low frequencies interpolated)
      θ'_i = (1 - σ) θ_i / s + σ θ_i, σ = (L0 / λ_i - low_freq_factor) / (high_freq_factor - low_freq_factor)

Reference implementation, tested against: `transformers.modeling_rope_utils.ROPE_INIT_FUNCTIONS` (inverse
frequencies and attention factor within 1e-6 for every type; `ntk` against `dynamic` at the length where
both give the same base, as transformers has no static NTK). Deviation: frequencies are computed in float64
here (transformers: float32), so ours are the exact values theirs round.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

SCALINGS = ("linear", "ntk", "dynamic", "yarn", "llama3")
NEEDS_ORIGINAL = ("dynamic", "yarn", "llama3")  # the methods that need L0
DEFAULTS = {  # the type-specific parameters (ModelConfig fields) and their defaults, by the type that reads them
    "rope_original_max_position": (None, NEEDS_ORIGINAL),
    "rope_beta_fast": (32.0, ("yarn",)),
    "rope_beta_slow": (1.0, ("yarn",)),
    "rope_attention_factor": (None, ("yarn",)),
    "rope_low_freq_factor": (1.0, ("llama3",)),
    "rope_high_freq_factor": (4.0, ("llama3",)),
}


@dataclass(frozen=True)
class RopeScaling:
    """One context-extension method and its parameters (validated by `scaling_problem` via ModelConfig)."""

    kind: str  # one of SCALINGS
    factor: float  # s
    original_max_position: int | None = None  # L0
    beta_fast: float = 32.0
    beta_slow: float = 1.0
    attention_factor: float | None = None  # yarn: None means 0.1 ln s + 1
    low_freq_factor: float = 1.0
    high_freq_factor: float = 4.0

    @classmethod
    def from_config(cls, config: Any) -> RopeScaling | None:
        """The scaling a ModelConfig describes, or None when `rope_scaling` is None."""
        if config.rope_scaling is None:
            return None
        return cls(
            config.rope_scaling,
            float(config.rope_scaling_factor),
            config.rope_original_max_position,
            config.rope_beta_fast,
            config.rope_beta_slow,
            config.rope_attention_factor,
            config.rope_low_freq_factor,
            config.rope_high_freq_factor,
        )


def scaling_problem(config: Any) -> str | None:
    """The first thing wrong with a ModelConfig's RoPE scaling fields, as one line, or None."""
    kind = config.rope_scaling
    factor = config.rope_scaling_factor
    if kind is not None and config.positional != "rope":
        return f"rope_scaling={kind!r} needs positional='rope', not {config.positional!r}"
    if kind is None and factor != 1.0:
        return f"rope_scaling_factor={factor} has no effect without rope_scaling"
    for name, (default, readers) in DEFAULTS.items():
        if kind not in readers and getattr(config, name) != default:
            needs = " or ".join(repr(r) for r in readers)
            return f"{name}={getattr(config, name)!r} has no effect without rope_scaling={needs}"
    if kind is None:
        return None
    if kind == "dynamic" and (not _is_number(factor) or factor < 1):  # s = 1 still grows the base past L0
        return f"rope_scaling='dynamic' needs rope_scaling_factor >= 1, not {factor!r}"
    if kind != "dynamic" and (not _is_number(factor) or factor <= 1):
        return f"rope_scaling={kind!r} needs rope_scaling_factor > 1, not {factor!r}"
    return _parameter_problem(config, kind)


def _parameter_problem(config: Any, kind: str) -> str | None:
    original = config.rope_original_max_position
    if kind in NEEDS_ORIGINAL and original is None:
        return f"rope_scaling={kind!r} needs rope_original_max_position (the length the model was trained at)"
    if original is not None and (not isinstance(original, int) or isinstance(original, bool) or original < 1):
        return f"rope_original_max_position={original!r} must be a positive integer"
    numbers = ["rope_beta_fast", "rope_beta_slow", "rope_low_freq_factor", "rope_high_freq_factor"]
    for name in numbers:
        if not _is_number(getattr(config, name)) or getattr(config, name) <= 0:
            return f"{name}={getattr(config, name)!r} must be a positive number"
    if config.rope_beta_fast <= config.rope_beta_slow:
        return f"rope_beta_fast={config.rope_beta_fast} must be above rope_beta_slow={config.rope_beta_slow}"
    if config.rope_high_freq_factor <= config.rope_low_freq_factor:
        return (
            f"rope_high_freq_factor={config.rope_high_freq_factor} must be above "
            f"rope_low_freq_factor={config.rope_low_freq_factor}"
        )
    attention = config.rope_attention_factor
    if attention is not None and (not _is_number(attention) or attention <= 0):
        return f"rope_attention_factor={attention!r} must be None or a positive number"
    return None


def inverse_frequencies(
    head_dim: int, theta: float, scaling: RopeScaling | None = None, seq_len: int | Tensor | None = None
) -> tuple[Tensor, float]:
    """The inverse frequencies θ'_i (D/2,) in float64 and the attention factor a, as the module docstring says.

    Args:
        head_dim: D (even).
        theta: the base b.
        scaling: the method, or None for plain RoPE.
        seq_len: L, the current length, read by `dynamic` only: None means L0; a tensor of lengths (T,)
            gives one row of frequencies per length, (T, D/2).
    """
    device = seq_len.device if isinstance(seq_len, Tensor) else None
    two_i = torch.arange(0, head_dim, 2, dtype=torch.float64, device=device)  # (D/2,)
    plain = theta ** (-two_i / head_dim)  # θ_i
    if scaling is None:
        return plain, 1.0
    s = scaling.factor
    D = head_dim
    if scaling.kind == "linear":
        return plain / s, 1.0
    if scaling.kind == "ntk":
        return (theta * s ** (D / (D - 2))) ** (-two_i / D), 1.0
    if scaling.kind == "dynamic":
        growth = _dynamic_growth(scaling, seq_len)  # () or (T, 1)
        return (theta * growth ** (D / (D - 2))) ** (-two_i / D), 1.0
    if scaling.kind == "yarn":
        return _yarn(plain, scaling, D, theta)
    return _llama3(plain, scaling), 1.0


def _dynamic_growth(scaling: RopeScaling, seq_len: int | Tensor | None) -> Tensor:
    """s · max(L, L0) / L0 - (s - 1): 1 up to L0, then growing linearly with L; () or (T, 1) float64."""
    L0 = scaling.original_max_position
    L = torch.as_tensor(L0 if seq_len is None else seq_len, dtype=torch.float64).clamp(min=L0)
    L = L[:, None] if L.dim() == 1 else L
    return scaling.factor * L / L0 - (scaling.factor - 1)


def _yarn(plain: Tensor, scaling: RopeScaling, D: int, theta: float) -> tuple[Tensor, float]:
    L0 = scaling.original_max_position
    s = scaling.factor

    def dim_of(turns: float) -> float:  # the dimension that makes `turns` rotations within L0
        return D * math.log(L0 / (turns * 2 * math.pi)) / (2 * math.log(theta))

    lo = max(math.floor(dim_of(scaling.beta_fast)), 0)
    hi = min(math.ceil(dim_of(scaling.beta_slow)), D - 1)
    hi = hi + 0.001 if hi == lo else hi  # as the reference: no division by zero
    gamma = ((torch.arange(D // 2, dtype=torch.float64) - lo) / (hi - lo)).clamp(
        0, 1
    )  # 0 keep, 1 interpolate
    inv_freq = (1 - gamma) * plain + gamma * plain / s
    attention = scaling.attention_factor
    return inv_freq, 0.1 * math.log(s) + 1.0 if attention is None else float(attention)


def _llama3(plain: Tensor, scaling: RopeScaling) -> Tensor:
    L0 = scaling.original_max_position
    s = scaling.factor
    low = scaling.low_freq_factor
    high = scaling.high_freq_factor
    wavelength = 2 * math.pi / plain
    sigma = (L0 / wavelength - low) / (high - low)
    smooth = (1 - sigma) * plain / s + sigma * plain
    out = torch.where(wavelength > L0 / low, plain / s, smooth)
    return torch.where(wavelength < L0 / high, plain, out)


def _is_number(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return math.isfinite(value)
