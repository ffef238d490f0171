"""One rich Console shared by log lines and progress bars, so they never tear."""

from __future__ import annotations

import importlib.util
import os
import sys
from contextlib import contextmanager

from rich.console import Console

# Redirected output (logs, CI) gets a wide console instead of rich's 80-column default; a
# terminal or a Jupyter notebook keeps its own width.
_JUPYTER = Console().is_jupyter
# rich draws live bars in a notebook through ipywidgets (the `notebook` extra)
_NOTEBOOK_BARS = _JUPYTER and importlib.util.find_spec("ipywidgets") is not None
_WIDTH = None if sys.stdout.isatty() or _JUPYTER else int(os.environ.get("COLUMNS", 160))
console = Console(stderr=False, highlight=False, soft_wrap=False, width=_WIDTH, emoji=False)
err_console = Console(stderr=True, highlight=False, width=_WIDTH, emoji=False)


def progress_enabled(setting: str | bool = "auto") -> bool:
    if isinstance(setting, bool):
        return setting
    if setting in ("true", "on", "always"):
        return True
    if setting in ("false", "off", "never"):
        return False
    # auto: a terminal or a notebook (rich renders live bars as notebook output), not batch jobs
    return (sys.stdout.isatty() or _NOTEBOOK_BARS) and not os.environ.get("SLURM_JOB_ID")


@contextmanager
def progress_bar(setting: str | bool = "auto"):
    """A rich Progress with rate and ETA, or None when bars are off (no TTY, no notebook)."""
    if not progress_enabled(setting):
        yield None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TextColumn("eta"),
                  TimeRemainingColumn(), console=console, transient=True) as p:
        orig_add = p.add_task

        def add_task(description, **kw):
            kw.setdefault("rate", "")
            return orig_add(description, **kw)

        p.add_task = add_task  # every task gets the `rate` field the columns expect
        yield p


def _make_handler_class():
    from rich.logging import RichHandler

    class RichConsoleHandler(RichHandler):
        """RichHandler bound to the shared console (referenced by conf/hydra/job_logging)."""

        def __init__(self, *args, **kwargs):
            kwargs.setdefault("console", console)
            kwargs.setdefault("show_path", False)
            kwargs.setdefault("markup", False)
            kwargs.setdefault("rich_tracebacks", False)
            super().__init__(*args, **kwargs)

    return RichConsoleHandler


RichConsoleHandler = _make_handler_class()
