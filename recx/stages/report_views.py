"""`recx report report.view=…`: views that explain a transfer matrix rather than tabulate it
(docs/transferability.md). They read the same metrics rows as the table (report.inputs,
report.where, report.candidates) and the diagnostics.json files of report.diagnostics.inputs,
and write into outputs/tables/<report.name>/:

- `transferability`: each zero-shot cell's gain over Pop and over in-domain SASRec against each
  diagnostic — Spearman ρ with a bootstrap interval, the mean within-target ρ, one table to
  scan (transferability.md/.csv), the cells with their diagnostics (transferability_cells.*),
  a figure per model and protocol, and the gated zero-shot blend next to Pop and the
  transferred model alone (zero_shot_gated.*);
- `advisor`: the source advisor validated by leaving one target out (advisor.md/.csv,
  advisor_summary.csv), and the ranking of candidate pairs that have diagnostics but no
  transfer yet (`recx diagnose`; advisor_ranking.*).

The published result tables and the papers' claims (`transfer`, `text`, `claims`) are views too
(recx/stages/report_published.py); `VIEWS` below names them all.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import OmegaConf

from recx.errors import ConfigError
from recx.stages import StageResult
from recx.stages import report_published as published
from recx.store import atomic_write_text
from recx.tables import SAMPLED_BANNER, markdown

log = logging.getLogger(__name__)


def run_view(ctx, name: str) -> StageResult:
    if name not in VIEWS:
        raise ConfigError(f"report.view={name!r}",
                          hint=f"use null (the table) or one of {', '.join(VIEWS)}")
    return VIEWS[name](ctx)


def _load(ctx):
    """(cells, diagnostics frame, metrics, output dir) of the report's inputs."""
    from recx.diagnostics.explain import load_diagnostics, transfer_cells
    from recx.stages.report_rows import candidate_rows, collect, select

    rc = ctx.cfg.report
    where = OmegaConf.to_container(rc.where, resolve=True) or {}
    frame = candidate_rows(select(collect(rc.inputs), where), str(rc.candidates))
    diags = load_diagnostics(list(rc.diagnostics.inputs))
    metrics = [m for m in rc.metrics if m in frame]
    cells = transfer_cells(frame, diags, metrics)
    if cells.empty:
        raise ConfigError(
            f"report.view={rc.view}: no zero-shot transfer rows match report.inputs="
            f"{list(rc.inputs)} and report.where={where}",
            hint="run `recx transfer` (with Pop: `recx train model=pop dataset=<target>`) first")
    out = Path(ctx.cfg.paths.outputs) / "tables" / rc.name
    out.mkdir(parents=True, exist_ok=True)
    return cells, diags, metrics, out


def _fmt(v, digits: int = 3) -> str:
    return "" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{v:.{digits}f}"


def _pct(v) -> str:
    return "" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{100 * v:+.1f} %"


def _banner(protocol: str) -> str:
    return f"\n> {SAMPLED_BANNER}\n" if "sampled" in str(protocol) else ""


# ------------------------------------------------------------------------- transferability
def transferability(ctx) -> StageResult:
    from recx.diagnostics.explain import correlations, diagnostic_columns

    dc = ctx.cfg.report.diagnostics
    cells, _, metrics, out = _load(ctx)
    corr = correlations(cells, metrics, int(dc.resamples), float(dc.confidence), int(dc.seed))
    cells.to_csv(out / "transferability_cells.csv", index=False)
    corr.to_csv(out / "transferability.csv", index=False)
    conf = f"{100 * float(dc.confidence):g} %"
    md = [f"# When does transfer pay?\n\nZero-shot gain over Pop (counted on the target) and over "
          f"SASRec (trained on the target) against each diagnostic of the (source, target) "
          f"pair: Spearman ρ over the cells (one cell = model × source × target, seeds "
          f"averaged), its {conf} bootstrap interval over cells (cells that share a target are "
          f"not independent: read it as optimistic), and the mean ρ among the sources of one "
          f"target (targets with ≥ 3 sources). Strongest |ρ| first.\n"]
    cell_md = ["# Transfer cells and their diagnostics\n"]
    dcols = diagnostic_columns(cells)
    for (model, protocol), g in cells.groupby(["model", "protocol"]):
        c = corr[(corr["model"] == model) & (corr["protocol"] == protocol)] if len(corr) else corr
        md.append(f"## {model} · `{protocol}` ({len(g)} cells, {g['target'].nunique()} targets)"
                  + _banner(protocol))
        for metric in metrics:
            md.append(f"### gain in {metric}\n\n" + _corr_table(c[c["metric"] == metric]
                                                               if len(c) else c))
        top = _top(c, metrics[0], int(dc.top)) if len(c) else []
        if ctx.cfg.report.figures and top:
            scatter_grid(out / f"transferability_{_stem(model, protocol)}", g, top, c,
                         f"gain_pop:{metrics[0]}", f"{model} · {protocol}: zero-shot gain over "
                         f"Pop in {metrics[0]}")
        shown = [m for m in (top or dcols)[:6]]
        cell_md.append(f"## {model} · `{protocol}`{_banner(protocol)}\n\n" + _cells_table(
            g, metrics[0], shown))
    atomic_write_text(out / "transferability.md", "\n".join(md))
    atomic_write_text(out / "transferability_cells.md", "\n".join(cell_md))
    gated = _gated_tables(cells, metrics, out)
    from recx.console import console

    console.print("\n".join(md))
    if gated:
        console.print(gated)
    console.print(f"report view transferability: {len(cells)} cells → {out}")
    return StageResult([], title="transferability", write=False)


