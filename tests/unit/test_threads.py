"""CPU threads: the `threads` key, the busy-core reading of /proc/stat, and the warning for jobs
that oversubscribe the cores (two-thread torch beside another busy job runs many times slower)."""

from __future__ import annotations

import logging

import pytest
import torch

from recx.device import busy_cores, configure_threads, warn_if_oversubscribed
from recx.errors import ConfigError


@pytest.fixture
def restore_threads():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def test_threads_key(restore_threads):
    assert configure_threads(1) == 1 == torch.get_num_threads()
    assert configure_threads("auto") == 1  # auto leaves the setting alone
    for bad in ("zero", 0, -2):
        with pytest.raises(ConfigError, match="not a thread count"):
            configure_threads(bad)


def test_busy_cores_from_two_samples_of_proc_stat(tmp_path, monkeypatch):
    """cpuN  user nice system idle iowait …, only the cores this process may use (0 and 2):
    over the interval cpu0 spends 100 of 200 jiffies idle or in iowait, cpu2 none of 200,
    so 1.5 cores are busy; cpu1 (another process's core set) is left out."""
    stat = tmp_path / "stat"
    samples = iter([
        "cpu  300 0 300 2100 300 0 0\ncpu0 100 0 100 700 100 0 0\n"
        "cpu1 100 0 100 700 100 0 0\ncpu2 100 0 100 700 100 0 0\nintr 1 2 3\n",
        "cpu  700 0 700 2300 300 0 0\ncpu0 200 0 100 780 120 0 0\n"
        "cpu1 100 0 100 900 100 0 0\ncpu2 200 0 200 700 100 0 0\nintr 1 2 3\n"])

    def fake_sleep(_):
        stat.write_text(next(samples))

    stat.write_text(next(samples))
    monkeypatch.setattr("recx.device.time.sleep", fake_sleep)
    monkeypatch.setattr("recx.device.usable_cores_set", lambda: {0, 2})
    assert busy_cores(stat=str(stat)) == pytest.approx(1.5)
    assert busy_cores(stat=str(tmp_path / "missing")) is None


@pytest.mark.parametrize("threads, busy, cores, warned", [
    (2, 1.0, 2, True),    # two threads beside one busy core
    (2, 0.3, 2, False),   # an idle machine (small background noise)
    (1, 1.9, 2, False),   # one thread always fits beside another job
    (4, 3.0, 8, False),   # room to spare
    (2, None, 2, False),  # not measurable (not Linux)
])
def test_oversubscription_warning(caplog, threads, busy, cores, warned):
    with caplog.at_level(logging.WARNING, logger="recx.device"):
        assert warn_if_oversubscribed(threads, busy, cores) is warned
    assert ("threads=1" in caplog.text) is warned
