"""Check the transfer papers' headline claims against a per-seed `recx report` table.

Reads the `results.csv` of a report with rows [setting, model, base, source, seed] (what
`scripts/transfer_matrix.sh` writes as `outputs/tables/transfer_matrix_seeds/`) and prints, per
target, protocol and source, with the seeds behind every number:

- zero-shot: the transferred model's mean over its seeds relative to the in-domain model's
  (SASRec) mean and to Pop — PrepRec's claim is "within about 4 % Recall@10 of the best in-domain
  model" under 100 sampled negatives;
- interpolation: the change of the in-domain model when blended with the transferred one, on the
  seeds where both exist, each blend against the in-domain seed it blends (a blend of seed 0 is
  never compared with a three-seed mean) — PrepRec claims +11.8 % Recall@10 and +22 % NDCG@10,
  statmlp up to about +14 %.

    python scripts/transfer_claims.py outputs/tables/transfer_matrix_seeds/results.csv \
        --model preprec
"""
from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from recx.stages.report import ABSENT
from recx.tables import markdown

METRICS = ("Recall@10", "NDCG@10")


def pct(new: float, old: float) -> str:
    return f"{100 * (new / old - 1):+.1f} %" if old else "n/a"


def only_untagged(frame: pd.DataFrame, blend_tag: str | None = None) -> pd.DataFrame:
    """The untagged rows (tagged ones are variants: an ablation, `interpolate.select=gated`, …),
    except that `blend_tag` picks the interpolation rows of that variant instead."""
    if "tag" not in frame:
        return frame
    untagged = frame.tag.isna() | frame.tag.eq(ABSENT)
    blend = frame.setting == "interpolate"
    want = untagged if blend_tag is None else frame.tag.eq(blend_tag)
    return frame[untagged & ~blend | blend & want]


def claims(frame: pd.DataFrame, model: str, base: str = "sasrec",
           tag: str | None = None) -> pd.DataFrame:
    """One row per (target, protocol, source): zero-shot and interpolated scores as ratios.

    Tagged rows are variants (an ablation, `interpolate.select=gated`, …): only untagged rows
    count, except that `tag` picks the interpolation rows of that variant instead."""
    if "seed" not in frame:
        raise ValueError("the table has no seed column: report it with "
                         "report.rows=[setting,model,base,source,seed]")
    frame = only_untagged(frame, tag)
    if "user_fraction" in frame:  # a report of runs that never set it has no such column
        frame = frame[frame.user_fraction.fillna(1.0) == 1.0]
    full_users = frame
    # Pop masks the history (its own protocol string); pair it with the target's protocol family
    family = full_users.protocol.str.replace(r"/mask=[^/]+", "", regex=True)
    full_users = full_users.assign(family=family)
    rows = []
    for (target, fam), g in full_users.groupby(["target", "family"]):
        ref = g[(g.setting == "in_domain") & (g.model == base)].set_index("seed")
        pop = g[(g.setting == "in_domain") & (g.model == "pop")]
        if ref.empty:
            continue
        zero = g[(g.setting == "zero_shot") & (g.model == model)]
        for source, z in zero.groupby("source"):
            inter = g[(g.setting == "interpolate") & (g.model == model) & (g.source == source)]
            inter = inter.set_index("seed")
            matched = inter.index.intersection(ref.index)
            row = {"target": target, "protocol": fam, "source": source,
                   "seeds": len(z), f"{base} seeds": len(ref), "blend seeds": len(matched)}
            for m in METRICS:
                row[f"{m} zero-shot vs {base}"] = pct(z[m].mean(), ref[m].mean())
                row[f"{m} zero-shot vs pop"] = pct(z[m].mean(), pop[m].mean()) if len(pop) \
                    else "n/a"
                row[f"{m} interpolation gain"] = (
                    pct(inter.loc[matched, m].mean(), ref.loc[matched, m].mean())
                    if len(matched) else "n/a")
            rows.append(row)
    return pd.DataFrame(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("results", type=Path,
                    help="results.csv of a recx report (rows incl. source and seed)")
    ap.add_argument("--model", default="preprec", help="the transferred model (preprec, statmlp)")
    ap.add_argument("--base", default="sasrec", help="the in-domain model it is compared with")
    ap.add_argument("--tag", default=None,
                    help="the interpolation variant to read (e.g. alpha_gated); default: untagged")
    args = ap.parse_args()
    if not args.results.is_file():
        raise SystemExit(f"{args.results}: no such file; run `recx report "
                         "report.rows=[setting,model,base,source,seed]` first")
    try:
        table = claims(pd.read_csv(args.results), args.model, args.base, args.tag)
    except ValueError as err:
        raise SystemExit(f"{args.results}: {err}") from None
    if table.empty:
        raise SystemExit(f"{args.results}: no {args.model} zero-shot rows next to in-domain "
                         f"{args.base} rows on the same target")
    print(markdown(table, list(table.columns)), end="")


if __name__ == "__main__":
    main()
