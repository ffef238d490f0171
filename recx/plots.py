"""Figures: PNG and PDF with the CSV of their data beside them.

Drawn on `matplotlib.figure.Figure` objects, never through pyplot's global state: recx
never selects a backend (a notebook keeps its own) and never shows a window, and figures are
freed with their last reference.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd


def pyplot():
    """The two pyplot calls recx draws with, backend-free: `subplots` and `get_cmap`."""
    import matplotlib
    from matplotlib.figure import Figure

    def subplots(nrows: int = 1, ncols: int = 1, *, figsize=None, **kw):
        fig = Figure(figsize=figsize)
        return fig, fig.subplots(nrows, ncols, **kw)

    return SimpleNamespace(subplots=subplots, get_cmap=lambda name: matplotlib.colormaps[name])


def save_figure(fig, path: Path, data: pd.DataFrame | None = None) -> None:
    """`path`.png and .pdf, and the figure's data as `path`.csv beside them."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path.with_suffix(".png"), dpi=120, bbox_inches="tight")  # legends outside too
    fig.savefig(path.with_suffix(".pdf"), bbox_inches="tight")
    if data is not None:
        data.to_csv(path.with_suffix(".csv"), index=False)


def alpha_curve(run_dir: Path, alphas, valid, test, best: int, metric: str, title: str) -> None:
    """Validation curve solid with α* marked; test dashed, not used for selection."""
    plt = pyplot()
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
    save_figure(fig, Path(run_dir) / "alpha_curve",
          pd.DataFrame({"alpha": alphas, "valid": valid, "test": test,
                        "selected": [i == best for i in range(len(alphas))]}))


def alpha_curves(path: Path, curves: list[dict]) -> None:
    """Several α curves in one figure (recx run)."""
    if not curves:
        return
    plt = pyplot()
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
    save_figure(fig, Path(path), pd.DataFrame(rows))


def popularity_over_time(path: Path, domain, top: int = 8, max_periods: int = 160) -> None:
    """Item popularity over time, in three panels (weekly periods; several weeks per period when
    the data span more than `max_periods` weeks):

    1. weekly events of the `top` most popular items;
    2. the popularity percentile bands: for each week, the weekly event counts that separate the
       50th, 75th, 90th and 99th percentiles of the items active that week (shaded bands);
    3. PrepRec's view of the same items: their weekly popularity percentile
       `100 · avgrank(count) / n_active` among the items active that week (0 when inactive), the
       quantity PrepRec encodes (models/preprec.md §2.3-2.4).
    """
    plt = pyplot()
    wp = _weekly_popularity(domain, top, max_periods)
    fig, axes = plt.subplots(1, 3, figsize=(15, 3.8))
    x = np.arange(wp.n_weeks)
    rows = []
    for k, item in enumerate(wp.top_items):
        axes[0].plot(x, wp.weekly[k], lw=0.9, label=f"item {item}")
        axes[2].plot(x, wp.perc[k], lw=0.8, label=f"item {item}")
        rows += [{"kind": "top_item", "item": int(item), "week": w, "value": int(v)}
                 for w, v in enumerate(wp.weekly[k])]
        rows += [{"kind": "top_item_percentile", "item": int(item), "week": w, "value": float(v)}
                 for w, v in enumerate(wp.perc[k])]
    axes[0].set_title(f"events per {wp.unit} of the most popular items", fontsize=9)
    axes[0].set_xlabel(wp.unit)
    axes[0].legend(fontsize=6, ncol=2)
    rows += _percentile_bands(axes[1], x, wp)
    for q in (50, 75, 90, 99):
        axes[2].axhline(q, color="grey", lw=0.4, ls=":")
    axes[2].set_ylim(0, 101)
    axes[2].set_title(f"PrepRec percentile of the top items (per {wp.unit})", fontsize=9)
    axes[2].set_xlabel(wp.unit)
    axes[2].set_ylabel("percentile among active items")
    save_figure(fig, Path(path), pd.DataFrame(rows))


