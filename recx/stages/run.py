"""recx run: the default experiment end to end (ARCHITECTURE §4.8).

The plan (`conf/experiment/run_*.yaml`) becomes an ordered list of steps: stage name +
overrides. Each step's config is composed with `hydra.compose` (same search path) and executed
in-process by the same stage function. Artifacts go to the store, so a second `recx run` is all
cache hits, and a run interrupted half-way resumes at the first unfinished step.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import pandas as pd
from omegaconf import OmegaConf

from recx.errors import ConfigError
from recx.eval.interpolation import ZERO_SHOT_GATED
from recx.models.registry import model_class
from recx.stages import StageResult, execute
from recx.store import atomic_write_json, atomic_write_text
from recx.tables import markdown

log = logging.getLogger(__name__)

# top-level override keys that every stage understands and that `run` forwards to its steps
FORWARDED = ("seed", "device", "deterministic", "offline", "progress", "train", "eval", "text",
             "paths", "source", "target", "store")


@dataclass(frozen=True)
class Step:
    stage: str
    model: str
    overrides: tuple[str, ...]

    @property
    def label(self) -> str:
        return f"{self.stage} {' '.join(self.overrides)}"


def forwarded_overrides() -> list[str]:
    try:
        from hydra.core.hydra_config import HydraConfig

        task = list(HydraConfig.get().overrides.task)
    except ValueError:
        return []
    out = []
    for o in task:
        key = o.lstrip("+~").split("=")[0]
        if key.split(".")[0] in FORWARDED and key not in ("source", "target"):
            out.append(o)
    return out


def plan_steps(cfg) -> list[Step]:
    plan = cfg.plan
    sources = sorted(cfg.source)
    target = str(cfg.target.name)
    common = [*plan.steps_overrides, *forwarded_overrides()]
    src = f"source=[{','.join(sources)}]"
    # `train` selects its dataset with dataset=: target.* overrides become dataset.* there
    as_dataset = [o.replace("target.", "dataset.", 1) if o.lstrip("+~").startswith("target.")
                  else o for o in common if not o.lstrip("+~").startswith("source.")]
    steps: list[Step] = []

    per_model = {str(k): [str(o) for o in v]
                 for k, v in (plan.get("model_overrides") or {}).items()}

    def add(stage, model, *over, base_model=None):
        base = as_dataset if stage == "train" else common
        extra = list(per_model.get(model, []))
        if base_model is not None:  # the base's own overrides, addressed to base.*
            extra += [o.replace("model.", "base.", 1) for o in per_model.get(base_model, [])]
        step = Step(stage, model, tuple([*over, *extra, *base]))
        if step not in steps:
            steps.append(step)

    for seed in plan.seeds:
        s = f"seed={seed}"
        for m in plan.zero_shot:
            if model_class(m).capabilities.trainable:
                add("pretrain", m, f"model={m}", src, s)
            add("transfer", m, f"model={m}", src, f"target={target}", s)
        for m in plan.get("zero_shot_gated") or []:  # the transferred model gated against Pop
            if not model_class(m).capabilities.trainable:
                raise ConfigError(f"plan.zero_shot_gated lists {m}, which has nothing to "
                                  "transfer", hint="list pre-trained models (preprec, statmlp, "
                                  "…); Pop is the floor they are blended with")
            add("pretrain", m, f"model={m}", src, s)
            add("interpolate", m, f"model={m}", "base=pop", "interpolate.select=gated", src,
                f"target={target}", s)
        for m in plan.in_domain:
            add("train", m, f"model={m}", f"dataset={target}", s)
        for m in plan.finetune:
            add("pretrain", m, f"model={m}", src, s)
            add("finetune", m, f"model={m}", src, f"target={target}", s)
        for pair in plan.interpolate:
            m, b = str(pair.model), str(pair.base)
            if model_class(m).capabilities.trainable:
                add("pretrain", m, f"model={m}", src, s)
            if model_class(b).capabilities.trainable:
                add("train", b, f"model={b}", f"dataset={target}", s)
            add("interpolate", m, f"model={m}", f"base={b}", src, f"target={target}", s,
                base_model=b)
    return steps


def run(ctx) -> StageResult:
    from hydra import compose
    from rich.markup import escape

    from recx.console import console

    cfg = ctx.cfg
    steps = plan_steps(cfg)
    if not steps:
        raise ConfigError("the plan has no steps",
                          hint="pick an experiment: experiment=run_default")
    rows: list[dict] = []
    t0 = time.time()
    for n, step in enumerate(steps, 1):
        console.rule(f"[bold]step {n}/{len(steps)}[/bold]: recx {escape(step.label)}")
        step_cfg = compose(config_name=step.stage, overrides=list(step.overrides))
        step_dir = ctx.run_dir / "steps" / f"{n:02d}_{step.stage}_{step.model}"
        step_dir.mkdir(parents=True, exist_ok=True)
        (step_dir / "config.yaml").write_text(OmegaConf.to_yaml(step_cfg))
        t = time.time()
        result = execute(step_cfg, step_dir)
        for r in result.rows:
            r["run_dir"] = str(step_dir)
        rows += result.rows
        log.info("step %d/%d done in %.1fs", n, len(steps), time.time() - t)
    table = results_table(rows)
    out = ctx.run_dir
    atomic_write_text(out / "results.md", markdown(table, list(table.columns)))
    atomic_write_text(out / "results.csv", table.to_csv(index=False))
    atomic_write_json(out / "results.json", table.astype(object).where(table.notna(), None)
                      .to_dict("records"))
    _alpha_figure(out, rows, str(cfg.eval.select_metric))
    log.info("recx run finished %d steps in %.1fs → %s", len(steps), time.time() - t0,
             out / "results.md")
    print_results(table, f"recx run ({cfg.experiment_name}): test metrics on target "
                  f"{cfg.target.name}, sources {'+'.join(sorted(cfg.source))}")
    return StageResult(rows, title="recx run", display=[])


def print_results(table: pd.DataFrame, title: str) -> None:
    from rich.table import Table

    from recx.console import console
    from recx.tables import SAMPLED_BANNER, fmt

    t = Table(title=title, title_justify="left")
    table = table.copy()
    if "protocol" in table and table["protocol"].nunique() > 1:  # show what differs
        table.insert(3, "mask", table["protocol"].str.extract(r"mask=([^/]+)")[0])
    cols = [c for c in table.columns if c != "protocol"]
    for c in cols:
        t.add_column(c, justify="right" if "@" in c or c in ("alpha*", "n_seeds") else "left")
    for _, r in table.iterrows():
        t.add_row(*[fmt(r[c]) for c in cols])
    console.print(t)
    protos = sorted(table["protocol"].astype(str).unique()) if "protocol" in table else []
    console.print("protocols: " + ", ".join(protos) + "  (mask=on: the user's history is "
                  "not a candidate, for every model; the domain's policy)")
    if any("sampled" in p for p in protos):
        console.print(f"[yellow]{SAMPLED_BANNER}[/yellow]")


def results_table(rows: list[dict]) -> pd.DataFrame:
    """One pivot: rows (setting, model, base), test metrics, α* for interpolation rows,
    mean over seeds; the target's candidate policy only (the other rule's rows stay in
    metrics.json). The gated zero-shot blend with Pop is a setting of its own
    (`zero_shot_gated`, base pop; α* = 0 where it fell back to Pop); other tagged runs get a
    `tag` column."""
    frame = pd.DataFrame([r for r in rows if r.get("split") == "test" and
                          r.get("slice", "all") == "all" and r.get("selected") is not False
                          and r.get("policy") is not False and r.get("status", "ok") == "ok"])
    if frame.empty:
        return frame
    metrics = [c for c in frame.columns if "@" in c]
    for col in ("base", "mode", "tag"):
        frame[col] = frame[col].fillna("") if col in frame else ""
    gated = frame["tag"] == ZERO_SHOT_GATED
    frame.loc[gated, "setting"] = ZERO_SHOT_GATED
    frame.loc[gated, "tag"] = ""
    keys = ["setting", "model", "mode", "base", "tag", "protocol"]
    agg = frame.groupby(keys, dropna=False).agg(
        {**{m: "mean" for m in metrics}, "alpha": "mean", "seed": "nunique"}).reset_index()
    agg = agg.rename(columns={"alpha": "alpha*", "seed": "n_seeds"})
    order = {"zero_shot": 0, ZERO_SHOT_GATED: 1, "in_domain": 2, "finetune": 3, "interpolate": 4}
    agg = agg.sort_values(by=["setting", "model"], key=lambda s: s.map(order)
                          if s.name == "setting" else s)
    cols = ["setting", "model", "mode", "base", "tag", *sorted(metrics, key=_metric_order),
            "alpha*", "n_seeds", "protocol"]
    for col in ("mode", "tag"):
        if not agg[col].astype(bool).any():
            cols.remove(col)
    return agg[cols]


def _metric_order(c: str):
    name, _, k = c.partition("@")
    return (int(k) if k.isdigit() else 0, ["Recall", "NDCG", "MRR"].index(name)
            if name in ("Recall", "NDCG", "MRR") else 9)


def _alpha_figure(out, rows, metric: str) -> None:
    from recx.plots import alpha_curves

    frame = pd.DataFrame([r for r in rows if r.get("setting") == "interpolate"
                          and r.get("slice") == "all" and r.get("policy") is not False])
    curves = []
    if frame.empty or metric not in frame:
        return
    frame["tag"] = frame["tag"].fillna("") if "tag" in frame else ""
    for (m, b, tag, seed), g in frame.groupby(["model", "base", "tag", "seed"]):
        v = g[g["split"] == "valid"].sort_values("alpha")
        t = g[g["split"] == "test"].sort_values("alpha")
        best = int(v["selected"].to_numpy().argmax())
        label = f"{m}+{b}" + (f" ({tag})" if tag else "") + f" s{seed}"
        curves.append({"label": label, "alphas": v["alpha"].tolist(),
                       "valid": v[metric].tolist(), "test": t[metric].tolist(), "best": best,
                       "metric": metric})
    alpha_curves(out / "alpha_curves", curves)
