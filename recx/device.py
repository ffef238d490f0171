"""Device resolution (auto → cuda:<LOCAL_RANK> when CUDA is present, else cpu) and CPU threads."""

from __future__ import annotations

import functools
import logging
import os
import time

from recx.errors import ConfigError

log = logging.getLogger(__name__)


def resolve_device(setting: str = "auto"):
    import torch

    if setting == "auto":
        if torch.cuda.is_available():
            return torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}")
        return torch.device("cpu")
    if setting.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device={setting} but CUDA is not available",
                          hint="use device=auto or device=cpu, or install a CUDA build of torch")
    if setting == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("device=mps but MPS is not available", hint="use device=auto")
    try:
        return torch.device(setting)
    except RuntimeError:
        raise ConfigError(f"unknown device={setting!r}",
                          hint="use auto, cpu, cuda, cuda:N or mps") from None


def configure_threads(setting="auto") -> int:
    """Apply the `threads` key: auto keeps torch's default (every core it may use)."""
    import torch

    if str(setting) != "auto":
        try:
            n = int(setting)
        except ValueError:
            n = 0
        if n < 1:
            raise ConfigError(f"threads={setting!r} is not a thread count",
                              hint="use threads=auto or a whole number ≥ 1, e.g. threads=1")
        torch.set_num_threads(n)
    return torch.get_num_threads()


def busy_cores(interval: float = 0.25, stat: str = "/proc/stat") -> float | None:
    """Cores kept busy by other processes: the non-idle share of all CPU time over `interval`
    while this process sleeps. None where /proc/stat does not exist (not Linux)."""
    def sample():
        with open(stat) as f:
            fields = [float(x) for x in f.readline().split()[1:]]
        return sum(fields), fields[3] + fields[4]  # total, idle + iowait

    try:
        t0, i0 = sample()
        time.sleep(interval)
        t1, i1 = sample()
    except (OSError, ValueError, IndexError):
        return None
    if t1 <= t0:
        return None
    return usable_cores() * (1 - (i1 - i0) / (t1 - t0))


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def warn_if_oversubscribed(threads: int, busy: float | None, cores: int) -> bool:
    """Warn when this job's threads and the other jobs' busy cores exceed the machine: torch's
    threads then wait on each other (measured: a PrepRec epoch took 179 s on two threads beside
    a one-thread job on 2 cores, 18 s on one)."""
    if busy is None or threads < 2 or busy + threads <= cores + 0.5:
        return False
    log.warning("other processes keep %.1f of %d cores busy and torch will use %d threads: "
                "jobs side by side then run many times slower. Give each job threads=1 "
                "(or OMP_NUM_THREADS=1), or use hydra/launcher=joblib, which shares the cores "
                "out", busy, cores, threads)
    return True


@functools.cache
def check_cpu_share(threads: int) -> None:
    """Once per process and thread count (a sweep's jobs share the process): 0.25 s of sampling."""
    if threads >= 2:
        warn_if_oversubscribed(threads, busy_cores(), usable_cores())
