"""Process-wide settings that the fast path's entry points (CLI, benchmarks) apply.

Large numpy temporaries are otherwise returned to the operating system after each use
and page-faulted back on the next, which costs more than the arithmetic itself; and a
multi-threaded BLAS under each of three party threads oversubscribes the cores.
"""

from __future__ import annotations

import ctypes
import ctypes.util

from threadpoolctl import threadpool_limits

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


def one_blas_thread_per_party() -> threadpool_limits:
    """Limit BLAS to one thread per call while the parties run as threads of one process.

    The parties already run in parallel; a multi-threaded BLAS under each of them
    oversubscribes the cores. Use as ``with one_blas_thread_per_party(): ...``.
    """
    return threadpool_limits(limits=1, user_api="blas")
