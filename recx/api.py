"""The Python API: `recx.run` and `recx.compose`, the CLI's stages in-process.

    import recx
    rows = recx.run("train", ["model=sasrec", "dataset=tiny", "train=fast"])
    cfg = recx.compose("transfer", ["model=preprec", "source=synth_a", "target=synth_t"])

The overrides are exactly the CLI's (`recx train model=sasrec dataset=tiny train=fast`), the run
writes the same run dir (metrics.{json,csv,md}, config_tree.txt, <stage>.log), and the rows come
back as a DataFrame with the columns of metrics.json. Errors are raised as `recx.errors.RecxError`
subclasses (a bad override is a `ConfigError`) instead of ending the process.
"""

from __future__ import annotations

import contextlib
import copy
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path

import pandas as pd
from omegaconf import DictConfig, OmegaConf, open_dict

from recx.errors import ConfigError


def compose(stage: str, overrides: Sequence[str] = ()) -> DictConfig:
    """The config that `recx <stage> <overrides…>` runs with (without Hydra's own node)."""
    with _hydra(stage, overrides) as full:
        return _task_config(full)


def run(stage: str, overrides: Sequence[str] = ()) -> pd.DataFrame:
    """Run one stage like `recx <stage> <overrides…>` and return its rows.

    The rows are the metrics rows the CLI writes to the run dir's metrics.json, one per split,
    slice, candidate set (and α for `interpolate`); `recommend` returns its recommendations
    (user, rank, item, score, …) and `preprocess` the data set's statistics as one row."""
    from hydra.core.hydra_config import HydraConfig

    from recx.stages import execute
    from recx.tables import write_metrics

    hydra_config = HydraConfig.instance()
    previous = hydra_config.cfg
    with _hydra(stage, overrides) as full:
        run_dir = Path(full.hydra.run.dir)  # resolving it claims a fresh directory
        with open_dict(full):
            full.hydra.runtime.output_dir = str(run_dir)
        cfg = _task_config(full)
        (run_dir / "config_tree.txt").write_text(OmegaConf.to_yaml(cfg, resolve=False))
        try:
            hydra_config.set_config(full)  # rows record the overrides as the CLI's do
            with _log_to(run_dir / f"{stage}.log"):
                result = execute(cfg, run_dir)
        finally:
            hydra_config.cfg = previous  # nothing of this run leaks into the next
        if result.write:
            write_metrics(result.rows, run_dir, title=result.title, display=result.display,
                          print_table=False)
    if result.table is not None:
        return result.table
    return pd.DataFrame(result.rows)


@contextlib.contextmanager
def _hydra(stage: str, overrides: Sequence[str]) -> Iterator[DictConfig]:
    """The composed config with its `hydra` node, inside an initialised Hydra (the `run` stage
    composes its steps there); Hydra's and OmegaConf's errors become a ConfigError."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from recx import cli

    if stage not in cli.STAGES:
        raise ConfigError(cli._suggest(stage, cli.STAGES, "stage"),
                          hint="recx.run(<stage>, [...]) with one of the stages listed")
    overrides = [str(o) for o in overrides]
    names = cli.register_configs([])
    problem = cli.unknown_group_value(overrides, names)
    if problem:
        raise ConfigError(problem, hint="pick one of the options listed")
    inside = GlobalHydra.instance().is_initialized()  # e.g. called from a running recx stage
    init = contextlib.nullcontext() if inside else initialize_config_dir(
        config_dir=str(cli.conf_dir()), version_base="1.3")
    with init:
        try:
            full = hydra_compose(config_name=stage, overrides=overrides,
                                 return_hydra_config=True)
        except (HydraException, OmegaConfBaseException) as e:
            raise ConfigError(f"recx {stage} {' '.join(overrides)}: {e}",
                              hint=f"check the overrides; `recx {stage} --help` lists the "
                              "config groups and keys") from None
        yield full


def _task_config(full: DictConfig) -> DictConfig:
    """What a stage receives: the composed config less Hydra's node (as Hydra's own run_job)."""
    from omegaconf import read_write

    cfg = copy.deepcopy(full)
    with read_write(cfg), open_dict(cfg):
        del cfg["hydra"]
    return cfg


@contextlib.contextmanager
def _log_to(path: Path) -> Iterator[None]:
    """The run's log lines into `<run dir>/<stage>.log` as the CLI writes them, and onto the
    shared rich console (a notebook's output) where the program has set up no logging."""
    from recx.console import RichConsoleHandler

    logger = logging.getLogger("recx")
    file = logging.FileHandler(path)
    file.setFormatter(logging.Formatter("[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"))
    handlers = [file] if logging.getLogger().handlers else [file, RichConsoleHandler()]
    level = logger.level
    for h in handlers:
        logger.addHandler(h)
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        for h in handlers:
            logger.removeHandler(h)
            h.close()
        logger.setLevel(level)
