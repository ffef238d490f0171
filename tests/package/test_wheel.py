"""The built wheel, installed into a fresh virtual environment, is a working recx (slow).

The wheel is built from a copy of the files a build reads (no editable install, no access to
the checkout's conf/), installed with `pip install torch==2.13.0 <wheel>` (the other
dependencies come from the package index), and run from an unrelated folder.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
BUILD_INPUTS = ("recx", "conf", "setup.py", "pyproject.toml", "README.md", "LICENSE")


def sh(args, cwd: Path, env: dict | None = None, timeout: int = 1500) -> str:
    proc = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)
    assert proc.returncode == 0, f"{args}\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return proc.stdout


def test_wheel_in_a_fresh_venv_knows_every_config(tmp_path):
    src = tmp_path / "src"
    for name in BUILD_INPUTS:
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns(
                "__pycache__", "local"))
        else:
            shutil.copy2(path, src / name)
    sh([sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", tmp_path / "dist", src],
       tmp_path)
    wheel = next((tmp_path / "dist").glob("recx-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    shipped = sorted(n.removeprefix("recx/_conf/") for n in names if n.endswith(".yaml"))
    in_repo = sorted(str(p.relative_to(REPO / "conf")) for p in (REPO / "conf").rglob("*.yaml")
                     if "local" not in p.relative_to(REPO / "conf").parts)
    assert shipped == in_repo and "recx/data/synthetic_vocab.json" in names
    assert any(n.endswith("LICENSE") for n in names)

    venv = tmp_path / "venv"
    sh([sys.executable, "-m", "venv", venv], tmp_path)
    bin_dir = venv / "bin"
    sh([bin_dir / "python", "-m", "pip", "install", "torch==2.13.0", wheel], tmp_path)

    elsewhere = tmp_path / "elsewhere"  # no conf/, no recx checkout above it
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "RECX_CONF_DIR", "RECX_ROOT", "VIRTUAL_ENV")}
    env.update(PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}", OMP_NUM_THREADS="1")
    where = sh([bin_dir / "python", "-c", "import recx, recx.cli; print(recx.__file__); "
                "print(recx.cli.conf_dir())"], elsewhere, env).split()
    assert str(venv) in where[0] and where[1].endswith(os.path.join("recx", "_conf"))
    overview = sh([bin_dir / "recx", "--help"], elsewhere, env)
    assert "sasrec" in overview and "synth_t" in overview
    sh([bin_dir / "recx", "train", "model=pop", "dataset=tiny", "progress=false"], elsewhere,
       env)
    found = list((elsewhere / "outputs" / "runs" / "train").rglob("metrics.json"))
    assert len(found) == 1
    rows = json.loads(found[0].read_text())["rows"]
    assert {r["model"] for r in rows} == {"pop"} and {r["split"] for r in rows} == {
        "valid", "test"}
    assert all(r["status"] == "ok" and 0 <= r["NDCG@10"] <= 1 for r in rows)
