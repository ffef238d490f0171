"""Shared fixtures: every test writes under tmp_path (paths.root is overridden)."""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf"
METRICS_SCHEMA = REPO / "tests" / "fixtures" / "metrics.schema.json"
SHARED = Path(os.environ.get("RECX_SHARED", REPO.parent / "shared"))


@functools.cache
def _metrics_validator():
    import json

    import jsonschema

    return jsonschema.Draft202012Validator(json.loads(METRICS_SCHEMA.read_text()))


def assert_valid_rows(rows: list[dict], where: str = "rows") -> None:
    """Metrics rows validate against the schema of metrics.json (EVALUATION §6)."""
    errors = [f"{where}/{'/'.join(map(str, e.path))}: {e.message}"
              for e in _metrics_validator().iter_errors({"schema_version": 1, "rows": rows})]
    assert not errors, "\n".join(errors[:10])


def assert_valid_metrics(root: Path) -> int:
    """Every metrics.json below `root` validates; returns how many rows were checked."""
    import json

    n = 0
    for path in sorted(root.rglob("metrics.json")):
        data = json.loads(path.read_text())
        assert isinstance(data.get("schema_version"), int), f"{path}: no schema_version"
        assert_valid_rows(data["rows"], str(path.relative_to(root)))
        n += len(data["rows"])
    return n


def shared_dataset(name: str) -> Path:
    """A development copy under ../shared/datasets, or skip with a message."""
    path = SHARED / "datasets" / name
    if not path.is_dir():
        pytest.skip(f"../shared/datasets/{name} is not available on this machine")
    return path


def compose(config_name: str, overrides: list[str] | None = None, root: Path | None = None):
    """Compose a recx config like the CLI does (schemas, aliases, resolvers registered)."""
    from hydra import compose as hcompose
    from hydra import initialize_config_dir

    from recx.config.aliases import register_aliases
    from recx.config.resolvers import register_resolvers
    from recx.config.schema import register_schemas

    register_resolvers()
    register_schemas()
    register_aliases([CONF])
    over = list(overrides or [])
    if root is not None:
        over.append(f"paths.root={root}")
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return hcompose(config_name=config_name, overrides=over)


def make_model(name: str, n_items: int = 0, **overrides):
    """Model `name` built from its YAML (`conf/model/<name>.yaml`, the one home of its
    settings) with `overrides` merged in, nested mappings key by key."""
    from recx.models.registry import build_model, model_config

    return build_model(model_config(name, **overrides), n_items=n_items)


@pytest.fixture
def one_torch_thread():
    """Two torch threads on a shared 2-core machine oversubscribe it badly; one is faster.
    Modules that train use it with `pytestmark = pytest.mark.usefixtures("one_torch_thread")`."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def run_stage(tmp_path: Path, stage: str, *overrides: str):
    """Compose and execute one stage under tmp_path, each call in a fresh run directory."""
    from recx.stages import execute

    cfg = compose(stage, list(overrides), root=tmp_path)
    return execute(cfg, tmp_path / "runs" / f"{stage}_{len(list(tmp_path.glob('runs/*')))}")


@pytest.fixture
def make_csv(tmp_path):
    def _make(rows, name="inter.csv", header="user,item,ts"):
        path = tmp_path / name
        path.write_text(header + "\n" + "\n".join(",".join(map(str, r)) for r in rows) + "\n")
        return path

    return _make


def timeline_frame(events: dict[str, list[tuple[str, int]]]) -> pd.DataFrame:
    """{user: [(item, ts), ...]} → a raw interactions frame in the given order."""
    rows = [(u, i, t) for u, evs in events.items() for i, t in evs]
    return pd.DataFrame(rows, columns=["user", "item", "ts"]).astype({"ts": np.int64})


def random_domain(name: str, n_users: int, n_items: int, length: int, seed: int = 0):
    """A domain of `n_users` users with `length` uniformly drawn items each, at t = 0, 1, ...:
    no signal, for tests of the machinery (batching, devices, sampling), not of accuracy."""
    from recx.data.domain import domain_from_frame

    rng = np.random.default_rng(seed)
    events = {f"u{u}": [(f"i{int(rng.integers(0, n_items))}", t) for t in range(length)]
              for u in range(n_users)}
    return domain_from_frame(timeline_frame(events), name)
