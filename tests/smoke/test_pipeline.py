"""End-to-end smoke tests on the `tiny` domains (ARCHITECTURE §11)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from recx.stages import execute
from recx.tables import write_metrics
from tests.conftest import REPO, assert_valid_metrics, compose


def cli(tmp_path, *args, timeout=300):
    tmp_path.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "recx", *args, f"paths.root={tmp_path}"],
                          capture_output=True, text=True, cwd=tmp_path, env=env,
                          timeout=timeout)


def test_recx_run_tiny(tmp_path):
    out = cli(tmp_path, "run", "experiment=run_tiny")
    assert out.returncode == 0, out.stderr[-3000:]
    run_dir = next((tmp_path / "outputs" / "runs" / "run").glob("*/*"))
    rows = json.loads((run_dir / "metrics.json").read_text())["rows"]
    settings = {(r["setting"], r["model"]) for r in rows if r["split"] == "test"}
    assert {("zero_shot", "pop"), ("in_domain", "sasrec"), ("interpolate", "pop")} <= settings
    assert (run_dir / "results.md").exists() and (run_dir / "alpha_curves.png").exists()
    assert assert_valid_metrics(tmp_path / "outputs" / "runs") >= len(rows)
    assert "recx run (run_tiny)" in out.stdout
    # a second run is all cache hits: no training happens
    again = cli(tmp_path, "run", "experiment=run_tiny")
    assert again.returncode == 0 and " epoch 1:" not in again.stdout


def test_runs_started_together_keep_their_own_run_dirs(tmp_path, monkeypatch):
    """Two runs of the same run name in the same second: two run dirs, each with its own
    metrics under the `.hydra/` that made them."""
    from recx.config import resolvers

    monkeypatch.setattr(resolvers.time, "strftime", lambda fmt: "2026-01-01_00-00-00")
    a, b = resolvers.fresh_dir(str(tmp_path / "x")), resolvers.fresh_dir(str(tmp_path / "x"))
    assert (a, b) == (str(tmp_path / "x" / "2026-01-01_00-00-00"),
                      str(tmp_path / "x" / "2026-01-01_00-00-00_2"))
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, "-m", "recx", "train", "model=pop",
                               "dataset=tiny", f"eval={e}", f"paths.root={tmp_path}"],
                              cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
             for e in ("full", "sampled100")]
    assert all(p.wait(timeout=300) == 0 for p in procs), procs[0].stderr.read()[-2000:]
    dirs = sorted((tmp_path / "outputs" / "runs" / "train" / "pop__tiny__s0").iterdir())
    assert len(dirs) == 2
    for d in dirs:
        chosen = (d / ".hydra" / "overrides.yaml").read_text()
        protocols = {r["protocol"] for r in json.loads((d / "metrics.json").read_text())["rows"]}
        if "eval=full" in chosen:
            assert all("/full/" in p for p in protocols)
        else:
            assert protocols == {"loo/sampled:100:uniform/mask=n-a/ties=pessimistic"}


def stage(tmp_path, name, *over):
    fast = [] if name in ("preprocess", "report") else ["train=fast"]
    cfg = compose(name, [*over, *fast], root=tmp_path)
    run_dir = tmp_path / "runs" / f"{name}_{len(list((tmp_path).glob('runs/*')))}"
    result = execute(cfg, run_dir)
    if result.write:
        write_metrics(result.rows, run_dir, print_table=False)
    return result


def test_stages_chain_and_cache_hits(tmp_path):
    stage(tmp_path, "preprocess", "dataset=tiny")
    assert (tmp_path / "runs" / "preprocess_0" / "stats.json").exists()
    stage(tmp_path, "pretrain", "model=preprec", "source=tiny")
    ckpts = list((tmp_path / "outputs" / "artifacts" / "pretrain").rglob("model.pt"))
    assert len(ckpts) == 1
    mtime = ckpts[0].stat().st_mtime
    stage(tmp_path, "pretrain", "model=preprec", "source=tiny")  # cache hit
    assert ckpts[0].stat().st_mtime == mtime
    res = stage(tmp_path, "transfer", "model=preprec", "source=tiny", "target=tiny_b")
    assert {r["setting"] for r in res.rows} == {"zero_shot"}
    assert {r["source"] for r in res.rows} == {"tiny"}
    stage(tmp_path, "train", "model=sasrec", "dataset=tiny_b")
    res = stage(tmp_path, "interpolate", "model=preprec", "base=sasrec", "source=tiny",
                "target=tiny_b")
    sel = [r for r in res.rows if r["selected"] and r["split"] == "test"]
    assert [r["policy"] for r in sel] == [True, False]  # the other candidate set beside it
    assert all("gain_vs_base" in r for r in sel)
    assert (res.rows[0]["run_dir"] and Path(res.rows[0]["run_dir"], "alpha_curve.png").exists())
    cfg = compose("report", [f"report.inputs=[{tmp_path}/runs/**/metrics.json]"], root=tmp_path)
    rep = execute(cfg, tmp_path / "runs" / "report")
    assert any(r["model"] == "preprec" and r["setting"] == "interpolate" for r in rep.rows)
    assert (tmp_path / "outputs" / "tables" / "results" / "results.md").exists()


def test_statmlp_transfer_draws_source_and_target_features(tmp_path):
    import pandas as pd

    small = ["model=statmlp", "source=tiny", "model.features.node2vec.dim=8",
             "model.features.node2vec.walks_per_node=2", "model.features.node2vec.walk_length=10"]
    stage(tmp_path, "pretrain", *small)
    res = stage(tmp_path, "transfer", *small, "target=tiny_b")
    run_dir = Path(res.rows[0]["run_dir"])
    assert (run_dir / "features_activity.png").exists()
    assert (run_dir / "features_clusters.png").exists()
    act = pd.read_csv(run_dir / "features_activity.csv")
    shares = act[act.kind == "bin_share"].groupby(["domain", "side"]).y.sum()
    # both domains, users and items, each a distribution over the ten activity bins
    assert set(shares.index) == {(d, s) for d in ("tiny", "tiny_b") for s in ("users", "items")}
    assert shares.to_numpy() == pytest.approx(1.0)
    assert set(pd.read_csv(run_dir / "features_clusters.csv").domain) == {"tiny", "tiny_b"}
    res = stage(tmp_path, "transfer", *small, "target=tiny_b", "figures=false")
    assert not list(Path(res.rows[0]["run_dir"]).glob("features_*"))
    # the script draws the same without a checkpoint (features from the same cache)
    out = subprocess.run([sys.executable, str(REPO / "scripts" / "plot_statmlp_features.py"),
                          *small[1:], "target=tiny_b", f"paths.root={tmp_path}",
                          "--out", str(tmp_path / "fig")], capture_output=True, text=True,
                         cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert (tmp_path / "fig_activity.csv").read_text() == \
        (run_dir / "features_activity.csv").read_text()


def test_missing_checkpoint_names_the_command(tmp_path):
    from recx.errors import ArtifactMissingError

    cfg = compose("transfer", ["model=preprec", "source=tiny", "target=tiny_b", "seed=1"],
                  root=tmp_path)
    with pytest.raises(ArtifactMissingError) as e:
        execute(cfg, tmp_path / "run")
    assert "recx pretrain model=preprec 'source=[tiny]'" in str(e.value)


KILL_CMD = ["train", "model=sasrec", "dataset=tiny", "dataset.synthetic.n_users=300",
            "train.max_epochs=4", "model.optim.batch_size=8", "model.optim.patience=50",
            "seed=3", "progress=false"]


def test_sigkill_mid_epoch_resumes_to_identical_metrics(tmp_path):
    ref = cli(tmp_path / "ref", *KILL_CMD)
    assert ref.returncode == 0, ref.stderr[-2000:]
    fit = json.loads(next((tmp_path / "ref").rglob("fit.json")).read_text())
    epoch_s = min(h["seconds"] for h in fit["history"])
    root = tmp_path / "killed"
    root.mkdir()
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "recx", *KILL_CMD, f"paths.root={root}"],
                            cwd=root, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while time.time() < deadline and not list(root.rglob("*.partial/last.pt")):
        time.sleep(0.02)
    time.sleep(epoch_s / 2)  # into the second epoch
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert list(root.rglob("*.partial/last.pt")), "training finished before it was killed"
    assert not list(root.rglob("model.pt"))
    resumed = cli(root, *KILL_CMD)
    assert resumed.returncode == 0, resumed.stderr[-2000:]

    def test_rows(r):
        rows = json.loads(next(r.rglob("runs/**/metrics.json")).read_text())["rows"]
        return {(x["split"], k): v for x in rows for k, v in x.items() if "@" in k}

    assert test_rows(root) == test_rows(tmp_path / "ref")
