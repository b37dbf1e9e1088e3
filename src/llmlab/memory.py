"""Peak memory of a piece of work, for run summaries and method comparisons.

CUDA: the caching allocator's peak above what was allocated at the start (`torch.cuda.max_memory_allocated`
after `reset_peak_memory_stats`). CPU on Linux: the peak resident set `VmHWM` of /proc/self/status above the
resident set `VmRSS` at the start, after writing 5 to /proc/self/clear_refs, which resets `VmHWM` (proc(5)).
Before that, glibc's `malloc_trim(0)` hands heap memory freed earlier back to the system: malloc serves even a
large request from a free chunk of its heap before it maps new pages, so a block could otherwise fill memory
that an earlier piece of work freed but the process still holds, and add nothing to the resident set.
`ru_maxrss` is not used: it cannot be reset, and a child process inherits its parent's. Elsewhere: None.
"""

from __future__ import annotations

import ctypes
from collections.abc import Iterator
from contextlib import contextmanager

import torch


def status_mb(field: str) -> float | None:
    """A memory field of /proc/self/status ("VmRSS", "VmHWM") in MiB; None where there is no such file."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            line = next((x for x in f if x.startswith(field + ":")), None)
    except OSError:
        return None
    return None if line is None else int(line.split()[1]) / 1024  # kB


def release_free_heap() -> None:
    """Return heap memory that is free but still resident to the system (glibc `malloc_trim(0)`; elsewhere nothing)."""
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (AttributeError, OSError, TypeError):  # (no glibc; Windows cannot open the process itself)
        return
    trim.argtypes = [ctypes.c_size_t]
    trim(0)


class PeakMemory:
    """The result of `measure_peak`: `mb` is set when the block ends (None where it cannot be measured)."""

    mb: float | None = None


@contextmanager
def measure_peak() -> Iterator[PeakMemory]:
    """Measure the peak memory the block adds: `with measure_peak() as peak: ...; peak.mb`."""
    result = PeakMemory()
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
        start = torch.cuda.memory_allocated() / 2**20
    else:
        release_free_heap()
        try:
            with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
                f.write("5")
        except OSError:
            pass  # VmHWM then still holds the process's earlier peak: an upper bound
        start = status_mb("VmRSS")
    try:
        yield result
    finally:
        peak = torch.cuda.max_memory_allocated() / 2**20 if cuda else status_mb("VmHWM")
        result.mb = None if start is None or peak is None else round(max(peak - start, 0.0), 1)
