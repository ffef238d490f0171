"""Stable content hashes for the artifact store (ARCHITECTURE §7.2)."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def _plain(x: Any) -> Any:
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf

        if isinstance(x, DictConfig | ListConfig):
            return OmegaConf.to_container(x, resolve=True)
    except ImportError:  # pragma: no cover
        pass
    return x


def stable_hash(*parts: Any, length: int = 12) -> str:
    """sha256 of the JSON of `parts` with sorted keys; independent of key order."""
    payload = json.dumps([_plain(p) for p in parts], sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:length]


def stat_identity(path) -> tuple:
    """A file as caches key it without reading it: resolved path, size, modification time."""
    from pathlib import Path

    st = Path(path).stat()
    return (str(Path(path).resolve()), st.st_size, st.st_mtime_ns)


def drop_keys(tree: dict, keys) -> dict:
    """A shallow copy of `tree` without `keys` (things that never change the artifact)."""
    return {k: v for k, v in tree.items() if k not in set(keys)}


def file_sha256(path, chunk: int = 1 << 20, abort=None) -> str:
    """sha256 of a file's bytes; `abort` (a threading.Event) stops a hash running beside work
    that failed (hashlib releases the GIL, so a thread hashes while another reads)."""
    h = hashlib.sha256()
    buf = bytearray(chunk)  # one buffer: no allocation per block beside the work of other threads
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(buf):
            if abort is not None and abort.is_set():
                raise InterruptedError(f"hashing {path} was abandoned")
            h.update(view[:n])
    return h.hexdigest()
