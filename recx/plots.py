"""Figures (matplotlib, Agg): PNG and PDF with the CSV of their data beside them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path, data: pd.DataFrame | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path.with_suffix(".png"), dpi=120)
    fig.savefig(path.with_suffix(".pdf"))
    if data is not None:
        data.to_csv(path.with_suffix(".csv"), index=False)
    _plt().close(fig)


def alpha_curve(run_dir: Path, alphas, valid, test, best: int, metric: str, title: str) -> None:
    """Validation curve solid with α* marked; test dashed, not used for selection."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    ax.plot(alphas, valid, "-o", ms=3, label=f"valid {metric}")
    ax.plot(alphas, test, "--", label=f"test {metric} — not used for selection")
    ax.axvline(alphas[best], color="grey", lw=0.8)
    ax.scatter([alphas[best]], [valid[best]], color="red", zorder=5,
               label=f"α* = {alphas[best]:.2f}")
    ax.set_xlabel("α (0 = in-domain base alone, 1 = transferred model alone)")
    ax.set_ylabel(metric)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    _save(fig, Path(run_dir) / "alpha_curve",
          pd.DataFrame({"alpha": alphas, "valid": valid, "test": test,
                        "selected": [i == best for i in range(len(alphas))]}))


def alpha_curves(path: Path, curves: list[dict]) -> None:
    """Several α curves in one figure (recx run)."""
    if not curves:
        return
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    rows = []
    for c in curves:
        line = ax.plot(c["alphas"], c["valid"], "-", label=f"{c['label']} valid")[0]
        ax.plot(c["alphas"], c["test"], "--", color=line.get_color(), label=f"{c['label']} test")
        ax.scatter([c["alphas"][c["best"]]], [c["valid"][c["best"]]], color=line.get_color())
        rows += [{"pair": c["label"], "alpha": a, "valid": v, "test": t}
                 for a, v, t in zip(c["alphas"], c["valid"], c["test"], strict=True)]
    ax.set_xlabel("α (0 = base alone, 1 = transferred alone)")
    ax.set_ylabel(curves[0]["metric"])
    ax.legend(fontsize=7)
    _save(fig, Path(path), pd.DataFrame(rows))


def popularity_over_time(path: Path, domain, top: int = 8) -> None:
    """Weekly counts of the top items, and the percentile bands of weekly item popularity."""
    plt = _plt()
    week = (domain.ts - domain.ts.min()) // (7 * 86400)
    n_weeks = int(week.max()) + 1
    counts = np.bincount(domain.item, minlength=domain.n_items + 1)
    top_items = np.argsort(-counts[1:], kind="stable")[:top] + 1
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    rows = []
    for it in top_items:
        w = np.bincount(week[domain.item == it], minlength=n_weeks)
        axes[0].plot(np.arange(n_weeks), w, lw=0.9, label=f"item {it}")
        rows += [{"kind": "top_item", "item": int(it), "week": k, "value": int(v)}
                 for k, v in enumerate(w)]
    axes[0].set_title("weekly events of the most popular items", fontsize=9)
    axes[0].set_xlabel("week")
    axes[0].legend(fontsize=6, ncol=2)
    # percentile bands: for each week, the distribution of counts among items active that week
    key = week.astype(np.int64) * (domain.n_items + 1) + domain.item
    uk, c = np.unique(key, return_counts=True)
    wk = uk // (domain.n_items + 1)
    qs = [50, 75, 90, 99]
    bands = np.zeros((len(qs), n_weeks))
    for k in range(n_weeks):
        sel = c[wk == k]
        if len(sel):
            bands[:, k] = np.percentile(sel, qs)
    for q, b in zip(qs, bands, strict=True):
        axes[1].plot(np.arange(n_weeks), b, lw=0.9, label=f"p{q}")
        rows += [{"kind": f"p{q}", "item": None, "week": k, "value": float(v)}
                 for k, v in enumerate(b)]
    axes[1].set_yscale("log")
    axes[1].set_title("weekly events per active item: percentile bands", fontsize=9)
    axes[1].set_xlabel("week")
    axes[1].legend(fontsize=7)
    _save(fig, Path(path), pd.DataFrame(rows))


