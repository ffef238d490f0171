"""One command: the statistics of every development data set, before and after default filters.

    python scripts/dataset_stats.py [--shared ../shared/datasets] [--out dataset_stats.md]

For each data set under ``../shared/datasets`` (or the given folder) it reads the raw files
through the named recx config with ``dataset.raw_dir`` (checksums verified), then applies the
config's default filters, and prints one table (rich) and writes it as Markdown: users, items,
interactions, time span and the share of items with text, before ("raw") and after ("filtered"),
and after the filters the repeated (user, item) events, the test targets that repeat a history
item and the candidate policy that follows (mask=on: no repeats, every model's candidates exclude
the history; mask=off: repeats kept, nothing masked).
Nothing is cached or written elsewhere.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# config name, folder under ../shared/datasets, extra overrides, label
DEV = [
    ("ml_100k", "movielens_ml-100k", [], "ml_100k"),
    ("ml_latest_small", "movielens_ml-latest-small", [], "ml_latest_small"),
    ("amazon_beauty_2014", "amazon2014_beauty_5core_ticoserec", [], "amazon_beauty_2014"),
    ("amazon_sports_2014", "amazon2014_sports_5core_ticoserec", [], "amazon_sports_2014"),
    ("amazon_grocery_2014", "amazon2014_grocery_rechorus_trainonly", [], "amazon_grocery_2014"),
    ("amazon_all_beauty_2018", "amazon2018_all_beauty_5core", [], "amazon_all_beauty_2018"),
    ("amazon_gift_cards_2018", "amazon2018_gift_cards_5core", [], "amazon_gift_cards_2018"),
    ("amazon_magazine_2018", "amazon2018_magazine_subscriptions", [], "amazon_magazine_2018"),
    ("amazon_magazine_2018", "amazon2018_magazine_subscriptions", ["dataset.layout=ratings"],
     "amazon_magazine_2018 (layout=ratings)"),
    ("yelp_a", "yelp2020_ticoserec_yelpA", [], "yelp_a"),
    ("diginetica_sample", "diginetica_sample_srgnn", [], "diginetica_sample"),
]


def default_shared() -> Path:
    env = os.environ.get("RECX_SHARED")
    if env:
        p = Path(env)
        return p / "datasets" if (p / "datasets").is_dir() else p
    return REPO.parent / "shared" / "datasets"


def compose(overrides: list[str]):
    from hydra import compose as hcompose
    from hydra import initialize_config_dir

    from recx.config.aliases import register_aliases
    from recx.config.resolvers import register_resolvers
    from recx.config.schema import register_schemas

    register_resolvers()
    register_schemas()
    register_aliases([REPO / "conf"])
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return hcompose(config_name="preprocess", overrides=overrides)


def _day(ts: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(int(ts)))


def stats_row(name: str, folder: Path, extra: list[str], tmp: Path) -> dict:
    """Reader output (before filters) and processed domain (after) of one data set."""
    import numpy as np

    from recx.data.formats import get_reader
    from recx.data.process import process
    from recx.data.rawfiles import resolve_raw_files

    cfg = compose([f"dataset={name}", f"dataset.raw_dir={folder}", f"paths.root={tmp}",
                   *extra])
    ds = cfg.dataset
    t0 = time.perf_counter()
    files = resolve_raw_files(ds, cfg.paths, offline=True)
    raw = get_reader(ds.reader)(ds, files)
    inter = raw.interactions
    ts = inter["ts"].to_numpy()
    before = {
        "users": int(inter["user"].nunique()), "items": int(inter["item"].nunique()),
        "interactions": len(inter), "span": f"{_day(ts.min())}..{_day(ts.max())}",
        "text": (raw.info.get("items_with_text_read", 0) / max(1, raw.info.get("items_read", 1))
                 if ds.text_fields else None),
    }
    out = process(raw, ds, cfg.eval)
    s = out.stats
    after = {"users": s["users"], "items": s["items"], "interactions": s["interactions"],
             "span": f"{s['time_first'][:10]}..{s['time_last'][:10]}",
             "text": s["items_with_text"] if ds.text_fields else None,
             "repeats": s["repeats"]["share"],
             "repeat_targets": s["repeats"]["test_target_share"],
             "policy": s["candidate_policy"]}
    f = ds.filters
    rule = (f"dedup={f.dedup}, k_core={f.k_core.user}/{f.k_core.item}"
            + (f", min_rating={f.min_rating}" if f.min_rating is not None else ""))
    del np
    return {"name": name, "folder": folder.name, "layout": raw.info.get("layout", "default"),
            "before": before, "after": after, "filters": rule,
            "seconds": round(time.perf_counter() - t0, 1), "pretrain_only": ds.pretrain_only}


def _pct(x) -> str:
    return "–" if x is None else f"{100 * x:.1f}%"


def markdown(rows: list[dict]) -> str:
    head = ("| data set | stage | users | items | interactions | time span | items with text "
            "| repeated events | repeat test targets | candidate policy |\n"
            "|---|---|---:|---:|---:|---|---:|---:|---:|---|\n")
    lines = []
    for r in rows:
        for stage in ("before", "after"):
            v = r[stage]
            label = r["label"] if stage == "before" else ""
            what = "raw" if stage == "before" else f"filtered ({r['filters']})"
            rep = (f" | {_pct(v['repeats'])} | {_pct(v['repeat_targets'])} | `{v['policy']}`"
                   if "policy" in v else " | | |")
            lines.append(f"| {label} | {what} | {v['users']:,} | {v['items']:,} | "
                         f"{v['interactions']:,} | {v['span']} | {_pct(v['text'])}{rep} |")
    return head + "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", type=Path, default=default_shared(),
                    help="folder holding the development copies (default ../shared/datasets)")
    ap.add_argument("--out", type=Path, default=Path("dataset_stats.md"),
                    help="Markdown file to write")
    ap.add_argument("--only", default="", help="comma-separated config names")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(REPO))
    if not args.shared.is_dir():
        print(f"no development data sets at {args.shared} (set --shared or RECX_SHARED)",
              file=sys.stderr)
        return 2
    only = {s for s in args.only.split(",") if s}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, folder, extra, label in DEV:
            if only and name not in only:
                continue
            path = args.shared / folder
            if not path.is_dir():
                print(f"skip {label}: {path} is absent", file=sys.stderr)
                continue
            row = stats_row(name, path, extra, Path(tmp))
            row["label"] = label
            rows.append(row)
            print(f"{label}: {row['before']['interactions']:,} → "
                  f"{row['after']['interactions']:,} interactions ({row['seconds']} s)",
                  file=sys.stderr)
    table = markdown(rows)
    args.out.write_text(table)
    _print_rich(rows)
    print(f"\nwritten to {args.out}")
    return 0


def _print_rich(rows: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title="development data sets: raw → default filters", title_justify="left")
    numbers = ("users", "items", "interactions", "with text", "repeats", "repeat targets")
    for c in ("data set", "stage", *numbers[:3], "time span", *numbers[3:], "policy"):
        t.add_column(c, justify="right" if c in numbers else "left")
    for r in rows:
        for stage in ("before", "after"):
            v = r[stage]
            t.add_row(r["label"] if stage == "before" else "",
                      "raw" if stage == "before" else f"filtered ({r['filters']})",
                      f"{v['users']:,}", f"{v['items']:,}", f"{v['interactions']:,}", v["span"],
                      _pct(v["text"]), _pct(v.get("repeats")), _pct(v.get("repeat_targets")),
                      v.get("policy", ""))
    Console(width=190).print(t)


if __name__ == "__main__":
    sys.exit(main())
