"""Peak memory of a piece of work, for run summaries and method comparisons.

CUDA: the caching allocator's peak above what was allocated at the start (`torch.cuda.max_memory_allocated`
after `reset_peak_memory_stats`). CPU on Linux: the peak resident set `VmHWM` of /proc/self/status above the
resident set `VmRSS` at the start, after writing 5 to /proc/self/clear_refs, which resets `VmHWM` (proc(5)).
`ru_maxrss` is not used: it cannot be reset, and a child process inherits its parent's. Elsewhere: None.
"""

from __future__ import annotations

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
