"""The demo's figures do not depend on the machine: one thread, and the same AVX2 code paths on every x86
processor (ATen's vector kernels, MKL's conditional numerical reproducibility, OpenBLAS's core type), so an
AVX-512 or AMX machine gives README's figures too. These settings work only when they are in the
environment before torch and numpy load: `llmlab demo` calls `pin_kernels` first.

The bf16 modes (`--precision auto|bf16-mixed|bf16`) leave ATen's capability alone: pinned to AVX2, ATen
would skip its AVX-512 bfloat16 kernels. The rest stays pinned, as it does not block bfloat16: the thread
count, MKL's code path (MKL runs float32 BLAS only; bfloat16 matrix products go through oneDNN, which picks
its own instructions) and OpenBLAS's (numpy's, for the baseline and the statistics).
"""

from __future__ import annotations

import os
import sys

DEMO_THREADS = 1
PINNED_KERNELS = {
    "ATEN_CPU_CAPABILITY": "avx2",
    "MKL_CBWR": "AVX2,STRICT",
    "OPENBLAS_CORETYPE": "Haswell",
    "OMP_NUM_THREADS": str(DEMO_THREADS),
}
BF16_BLOCKERS = ("ATEN_CPU_CAPABILITY",)  # left alone unless the demo runs in fp32


def demo_kernels(precision: str = "fp32") -> dict[str, str]:
    """The settings the demo pins for `precision`: all of PINNED_KERNELS for fp32; for any other name (the
    bf16 modes, or "auto" before it resolves) all but BF16_BLOCKERS."""
    if precision == "fp32":
        return dict(PINNED_KERNELS)
    return {name: value for name, value in PINNED_KERNELS.items() if name not in BF16_BLOCKERS}


def pin_kernels(precision: str = "fp32") -> None:
    """Put `demo_kernels(precision)` in the environment, if torch and numpy have not loaded yet (then it is
    too late)."""
    if "torch" not in sys.modules and "numpy" not in sys.modules:
        os.environ.update(demo_kernels(precision))


def unpinned_kernels(precision: str = "fp32") -> list[str]:
    """The settings of `demo_kernels(precision)` this process does not run with."""
    return [name for name, value in demo_kernels(precision).items() if os.environ.get(name) != value]
