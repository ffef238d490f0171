"""recx report: aggregate metrics.json files of runs and multiruns (ARCHITECTURE §4.7).

Rows are filtered by `report.where`, de-duplicated (the newest run per identity and seed),
aggregated as mean ± sample std over seeds with n, and pivoted by `report.rows` × `report.cols`.
Rows of different protocols never share a column: the protocol is part of the column key.
"""

from __future__ import annotations

import glob
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import OmegaConf

from recx.errors import ConfigError
from recx.stages import StageResult
from recx.store import atomic_write_json, atomic_write_text
from recx.tables import SAMPLED_BANNER, markdown

log = logging.getLogger(__name__)

IDENTITY = ["stage", "setting", "model", "mode", "base", "source", "target", "split", "slice",
            "alpha", "protocol"]


def collect(patterns) -> pd.DataFrame:
    rows = []
    for pattern in patterns:
        for path in sorted(glob.glob(str(pattern), recursive=True)):
            try:
                data = json.loads(Path(path).read_text())
            except (OSError, ValueError):
                log.warning("skipping unreadable %s", path)
                continue
            for r in data.get("rows", []):
                rows.append({**r, "_file": path})
    return pd.DataFrame(rows)


def select(frame: pd.DataFrame, where: dict) -> pd.DataFrame:
    if frame.empty:
        return frame
    keep = (frame.get("status", "ok") == "ok") & (frame.get("stage") != "report")
    if "selected" in frame:
        keep &= frame["selected"].map(lambda v: v is not False)
    for key, want in where.items():
        if key not in frame:
            raise ConfigError(f"report.where.{key}: no metrics row has a field {key!r}",
                              hint=f"use fields such as {IDENTITY}")
        values = want if isinstance(want, list) else [want]
        keep &= frame[key].map(lambda v, vals=values: v in vals or str(v) in map(str, vals))
    out = frame[keep].copy()
    # the newest row per (identity, seed)
    for c in [*IDENTITY, "seed"]:
        if c not in out:
            out[c] = None
    out = out.sort_values("finished_at").drop_duplicates(
        [*IDENTITY, "seed"], keep="last") if "finished_at" in out else out
    return out


def aggregate(frame: pd.DataFrame, keys: list[str], metrics: list[str]) -> pd.DataFrame:
    keys = [k for k in keys if k in frame]
    key_frame = frame[keys].astype(object).where(frame[keys].notna(), "–")
    grouped = frame.assign(**{k: key_frame[k] for k in keys}).groupby(keys, dropna=False)
    out = []
    for key, g in grouped:
        row = dict(zip(keys, key if isinstance(key, tuple) else (key,), strict=True))
        row["n_seeds"] = int(g["seed"].nunique()) if "seed" in g else len(g)
        for m in metrics:
            if m in g:
                vals = g[m].dropna().to_numpy(dtype=float)
                row[m] = float(vals.mean()) if len(vals) else np.nan
                row[f"{m}_std"] = float(vals.std(ddof=1)) if len(vals) > 1 else np.nan
        out.append(row)
    return pd.DataFrame(out)


def cell(mean, std, n) -> str:
    if mean is None or (isinstance(mean, float) and np.isnan(mean)):
        return ""
    s = f"{mean:.4f}"
    if std is not None and not np.isnan(std):
        s += f" ± {std:.4f}"
    return s + f" (n={n})"


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
    where = OmegaConf.to_container(rc.where, resolve=True) or {}
    frame = select(collect(rc.inputs), where)
    if frame.empty:
        raise ConfigError(f"no metrics rows match report.inputs={list(rc.inputs)} and "
                          f"report.where={where}",
                          hint="run some stages first, or change report.inputs / report.where")
    metrics = [m for m in rc.metrics if m in frame]
    keys = list(dict.fromkeys([*rc.rows, *rc.cols, "protocol"]))
    if rc.layout == "matrix":
        keys = list(dict.fromkeys(["model", "setting", "base", "source", "target", "split",
                                   "protocol", *keys]))
    if rc.allow_mixed_protocols:
        keys.remove("protocol")
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
        table, means = pivot(agg, list(rc.rows), cols, m)
        md_parts.append(f"### {m} (mean ± std over seeds)\n\n" + _md_bold(table, means))
    atomic_write_text(out_dir / "results.md", "\n".join(md_parts))
    atomic_write_text(out_dir / "results.csv", agg.to_csv(index=False))
    atomic_write_json(out_dir / "results.json", agg.replace({np.nan: None}).to_dict("records"))
    if rc.figures and rc.layout != "matrix":
        from recx.plots import bars

        for m in metrics:
            bars(out_dir / f"bars_{m.replace('@', '_at_')}", agg, list(rc.rows), cols, m)
    from recx.console import console

    console.print(f"report {rc.name}: {len(frame)} rows from "
                  f"{frame['_file'].nunique()} files → {out_dir}")
    console.print("\n".join(md_parts))
    rows = []
    for r in agg.replace({np.nan: None}).to_dict("records"):
        rows.append({"status": "ok", "stage": "report", "split": where.get("split"),
                     "slice": "all", **{k: (None if v == "–" else v) for k, v in r.items()}})
    return StageResult(rows, title=f"report {rc.name}", write=True, display=[])


def _md_bold(table: pd.DataFrame, means: pd.DataFrame) -> str:
    """Markdown with the best mean per column in bold (only the Markdown output bolds)."""
    cols = list(table.columns)
    lines = ["| " + " | ".join(map(str, cols)) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    best = {c: means[c].max() for c in means.columns if c in table.columns and
            pd.api.types.is_numeric_dtype(means[c])}
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
    """One source × target table (and heatmap) per (model, setting, base, protocol)."""
    parts = []
    group_keys = [k for k in ("model", "setting", "base", "protocol") if k in agg]
    for key, g in agg.groupby(group_keys, dropna=False):
        label = " · ".join(str(k) for k in (key if isinstance(key, tuple) else (key,)))
        g = g.copy()
        g["source"] = g["source"].fillna("–") if "source" in g else "–"
        mean = g.pivot_table(index="source", columns="target", values=metric, aggfunc="first")
        cells = g.assign(_c=[cell(m, s, n) for m, s, n in zip(
            g[metric], g.get(f"{metric}_std", pd.Series([np.nan] * len(g), index=g.index)),
            g["n_seeds"], strict=True)]).pivot_table(index="source", columns="target",
                                                     values="_c", aggfunc="first")
        cells.columns.name = None
        parts.append(f"### {metric}: {label}\n\n" + markdown(
            cells.reset_index(), ["source", *cells.columns]))
        if figures:
            from recx.plots import heatmap

            safe = "".join(ch if ch.isalnum() else "_" for ch in f"{metric}_{label}")[:120]
            heatmap(out_dir / f"matrix_{safe}", mean, f"{metric} — {label}")
    return parts
