"""Giving memory back to the operating system after large, short-lived allocations.

A 40-megapixel image costs ~120-170 MB while it is decoded and resized. glibc serves blocks
that large with mmap at first, but raises its mmap threshold after the first one is freed
(up to 32 MB), so later images come from the heap and stay in the process after the request:
32 such requests left a server at 4.6 GB. Pinning the threshold keeps big blocks mmapped
(returned on free); ``trim`` hands back what the heap still holds. Both are no-ops where
glibc is not the allocator.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging

logger = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3  # glibc malloc.h
MMAP_THRESHOLD = 1 << 20  # blocks of 1 MB and more are mmapped and unmapped on free


@functools.lru_cache(maxsize=1)
def _libc():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


def pin_mmap_threshold(size: int = MMAP_THRESHOLD) -> bool:
    """Serve allocations of ``size`` bytes and more with mmap, always (disables glibc's sliding threshold)."""
    libc = _libc()
    ok = bool(libc and libc.mallopt(M_MMAP_THRESHOLD, size))
    logger.debug("mmap threshold pinned at %d bytes: %s", size, ok)
    return ok


def trim() -> None:
    """Return free heap memory to the operating system (``malloc_trim(0)``)."""
    libc = _libc()
    if libc:
        libc.malloc_trim(0)