def _weekly_popularity(domain, top: int, max_periods: int) -> SimpleNamespace:
    """The numbers `popularity_over_time` draws: per week, the `top` items' events and
    percentiles among the active items, and the percentile bands of all active items."""
    span_weeks = int(domain.ts.max() - domain.ts.min()) // (7 * 86400) + 1
    days = 7 * max(1, -(-span_weeks // max_periods))  # whole weeks, at most `max_periods`
    week = (domain.ts - domain.ts.min()) // (days * 86400)
    n_weeks = int(week.max()) + 1
    counts = np.bincount(domain.item, minlength=domain.n_items + 1)
    top_items = np.argsort(-counts[1:], kind="stable")[:top] + 1
    # (week, item) pairs and their counts; sorted by week, so each week is one slice
    key = week.astype(np.int64) * (domain.n_items + 1) + domain.item
    uk, c = np.unique(key, return_counts=True)
    wk = uk // (domain.n_items + 1)
    it = uk % (domain.n_items + 1)
    bounds = np.searchsorted(wk, np.arange(n_weeks + 1))
    qs = [50, 75, 90, 99]
    bands = np.zeros((len(qs), n_weeks))
    perc = np.zeros((len(top_items), n_weeks))
    weekly = np.zeros((len(top_items), n_weeks), dtype=np.int64)
    pos = {int(t): k for k, t in enumerate(top_items)}
    for w in range(n_weeks):
        lo, hi = bounds[w], bounds[w + 1]
        if hi == lo:
            continue
        cw = c[lo:hi]
        bands[:, w] = np.percentile(cw, qs)
        srt = np.sort(cw)
        for j in np.flatnonzero(np.isin(it[lo:hi], top_items)):
            k = pos[int(it[lo + j])]
            x = cw[j]
            less = np.searchsorted(srt, x, "left")
            equal = np.searchsorted(srt, x, "right") - less
            perc[k, w] = 100.0 * (less + (equal + 1) / 2) / len(cw)
            weekly[k, w] = x
    return SimpleNamespace(unit="week" if days == 7 else f"period of {days} days",
                           n_weeks=n_weeks, top_items=top_items, weekly=weekly, perc=perc,
                           qs=qs, bands=bands)


def _percentile_bands(ax, x, wp) -> list[dict]:
    """Shaded bands between the weekly percentiles of the active items (log scale)."""
    rows = []
    floor = np.ones(wp.n_weeks)
    shades = ["#c6dbef", "#9ecae1", "#6baed6", "#3182bd"]
    for q, b, lo_b, color in zip(wp.qs, wp.bands, [floor, *wp.bands[:-1]], shades, strict=True):
        ax.fill_between(x, lo_b, np.maximum(b, lo_b), color=color, alpha=0.8, lw=0,
                        label=f"≤ p{q}")
        ax.plot(x, b, lw=0.6, color=color)
        rows += [{"kind": f"p{q}", "item": None, "week": w, "value": float(v)}
                 for w, v in enumerate(b)]
    ax.set_yscale("log")
    ax.set_title(f"popularity percentile bands: events per active item and {wp.unit}",
                 fontsize=9)
    ax.set_xlabel(wp.unit)
    ax.legend(fontsize=7, loc="upper left")
    return rows


def distributions(path: Path, domain) -> None:
    """User-activity and item-popularity distributions on log-log axes."""
    plt = pyplot()
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
    save_figure(fig, Path(path), pd.DataFrame(rows))


def bar_layout(agg: pd.DataFrame, rows: list[str], cols: list[str], metric: str):
    """The groups (x ticks), series (legend) and values of `bars`: one group per column key and
    candidate set (full ranking vs sampled negatives: never compared); a protocol's settings that
    differ within its candidate set (e.g. Pop's history mask) go into the series label.

    Returns the annotated table (columns `_row`, `_col`, `_family` added), the groups and the
    series, both in order of first appearance."""
    rows = [r for r in rows if r in agg]
    data = agg.copy()
    fields = data["protocol"].astype(str).str.split("/")
    data["_family"] = fields.str[1]
    col_keys = [c for c in cols if c in agg] + ["_family"]
    data["_row"] = data[rows].astype(str).agg(" / ".join, axis=1) if rows else metric
    parts = fields.map(set)
    shared = {f: set.intersection(*p) for f, p in parts.groupby(data["_family"])}
    extra = [" ".join(sorted(p - shared[f])) for p, f in zip(parts, data["_family"], strict=True)]
    data["_row"] += [f" [{e}]" if e else "" for e in extra]
    data["_col"] = data[col_keys].astype(str).agg(" · ".join, axis=1)
    return data, list(dict.fromkeys(data["_col"])), list(dict.fromkeys(data["_row"]))


def bars(path: Path, agg: pd.DataFrame, rows: list[str], cols: list[str], metric: str) -> None:
    """Grouped bars (layout: `bar_layout`) with seed standard deviations as error bars."""
    if metric not in agg or agg.empty:
        return
    plt = pyplot()
    data, groups, series = bar_layout(agg, rows, cols, metric)
    width = 0.8 / max(1, len(series))
    colours = plt.get_cmap("tab10" if len(series) <= 10 else "tab20")
    fig, ax = plt.subplots(figsize=(max(5, 1.2 * len(groups) * max(1, len(series)) ** 0.5), 4))
    for k, s in enumerate(series):
        sub = data[data["_row"] == s].set_index("_col")
        x = np.arange(len(groups)) + k * width
        y = [sub[metric].get(g, np.nan) for g in groups]
        err = [sub.get(f"{metric}_std", pd.Series(dtype=float)).get(g, np.nan) for g in groups]
        err = [0 if e is None or np.isnan(e) else e for e in err]
        ax.bar(x, y, width, yerr=err, capsize=2, label=s, color=colours(k % colours.N))
    ax.set_xticks(np.arange(len(groups)) + 0.4 - width / 2)
    ax.set_xticklabels(groups, rotation=30, ha="right", fontsize=7)
    ax.set_ylabel(metric)
    ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    save_figure(fig, Path(path), data.drop(columns=["_row", "_col", "_family"]))


def popularity_trajectories(path: Path, domain, tables, items=None, n_items: int = 4) -> None:
    """PrepRec features of a few items over time (models/preprec.md §2): events per fine period
    (bars) and the percentiles an event at that time sees — the fine percentile of the previous
    fine period and the decayed coarse percentile of the previous coarse period (steps, right
    axis) — with, below, the linear encoding of the first item's coarse percentile."""
    plt = pyplot()
    cfg = tables.config
    day = (domain.ts - tables.t0) / 86400.0
    items = [int(i) for i in (_spread_items(domain, n_items) if items is None else items)]

    def starts(index, n):  # first event time (days) of every indexed period
        s = np.full(n + 1, np.inf)
        np.minimum.at(s, index, day)
        s[n] = day.max() + 1e-9
        return s

    f_start = starts(tables.event_fine, tables.n_fine)
    c_start = starts(tables.event_coarse, tables.n_coarse)
    fig, axes = plt.subplots(len(items) + 1, 1, figsize=(9, 2.0 * len(items) + 2.4),
                             squeeze=False)
    rows, twins = [], []
    for ax, item in zip(axes[:-1, 0], items, strict=False):
        twins.append(_item_trajectory(ax, domain, tables, item, f_start, c_start, rows))
    lines = [*axes[0, 0].get_legend_handles_labels()[0],
             *twins[0].get_legend_handles_labels()[0]]
    axes[0, 0].legend(lines, [ln.get_label() for ln in lines], fontsize=7, loc="upper right")
    import torch

    from recx.data.features.popularity import encode

    ax = axes[-1, 0]  # the encoding PrepRec feeds for the first item's coarse percentile
    perc = torch.from_numpy(tables.coarse[np.arange(tables.n_coarse) + cfg.coarse_history - 1,
                                          items[0]].copy())
    enc = encode(perc, cfg.coarse_anchors, cfg.encoding).numpy().T
    ax.imshow(enc, aspect="auto", origin="lower", cmap="viridis", interpolation="nearest")
    ax.set_xlabel("coarse period index P (an event in P sees the percentile of P − 1)")
    ax.set_ylabel(f"item {items[0]}\nencoding dim", fontsize=8)
    ax.set_title(f"{cfg.encoding} encoding of the coarse percentile ({enc.shape[0]} dims)",
                 fontsize=8)
    axes[0, 0].set_title(f"{domain.name}: popularity dynamics as PrepRec sees them "
                         f"(coarse {cfg.coarse_days:g} d, fine {cfg.fine_days:g} d)", fontsize=9)
    axes[-2, 0].set_xlabel("days since the first event")
    save_figure(fig, Path(path), pd.DataFrame(rows))


def _spread_items(domain, n_items: int) -> np.ndarray:
    """`n_items` items spread over the popularity ranks (with ≥ 10 events each)."""
    counts = np.bincount(domain.item, minlength=domain.n_items + 1)
    ranked = np.argsort(-counts[1:], kind="stable") + 1
    ranked = ranked[counts[ranked] >= min(10, counts.max())]
    pick = np.unique(np.linspace(0, len(ranked) - 1, min(n_items, len(ranked))).astype(int))
    return ranked[pick]


def _item_trajectory(ax, domain, tables, item: int, f_start, c_start, rows: list):
    """One item's events per fine period (bars) and, on a right axis (returned), the fine and
    coarse percentiles an event then sees (steps); its rows of the CSV are added to `rows`."""
    n_f = np.bincount(tables.event_fine[domain.item == item], minlength=tables.n_fine)
    ax.bar(f_start[:-1], n_f, width=np.diff(f_start), align="edge", color="0.75",
           label="events")
    ax.set_ylabel(f"item {item}\nevents", fontsize=8)
    right = ax.twinx()
    h = tables.config.coarse_history
    fine_seen = np.clip(tables.fine[np.arange(tables.n_fine), item], 0, None)
    coarse_seen = np.clip(tables.coarse[np.arange(tables.n_coarse) + h - 1, item], 0, None)
    right.step(f_start[:-1], fine_seen, where="post", color="C1",
               label="fine percentile (previous fine period)")
    right.step(c_start[:-1], coarse_seen, where="post", color="C0",
               label="coarse percentile (previous coarse period, decayed)")
    right.set_ylim(-2, 102)
    right.set_ylabel("percentile", fontsize=8)
    rows += [{"item": item, "kind": "fine", "period": k, "start_day": float(f_start[k]),
              "events": int(n_f[k]), "percentile_seen": float(fine_seen[k])}
             for k in range(tables.n_fine)]
    rows += [{"item": item, "kind": "coarse", "period": k, "start_day": float(c_start[k]),
              "events": None, "percentile_seen": float(coarse_seen[k])}
             for k in range(tables.n_coarse)]
    return right


def activity_distributions(path: Path, domains: dict, roles: dict | None = None,
                           n_bins: int = 10) -> None:
    """statmlp's premise (models/statmlp.md §2.1): activity distributions of source and target
    domains look alike. Top: CCDF of the training degree of users and items, one line per
    domain (sources solid, target dashed). Bottom: share of users / items in each activity
    percentile bin, the vocabulary statmlp actually sees (uneven where many degrees tie)."""
    from recx.data.features.graphstats import degrees, percentile_bins, training_edges

    plt = pyplot()
    roles = roles or {}
    fig, axes = plt.subplots(2, 2, figsize=(10, 7))
    rows = []
    width = 0.8 / max(1, len(domains))
    for k, (name, domain) in enumerate(domains.items()):
        du, di = degrees(domain, *training_edges(domain))
        style = "--" if roles.get(name) == "target" else "-"
        label = f"{name} ({roles[name]})" if name in roles else name
        for col, (deg, side) in enumerate(((du[1:], "users"), (di[1:], "items"))):
            v = np.sort(deg[deg > 0])
            ccdf = 1.0 - np.arange(len(v)) / max(1, len(v))
            axes[0, col].loglog(v, ccdf, style, lw=1.2, label=label)
            share = np.bincount(percentile_bins(deg, n_bins), minlength=n_bins) / max(1, len(deg))
            axes[1, col].bar(np.arange(n_bins) + k * width, share, width, label=label)
            rows += [{"domain": name, "side": side, "kind": "degree_ccdf", "x": float(a),
                      "y": float(b)} for a, b in zip(v, ccdf, strict=True)]
            rows += [{"domain": name, "side": side, "kind": "bin_share", "x": b, "y": float(s)}
                     for b, s in enumerate(share)]
    for col, side in enumerate(("users", "items")):
        axes[0, col].set_title(f"{side}: training degree, CCDF", fontsize=9)
        axes[0, col].set_xlabel("degree (distinct training interactions)")
        axes[0, col].set_ylabel("P(degree ≥ x)")
        axes[1, col].set_title(f"{side}: share per activity percentile bin", fontsize=9)
        axes[1, col].set_xlabel("bin (0 = least active)")
        axes[1, col].set_xticks(np.arange(n_bins) + 0.4 - width / 2)
        axes[1, col].set_xticklabels([str(b) for b in range(n_bins)])
        axes[1, col].set_ylabel("share")
    axes[0, 0].legend(fontsize=7)
    save_figure(fig, Path(path), pd.DataFrame(rows))


def cluster_bins(path: Path, stats: dict, roles: dict | None = None) -> None:
    """statmlp's cluster features: every Node2Vec node cluster and edge cluster of each domain
    by size and density (top, log axes), and the share of nodes / training edges that fall in
    each size and density bin (bottom), per domain."""
    plt = pyplot()
    roles = roles or {}
    fig, axes = plt.subplots(2, 2, figsize=(10, 7))
    rows = []
    n = max(1, len(stats))
    width = 0.8 / (2 * n)
    for k, (name, s) in enumerate(stats.items()):
        label = f"{name} ({roles[name]})" if name in roles else name
        marker = "x" if roles.get(name) == "target" else "o"
        kinds = (("node", s.node_size, s.node_density, s.node_size_bin, s.node_dens_bin,
                  np.bincount(np.r_[s.user_cluster[s.user_cluster >= 0],
                                    s.item_cluster[s.item_cluster >= 0]],
                              minlength=len(s.node_size))),
                 ("edge", s.edge_size, s.edge_density, s.edge_size_bin, s.edge_dens_bin,
                  np.bincount(s.edge_label, minlength=len(s.edge_size))))
        for col, (kind, size, dens, sbin, dbin, members) in enumerate(kinds):
            ok = (size > 0) & (dens > 0)
            axes[0, col].scatter(size[ok], dens[ok], s=12, marker=marker, alpha=0.7,
                                 label=label)
            nb = int(max(sbin.max(), dbin.max())) + 1
            total = max(1, members.sum())
            share_s = np.bincount(sbin, weights=members, minlength=nb) / total
            share_d = np.bincount(dbin, weights=members, minlength=nb) / total
            axes[1, col].bar(np.arange(nb) + 2 * k * width, share_s, width, color=f"C{k}",
                             label=f"{label} size")
            axes[1, col].bar(np.arange(nb) + (2 * k + 1) * width, share_d, width,
                             color=f"C{k}", alpha=0.45, label=f"{label} density")
            rows += [{"domain": name, "kind": kind, "cluster": c, "size": int(size[c]),
                      "density": float(dens[c]), "size_bin": int(sbin[c]),
                      "density_bin": int(dbin[c]), "members": int(members[c])}
                     for c in range(len(size))]
    for col, (kind, what) in enumerate((("node", "nodes"), ("edge", "training edges"))):
        axes[0, col].set_xscale("log")
        axes[0, col].set_yscale("log")
        axes[0, col].set_xlabel("cluster size" if kind == "node" else "edges in the cluster")
        axes[0, col].set_ylabel("density")
        axes[0, col].set_title(f"{kind} clusters (Node2Vec{' edge vectors' * (kind == 'edge')})",
                               fontsize=9)
        axes[1, col].set_title(f"share of {what} per size bin (solid) / density bin (light)",
                               fontsize=9)
        axes[1, col].set_xlabel("bin")
        axes[1, col].set_ylabel("share")
    axes[0, 0].legend(fontsize=7)
    axes[1, 1].legend(fontsize=6, ncol=2)
    save_figure(fig, Path(path), pd.DataFrame(rows))


# the drawings a model's figure data (`recx.models.base.Figure`) may name
MODEL_FIGURES = {"activity_distributions": activity_distributions, "cluster_bins": cluster_bins}


def draw(figures, prefix: Path) -> list[str]:
    """Draw a model's figure data as `<prefix>_<name>.{png,pdf,csv}`; the PNG names written."""
    names = []
    for fig in figures:
        MODEL_FIGURES[fig.plot](Path(f"{prefix}_{fig.name}"), **fig.data)
        names.append(f"{Path(prefix).name}_{fig.name}.png")
    return names
