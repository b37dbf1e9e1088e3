"""`measure_peak` sees memory a block allocates and frees again, not the process's earlier peak, nor heap memory
that earlier work freed but the process still held (CI saw 0.0 and 55.3 of 100 MiB before `release_free_heap`)."""

from __future__ import annotations

import gc
import sys

import numpy as np
import pytest

from llmlab.memory import measure_peak, status_mb


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_peak_of_a_block_counts_what_it_allocated_and_not_earlier_peaks():
    big = np.ones(400 * 2**20 // 8)  # an earlier 400 MiB peak that a later block must not report
    del big
    small = [bytearray(1000) for _ in range(200_000)]  # ~200 MiB of heap chunks, freed below a survivor:
    survivor = bytearray(1000)  # malloc would serve the block from this free, still resident heap memory
    del small
    gc.collect()
    with measure_peak() as peak:
        block = np.ones(100 * 2**20 // 8)  # 100 MiB, touched
        del block
    assert status_mb("VmHWM") is not None
    assert 90 <= peak.mb <= 250, peak.mb
    del survivor
