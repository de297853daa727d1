"""Process-wide settings that the fast path's entry points (CLI, benchmarks) apply.

Large numpy temporaries are otherwise returned to the operating system after each use
and page-faulted back on the next, which costs more than the arithmetic itself.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
KEEP_BYTES = 1 << 30
LARGEST_HEAP_BLOCK = 32 << 20  # glibc refuses larger mmap thresholds


def keep_freed_memory() -> bool:
    """Ask glibc to serve blocks up to 32 MiB from its heap and keep freed memory; False where unsupported."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    trimmed = mallopt(M_TRIM_THRESHOLD, KEEP_BYTES)
    mapped = mallopt(M_MMAP_THRESHOLD, LARGEST_HEAP_BLOCK)
    return bool(trimmed and mapped)


def single_threaded_blas_requested() -> bool:
    """True when BLAS was limited to one thread per call (the three parties run in parallel)."""
    return os.environ.get("OPENBLAS_NUM_THREADS") == "1"
