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

ABSENT = "–"  # how a table writes a key a row does not have (no source, no tag)
IDENTITY = ["stage", "setting", "model", "mode", "base", "source", "target", "split", "slice",
            "alpha", "protocol", "user_fraction", "tag", "paper_compat"]
# what one source × target matrix holds fixed
MATRIX_GROUP = ["model", "mode", "setting", "base", "user_fraction", "tag", "paper_compat", "split",
                "slice", "protocol", "config"]
# identity fields added to a table's rows when they vary (never averaged over)
SPLIT_FIELDS = ["source", "base", "mode", "user_fraction", "tag", "paper_compat", "setting",
                "model", "split", "slice"]


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
    # the newest row per (identity, experiment, seed)
    for c in [*IDENTITY, "seed", "experiment_hash"]:
        if c not in out:
            out[c] = None
    out["user_fraction"] = out["user_fraction"].fillna(1.0)  # rows from before the field
    out["paper_compat"] = out["paper_compat"].map(_compat_key)
    out = out.sort_values("finished_at").drop_duplicates(
        [*IDENTITY, "experiment_hash", "seed"], keep="last") if "finished_at" in out else out
    return out


def candidate_rows(frame: pd.DataFrame, which: str) -> pd.DataFrame:
    """The rows of the target's candidate policy (`policy`), of the other rule (`other`), or
    both. Rows without the field (sampled candidates, older runs) count as the policy's."""
    if which not in ("policy", "other", "both"):
        raise ConfigError(f"report.candidates={which!r}", hint="use policy, other or both")
    if which == "both" or frame.empty:
        return frame
    policy = frame["policy"].map(lambda v: v is not False) if "policy" in frame else \
        pd.Series(True, index=frame.index)
    return frame[policy if which == "policy" else ~policy]


def split_experiments(frame: pd.DataFrame, keys: list[str]) -> bool:
    """Give rows a `config` column where one cell (equal `keys` apart from the seed) holds runs
    of different configs; True when it did. The column names what differs: the keys of the
    runs' saved Hydra configs, else their overrides, else the config hash."""
    keys = [k for k in keys if k in frame]
    if "experiment_hash" not in frame or frame.empty:
        return False
    exp = frame["experiment_hash"].astype(object).where(frame["experiment_hash"].notna(), ABSENT)
    per_cell = exp.groupby([frame[k].astype(str) for k in keys], dropna=False).nunique()
    if (per_cell <= 1).all():
        return False
    frame["config"] = ABSENT
    for _, idx in frame.groupby([frame[k].astype(str) for k in keys], dropna=False).groups.items():
        cell_rows = frame.loc[idx]
        hashes = list(dict.fromkeys(exp.loc[idx]))
        if len(hashes) <= 1:
            continue
        firsts = {h: cell_rows[exp.loc[idx] == h].iloc[0] for h in hashes}
        labels = _differences(firsts)
        for h in hashes:
            frame.loc[idx[(exp.loc[idx] == h).to_numpy()], "config"] = labels[h]
        log.warning("report: runs of %s differ in more than the seed (%s): kept apart",
                    " · ".join(f"{k}={cell_rows.iloc[0][k]}" for k in keys
                               if cell_rows.iloc[0][k] not in (None, ABSENT)),
                    "; ".join(labels.values()))
    return True


def _differences(firsts: dict) -> dict:
    """hash → 'key=value, …' of what sets its run apart from the others in one cell."""
    flat = {h: _run_config(r) for h, r in firsts.items()}
    if all(flat.values()):
        keys = sorted(set().union(*flat.values()))
        differ = [k for k in keys if len({str(f.get(k)) for f in flat.values()}) > 1]
        if differ:
            return {h: ", ".join(f"{k}={f.get(k)}" for k in differ) for h, f in flat.items()}
    over = {h: {o for o in (r.get("overrides") or []) if not o.startswith("seed=")}
            for h, r in firsts.items()}
    common = set.intersection(*over.values()) if over else set()
    return {h: ", ".join(sorted(over[h] - common)) or f"config {h}" for h in firsts}


def _run_config(row) -> dict:
    """The run's saved config (`.hydra/config.yaml` of its run dir) as dotted keys, minus the
    seed and the bookkeeping; {} when it is not there."""
    from recx.stages.common import experiment_config

    path = Path(str(row.get("run_dir") or "")) / ".hydra" / "config.yaml"
    if not path.is_file():
        return {}
    try:
        tree = experiment_config(OmegaConf.load(path))
    except Exception:  # an unreadable config only loses the detail
        return {}
    return dict(_flatten(tree))


def _flatten(tree, prefix=""):
    if isinstance(tree, dict):
        for k, v in tree.items():
            yield from _flatten(v, f"{prefix}{k}.")
    else:
        yield prefix[:-1], tree


def _compat_key(switches):
    """The active paper-compat switches as one key, so a run with the original code's behaviour
    never replaces or averages with the fixed one; None when none is active (or the row predates
    the field)."""
    if isinstance(switches, list | tuple):
        return ",".join(sorted(switches)) or None
    return switches or None


def aggregate(frame: pd.DataFrame, keys: list[str], metrics: list[str]) -> pd.DataFrame:
    keys = [k for k in keys if k in frame]
    key_frame = frame[keys].astype(object).where(frame[keys].notna(), ABSENT)
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
    from recx.plots import _plt, _save

    plt = _plt()
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
    _save(fig, Path(path), _long(mean, std))


def matrix_bars(path: Path, mean: pd.DataFrame, std: pd.DataFrame, metric: str,
                title: str) -> None:
    """Grouped bars: one group per target, one bar per source, seed std as error bars."""
    from recx.plots import _plt, _save

    plt = _plt()
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
    _save(fig, Path(path), _long(mean, std))


def _long(mean: pd.DataFrame, std: pd.DataFrame) -> pd.DataFrame:
    """The figure's data: one row per (source, target) with mean and std."""
    m = mean.stack(future_stack=True).rename("mean")
    s = std.stack(future_stack=True).rename("std")
    return pd.concat([m, s], axis=1).reset_index()