def _top(corr: pd.DataFrame, metric: str, n: int) -> list[str]:
    c = corr[(corr["metric"] == metric) & (corr["gain_over"] == "Pop")].dropna(subset=["rho"])
    return list(c["diagnostic"].head(n))


def _corr_table(c: pd.DataFrame) -> str:
    if c is None or c.empty:
        return "(fewer than 3 cells with this gain)\n"
    rows = []
    for d, g in c.groupby("diagnostic", sort=False):
        r = {"diagnostic": d}
        for over in ("Pop", "SASRec"):
            x = g[g["gain_over"] == over]
            if x.empty:
                r.update({f"ρ vs {over}": "", f"CI vs {over}": "", f"within vs {over}": ""})
                continue
            x = x.iloc[0]
            mark = "**" if x["significant"] else ""
            r[f"ρ vs {over}"] = f"{mark}{_fmt(x['rho'], 2)}{mark}"
            r[f"CI vs {over}"] = f"[{_fmt(x['ci_low'], 2)}, {_fmt(x['ci_high'], 2)}]"
            r[f"within vs {over}"] = (f"{_fmt(x['rho_within_target'], 2)} "
                                      f"({int(x['n_targets_within'])})"
                                      if x["n_targets_within"] else "")
        r["n"] = int(g["n_cells"].max())
        rows.append(r)
    frame = pd.DataFrame(rows)
    return markdown(frame, list(frame.columns)) + \
        "\n(bold: the interval excludes 0; within: mean ρ over (n) targets)\n"


def _cells_table(g: pd.DataFrame, metric: str, shown: list[str]) -> str:
    frame = pd.DataFrame({
        "source": g["source"], "target": g["target"], "seeds": g["n_seeds"],
        metric: g[metric].map(_fmt), "Pop": g[f"pop:{metric}"].map(_fmt),
        "vs Pop": g[f"gain_pop:{metric}"].map(_pct),
        "vs SASRec": g[f"gain_sasrec:{metric}"].map(_pct),
        **{d: g[d].map(lambda v: _fmt(v, 3)) for d in shown if d in g}})
    frame = frame.sort_values(["target", "source"])
    return markdown(frame, list(frame.columns)) + \
        "\n(all diagnostics: transferability_cells.csv)\n"


