"""Scale benchmark: preprocess → pretrain (PrepRec, SASRec) → transfer on 1M-item synthetic
domains, with time and peak memory per stage, at several interaction counts.

Each stage is one `recx` process, as a user would run it; its wall time, CPU time and peak RSS
come from wait4(). The source (synth_a's generator settings) and the target (synth_t's) both get
1M items and the requested number of interactions; the k-core filter is off so the catalogue
stays at 1M items. Training runs one epoch (train.max_epochs=1, which still validates once); the
reported valid/test metrics use full ranking over all 1M items of a seeded sample of
`--eval-users` users per split (`eval.sample_users`; 0 = every user: at 10M interactions that is
~0.5M users × 1M items per split, hours on 2 cores), which dominates the time of the evaluating
stages. SASRec at 1M items uses `model.optim.loss=bce_1neg` (full-softmax CE would
need batch × 1M logits) and 1024 windows per batch (fewer dense Adam steps over the 64M-float
item table); PrepRec keeps its recipe (bce_1neg is its default).

    python bench/bench_scale.py --events 1000000 10000000 --root <scratch folder>

Prints one Markdown table (stage × size) and writes it as JSON next to the outputs. The JSON
is also the resume point: a later call measures only the stages it lacks (or that failed), so
a long size can be measured over several sittings, e.g. `--only "pretrain preprec"`; a stage cut
off midway starts over (`train.resume=never`), so every recorded time is one whole stage.
`--redo` measures everything again.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ITEMS = 1_000_000
# (config name, seed offset, activity sigma as in conf/dataset/<name>.yaml)
SOURCE, TARGET = ("synth_a", 0.9), ("synth_t", 0.8)


def mean_activity(sigma: float, median: float = 12.0, lo: int = 5, hi: int = 200) -> float:
    """Mean events per user of the generator's clipped LogNormal activity."""
    rng = np.random.default_rng(0)
    acts = np.clip(np.rint(np.exp(np.log(median) + sigma * rng.standard_normal(1_000_000))),
                   lo, hi)
    return float(acts.mean())


def data_overrides(prefix: str, sigma: float, events: int) -> list[str]:
    users = round(events / mean_activity(sigma))
    return [f"{prefix}.synthetic.n_items={ITEMS}", f"{prefix}.synthetic.n_users={users}",
            f"{prefix}.filters.k_core.user=0", f"{prefix}.filters.k_core.item=0"]


def stages(events: int, eval_users: int = 0) -> list[tuple[str, list[str]]]:
    src, tgt = SOURCE[0], TARGET[0]
    src_pre = data_overrides("dataset", SOURCE[1], events)
    tgt_pre = data_overrides("dataset", TARGET[1], events)
    src_as = data_overrides(f"source.{src}", SOURCE[1], events)
    tgt_as = data_overrides("target", TARGET[1], events)
    one_epoch = ["train.max_epochs=1", *([f"eval.sample_users={eval_users}"] if eval_users
                                         else [])]
    return [
        ("preprocess source", ["preprocess", f"dataset={src}", "figures=false", *src_pre]),
        ("preprocess target", ["preprocess", f"dataset={tgt}", "figures=false", *tgt_pre]),
        ("pretrain preprec", ["pretrain", "model=preprec", f"source={src}", *one_epoch,
                              *src_as]),
        ("pretrain sasrec", ["pretrain", "model=sasrec", f"source={src}", *one_epoch,
                             "model.optim.loss=bce_1neg", "model.optim.batch_size=1024",
                             *src_as]),
        ("transfer preprec", ["transfer", "model=preprec", f"source={src}", f"target={tgt}",
                              *one_epoch, *src_as, *tgt_as]),
    ]


def run_stage(args: list[str], root: Path, log: Path) -> dict:
    """One recx process; wall, CPU and peak RSS of that process alone (wait4)."""
    cmd = [sys.executable, "-m", "recx", *args, f"paths.root={root}", "progress=false"]
    if args[0] != "preprocess":  # a stage cut off earlier must not resume from its last epoch
        cmd.append("train.resume=never")
    t0 = time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    code = os.waitstatus_to_exitcode(status)
    return {"command": " ".join(["recx", *args]), "exit": code, "wall_s": round(wall, 1),
            "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
            "peak_rss_gib": round(usage.ru_maxrss / 2**20, 2)}  # Linux: KiB