def distributions(path: Path, domain) -> None:
    """User-activity and item-popularity distributions on log-log axes."""
    plt = _plt()
    user_act = np.diff(domain.indptr)[1:]
    item_pop = np.bincount(domain.item, minlength=domain.n_items + 1)[1:]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    rows = []
    for ax, values, name in ((axes[0], user_act, "user activity"),
                             (axes[1], item_pop, "item popularity")):
        v, n = np.unique(values[values > 0], return_counts=True)
        ax.loglog(v, n, ".", ms=3)
        ax.set_xlabel("events")
        ax.set_ylabel("count")
        ax.set_title(f"{name} ({domain.name})", fontsize=9)
        rows += [{"kind": name, "events": int(a), "count": int(b)} for a, b in zip(v, n,
                                                                                  strict=True)]
    _save(fig, Path(path), pd.DataFrame(rows))


def bars(path: Path, agg: pd.DataFrame, rows: list[str], cols: list[str], metric: str) -> None:
    """Grouped bars (one group per column key) with seed standard deviations as error bars."""
    if metric not in agg or agg.empty:
        return
    plt = _plt()
    rows = [r for r in rows if r in agg]
    col_keys = [c for c in cols if c in agg] + ["protocol"]
    data = agg.copy()
    data["_row"] = data[rows].astype(str).agg(" / ".join, axis=1) if rows else metric
    data["_col"] = data[col_keys].astype(str).agg(" · ".join, axis=1)
    groups = list(dict.fromkeys(data["_col"]))
    series = list(dict.fromkeys(data["_row"]))
    width = 0.8 / max(1, len(series))
    fig, ax = plt.subplots(figsize=(max(5, 1.2 * len(groups) * max(1, len(series)) ** 0.5), 4))
    for k, s in enumerate(series):
        sub = data[data["_row"] == s].set_index("_col")
        x = np.arange(len(groups)) + k * width
        y = [sub[metric].get(g, np.nan) for g in groups]
        err = [sub.get(f"{metric}_std", pd.Series(dtype=float)).get(g, np.nan) for g in groups]
        err = [0 if e is None or np.isnan(e) else e for e in err]
        ax.bar(x, y, width, yerr=err, capsize=2, label=s)
    ax.set_xticks(np.arange(len(groups)) + 0.4 - width / 2)
    ax.set_xticklabels([g.split(" · ")[0] for g in groups], rotation=30, ha="right", fontsize=7)
    ax.set_ylabel(metric)
    ax.legend(fontsize=6)
    _save(fig, Path(path), data.drop(columns=["_row", "_col"]))


def heatmap(path: Path, matrix: pd.DataFrame, title: str) -> None:
    """A source × target matrix of one metric."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(1.2 + 1.0 * matrix.shape[1], 1.0 + 0.6 * matrix.shape[0]))
    im = ax.imshow(matrix.to_numpy(dtype=float), cmap="viridis", aspect="auto")
    ax.set_xticks(range(matrix.shape[1]))
    ax.set_xticklabels(matrix.columns, rotation=40, ha="right", fontsize=7)
    ax.set_yticks(range(matrix.shape[0]))
    ax.set_yticklabels(matrix.index, fontsize=7)
    for i in range(matrix.shape[0]):
        for j in range(matrix.shape[1]):
            v = matrix.iat[i, j]
            if not pd.isna(v):
                ax.text(j, i, f"{v:.3f}", ha="center", va="center", fontsize=6, color="w")
    ax.set_xlabel("target")
    ax.set_ylabel("source")
    ax.set_title(title, fontsize=8)
    fig.colorbar(im, ax=ax)
    _save(fig, Path(path), matrix.reset_index())
