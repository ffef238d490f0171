"""Handing freed memory back to the operating system between the steps of reading large files."""

from __future__ import annotations

import pyarrow as pa


def release_memory() -> None:
    """Hand freed memory back to the OS: pyarrow's allocator keeps a cache, and glibc keeps
    freed blocks of up to 32 MiB in its heaps (one per thread); both would otherwise count
    against the peak of the processing that follows."""
    pa.default_memory_pool().release_unused()
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


def _libc():
    import ctypes
    import ctypes.util
    import sys

    if not sys.platform.startswith("linux"):
        return None
    try:
        lib = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return lib if hasattr(lib, "malloc_trim") else None
    except OSError:
        return None


_LIBC = _libc()
