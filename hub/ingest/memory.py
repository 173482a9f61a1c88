"""Tuning of the C allocator for ingest runs (glibc only; elsewhere nothing is done).

An ingest run allocates and frees the same few megabyte-sized numpy buffers for every batch (masks,
byte matrices, parsed values). glibc's malloc serves those with ``mmap`` and hands the top of its heap
back to the system whenever it shrinks, so each batch paid page faults again: about 0.3 s of system
time per million rows, with the process's user time also higher. Keeping buffers up to 32 MB in the
heap and trimming it only above 256 MB free cut that to about 0.1 s (``bench/ingest.py``, Parquet
case). Freed memory is reused by the next batch, so the peak stays what the run needs (the 10-million
row run of ``bench/ingest.py`` checks the 1 GB bound).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD = -1  # from glibc's malloc.h
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 32 << 20
TRIM_THRESHOLD_BYTES = 256 << 20


@functools.cache
def tune_malloc() -> bool:
    """Set glibc's mmap and trim thresholds for this process, once; False where there is no glibc."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to tune
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    ok = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
    )
    log.debug("malloc thresholds set: %s", ok)
    return ok
