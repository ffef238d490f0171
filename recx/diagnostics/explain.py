"""What the report views compute from many transfers: gains joined with diagnostics, and rank
correlations with bootstrap confidence intervals.

A **cell** is one (model, source, target, protocol): the zero-shot rows of its seeds averaged,
its gain over Pop counted on the target (`gain_pop:<metric>` = zero-shot / Pop − 1) and over
SASRec trained on the target (`gain_sasrec:<metric>`, the mean of its seeds), and the mean of
the diagnostics of its runs. A run's diagnostics are those in its own run dir, else those of
the same (model, source, target, seed), else of the same (model, source, target) from any run
(e.g. `recx diagnose` after the fact).
"""

from __future__ import annotations

import glob
import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd

from recx.diagnostics.pair import read_pair
from recx.eval.interpolation import ZERO_SHOT_GATED

log = logging.getLogger(__name__)

KEYS = ["model", "source", "target", "protocol"]
GAINS = {"gain_pop": "Pop", "gain_sasrec": "SASRec"}


def load_diagnostics(patterns) -> pd.DataFrame:
    """One row per diagnostics.json: identity (model, source, target, seed, _dir) + values."""
    rows = []
    for pattern in patterns:
        for path in sorted(glob.glob(str(pattern), recursive=True)):
            got = read_pair(Path(path))
            if got is None:
                continue
            ident, diag = got
            rows.append({"model": ident.get("model"), "source": ident.get("source"),
                         "target": ident.get("target"), "seed": ident.get("seed"),
                         "_dir": str(Path(path).parent.resolve()), **diag})
    return pd.DataFrame(rows)


def diagnostic_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if "." in c and "@" not in c and not c.startswith("_")
            and pd.api.types.is_numeric_dtype(frame[c])]


def _untagged(frame: pd.DataFrame) -> pd.Series:
    if "tag" not in frame:
        return pd.Series(True, index=frame.index)
    return frame["tag"].isna() | frame["tag"].isin(["–", ""])


def _full_users(frame: pd.DataFrame) -> pd.Series:
    if "user_fraction" not in frame:
        return pd.Series(True, index=frame.index)
    return frame["user_fraction"].fillna(1.0).astype(float) == 1.0


def _attach(zs: pd.DataFrame, diags: pd.DataFrame) -> pd.DataFrame:
    """The diagnostics of each zero-shot row (run dir, else pair and seed, else pair)."""
    cols = diagnostic_columns(diags) if not diags.empty else []
    if not cols:
        return zs
    by_dir = diags.drop_duplicates("_dir", keep="last").set_index("_dir")[cols]
    pair = ["model", "source", "target"]
    by_seed = diags.groupby([*pair, "seed"])[cols].mean()
    by_pair = diags.groupby(pair)[cols].mean()
    values = []
    for _, r in zs.iterrows():
        run_dir = str(Path(str(r.get("run_dir") or "")).resolve()) if r.get("run_dir") else None
        key = tuple(r[k] for k in pair)
        if run_dir in by_dir.index:
            values.append(by_dir.loc[run_dir])
        elif (*key, r.get("seed")) in by_seed.index:
            values.append(by_seed.loc[(*key, r.get("seed"))])
        elif key in by_pair.index:
            values.append(by_pair.loc[key])
        else:
            values.append(pd.Series(np.nan, index=cols))
    return pd.concat([zs.reset_index(drop=True),
                      pd.DataFrame(values).reset_index(drop=True)], axis=1)


def _reference(frame: pd.DataFrame, model: str, settings, metrics) -> pd.DataFrame:
    sel = frame[(frame["model"] == model) & frame["setting"].isin(settings) & _untagged(frame)
                & _full_users(frame)]
    return sel.groupby(["target", "protocol"])[metrics].mean()


def by_candidate_rule(frame: pd.DataFrame) -> pd.DataFrame:
    """Full-ranking rows named by their candidate rule relative to the target's policy
    (`mask=policy|other`) instead of `mask=on|off`, so that targets of different policies pool
    into one correlation; every gain is still taken within one target and one candidate set."""
    if "policy" not in frame or "protocol" not in frame:
        return frame
    full = frame["protocol"].astype(str).str.contains("/full/")
    if not full.any():
        return frame
    frame = frame.copy()
    rule = frame.loc[full, "policy"].map(lambda v: "other" if v is False else "policy")
    frame.loc[full, "protocol"] = [re.sub(r"mask=[^/]+", f"mask={r}", str(p))
                                   for p, r in zip(frame.loc[full, "protocol"], rule,
                                                   strict=True)]
    return frame


