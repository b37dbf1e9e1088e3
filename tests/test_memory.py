"""`measure_peak` sees memory a block allocates and frees again, not the process's earlier peak."""

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
    gc.collect()  # (garbage of earlier tests in this process, freed during the block, would hide what it adds)
    with measure_peak() as peak:
        block = np.ones(100 * 2**20 // 8)  # 100 MiB, touched
        del block
    assert status_mb("VmHWM") is not None
    assert 90 <= peak.mb <= 250, peak.mb
