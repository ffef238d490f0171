#!/usr/bin/env python
"""recx vs RecBole 1.2.1: SASRec on MovieLens-100K, same machine, data and protocol.

Runs both side by side and prints ratios (RecBole / recx):
- wall time to reach RecBole's best validation NDCG@10,
- time per training epoch (one epoch = every training target once in both),
- full-ranking test evaluation time,
- peak memory (RSS of each process),
and the test accuracy of both (recx over --seeds).

RecBole at full length takes hours on 2 CPU cores (≈ 240 s per epoch). By default it is run
for `--recbole-epochs` epochs to measure its epoch time, evaluation time and memory, and its
time to reach its own best validation NDCG@10 is projected as (epochs it needed in its reference
runs) × (measured seconds per epoch incl. validation). `--recbole-epochs 0` runs it to the end
instead and measures everything.

Usage (from the repository root; RecBole lives in its own virtual environment):
    python bench/recbole_parity/bench_recbole.py --data <folder with ml-100k.inter> \
        --peer <folder with rb_run.py, seq_ml100k.yaml, SASRec.yaml, results/> \
        --recbole-python <venv>/bin/python
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run_recbole(args, work: Path) -> dict:
    data = work / "rb_data" / "ml-100k"
    data.mkdir(parents=True)
    for f in ("ml-100k.inter", "ml-100k.item", "ml-100k.user"):
        src = Path(args.data) / f
        if src.exists():
            os.symlink(src.resolve(), data / f)
    out = work / "rb.json"
    peer = Path(args.peer)
    cmd = [args.recbole_python, str(peer / "rb_run.py"), "--model", args.model, "--config",
           str(peer / "seq_ml100k.yaml"), str(peer / f"{args.model}.yaml"), "--data-path",
           str(work / "rb_data"), "--out", str(out), "--seed", "2020"]
    if args.recbole_epochs:
        cmd += ["--epochs", str(args.recbole_epochs)]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads),
           "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"}
    t0 = time.time()
    subprocess.run(cmd, cwd=work, env=env, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    res = json.loads(out.read_text())
    res["wall_s"] = time.time() - t0
    return res


def reference_epochs_to_best(peer: Path, model: str) -> tuple[float, float]:
    """Epochs RecBole needed to reach its best validation NDCG@10 in its reference runs
    (epochs run − stopping patience), and that best value (mean over the runs)."""
    epochs, best = [], []
    for path in glob.glob(str(peer / "results" / "gpu_h100" / f"{model}_s*.json")):
        r = json.loads(Path(path).read_text())
        epochs.append(r["epochs_run"] - 10)
        best.append(r["best_valid_result"]["ndcg@10"])
    if not epochs:
        sys.exit(f"no reference results for {model} under {peer}/results/gpu_h100")
    return sum(epochs) / len(epochs), sum(best) / len(best)


def run_recx(args, work: Path, seed: int) -> dict:
    root = work / f"recx_s{seed}"
    cmd = ["recx", "train", f"model={args.model.lower()}", "dataset=ml_100k",
           f"dataset.raw_dir={Path(args.data).resolve()}", f"seed={seed}", f"paths.root={root}",
           "progress=false", *args.recx_overrides]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    t0 = time.time()
    subprocess.run(cmd, cwd=REPO, env=env, check=True, stdout=subprocess.DEVNULL)
    wall = time.time() - t0
    # max RSS over the children waited for so far: only recx runs (RecBole runs after them)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    fit = json.loads(next(root.glob("outputs/artifacts/train/*/ml_100k/*/fit.json")).read_text())
    metrics = json.loads(next(root.glob("outputs/runs/train/*/*/metrics.json")).read_text())
    test = next(r for r in metrics["rows"] if r["split"] == "test" and r["slice"] == "all")
    return {"wall_s": wall, "fit": fit, "test": test, "peak_rss_mb": peak / 1024,
            "root": root}


def recx_eval_time(root: Path, seed_model: str, repeats: int = 3) -> float:
    """Full-ranking test evaluation time of the trained recx model (warm, in-process)."""
    from omegaconf import OmegaConf

    from recx.config.schema import EvalSchema
    from recx.data.domain import DomainData
    from recx.eval.evaluator import Evaluator
    from recx.stages.common import load_model_file, score_fn

    d = DomainData.load(next(root.glob("outputs/cache/data/ml_100k/*")), "ml_100k")
    mcfg = OmegaConf.load(REPO / "conf" / "model" / f"{seed_model}.yaml")
    model, _ = load_model_file(next(root.glob("outputs/artifacts/train/*/ml_100k/*/model.pt")),
                               mcfg, "cpu")
    ev = Evaluator(d, OmegaConf.structured(EvalSchema), mask_history=False,
                   cache_root=root / "outputs" / "cache", max_len=model.max_len)
    ev.run(score_fn(model), "test")
    t0 = time.time()
    for _ in range(repeats):
        ev.run(score_fn(model), "test")
    return (time.time() - t0) / repeats


def time_to_target(history: list[dict], target: float) -> float | None:
    for row in history:
        if row.get("valid", -1) >= target:
            return row["elapsed"]
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True, help="folder holding ml-100k.inter/.item")
    ap.add_argument("--peer", required=True, help="folder holding rb_run.py and its configs")
    ap.add_argument("--recbole-python", required=True, help="python of the RecBole venv")
    ap.add_argument("--model", default="SASRec")
    ap.add_argument("--recbole-epochs", type=int, default=2, help="0 = run RecBole to the end")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "recbole_parity.json"))
    ap.add_argument("recx_overrides", nargs="*", help="extra recx overrides")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="recx_vs_recbole_"))
    try:
        runs = [run_recx(args, work, s) for s in args.seeds]
        rb = run_recbole(args, work)
        rb_epoch = rb["mean_epoch_train_s"]
        rb_epoch_valid = rb_epoch + rb["mean_valid_eval_s"]
        ref_epochs, ref_best = reference_epochs_to_best(Path(args.peer), args.model)
        if args.recbole_epochs == 0:
            target = rb["best_valid_result"]["ndcg@10"]
            rb_to_target = rb["t_import_s"] + rb["t_create_dataset_s"] + \
                rb["t_data_preparation_s"] + rb_epoch_valid * max(1, rb["epochs_run"] - 10)
            rb_note = "measured"
        else:
            target = ref_best
            rb_to_target = rb["t_import_s"] + rb["t_create_dataset_s"] + \
                rb["t_data_preparation_s"] + ref_epochs * rb_epoch_valid
            rb_note = f"projected: {ref_epochs:.0f} epochs × measured {rb_epoch_valid:.0f} s"
        ttt = [time_to_target(r["fit"]["history"], target) for r in runs]
        overhead = [r["wall_s"] - r["fit"]["seconds"] for r in runs]
        reached = [t + o for t, o in zip(ttt, overhead, strict=True) if t is not None]
        epoch_s = [sum(h["seconds"] for h in r["fit"]["history"]) / len(r["fit"]["history"])
                   for r in runs]
        eval_s = recx_eval_time(runs[0]["root"], args.model.lower())
        recx_peak = max(r["peak_rss_mb"] for r in runs)
        mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
        summary = {
            "recbole": {"s_per_epoch": rb_epoch, "s_per_epoch_with_valid": rb_epoch_valid,
                        "test_eval_s": rb["t_test_eval_s"], "peak_rss_mb": rb["ru_maxrss_mb"],
                        "time_to_target_s": rb_to_target, "time_to_target_note": rb_note,
                        "target_valid_ndcg10": target, "epochs_measured": rb["epochs_run"]},
            "recx": {"s_per_epoch": mean(epoch_s), "test_eval_s": eval_s,
                     "peak_rss_mb": recx_peak,
                     "time_to_target_s": mean(reached) if reached else None,
                     "seeds_reaching_target": f"{len(reached)}/{len(runs)}",
                     "test": {k: [r["test"][k] for r in runs] for k in
                              ("NDCG@10", "Recall@10", "NDCG@50", "Recall@50")},
                     "best_valid": [r["fit"]["best_score"] for r in runs],
                     "epochs": [len(r["fit"]["history"]) for r in runs]},
        }
        ratio = {
            "time_to_target": (rb_to_target / mean(reached)) if reached else None,
            "time_per_epoch": rb_epoch / mean(epoch_s),
            "full_ranking_eval": rb["t_test_eval_s"] / eval_s,
            "peak_memory": rb["ru_maxrss_mb"] / recx_peak,
        }
        summary["ratios_recbole_over_recx"] = ratio
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(summary, indent=1, default=str))
        print(json.dumps(summary, indent=1, default=str))
        print("\nRecBole / recx (higher = recx better):")
        for k, v in ratio.items():
            print(f"  {k:20s} {v:8.1f}×" if v else f"  {k:20s}   n/a")
    finally:
        if not os.environ.get("RECX_BENCH_KEEP"):
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
