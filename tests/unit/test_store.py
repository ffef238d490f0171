"""The artifact store commits atomically, never trusts a half-written entry, and lets one
builder work while others wait (ARCHITECTURE §7.3)."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import time

import pytest

from recx.config.hashing import stable_hash
from recx.store import Store, is_ready


def test_hash_ignores_key_order():
    assert stable_hash({"a": 1, "b": [1, 2]}) == stable_hash({"b": [1, 2], "a": 1})
    assert stable_hash({"a": 1}) != stable_hash({"a": 2})


def test_commit_is_atomic(tmp_path):
    store = Store(tmp_path)
    entry = store.entry("data", "x", "abc")
    with pytest.raises(RuntimeError), store.building(entry, keep_partial=False) as work:
        (work / "half.txt").write_text("half")
        raise RuntimeError("killed")
    assert not entry.exists() and not is_ready(entry)
    assert not (tmp_path / "data" / "x" / "abc.partial").exists()
    assert not (tmp_path / "data" / "x" / "abc.lock").exists()
    store.get_or_build(entry, lambda p: (p / "ok.txt").write_text("ok"), meta={"k": 1})
    assert is_ready(entry) and (entry / "ok.txt").read_text() == "ok"
    meta = json.loads((entry / "meta.json").read_text())
    assert meta["k"] == 1 and "recx_version" in meta
    calls = []
    store.get_or_build(entry, lambda p: calls.append(p))
    assert calls == []  # a ready entry is never rebuilt


def test_partial_kept_for_resume(tmp_path):
    store = Store(tmp_path)
    entry = store.entry("artifacts", "m", "h1")
    with pytest.raises(KeyboardInterrupt), store.building(entry, keep_partial=True) as work:
        (work / "last.pt").write_text("epoch 3")
        raise KeyboardInterrupt
    assert (tmp_path / "artifacts" / "m" / "h1.partial" / "last.pt").exists()
    with store.building(entry) as work:
        assert (work / "last.pt").read_text() == "epoch 3"
    assert is_ready(entry)


def _build_slowly(root, out):
    store = Store(root)
    entry = store.entry("c", "same")

    def build(p):
        with open(out, "a") as f:
            f.write(f"{os.getpid()}\n")
        time.sleep(1.0)
        (p / "v").write_text("1")

    store.get_or_build(entry, build)
    assert (entry / "v").read_text() == "1"


def test_parallel_jobs_build_once(tmp_path):
    out = tmp_path / "builders.txt"
    procs = [mp.get_context("fork").Process(target=_build_slowly, args=(tmp_path, out))
             for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    assert len(out.read_text().split()) == 1  # one builder, two waiters


def test_stale_lock_of_dead_process_is_taken_over(tmp_path):
    store = Store(tmp_path)
    entry = store.entry("c", "e")
    entry.parent.mkdir(parents=True)
    import socket

    lock = entry.with_name("e.lock")
    lock.write_text(json.dumps({"pid": 2**22 + 12345, "host": socket.gethostname()}))
    store.get_or_build(entry, lambda p: (p / "v").write_text("1"))
    assert is_ready(entry)