def fit_seconds(root: Path, model: str) -> float | None:
    paths = glob.glob(str(root / "outputs/artifacts/pretrain" / model / "*/*/fit.json"))
    return round(json.loads(Path(paths[0]).read_text())["seconds"], 1) if paths else None


def domain_stats(root: Path, name: str) -> dict:
    paths = glob.glob(str(root / "outputs/cache/data" / name / "*/domain.json"))
    return json.loads(Path(paths[0]).read_text()) if paths else {}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, nargs="+", default=[1_000_000, 10_000_000])
    ap.add_argument("--root", type=Path, default=Path("scale_outputs"))
    ap.add_argument("--only", nargs="*", default=None, help="run only these stages (names)")
    ap.add_argument("--eval-users", type=int, default=10_000,
                    help="users ranked per split (eval.sample_users); 0 = every user")
    ap.add_argument("--redo", action="store_true",
                    help="measure stages again that the results JSON already holds")
    args = ap.parse_args()

    store = args.root / "scale_results.json"
    # JSON keys are strings: the sizes measured earlier, merged with this call's
    results = {int(k): v for k, v in json.loads(store.read_text()).items()} \
        if store.exists() else {}

    def save(events: int, root: Path, rows: dict) -> None:
        """After every stage, so a cut-off call keeps what it measured."""
        results[events] = {"stages": rows, "source": domain_stats(root, SOURCE[0]),
                           "target": domain_stats(root, TARGET[0])}
        tmp = store.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(results, indent=1))
        tmp.replace(store)  # never a half-written resume point

    for events in args.events:
        root = (args.root / f"e{events}").resolve()
        root.mkdir(parents=True, exist_ok=True)
        rows = {} if args.redo else dict(results.get(events, {}).get("stages", {}))
        for name, stage_args in stages(events, args.eval_users):
            if args.only and name not in args.only:
                continue
            if rows.get(name, {}).get("exit") == 0:
                print(f"{events:,} interactions: {name} measured earlier: {rows[name]}")
                continue
            print(f"[{time.strftime('%H:%M:%S')}] {events:,} interactions: {name}", flush=True)
            rows[name] = run_stage(stage_args, root, root / f"{name.replace(' ', '_')}.log")
            if name.startswith("pretrain ") and rows[name]["exit"] == 0:
                rows[name]["train_s"] = fit_seconds(root, name.split()[1])
            print(f"    {rows[name]}", flush=True)
            save(events, root, rows)
            if rows[name]["exit"] != 0:
                break

    sizes = sorted(results)
    print(f"\n{ITEMS:,} items; wall s / CPU s / peak RSS GiB per stage (one process each)")
    for ev in sizes:
        s, t = results[ev]["source"], results[ev]["target"]
        print(f"- {ev:,} requested: source {s.get('n_users')} users × {s.get('n_items')} items,"
              f" target {t.get('n_users')} users × {t.get('n_items')} items")
    head = "| stage | " + " | ".join(f"{ev:,} interactions" for ev in sizes)
    if len(sizes) > 1:
        head += f" | growth {sizes[0]:,} → {sizes[-1]:,} (wall, RSS)"
    print(head + " |")
    print("|---" * (len(sizes) + 1 + (len(sizes) > 1)) + "|")
    names = list(dict.fromkeys(n for ev in sizes for n in results[ev]["stages"]))
    for name in names:
        cells = []
        for ev in sizes:
            r = results[ev]["stages"].get(name)
            cells.append("–" if r is None else
                         f"{r['wall_s']:.0f} s / {r['cpu_s']:.0f} s / {r['peak_rss_gib']:.2f} GiB"
                         + (f" (train {r['train_s']:.0f} s)" if r.get("train_s") else "")
                         + ("" if r["exit"] == 0 else f" exit {r['exit']}"))
        if len(sizes) > 1:
            a, b = results[sizes[0]]["stages"].get(name), results[sizes[-1]]["stages"].get(name)
            cells.append(f"×{b['wall_s'] / a['wall_s']:.1f}, "
                         f"×{b['peak_rss_gib'] / a['peak_rss_gib']:.1f}" if a and b else "–")
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