def transfer_cells(frame: pd.DataFrame, diags: pd.DataFrame, metrics: list[str]) -> pd.DataFrame:
    """The cells of the metric rows `frame` (selected test rows of one candidate policy)."""
    if frame.empty or "setting" not in frame:
        return pd.DataFrame()
    frame = by_candidate_rule(frame)
    zs = frame[(frame["setting"] == "zero_shot") & (frame["model"] != "pop")
               & frame["source"].notna() & _untagged(frame) & _full_users(frame)]
    if zs.empty:
        return pd.DataFrame()
    _warn_pooled(zs)
    zs = _attach(zs, diags)
    dcols = [c for c in diagnostic_columns(zs) if c not in metrics]
    agg = {**{m: "mean" for m in metrics}, **{d: "mean" for d in dcols}, "seed": "nunique"}
    cells = zs.groupby(KEYS).agg(agg).rename(columns={"seed": "n_seeds"}).reset_index()
    for prefix, model, settings in (("pop", "pop", ("zero_shot", "in_domain")),
                                    ("sasrec", "sasrec", ("in_domain",))):
        ref = _reference(frame, model, settings, metrics).add_prefix(f"{prefix}:")
        cells = cells.join(ref, on=["target", "protocol"])
        for m in metrics:
            cells[f"gain_{prefix}:{m}"] = cells[m] / cells[f"{prefix}:{m}"] - 1
    gated = frame[(frame["setting"] == "interpolate") & (frame.get("tag") == ZERO_SHOT_GATED)]
    if not gated.empty:
        g = gated.groupby(KEYS).agg({**{m: "mean" for m in metrics}, "alpha": "mean",
                                     "seed": "nunique"})
        g["kept"] = gated.assign(kept=gated["alpha"].astype(float) > 0).groupby(KEYS)["kept"].mean()
        g = g.rename(columns={**{m: f"gated:{m}" for m in metrics}, "alpha": "gated:alpha",
                              "seed": "gated:n_seeds", "kept": "gated:kept"})
        cells = cells.join(g, on=KEYS)
    return cells


def _warn_pooled(zs: pd.DataFrame) -> None:
    """A cell should average seeds of one experiment; say where it pools several configs."""
    if "experiment_hash" not in zs or zs["experiment_hash"].isna().all():
        return
    n = zs.groupby(KEYS)["experiment_hash"].nunique()
    mixed = n[n > 1]
    if len(mixed):
        log.warning("%d transfer cell(s) pool runs of different configs (e.g. %s): narrow "
                    "report.where (or report.inputs) to one experiment", len(mixed),
                    " · ".join(map(str, mixed.index[0])))


# ------------------------------------------------------------------------------ correlations
def spearman(x, y) -> float:
    """Spearman's ρ (average ranks for ties); NaN when either side is constant or n < 3."""
    from scipy.stats import rankdata

    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(np.corrcoef(rankdata(x), rankdata(y))[0, 1])


def bootstrap_ci(x, y, resamples: int, confidence: float,
                 rng: np.random.Generator) -> tuple[float, float]:
    """Percentile interval of Spearman's ρ over resamples of the (x, y) pairs."""
    from scipy.stats import rankdata

    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    n = len(x)
    if n < 3 or resamples < 1:
        return float("nan"), float("nan")
    idx = rng.integers(0, n, size=(resamples, n))
    rx, ry = rankdata(x[idx], axis=1), rankdata(y[idx], axis=1)
    rx -= rx.mean(1, keepdims=True)
    ry -= ry.mean(1, keepdims=True)
    den = np.sqrt((rx * rx).sum(1) * (ry * ry).sum(1))
    ok = den > 0  # a resample with a constant side has no correlation: left out
    if not ok.any():
        return float("nan"), float("nan")
    rho = (rx * ry).sum(1)[ok] / den[ok]
    tail = (1.0 - confidence) / 2
    return float(np.quantile(rho, tail)), float(np.quantile(rho, 1.0 - tail))


def within_target(cells: pd.DataFrame, x: str, y: str) -> tuple[float, int]:
    """Mean over targets (with ≥ 3 sources) of ρ between x and y among that target's sources:
    does the diagnostic rank the sources of one target (what the advisor needs)?"""
    rhos = [spearman(g[x], g[y]) for _, g in cells.dropna(subset=[x, y]).groupby("target")
            if len(g) >= 3]
    rhos = [r for r in rhos if not np.isnan(r)]
    return (float(np.mean(rhos)) if rhos else float("nan")), len(rhos)


def correlations(cells: pd.DataFrame, metrics: list[str], resamples: int = 1000,
                 confidence: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """One row per (model, protocol, metric, gain, diagnostic): n cells, Spearman ρ with its
    bootstrap interval over cells, and the mean within-target ρ; strongest |ρ| first."""
    if cells.empty:
        return pd.DataFrame()
    rows = []
    dcols = diagnostic_columns(cells)
    for (model, protocol), g in cells.groupby(["model", "protocol"]):
        rng = np.random.default_rng(seed)
        for metric in metrics:
            for gain in GAINS:
                y = f"{gain}:{metric}"
                if y not in g:
                    continue
                for d in dcols:
                    ok = g[[d, y]].dropna()
                    if len(ok) < 3:
                        continue
                    rho = spearman(ok[d], ok[y])
                    lo, hi = bootstrap_ci(ok[d], ok[y], resamples, confidence, rng)
                    wt, n_t = within_target(g, d, y)
                    rows.append({"model": model, "protocol": protocol, "metric": metric,
                                 "gain_over": GAINS[gain], "diagnostic": d, "n_cells": len(ok),
                                 "n_targets": int(g.loc[ok.index, "target"].nunique()),
                                 "rho": rho, "ci_low": lo, "ci_high": hi,
                                 "significant": bool(lo > 0 or hi < 0),
                                 "rho_within_target": wt, "n_targets_within": n_t})
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    out["_abs"] = out["rho"].abs()
    out = out.sort_values(["model", "protocol", "metric", "gain_over", "_abs"],
                          ascending=[True, True, True, True, False], na_position="last")
    return out.drop(columns="_abs").reset_index(drop=True)