def _gated_tables(cells: pd.DataFrame, metrics: list[str], out: Path) -> str:
    """The gated zero-shot blend beside Pop and the transferred model alone, per cell."""
    if f"gated:{metrics[0]}" not in cells:
        return ""
    g = cells.dropna(subset=[f"gated:{metrics[0]}"])
    if g.empty:
        return ""
    g.to_csv(out / "zero_shot_gated.csv", index=False)
    md = ["# Zero-shot gated blend (Pop + transferred model, weight gated on validation)\n\n"
          "α* = 0: the gate kept Pop alone (the gain on validation was not significant); kept: "
          "the share of seeds whose α* > 0. Test metrics, seeds averaged.\n"]
    for (model, protocol), x in g.groupby(["model", "protocol"]):
        rows = []
        for _, r in x.sort_values(["target", "source"]).iterrows():
            row = {"target": r["target"], "source": r["source"],
                   "seeds": int(r["gated:n_seeds"])}
            for m in metrics:
                row[f"Pop {m}"] = _fmt(r[f"pop:{m}"], 4)
                row[f"zero-shot {m}"] = _fmt(r[m], 4)
                row[f"gated {m}"] = _fmt(r[f"gated:{m}"], 4)
                suffix = "" if m == metrics[0] else f" {m}"
                row[f"gated vs Pop{suffix}"] = _pct(r[f"gated:{m}"] / r[f"pop:{m}"] - 1)
                row[f"gated vs zero-shot{suffix}"] = _pct(r[f"gated:{m}"] / r[m] - 1)
            row["α* (mean)"] = _fmt(r["gated:alpha"], 2)
            row["kept"] = _fmt(r["gated:kept"], 2)
            rows.append(row)
        frame = pd.DataFrame(rows)
        diff = x[f"gated:{metrics[0]}"] - x[f"pop:{metrics[0]}"]
        above, below = int((diff > 1e-12).sum()), int((diff < -1e-12).sum())
        md.append(f"## {model} · `{protocol}`{_banner(protocol)}\n\n"
                  + markdown(frame, list(frame.columns))
                  + f"\nin {metrics[0]}: above Pop in {above}, equal in "
                  f"{len(x) - above - below}, below Pop in {below} of {len(x)} cells\n")
    text = "\n".join(md)
    atomic_write_text(out / "zero_shot_gated.md", text)
    return text


def _stem(*parts) -> str:
    text = "_".join(str(p) for p in parts)
    return "".join(ch if ch.isalnum() else "_" for ch in text).strip("_")[:80]


def scatter_grid(path: Path, cells: pd.DataFrame, diagnostics: list[str], corr: pd.DataFrame,
                 gain: str, title: str) -> None:
    """Gain against each diagnostic, one panel each, points coloured by target; ρ in titles."""
    from recx.plots import pyplot, save_figure

    plt = pyplot()
    n = len(diagnostics)
    cols = min(3, n)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 2.8 * rows), squeeze=False)
    targets = sorted(cells["target"].unique())
    tab10 = plt.get_cmap("tab10")
    colours = {t: tab10(k % 10) for k, t in enumerate(targets)}
    data = []
    for ax, d in zip(axes.flat, diagnostics, strict=False):
        for t in targets:
            g = cells[cells["target"] == t]
            ax.scatter(g[d], g[gain], s=18, color=colours[t], label=t)
            data += [{"diagnostic": d, "target": t, "source": s, "x": x, "gain": y}
                     for s, x, y in zip(g["source"], g[d], g[gain], strict=True)]
        ax.axhline(0, color="grey", lw=0.6)
        r = corr[(corr["diagnostic"] == d) & (corr["gain_over"] == "Pop")
                 & (corr["metric"] == gain.split(":", 1)[1])]
        label = d if r.empty else (f"{d}\nρ = {r['rho'].iloc[0]:.2f} "
                                   f"[{r['ci_low'].iloc[0]:.2f}, {r['ci_high'].iloc[0]:.2f}]")
        ax.set_title(label, fontsize=7)
        ax.tick_params(labelsize=6)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    axes.flat[0].set_ylabel("gain over Pop", fontsize=7)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=6, loc="upper center", ncol=min(len(targets), 4),
               bbox_to_anchor=(0.5, 0.0))
    fig.suptitle(title, fontsize=9)
    save_figure(fig, Path(path), pd.DataFrame(data))


