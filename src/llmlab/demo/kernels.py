"""The demo's figures do not depend on the machine: one thread, and the same AVX2 code paths on every x86
processor (ATen's vector kernels, MKL's conditional numerical reproducibility, OpenBLAS's core type), so an
AVX-512 or AMX machine gives README's figures too. These settings work only when they are in the
environment before torch and numpy load: `llmlab demo` calls `pin_kernels` first.
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


def pin_kernels() -> None:
    """Put PINNED_KERNELS in the environment, if torch and numpy have not loaded yet (then it is too late)."""
    if "torch" not in sys.modules and "numpy" not in sys.modules:
        os.environ.update(PINNED_KERNELS)


def unpinned_kernels() -> list[str]:
    """The settings of PINNED_KERNELS this process does not run with."""
    return [name for name, value in PINNED_KERNELS.items() if os.environ.get(name) != value]
