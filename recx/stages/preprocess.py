"""recx preprocess: raw → canonical domain in the cache; prints and writes stats.json with the
popularity-over-time and activity/popularity distribution figures beside it."""

from __future__ import annotations

import json

from recx.data.repeats import policy
from recx.stages import StageResult
from recx.store import atomic_write_json


def run(ctx) -> StageResult:
    cfg = ctx.cfg
    domain = ctx.domain(cfg.dataset)
    stats = dict(domain.stats)
    stats["repeats"] = domain.repeats  # (cache entries of older versions lack them)
    stats["candidate_policy"] = policy(domain.repeats)
    stats["cache_entry"] = str(domain.path)
    atomic_write_json(ctx.run_dir / "stats.json", stats)
    if cfg.figures:
        from recx.plots import distributions, popularity_over_time

        popularity_over_time(ctx.run_dir / "popularity_over_time", domain)
        distributions(ctx.run_dir / "distributions", domain)
    print_stats(stats)
    import pandas as pd

    return StageResult([], write=False, table=pd.json_normalize(stats))  # recx.run's row


def print_stats(stats: dict) -> None:
    from rich.table import Table

    from recx.console import console

    t = Table(title=f"dataset {stats['dataset']}", title_justify="left")
    t.add_column("step")
    for c in ("users", "items", "interactions"):
        t.add_column(c, justify="right")
    for step, c in stats["filters"].items():
        t.add_row(step, str(c["users"]), str(c["items"]), str(c["interactions"]))
    console.print(t)
    sl = stats["seq_len"]
    console.print(
        f"density {stats['density']:.5f} · time {stats['time_first']} → {stats['time_last']} "
        f"({stats['time_span_days']} days, resolution {stats['time_resolution']})\n"
        f"sequence length: min {sl['min']}, p25 {sl['p25']:.0f}, median {sl['p50']:.0f}, "
        f"p75 {sl['p75']:.0f}, p95 {sl['p95']:.0f}, max {sl['max']} · split "
        f"{json.dumps(stats['split'])}\n"
        f"items with text: {100 * stats['items_with_text']:.1f}% "
        f"({stats['items_without_text']} without; fields {stats['text_fields']})")
    rep = stats["repeats"]
    console.print(
        f"repeated (user, item) events: {rep['events']} ({100 * rep['share']:.1f} %), "
        f"{100 * rep['test_target_share']:.1f} % of test targets → candidate policy "
        f"{stats['candidate_policy']} for every model "
        + ("(the user's history is never a candidate)" if stats["candidate_policy"] == "mask=on"
           else "(repeats are kept: every item is a candidate)"))
