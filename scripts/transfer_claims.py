"""Check the transfer papers' headline claims against a `recx report` table.

Reads the `results.csv` of a report with rows [setting, model, base, source] (what
`scripts/transfer_matrix.sh` writes as `outputs/tables/transfer_matrix_table/`) and prints, per
target and protocol, with the seeds behind every mean:

- zero-shot: each source's score relative to the in-domain model (SASRec) and to Pop — PrepRec's
  claim is "within about 4 % Recall@10 of the best in-domain model" under 100 sampled negatives;
- interpolation: the change of the in-domain model when blended with the transferred one —
  PrepRec claims +11.8 % Recall@10 and +22 % NDCG@10, statmlp up to about +14 %.

    python scripts/transfer_claims.py outputs/tables/transfer_matrix_table/results.csv \
        --model preprec
"""
from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from recx.tables import markdown


def pct(new: float, old: float) -> str:
    return f"{100 * (new / old - 1):+.1f} %" if old else "n/a"


def claims(frame: pd.DataFrame, model: str, base: str = "sasrec") -> pd.DataFrame:
    """One row per (target, protocol, source): zero-shot and interpolated scores as ratios."""
    full_users = frame[frame.get("user_fraction", 1.0).fillna(1.0) == 1.0]
    # Pop masks the history (its own protocol string); pair it with the target's protocol family
    family = full_users.protocol.str.replace(r"/mask=[^/]+", "", regex=True)
    full_users = full_users.assign(family=family)
    rows = []
    for (target, fam), g in full_users.groupby(["target", "family"]):
        ref = g[(g.setting == "in_domain") & (g.model == base)]
        pop = g[(g.setting == "in_domain") & (g.model == "pop")]
        if ref.empty:
            continue
        ref = ref.iloc[0]
        pop = pop.iloc[0] if not pop.empty else None
        for _, z in g[(g.setting == "zero_shot") & (g.model == model)].iterrows():
            inter = g[(g.setting == "interpolate") & (g.model == model) & (g.source == z.source)]
            row = {"target": target, "protocol": fam, "source": z.source,
                   "seeds": int(z.n_seeds), f"{base} seeds": int(ref.n_seeds)}
            for m in ("Recall@10", "NDCG@10"):
                row[f"{m} zero-shot vs {base}"] = pct(z[m], ref[m])
                row[f"{m} zero-shot vs pop"] = pct(z[m], pop[m]) if pop is not None else "n/a"
                row[f"{m} interpolation gain"] = (pct(inter.iloc[0][m], ref[m])
                                                 if not inter.empty else "n/a")
            rows.append(row)
    return pd.DataFrame(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("results", type=Path, help="results.csv of a recx report (rows incl. source)")
    ap.add_argument("--model", default="preprec", help="the transferred model (preprec, statmlp)")
    ap.add_argument("--base", default="sasrec", help="the in-domain model it is compared with")
    args = ap.parse_args()
    if not args.results.is_file():
        raise SystemExit(f"{args.results}: no such file; run `recx report "
                         "report.rows=[setting,model,base,source]` first")
    table = claims(pd.read_csv(args.results), args.model, args.base)
    if table.empty:
        raise SystemExit(f"{args.results}: no {args.model} zero-shot rows next to in-domain "
                         f"{args.base} rows on the same target")
    print(markdown(table, list(table.columns)), end="")


if __name__ == "__main__":
    main()
