"""The allocator tuning of ingest runs applies on glibc and is harmless to call again."""

from __future__ import annotations

import platform

import numpy as np
import pytest

from hub.ingest.memory import tune_malloc


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt thresholds exist only in glibc")
def test_tune_malloc_sets_the_thresholds_once() -> None:
    assert tune_malloc() is True
    assert tune_malloc() is True  # cached: set once per process
    for _ in range(3):  # large buffers are still allocated and freed normally
        buf = np.ones(8 << 20, dtype=np.uint8)
        assert int(buf.sum()) == 8 << 20
        del buf