# ---------------------------------------------------------------------------------- advisor
def advisor(ctx) -> StageResult:
    from recx.diagnostics.advisor import leave_one_target_out

    dc = ctx.cfg.report.diagnostics
    method, alpha = str(dc.advisor), float(dc.ridge_alpha)
    cells, diags, metrics, out = _load(ctx)
    md = [f"# Source advisor ({method}), validated leaving one target out\n\n"
          "For each target with ≥ 2 measured sources: the advisor is fitted on the other "
          "targets' cells and ranks this target's sources; hit = its top source is the "
          "measured best; ρ = Spearman of predicted and measured gain among the target's "
          "sources (two sources: +1 or −1); regret = best log gain − the chosen source's. "
          "Random: expectations of a uniformly drawn source.\n"]
    per, summ = [], []
    for (model, protocol), g in cells.groupby(["model", "protocol"]):
        for metric in metrics:
            table, s = leave_one_target_out(g, metric, method, alpha)
            if table.empty:
                continue
            table.insert(0, "metric", metric)
            table.insert(0, "protocol", protocol)
            table.insert(0, "model", model)
            per.append(table)
            summ.append({"model": model, "protocol": protocol, "metric": metric, **s})
            md.append(f"## {model} · `{protocol}` · gain in {metric}{_banner(protocol)}\n\n"
                      + _advisor_summary(s) + "\n" + markdown(
                          table.drop(columns=["model", "protocol", "metric"]).assign(
                              rho=table["rho"].map(lambda v: _fmt(v, 2)),
                              regret=table["regret"].map(lambda v: _fmt(v, 3)),
                              largest_rho=table["largest_rho"].map(lambda v: _fmt(v, 2)),
                              largest_regret=table["largest_regret"].map(lambda v: _fmt(v, 3)),
                              random_hit=table["random_hit"].map(lambda v: _fmt(v, 2)),
                              random_regret=table["random_regret"].map(lambda v: _fmt(v, 3))),
                          [c for c in table.columns if c not in ("model", "protocol",
                                                                  "metric")]))
    if per:
        pd.concat(per).to_csv(out / "advisor.csv", index=False)
        pd.DataFrame(summ).to_csv(out / "advisor_summary.csv", index=False)
    else:
        md.append("(no target with two measured sources and two other targets to learn from)\n")
    ranking = _candidates(cells, diags, metrics, method, alpha, out)
    if ranking:
        md.append(ranking)
    atomic_write_text(out / "advisor.md", "\n".join(md))
    from recx.console import console

    console.print("\n".join(md))
    console.print(f"report view advisor → {out}")
    return StageResult([], title="advisor", write=False)


def _advisor_summary(s: dict) -> str:
    n = s["targets"]
    frame = pd.DataFrame([
        {"choice": "advisor", "best-source hits": f"{s['hits']} / {n}",
         "mean ρ": _fmt(s["rho"], 2), "pooled ρ": _fmt(s["pooled_rho"], 2),
         "mean regret": _fmt(s["regret"], 3)},
        {"choice": "largest source", "best-source hits": f"{s['largest_hits']} / {n}",
         "mean ρ": _fmt(s["largest_rho"], 2), "pooled ρ": "", "mean regret":
         _fmt(s["largest_regret"], 3)},
        {"choice": "random source", "best-source hits": f"{s['random_hits']:.2f} / {n}",
         "mean ρ": "0.00", "pooled ρ": "", "mean regret": _fmt(s["random_regret"], 3)}])
    return markdown(frame, list(frame.columns))


def _candidates(cells, diags, metrics, method, alpha, out) -> str:
    """Rank the pairs that have diagnostics but no measured transfer yet."""
    from recx.diagnostics.advisor import rank_candidates
    from recx.diagnostics.explain import diagnostic_columns

    if diags.empty:
        return ""
    measured = set(map(tuple, cells[["model", "source", "target"]].to_numpy()))
    keys = ["model", "source", "target"]
    cand = diags[[tuple(k) not in measured for k in diags[keys].to_numpy()]]
    if cand.empty:
        return ""
    cand = cand.groupby(keys)[diagnostic_columns(cand)].mean().reset_index()
    parts, frames = ["# Candidate sources ranked (no transfer run yet)\n"], []
    for (model, protocol), g in cells.groupby(["model", "protocol"]):
        c = cand[cand["model"] == model]
        if c.empty:
            continue
        try:
            ranked = rank_candidates(g, c, metrics[0], method, alpha)
        except ConfigError as e:
            log.warning("advisor ranking of %s (%s) skipped: %s", model, protocol, e.message)
            continue
        ranked.insert(1, "protocol", protocol)
        frames.append(ranked)
        shown = ranked.drop(columns=["model", "protocol", "rule"]).assign(
            score=ranked["score"].map(lambda v: _fmt(v, 3)))
        if "predicted_gain" in shown:
            shown["predicted_gain"] = ranked["predicted_gain"].map(_pct)
        parts.append(f"## {model} · `{protocol}` · {metrics[0]} (fitted on {len(g)} cells; "
                     f"{ranked['rule'].iloc[0]})\n\n" + markdown(shown, list(shown.columns)))
    if not frames:
        return ""
    all_ranked = pd.concat(frames)
    all_ranked.to_csv(out / "advisor_ranking.csv", index=False)
    atomic_write_text(out / "advisor_ranking.md", "\n".join(parts))
    return "\n".join(parts)


# every view of `recx report report.view=<name>`: name → function(ctx) → StageResult
VIEWS = {"transferability": transferability, "advisor": advisor, **published.VIEWS}
