"""recx report: aggregate metrics.json files of runs and multiruns (ARCHITECTURE §4.7).

Rows are filtered by `report.where`, de-duplicated (the newest run per identity and seed),
aggregated as mean ± sample std over seeds with n, and pivoted by `report.rows` × `report.cols`.
An identity field that varies among the selected rows but is in neither (the source, the
fine-tuning mode, the cold-setting user fraction, a run's `tag`, …) is added to the rows, so a
cell never averages two different experiments as if they were seeds; and a cell pools only runs
whose configs are equal apart from the seed (`experiment_hash`): otherwise a `config` column
names the keys that differ and keeps them apart.
Rows of different protocols never share a column: the protocol is part of the column key.
`report.candidates` picks the candidate sets: the target's policy (the default), the other rule's
rows (`other`), or both (the protocol's `mask=` keeps them in columns of their own).
`report.layout=matrix` draws one source × target table per (model, setting, …, protocol) with a
heatmap and a bar chart with seed error bars.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import OmegaConf

from recx.errors import ConfigError
from recx.stages import StageResult
from recx.stages.report_rows import (
    ABSENT,
    SPLIT_FIELDS,
    aggregate,
    candidate_rows,
    cell,
    collect,
    select,
    split_experiments,
)
from recx.store import atomic_write_json, atomic_write_text
from recx.tables import SAMPLED_BANNER, markdown

log = logging.getLogger(__name__)

# what one source × target matrix holds fixed
MATRIX_GROUP = ["model", "mode", "setting", "base", "user_fraction", "tag", "paper_compat", "split",
                "slice", "protocol", "config"]


def pivot(agg: pd.DataFrame, rows: list[str], cols: list[str], metric: str):
    """(cells 'mean ± std (n)', means) pivoted by rows × (cols + protocol)."""
    rows = [r for r in rows if r in agg]
    col_keys = [c for c in cols if c in agg] + ["protocol"]
    agg = agg.copy()
    agg["_col"] = agg[col_keys].astype(str).agg(" · ".join, axis=1) if col_keys else metric
    agg["_cell"] = [cell(m, s, n) for m, s, n in zip(agg[metric], agg.get(
        f"{metric}_std", pd.Series([np.nan] * len(agg))), agg["n_seeds"], strict=True)]
    table = agg.pivot_table(index=rows, columns="_col", values="_cell", aggfunc="first")
    means = agg.pivot_table(index=rows, columns="_col", values=metric, aggfunc="first")
    table.columns.name = None
    return table.reset_index(), means.reset_index()


def run(ctx) -> StageResult:
    cfg = ctx.cfg
    rc = cfg.report
    if rc.get("view"):  # a view that explains the matrix (recx/stages/report_views.py)
        from recx.stages.report_views import run_view

        return run_view(ctx, str(rc.view))
    where = OmegaConf.to_container(rc.where, resolve=True) or {}
    frame = candidate_rows(select(collect(rc.inputs), where),
                           str(rc.get("candidates", "policy")))
    if frame.empty:
        raise ConfigError(f"no metrics rows match report.inputs={list(rc.inputs)} and "
                          f"report.where={where}",
                          hint="run some stages first, or change report.inputs / report.where")
    metrics = [m for m in rc.metrics if m in frame]
    rows, keys = _row_keys(rc, frame)
    agg = aggregate(frame, keys, metrics)
    out_dir = Path(cfg.paths.outputs) / "tables" / rc.name
    out_dir.mkdir(parents=True, exist_ok=True)
    md_parts = []
    if any("sampled" in str(p) for p in agg.get("protocol", [])):
        md_parts.append(f"> {SAMPLED_BANNER}\n")
    cols = [] if rc.allow_mixed_protocols else list(rc.cols)
    for m in metrics:
        if rc.layout == "matrix":
            md_parts += _matrix_tables(agg, m, out_dir, rc.figures)
            continue
        table, means = pivot(agg, rows, cols, m)
        md_parts.append(f"### {m} (mean ± std over seeds)\n\n" + _md_bold(table, means, rows))
    atomic_write_text(out_dir / "results.md", "\n".join(md_parts))
    atomic_write_text(out_dir / "results.csv", agg.to_csv(index=False))
    atomic_write_json(out_dir / "results.json", agg.replace({np.nan: None}).to_dict("records"))
    if rc.figures and rc.layout != "matrix":
        from recx.plots import bars

        for m in metrics:
            bars(out_dir / f"bars_{m.replace('@', '_at_')}", agg, rows, cols, m)
    from recx.console import console

    console.print(f"report {rc.name}: {len(frame)} rows from "
                  f"{frame['_file'].nunique()} files → {out_dir}")
    console.print("\n".join(md_parts))
    rows = []
    for r in agg.replace({np.nan: None}).to_dict("records"):
        rows.append({"status": "ok", "stage": "report", "split": where.get("split"),
                     "slice": "all", **{k: (None if v == ABSENT else v) for k, v in r.items()}})
    return StageResult(rows, title=f"report {rc.name}", write=True, display=[])


def _row_keys(rc, frame: pd.DataFrame) -> tuple[list[str], list[str]]:
    """(the table's row fields, the fields a cell is aggregated over): `report.rows` and
    `report.cols` with the protocol, plus every identity field that varies among the rows, and
    `config` where runs of one cell differ in more than the seed."""
    if rc.layout not in ("table", "matrix"):
        raise ConfigError(f"report.layout={rc.layout!r}", hint="use table or matrix")
    keys = list(dict.fromkeys([*rc.rows, *rc.cols, "protocol"]))
    if rc.layout == "matrix":
        # one table per (model, mode, setting, base, split, slice, protocol): a matrix cell never
        # averages rows of two protocols, whatever allow_mixed_protocols says
        keys = list(dict.fromkeys([*MATRIX_GROUP, "source", "target"]))
        if rc.allow_mixed_protocols:
            log.warning("report.allow_mixed_protocols is ignored by layout=matrix")
    elif rc.allow_mixed_protocols:
        keys.remove("protocol")
    rows = list(rc.rows)
    if rc.layout == "table":
        varying = [k for k in SPLIT_FIELDS if k in frame and k not in keys
                   and frame[k].nunique(dropna=False) > 1]
        if varying:
            log.info("report %s: rows also split by %s (they vary among the rows)", rc.name,
                     ", ".join(varying))
            rows += varying
            keys = list(dict.fromkeys([*rows, *rc.cols, "protocol"]))
            if rc.allow_mixed_protocols:
                keys.remove("protocol")
    if split_experiments(frame, [k for k in keys if k != "config"]):
        rows.append("config")
        keys = list(dict.fromkeys([*keys, "config"]))
    return rows, keys


def _md_bold(table: pd.DataFrame, means: pd.DataFrame, rows: list[str]) -> str:
    """Markdown with the best mean per metric column in bold (only the Markdown output bolds)."""
    cols = list(table.columns)
    lines = ["| " + " | ".join(map(str, cols)) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    best = {c: means[c].max() for c in means.columns if c in table.columns and c not in rows
            and pd.api.types.is_numeric_dtype(means[c])}
    for i in range(len(table)):
        cells = []
        for c in cols:
            v = table.iloc[i][c]
            s = "" if (v is None or (isinstance(v, float) and np.isnan(v))) else str(v)
            if c in best and means.iloc[i][c] == best[c] and s:
                s = f"**{s}**"
            cells.append(s)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _matrix_tables(agg: pd.DataFrame, metric: str, out_dir: Path, figures: bool) -> list[str]:
    """One source × target table per (model, mode, setting, base, split, slice, protocol), cells
    "mean ± std (n)" over seeds; with figures, a heatmap of the means (annotated with the std)
    and a bar chart per target with one bar per source and the seed std as error bar."""
    parts = []
    group_keys = [k for k in MATRIX_GROUP if k in agg]
    for key, g in agg.groupby(group_keys, dropna=False, sort=True):
        fixed = dict(zip(group_keys, key if isinstance(key, tuple) else (key,), strict=True))
        label = " · ".join(_label(k, v) for k, v in fixed.items()
                           if k != "protocol" and v not in (ABSENT, None, "all")
                           and not (k == "user_fraction" and float(v) == 1.0))
        g = g.copy()
        in_domain = g["source"].isin([ABSENT]) if "source" in g else pd.Series(True, index=g.index)
        g["source"] = g["source"].where(~in_domain, "(trained on target)") if "source" in g \
            else "(trained on target)"
        std_col = f"{metric}_std"
        if std_col not in g:
            g[std_col] = np.nan
        mean = g.pivot_table(index="source", columns="target", values=metric, aggfunc="first",
                             dropna=False)
        std = g.pivot_table(index="source", columns="target", values=std_col, aggfunc="first",
                            dropna=False).reindex_like(mean)
        cells = g.assign(_c=[cell(m, s_, n) for m, s_, n in zip(
            g[metric], g[std_col], g["n_seeds"], strict=True)]).pivot_table(
            index="source", columns="target", values="_c", aggfunc="first").reindex_like(mean)
        cells.columns.name = None
        protocol = fixed.get("protocol", "")
        parts.append(f"### {metric}: {label}\n\nprotocol `{protocol}`; rows: source, columns: "
                     "target; mean ± std over seeds (n)\n\n" + markdown(
                         cells.reset_index().fillna(""), ["source", *map(str, cells.columns)]))
        if figures:
            stem = _figure_stem(metric, fixed)
            title = f"{metric} — {label}\n{protocol}"
            matrix_heatmap(out_dir / f"matrix_{stem}", mean, std, title)
            matrix_bars(out_dir / f"bars_{stem}", mean, std, metric, title)
    return parts


def _label(key: str, value) -> str:
    return f"{float(value):g} of the users" if key == "user_fraction" else str(value)


def _figure_stem(metric: str, fixed: dict) -> str:
    """A readable, unique file stem for one matrix (a hash keeps long labels distinct)."""
    from recx.config.hashing import stable_hash

    text = "_".join(str(v) for k, v in [("metric", metric), *fixed.items()]
                    if v not in (ABSENT, None) and not (k == "user_fraction" and float(v) == 1.0))
    safe = "".join(ch if ch.isalnum() else "_" for ch in text)[:80].strip("_")
    return f"{safe}_{stable_hash(metric, fixed)[:6]}"


def matrix_heatmap(path: Path, mean: pd.DataFrame, std: pd.DataFrame, title: str) -> None:
    """Heatmap of a source × target matrix; each cell shows mean ± std."""
    from recx.plots import pyplot, save_figure

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(1.6 + 1.3 * mean.shape[1], 1.4 + 0.7 * mean.shape[0]))
    im = ax.imshow(mean.to_numpy(dtype=float), cmap="viridis", aspect="auto")
    ax.set_xticks(range(mean.shape[1]))
    ax.set_xticklabels(mean.columns, rotation=35, ha="right", fontsize=7)
    ax.set_yticks(range(mean.shape[0]))
    ax.set_yticklabels(mean.index, fontsize=7)
    for i in range(mean.shape[0]):
        for j in range(mean.shape[1]):
            m, s = mean.iat[i, j], std.iat[i, j]
            if not pd.isna(m):
                text = f"{m:.3f}" + ("" if pd.isna(s) else f"\n± {s:.3f}")
                ax.text(j, i, text, ha="center", va="center", fontsize=6, color="w")
    ax.set_xlabel("target")
    ax.set_ylabel("source")
    ax.set_title(title, fontsize=8)
    fig.colorbar(im, ax=ax)
    save_figure(fig, Path(path), _long(mean, std))


def matrix_bars(path: Path, mean: pd.DataFrame, std: pd.DataFrame, metric: str,
                title: str) -> None:
    """Grouped bars: one group per target, one bar per source, seed std as error bars."""
    from recx.plots import pyplot, save_figure

    plt = pyplot()
    n_src, n_tgt = mean.shape
    width = 0.8 / max(1, n_src)
    fig, ax = plt.subplots(figsize=(max(4.5, 1.1 * n_tgt * max(1, n_src) ** 0.5 + 2), 3.6))
    x = np.arange(n_tgt)
    for k, src in enumerate(mean.index):
        err = std.loc[src].to_numpy(dtype=float)
        ax.bar(x + k * width, mean.loc[src].to_numpy(dtype=float), width,
               yerr=np.where(np.isnan(err), 0.0, err), capsize=2, label=str(src))
    ax.set_xticks(x + width * (n_src - 1) / 2)
    ax.set_xticklabels(mean.columns, rotation=30, ha="right", fontsize=7)
    ax.set_xlabel("target")
    ax.set_ylabel(metric)
    ax.set_title(title, fontsize=8)
    ax.legend(title="source", fontsize=6, title_fontsize=7)
    save_figure(fig, Path(path), _long(mean, std))


def _long(mean: pd.DataFrame, std: pd.DataFrame) -> pd.DataFrame:
    """The figure's data: one row per (source, target) with mean and std."""
    m = mean.stack(future_stack=True).rename("mean")
    s = std.stack(future_stack=True).rename("std")
    return pd.concat([m, s], axis=1).reset_index()
