"""The Python API (`recx.run`, `recx.compose`) and what makes recx usable from a notebook."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from omegaconf import DictConfig

import recx
from recx.errors import ArtifactMissingError, ConfigError
from tests.conftest import REPO

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_run_returns_the_rows_the_cli_writes(tmp_path):
    rows = recx.run("train", ["model=pop", "dataset=tiny", f"paths.root={tmp_path}"])
    assert isinstance(rows, pd.DataFrame)
    assert set(rows["split"]) == {"valid", "test"} and set(rows["model"]) == {"pop"}
    run_dir = Path(rows["run_dir"].iloc[0])
    assert run_dir.parent == tmp_path / "outputs" / "runs" / "train" / "pop__tiny__s0"
    written = json.loads((run_dir / "metrics.json").read_text())["rows"]
    assert list(rows.columns) == list(pd.DataFrame(written).columns)
    assert rows["NDCG@10"].tolist() == [r["NDCG@10"] for r in written]
    assert written[0]["overrides"] == ["model=pop", "dataset=tiny", f"paths.root={tmp_path}"]
    assert (run_dir / "config_tree.txt").exists() and (run_dir / "metrics.md").exists()
    assert "preprocessing tiny" in (run_dir / "train.log").read_text()
    # a second run claims a directory of its own
    again = recx.run("train", ["model=pop", "dataset=tiny", f"paths.root={tmp_path}"])
    assert again["run_dir"].iloc[0] != rows["run_dir"].iloc[0]
    assert again["NDCG@10"].tolist() == rows["NDCG@10"].tolist()


def test_compose_is_the_stage_config(tmp_path):
    cfg = recx.compose("transfer", ["model=preprec", "source=tiny", "target=tiny_b",
                                    f"paths.root={tmp_path}"])
    assert isinstance(cfg, DictConfig) and "hydra" not in cfg
    assert not (tmp_path / "outputs").exists()  # composing claims no run directory
    assert cfg.stage == "transfer" and cfg.model.name == "preprec"
    assert list(cfg.source) == ["tiny"] and cfg.target.name == "tiny_b"


def test_errors_raise_instead_of_exiting(tmp_path):
    with pytest.raises(ConfigError, match="did you mean 'train'"):
        recx.run("trian", ["model=pop"])
    with pytest.raises(ConfigError, match="did you mean 'sasrec'"):
        recx.compose("train", ["model=sasrc"])
    with pytest.raises(ConfigError, match=r"model\.hiden"):
        recx.compose("train", ["model.hiden=3"])
    with pytest.raises(ArtifactMissingError, match="recx pretrain model=preprec"):
        recx.run("transfer", ["model=preprec", "source=tiny", "target=tiny_b",
                              f"paths.root={tmp_path}"])
    with pytest.raises(ArtifactMissingError) as missing:
        recx.run("recommend", ["model=sasrec", "dataset=tiny", "model.hidden=32",
                               f"paths.root={tmp_path}"])
    assert missing.value.hint == (f"recx train model=sasrec dataset=tiny model.hidden=32 "
                                  f"paths.root={tmp_path}")
    from hydra.core.hydra_config import HydraConfig

    assert not HydraConfig.initialized()  # a failed run leaves no Hydra state behind


def test_import_is_light():
    code = ("import sys, recx; print(sorted(m for m in ('torch', 'hydra', 'pandas') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == "[]"
