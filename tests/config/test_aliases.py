"""`source=`, `target=` and `base=` alias the single dataset/model folders (ARCHITECTURE §5.3)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf
from omegaconf.errors import ConfigKeyError, ValidationError

from recx.config.aliases import option_names
from tests.conftest import CONF, REPO, compose

DATASETS = option_names([CONF], "dataset")
MODELS = option_names([CONF], "model")


@pytest.mark.parametrize("name", DATASETS)
def test_target_equals_dataset(name):
    as_target = compose("transfer", [f"target={name}"]).target
    as_dataset = compose("train", [f"dataset={name}"]).dataset
    assert OmegaConf.to_container(as_target) == OmegaConf.to_container(as_dataset)


def test_source_list_yields_named_keys():
    cfg = compose("pretrain", ["source=[synth_a,synth_b]"])
    assert sorted(cfg.source) == ["synth_a", "synth_b"]
    assert cfg.source.synth_b.name == "synth_b"
    single = compose("pretrain", ["source=synth_c"])
    assert list(single.source) == ["synth_c"]


def test_schema_typo_through_alias_raises():
    with pytest.raises((ConfigCompositionException, ConfigKeyError)):
        compose("transfer", ["target.filters.k_cor=3"])
    with pytest.raises((ConfigCompositionException, ValidationError)):
        compose("transfer", ["target.filters.k_core.user=five"])
    with pytest.raises((ConfigCompositionException, ValidationError)):
        compose("train", ["train.max_epochs=many"])
    nested = compose("transfer", ["target.filters.k_core.user=10",
                                  "source.synth_a.synthetic.n_users=500"])
    assert nested.target.filters.k_core.user == 10
    assert nested.source.synth_a.synthetic.n_users == 500


def test_private_dataset_in_config_dir(tmp_path):
    (tmp_path / "dataset").mkdir()
    (tmp_path / "dataset" / "mine.yaml").write_text(
        "defaults: [_schema, _self_]\nname: mine\nreader: csv\npath: x.csv\n")
    out = subprocess.run([sys.executable, "-m", "recx", "transfer", "target=mine",
                          "--config-dir", str(tmp_path), "--cfg", "job"],
                         capture_output=True, text=True, cwd=tmp_path, env=_env())
    assert out.returncode == 0, out.stderr
    assert "name: mine" in out.stdout


@pytest.mark.parametrize("name", MODELS)
def test_base_equals_model(name):
    a = compose("interpolate", [f"base={name}"]).base
    b = compose("train", [f"model={name}"]).model
    assert OmegaConf.to_container(a) == OmegaConf.to_container(b)


def test_defaults_list_with_source_list_composes():
    cfg = compose("run", ["experiment=run_default"])
    assert sorted(cfg.source) == ["synth_a", "synth_b", "synth_c"]
    assert cfg.target.name == "synth_t"


@pytest.mark.slow
def test_sweep_over_source_lists_launches_four_jobs(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "recx", "transfer", "-m", "model=pop",
         "source=[tiny],[tiny,tiny_b]", "target=tiny,tiny_b", f"paths.root={tmp_path}"],
        capture_output=True, text=True, cwd=tmp_path, env=_env())
    assert out.returncode == 0, out.stderr[-3000:]
    jobs = list((tmp_path / "outputs" / "multiruns").glob("transfer/*/*/metrics.json"))
    assert len(jobs) == 4


def _env():
    import os

    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def test_stage_help_lists_options_without_schema_nodes(tmp_path):
    out = subprocess.run([sys.executable, "-m", "recx", "transfer", "--help"],
                         capture_output=True, text=True, cwd=tmp_path, env=_env())
    assert out.returncode == 0, out.stderr[-3000:]
    listing = out.stdout.split("Config groups")[1].split("Composed config")[0]
    groups = dict(line.split(": ", 1) for line in listing.splitlines()[1:] if ": " in line)
    assert groups["eval"] == "full, preprec_paper, sampled100, sampled100_pop, unisrec_paper"
    assert groups["dataset"].startswith("amazon2014, ") and "yelp_a" in groups["target"]
    assert "_schema" not in out.stdout and "seed: 0" in out.stdout  # the composed config follows
