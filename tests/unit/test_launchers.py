"""The four launcher configs (ARCHITECTURE §9) compose without their plugins and carry every
parameter of the plugin's own config class (copied here from the plugins, versions 1.2.x)."""

from __future__ import annotations

import importlib.util
import warnings

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import get_class

from recx.config.aliases import register_aliases
from recx.config.resolvers import register_resolvers
from recx.config.schema import register_schemas
from tests.conftest import CONF

SUBMITIT_BASE = {"submitit_folder", "timeout_min", "cpus_per_task", "gpus_per_node",
                 "tasks_per_node", "mem_gb", "nodes", "name", "stderr_to_stdout", "_target_"}
EXPECTED = {
    "joblib": ("hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher",
               {"_target_", "n_jobs", "backend", "prefer", "require", "verbose", "timeout",
                "pre_dispatch", "batch_size", "temp_folder", "max_nbytes", "mmap_mode"}),
    "slurm_gpu": ("hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher",
                  SUBMITIT_BASE | {"partition", "qos", "comment", "constraint", "exclude", "gres",
                                   "cpus_per_gpu", "gpus_per_task", "mem_per_gpu", "mem_per_cpu",
                                   "account", "signal_delay_s", "max_num_timeout",
                                   "additional_parameters", "array_parallelism", "setup"}),
    "submitit_local": ("hydra_plugins.hydra_submitit_launcher.submitit_launcher.LocalLauncher",
                       SUBMITIT_BASE),
    "ray": ("hydra_plugins.hydra_ray_launcher.ray_launcher.RayLauncher", {"_target_", "ray"}),
}
PLUGIN = {"joblib": "hydra_plugins.hydra_joblib_launcher",
          "slurm_gpu": "hydra_plugins.hydra_submitit_launcher",
          "submitit_local": "hydra_plugins.hydra_submitit_launcher",
          "ray": "hydra_plugins.hydra_ray_launcher"}


def compose_hydra(overrides):
    register_resolvers()
    register_schemas()
    register_aliases([CONF])
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="train", overrides=overrides, return_hydra_config=True)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_launcher_config_is_self_contained(name):
    cfg = compose_hydra([f"hydra/launcher={name}", "model=pop", "dataset=tiny"])
    launcher = cfg.hydra.launcher
    target, keys = EXPECTED[name]
    assert launcher._target_ == target
    assert set(launcher.keys()) == keys
    if name == "slurm_gpu":
        assert launcher.gpus_per_node == 1 and launcher.tasks_per_node == 1
    if name == "ray":
        assert set(launcher.ray.keys()) == {"init", "remote"}
    if importlib.util.find_spec(PLUGIN[name]) is not None:  # the class the config names exists
        assert get_class(target).__name__ == target.rsplit(".", 1)[1]


def test_joblib_caps_inner_threads_through_loky():
    # loky (not multiprocessing) limits each worker's BLAS threads to cores / n_jobs
    assert compose_hydra(["hydra/launcher=joblib"]).hydra.launcher.backend == "loky"


def test_launcher_name_match_with_its_plugin_is_quiet():
    """The joblib config shares the plugin's schema name on purpose; Hydra's deprecation
    warning about that match is filtered, so users see no warning on `hydra/launcher=joblib`."""
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        cfg = compose_hydra(["hydra/launcher=joblib", "model=pop", "dataset=tiny"])
    assert cfg.hydra.launcher.n_jobs == -1
