"""Content-addressed cache and artifact store (ARCHITECTURE §7).

An entry is a directory named by a content hash. A producer takes `<entry>.lock`, builds into
`<entry>.partial/` (a stable name, so an interrupted training run can resume from it), then writes
`meta.json`, renames the directory into place and touches `_SUCCESS`. Readers trust only entries
with `_SUCCESS`, so nothing half-written is ever used. Concurrent jobs that need the same entry
wait for the first builder instead of duplicating or corrupting its work.

`meta.json` lists every file of the entry with its size. An entry whose file went missing or
changed size since (a truncated copy, a deleted `model.pt`) is damaged: it no longer counts as
ready, and the next job that needs it rebuilds it in place.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

SUCCESS = "_SUCCESS"
HEARTBEAT_S = 60.0
STALE_S = 600.0


META = "meta.json"
_TMP = re.compile(r"\.tmp\d*$")  # what atomic writers leave behind when killed mid-write


def is_ready(entry: Path) -> bool:
    """The entry is complete and none of its files went missing or changed size since."""
    return (Path(entry) / SUCCESS).exists() and entry_problem(entry) is None


def entry_problem(entry: Path) -> str | None:
    """Why a finished entry cannot be trusted (a file missing or of another size than when it
    was committed), or None. Entries written before the file list existed are trusted."""
    entry = Path(entry)
    try:
        files = json.loads((entry / META).read_text()).get("files")
    except FileNotFoundError:
        return f"{META} is missing"
    except (OSError, ValueError, AttributeError):
        return f"{META} is unreadable"
    for name, size in (files or {}).items():
        try:
            actual = (entry / name).stat().st_size
        except OSError:
            return f"{name} is missing"
        if actual != size:
            return f"{name} has {actual} bytes, {size} when it was written"
    return None


def _file_sizes(folder: Path) -> dict[str, int]:
    return {p.relative_to(folder).as_posix(): p.stat().st_size
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _drop_leftovers(folder: Path) -> None:
    """Remove the temporary files of writers that were killed mid-write."""
    for p in list(folder.rglob("*")):
        if p.is_file() and _TMP.search(p.name):
            p.unlink(missing_ok=True)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=1, sort_keys=False, default=str) + "\n")


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path next to `path`; move it into place only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def provenance(extra: dict | None = None) -> dict:
    """Facts that let a reader trace a number back to the code and machine that made it."""
    from recx.version import __version__

    info: dict[str, Any] = {
        "recx_version": __version__,
        "command": " ".join(sys.argv),
        "host": socket.gethostname(),
        "python": sys.version.split()[0],
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    info.update(git_state())
    for mod in ("torch", "numpy", "pandas", "gensim", "sentence_transformers", "hydra"):
        m = sys.modules.get(mod)
        if m is not None:
            info[f"{mod}_version"] = getattr(m, "__version__", None)
    if extra:
        info.update(extra)
    return info


_GIT: dict | None = None


def git_state() -> dict:
    global _GIT
    if _GIT is None:
        import subprocess

        here = Path(__file__).resolve().parent.parent
        try:
            sha = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True,
                                 text=True, timeout=5).stdout.strip() or None
            dirty = bool(subprocess.run(["git", "-C", str(here), "status", "--porcelain", "-uno"],
                                        capture_output=True, text=True, timeout=5).stdout.strip())
        except (OSError, subprocess.SubprocessError):
            sha, dirty = None, None
        _GIT = {"git_sha": sha, "git_dirty": dirty if sha else None}
    return _GIT


class _Lock:
    """An O_EXCL lock file with a heartbeat; a lock whose heartbeat stopped is taken over."""

    def __init__(self, path: Path, wait_timeout_s: float):
        self.path = path
        self.wait_timeout_s = wait_timeout_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _try_create(self) -> bool:
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as f:
            json.dump({"pid": os.getpid(), "host": socket.gethostname(), "start": time.time()}, f)
        return True

    def acquire(self, done: Callable[[], bool]) -> bool:
        """Take the lock, or wait for whoever holds it. Returns False if `done()` became true."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        t0 = time.time()
        announced = False
        while True:
            if done():
                return False
            if self._try_create():
                break
            try:
                age = time.time() - self.path.stat().st_mtime
            except FileNotFoundError:
                continue
            if age > STALE_S or self._holder_dead():
                log.warning("taking over stale lock %s (no heartbeat for %.0f s)", self.path, age)
                with contextlib.suppress(FileNotFoundError):
                    self.path.unlink()
                continue
            if not announced:
                log.info("waiting for another job building %s", self.path.with_suffix(""))
                announced = True
            if time.time() - t0 > self.wait_timeout_s:
                raise TimeoutError(f"gave up waiting for {self.path} after {self.wait_timeout_s}s")
            time.sleep(0.5)
        self._thread = threading.Thread(target=self._beat, daemon=True)
        self._thread.start()
        return True

    def _holder_dead(self) -> bool:
        """Same host and the holder's pid is gone: the lock is stale at once."""
        try:
            info = json.loads(self.path.read_text() or "{}")
        except (OSError, ValueError):
            return False
        if info.get("host") != socket.gethostname() or "pid" not in info:
            return False
        if info["pid"] == os.getpid():
            return True  # our own leftover (e.g. an earlier in-process attempt)
        try:
            os.kill(int(info["pid"]), 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            with contextlib.suppress(OSError):
                os.utime(self.path)

    def release(self) -> None:
        self._stop.set()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


class Store:
    """Cache entries under `root` (e.g. outputs/cache or outputs/artifacts)."""

    def __init__(self, root: str | Path, wait_timeout_s: float = 6 * 3600):
        self.root = Path(root)
        self.wait_timeout_s = wait_timeout_s

    def entry(self, *parts: str) -> Path:
        return self.root.joinpath(*parts)

    @staticmethod
    def partial_of(entry: Path) -> Path:
        return entry.with_name(entry.name + ".partial")

    @contextlib.contextmanager
    def building(self, entry: Path, meta: dict | None = None,
                 keep_partial: bool = True) -> Iterator[Path | None]:
        """Build `entry` atomically. Yields the partial dir, or None if the entry is ready.

        On an exception the partial dir stays (so training can resume from `last.pt`) unless
        `keep_partial` is false or nothing was written into it; it never looks complete because
        `_SUCCESS` is missing. A partial dir left by a killed job is started afresh (or, with
        `keep_partial`, kept without the temporary files of interrupted writes). A damaged
        entry (see `entry_problem`) is rebuilt and replaced.
        """
        entry = Path(entry)
        if (entry / SUCCESS).exists():
            problem = entry_problem(entry)
            if problem is None:
                yield None
                return
            log.warning("damaged cache entry %s (%s): rebuilding it", entry, problem)
        lock = _Lock(entry.with_name(entry.name + ".lock"), self.wait_timeout_s)
        if not lock.acquire(done=lambda: is_ready(entry)):
            yield None
            return
        partial = self.partial_of(entry)
        t0 = time.time()
        try:
            if partial.exists():
                if keep_partial:
                    _drop_leftovers(partial)
                else:
                    shutil.rmtree(partial)
            partial.mkdir(parents=True, exist_ok=True)
            try:
                yield partial
            except BaseException:
                if partial.exists():
                    _drop_leftovers(partial)
                    if not keep_partial or not any(partial.iterdir()):
                        shutil.rmtree(partial, ignore_errors=True)
                raise
            _drop_leftovers(partial)
            info = provenance(meta or {})
            info["build_seconds"] = round(time.time() - t0, 3)
            info["files"] = _file_sizes(partial)
            atomic_write_json(partial / META, info)
            if entry.exists():  # an earlier copy without _SUCCESS, or a damaged one
                shutil.rmtree(entry)
            os.replace(partial, entry)
            (entry / SUCCESS).touch()
        finally:
            lock.release()

    def get_or_build(self, entry: Path, build: Callable[[Path], None],
                     meta: dict | None = None, keep_partial: bool = False) -> Path:
        with self.building(entry, meta, keep_partial=keep_partial) as partial:
            if partial is not None:
                build(partial)
        return entry
