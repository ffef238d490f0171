"""Bad input gets one clear error naming the file and line or column, and nothing half-written
is left in the cache (the foundation issue's error list)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from recx.errors import CheckpointError, ConfigError, DataFormatError
from recx.stages import execute
from tests.conftest import REPO, compose

COLS = ["dataset=custom", "dataset.columns.user=uid", "dataset.columns.item=sku",
        "dataset.columns.timestamp=ts"]


def run_custom(tmp_path, csv_text: str, *extra):
    path = tmp_path / "clicks.csv"
    path.write_text(csv_text)
    cfg = compose("train", ["model=pop", *COLS, f"dataset.path={path}", *extra], root=tmp_path)
    return execute(cfg, tmp_path / "run"), path


def assert_cache_clean(tmp_path):
    cache = tmp_path / "outputs" / "cache"
    if cache.exists():
        for entry in cache.rglob("*"):
            assert not entry.name.endswith((".partial", ".lock")), entry
            if entry.is_dir() and entry.parent.parent.name == "data":
                assert (entry / "_SUCCESS").exists(), entry


GOOD = "uid,sku,ts\n" + "\n".join(f"u{u},s{(u + k) % 7},{100 * k + u}" for u in range(8)
                                  for k in range(6)) + "\n"


def test_good_file_works(tmp_path):
    result, _ = run_custom(tmp_path, GOOD, "dataset.filters.k_core.user=2",
                           "dataset.filters.k_core.item=2")
    assert {r["split"] for r in result.rows} == {"valid", "test"}


def test_malformed_row_names_file_and_line(tmp_path):
    bad = GOOD.replace("u3,s5,203\n", "u3,s5,203,extra\n")
    with pytest.raises(DataFormatError) as e:
        run_custom(tmp_path, bad)
    line = GOOD.splitlines().index("u3,s5,203") + 1
    assert "clicks.csv" in str(e.value) and f"line {line}" in str(e.value)
    assert_cache_clean(tmp_path)


def test_missing_column_lists_columns(tmp_path):
    with pytest.raises(DataFormatError) as e:
        run_custom(tmp_path, GOOD.replace("uid,", "user,", 1))
    msg = str(e.value)
    assert "'uid'" in msg and "clicks.csv" in msg and "dataset.columns.user" in msg
    assert_cache_clean(tmp_path)


def test_non_numeric_timestamp_names_line_and_column(tmp_path):
    with pytest.raises(DataFormatError) as e:
        run_custom(tmp_path, GOOD.replace("u2,s4,202", "u2,s4,yesterday"))
    msg = str(e.value)
    line = GOOD.splitlines().index("u2,s4,202") + 1
    assert "'yesterday'" in msg and f"line {line}" in msg and "column 'ts'" in msg
    assert_cache_clean(tmp_path)


def test_empty_file(tmp_path):
    with pytest.raises(DataFormatError, match=r"clicks\.csv: the file is empty"):
        run_custom(tmp_path, "")
    with pytest.raises(DataFormatError, match="no interactions"):
        run_custom(tmp_path, "uid,sku,ts\n")
    assert_cache_clean(tmp_path)


def test_empty_after_k_core(tmp_path):
    with pytest.raises(DataFormatError) as e:
        run_custom(tmp_path, "uid,sku,ts\nu1,s1,1\nu1,s2,2\nu2,s1,3\n")
    assert "k_core" in str(e.value) and "5/5-core" in str(e.value)
    assert_cache_clean(tmp_path)


def test_negative_batch_size(tmp_path):
    cfg = compose("train", ["model=sasrec", "dataset=tiny", "model.optim.batch_size=-4"],
                  root=tmp_path)
    with pytest.raises(ConfigError, match=r"model.optim.batch_size=-4 must be positive"):
        execute(cfg, tmp_path / "run")


def test_misspelt_model_key(tmp_path):
    cfg = compose("train", ["model=sasrec", "dataset=tiny", "+model.hiden=3"], root=tmp_path)
    with pytest.raises(ConfigError, match=r"model\.hiden is not a parameter of SASRec; valid:"):
        execute(cfg, tmp_path / "run")


def test_truncated_checkpoint(tmp_path):
    import torch

    from recx.train import checkpoint

    path = tmp_path / "model.pt"
    checkpoint.save(path, {"state_dict": {"w": torch.zeros(1000)}})
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(CheckpointError) as e:
        checkpoint.load(path)
    assert str(path) in str(e.value) and "truncated" in str(e.value)


def cli(tmp_path, *args):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "recx", *args, f"paths.root={tmp_path}"],
                          capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)


def test_cli_unknown_model_and_data_error_are_one_clear_message(tmp_path):
    out = cli(tmp_path, "train", "model=sasrek")
    assert out.returncode == 2
    assert "did you mean 'sasrec'" in out.stderr and "Traceback" not in out.stderr
    (tmp_path / "c.csv").write_text("uid,sku,ts\nu1,s1,1\nu1,s2,x\n")
    out = cli(tmp_path, "train", "model=pop", *COLS, f"dataset.path={tmp_path / 'c.csv'}")
    assert out.returncode == 3
    assert "c.csv" in out.stderr and "line 3" in out.stderr
    assert "Traceback" not in out.stderr + out.stdout


def test_missing_checkpoint_names_the_command_that_makes_it(tmp_path):
    """The fix quotes overrides with brackets ('source=[…]'): printed as written, not eaten as
    console markup."""
    out = cli(tmp_path, "transfer", "model=preprec", "source=tiny", "target=tiny_b")
    assert out.returncode != 0 and "Traceback" not in out.stderr
    text = " ".join(out.stderr.split())  # the panel wraps long lines
    assert "recx pretrain model=preprec 'source=[tiny]'" in text
