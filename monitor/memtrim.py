"""Hand the heap memory that scoring freed back to the operating system (glibc ``malloc_trim``).

API:
    trim() -> bool      # True when glibc's malloc_trim ran (and returned memory); False elsewhere (a no-op)

Why: scoring a batch of a few hundred windows on the CPU allocates tens of MB of temporaries (oneDNN LSTM
workspaces, activations). glibc keeps freed memory in its heaps, so the service's RSS stays at the high-water mark
of its largest batch: with 1,000 units, 285 -> 362 MiB after batches up to 512 windows, back to 308 MiB after one
``malloc_trim(0)`` taking about 6 ms (benchmarks/memory.py measures the service's RSS). The scheduler calls it at
most every few seconds.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
import sys
from typing import Any

log = logging.getLogger(__name__)


@functools.cache
def _malloc_trim() -> Any:
    """glibc's malloc_trim, looked up once; None elsewhere (musl has none, other systems no glibc)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError as exc:
        log.debug("no malloc_trim: %s", exc)
        return None
    return getattr(libc, "malloc_trim", None)


def trim() -> bool:
    """Return free heap memory to the OS; False where that is not available."""
    fn = _malloc_trim()
    if fn is None:
        return False
    return bool(fn(0))
