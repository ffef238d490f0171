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
    """Cores this process may use that other processes keep busy: the non-idle share of each
    such core's time over `interval` while this process sleeps, summed. None where /proc/stat
    cannot be read (not Linux)."""
    mine = usable_cores_set()

    def sample() -> dict[int, tuple[float, float]]:
        out = {}
        with open(stat) as f:
            for line in f:
                name, *fields = line.split()
                if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in mine:
                    t = [float(x) for x in fields]
                    out[int(name[3:])] = (sum(t), t[3] + t[4])  # total, idle + iowait
        return out

    try:
        before = sample()
        time.sleep(interval)
        after = sample()
    except (OSError, ValueError, IndexError):
        return None
    busy = [1 - (after[c][1] - before[c][1]) / (after[c][0] - before[c][0])
            for c in before if c in after and after[c][0] > before[c][0]]
    return sum(busy) if busy else None


def usable_cores_set() -> set[int]:
    try:
        return set(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return set(range(os.cpu_count() or 1))


def usable_cores() -> int:
    return len(usable_cores_set())


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
