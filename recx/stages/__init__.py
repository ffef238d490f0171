"""Stage registry and the wrapper every stage runs in (ARCHITECTURE §4).

`run_stage(cfg)` validates the config, seeds everything, runs the stage body, writes
metrics.{json,csv,md} into the run dir and prints a table; cleanup runs in `finally`, which
matters in multirun where launchers reuse processes.
"""

from __future__ import annotations

import gc
import importlib
import logging
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

STAGE_MODULES = {name: f"recx.stages.{name}" for name in (
    "preprocess", "train", "pretrain", "transfer", "finetune", "interpolate", "diagnose",
    "report", "run", "recommend")}


@dataclass
class StageResult:
    rows: list[dict] = field(default_factory=list)
    title: str = "metrics"
    write: bool = True  # preprocess writes stats.json instead of metrics
    optimized: float | None = None
    display: list[dict] | None = None  # rows for the printed table (default: all rows)
    table: object = None  # a stage's own output table (recommend's DataFrame), for recx.run


def stage_function(name: str):
    return importlib.import_module(STAGE_MODULES[name]).run


def execute(cfg, run_dir: Path, progress=None) -> StageResult:
    """Validate, seed and run one stage in-process (also used by `recx run` for its steps)."""
    import torch

    from recx.config.validate import validate
    from recx.device import check_cpu_share, configure_threads, resolve_device
    from recx.seed import seed_everything
    from recx.stages.common import Context

    validate(cfg)
    seed_everything(int(cfg.seed), bool(cfg.deterministic))
    torch.autograd.set_detect_anomaly(bool(cfg.get("anomaly_detection", False)))
    threads = configure_threads(cfg.get("threads", "auto"))
    device = resolve_device(str(cfg.device))
    if device.type == "cpu" and str(cfg.stage) not in ("preprocess", "diagnose", "report"):
        check_cpu_share(threads)  # stages whose work is torch's
    ctx = Context(cfg=cfg, run_dir=Path(run_dir), device=device, progress=progress)
    result = stage_function(str(cfg.stage))(ctx)
    check_evaluated(result.rows)
    return result


def check_evaluated(rows: list[dict]) -> None:
    """A run whose metrics rest on no user at all is an error, not a row of zeros."""
    from recx.errors import EvalError

    for r in rows:
        if r.get("status", "ok") == "ok" and r.get("slice", "all") == "all" and \
                r.get("n_users") == 0:
            raise EvalError(
                f"{r.get('split')} of {r.get('target')}: no user was evaluated (model "
                f"{r.get('model')}), so the metrics would mean nothing",
                hint="every evaluated user needs a history and a held-out event: keep users "
                "with at least 3 events (dataset.filters.k_core.user=3; target.… or "
                "source.<name>.… in transfer stages), and check eval.sample_users")


def _optimized(cfg, rows) -> float | None:
    want = cfg.get("optimized_metric")
    if not want or "/" not in str(want):
        return None
    split, metric = str(want).split("/", 1)
    for r in rows:
        if r.get("split") == split and r.get("slice", "all") == "all" and \
                r.get("selected") in (None, True) and metric in r:
            return float(r[metric])
    return None


def run_stage(cfg):
    """The body of the single @hydra.main: errors become a rich panel and an exit code."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    from omegaconf import OmegaConf

    from recx.console import console
    from recx.errors import RecxError
    from recx.tables import write_metrics

    hc = HydraConfig.get()
    run_dir = Path(hc.runtime.output_dir)
    multirun = hc.mode == RunMode.MULTIRUN
    (run_dir / "config_tree.txt").write_text(OmegaConf.to_yaml(cfg, resolve=False))
    if cfg.get("print_config"):
        console.print(OmegaConf.to_yaml(cfg, resolve=True))
    log.info("run dir: %s", run_dir)
    try:
        result = execute(cfg, run_dir)
        from recx.train.distributed import is_main

        if result.write and is_main():  # under torchrun only rank 0 writes
            write_metrics(result.rows, run_dir, title=result.title, display=result.display)
        return _optimized(cfg, result.rows)
    except (RecxError, Exception) as e:
        _report_failure(e, cfg, run_dir, multirun)
        if multirun:
            return None
        sys.exit(getattr(e, "exit_code", 1))
    except KeyboardInterrupt as e:  # Ctrl-C: one line, no traceback
        from recx.errors import Interrupted

        line = (e if isinstance(e, Interrupted) else Interrupted()).line
        (run_dir / "error.txt").write_text(line + "\n")
        from recx.console import err_console

        err_console.print(f"[bold red]recx {cfg.stage}:[/bold red] {line}", highlight=False)
        sys.exit(Interrupted.exit_code)
    finally:
        gc.collect()
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except ImportError:
            pass


def _report_failure(e: Exception, cfg, run_dir: Path, multirun: bool) -> None:
    import os

    from rich.markup import escape
    from rich.panel import Panel

    from recx.console import err_console
    from recx.errors import RecxError
    from recx.tables import write_metrics

    is_recx = isinstance(e, RecxError)
    detail = traceback.format_exc()
    (run_dir / "error.txt").write_text(detail)
    # messages quote overrides such as 'source=[a,b]': not rich markup
    if is_recx:
        body = escape(e.message) + (f"\n\n[bold]Fix:[/bold] {escape(e.hint)}" if e.hint else "")
        title = e.title
    else:
        body = escape(f"{type(e).__name__}: {e}")
        title = "unexpected error"
    body += f"\n\nrun dir: {escape(str(run_dir))}"
    if os.environ.get("RECX_TRACEBACK", os.environ.get("HYDRA_FULL_ERROR")) == "1" or \
            not is_recx:
        err_console.print(detail)
    err_console.print(Panel(body, title=escape(f"recx {cfg.stage}: {title}"), border_style="red",
                            expand=False))
    if multirun:
        write_metrics([{"status": "failed", "stage": str(cfg.stage),
                        "model": str(cfg.get("model", {}).get("name", "")) or None,
                        "setting": None, "split": None, "slice": None, "protocol": None,
                        "seed": int(cfg.seed), "error": f"{type(e).__name__}: {e}"}],
                      run_dir, print_table=False)
