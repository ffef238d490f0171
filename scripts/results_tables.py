"""The README's result tables, rendered from a per-seed `recx report` table.

    python scripts/results_tables.py transfer outputs/tables/transfer_matrix_seeds/results.csv \
        --models preprec statmlp
    python scripts/results_tables.py text outputs/tables/text_transfer_seeds/results.csv

`transfer` reads a report with rows [setting, model, base, source, seed] (what
`scripts/transfer_matrix.sh` writes) and prints, one row per target, Pop, SASRec and every
transferred model × source: zero-shot NDCG@10 under full ranking and Recall@10 against 100
sampled negatives, then the same for the interpolation with SASRec, each with the change of SASRec
on the seeds the blend used (the pairing of `transfer_claims.py`); `--layout long` puts the
models side by side instead, one row per target × source, each zero-shot cell with its change of
Pop.
`text` reads a report with rows [setting, model, mode, tag, user_fraction, seed] (what
`scripts/text_transfer.sh` writes) and prints the warm table (all target users) and the cold table
(fractions of the users) of UniSRec and IDP next to SASRec and Pop, NDCG@10 / Recall@10, then
each fine-tuned model's change against SASRec on the same users and seeds.

A cell is the mean ± sample std over seeds; "(n)" follows when fewer than `--seeds` seeds exist;
`·` = not run or not applicable.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from transfer_claims import only_untagged, pct

from recx.stages.report import ABSENT

LABELS = {"amazon_beauty_2014": "Beauty", "amazon_sports_2014": "Sports", "yelp_a": "Yelp-A",
          "ml_100k": "ml-100k", "ml_latest_small": "ml-latest-small",
          "amazon_gift_cards_2018": "Gift Cards", "amazon_magazine_2018": "Magazine",
          "amazon_beauty_2014+amazon_sports_2014+yelp_a": "all3"}
MODEL_LABELS = {"pop": "Pop", "sasrec": "SASRec", "preprec": "PrepRec", "statmlp": "statmlp",
                "unisrec": "UniSRec", "idp": "IDP"}
NONE = "·"


def label(name: str) -> str:
    return LABELS.get(name, name)


def variant_label(model: str, tag: str | None) -> str:
    name = MODEL_LABELS.get(model, model)
    return name if tag is None else f"{name} ({tag.replace('_', ' ')})"


def family(protocol: str) -> str:
    """full | sampled: the candidate set of a protocol string (each model keeps its own history
    mask). Another tie rule than recx's pessimistic one (a tie study's `eval.ties=random`) is a
    family of its own, which no table shows."""
    candidates = "full" if "/full/" in protocol else "sampled"
    ties = re.search(r"/ties=([^/]+)", protocol)
    return candidates if ties is None or ties.group(1) == "pessimistic" else \
        f"{candidates}/ties={ties.group(1)}"


def by_seed(runs: pd.DataFrame, metric: str, what: str) -> pd.Series:
    """`metric` of one cell's runs indexed by seed; two runs of one seed are an error (a cell
    must not average over protocol variants silently)."""
    values = runs.set_index("seed")[metric]
    twice = sorted(set(values.index[values.index.duplicated()]))
    if twice:
        raise SystemExit(f"{what}: more than one run of seed(s) {twice} "
                         f"(protocols {sorted(set(runs.protocol))}); filter the report "
                         f"(report.where) to one protocol per model")
    return values


def cell(values: pd.Series, seeds: int, digits: int = 4, count: bool = True) -> str:
    values = values.dropna()
    if values.empty:
        return NONE
    text = f"{values.mean():.{digits}f}"
    if len(values) > 1:
        text += f" ± {values.std():.{digits}f}"
    return text + (f" ({len(values)})" if count and len(values) < seeds else "")


def prepare(path: Path) -> pd.DataFrame:
    frame = pd.read_csv(path)
    if "seed" not in frame:
        raise SystemExit(f"{path}: no seed column; report with rows incl. seed")
    frame = frame.assign(family=frame.protocol.map(family))
    if "user_fraction" not in frame:
        frame["user_fraction"] = 1.0
    return frame


# ------------------------------------------------------------------------------ transfer
def transfer_tables(frame: pd.DataFrame, models: list[str], seeds: int = 3,
                    targets: list[str] | None = None, layout: str = "wide") -> str:
    """`models`: names, or `name:tag` for a tagged variant (an ablation) as columns of its own.
    `layout`: wide = one row per target, a column per model × source; long = one row per target
    × source, a column per model (models side by side), each zero-shot cell with its change of Pop
    on the same seeds."""
    specs = [(m.split(":", 1)[0], m.split(":", 1)[1] if ":" in m else None) for m in models]
    wanted = {t for _, t in specs if t}
    variants = frame[frame.tag.isin(wanted)] if wanted and "tag" in frame else frame.iloc[:0]
    frame = pd.concat([only_untagged(frame), variants])
    frame = frame[frame.user_fraction.fillna(1.0) == 1.0]
    targets = targets or list(dict.fromkeys(frame.target))
    of = {spec: frame[(frame.model == spec[0]) & _tagged(frame, spec[1])] for spec in specs}
    sources = {spec: sorted(set(g[g.setting != "in_domain"].source), key=_source_order)
               for spec, g in of.items()}
    cols = [(spec, s) for spec in specs for s in sources[spec]]
    every_source = sorted({s for _, s in cols}, key=_source_order)
    out = []
    views = [("Zero-shot, NDCG@10, full ranking", "zero_shot", "NDCG@10", "full"),
             ("Zero-shot, Recall@10 against 100 sampled negatives", "zero_shot", "Recall@10",
              "sampled"),
             ("Interpolated with SASRec (α chosen on validation), NDCG@10, full ranking; the "
              "change of SASRec on the same seeds", "interpolate", "NDCG@10", "full"),
             ("The same, Recall@10 against 100 sampled negatives", "interpolate", "Recall@10",
              "sampled")]
    for title, setting, metric, fam in views:
        head = (["target", "source", "Pop", "SASRec", *(variant_label(*spec) for spec in specs)]
                if layout == "long" else
                ["target", "Pop", "SASRec", *(f"{variant_label(*spec)} ← {label(s)}"
                                             for spec, s in cols)])
        rows = []
        for t in targets:
            g = frame[(frame.target == t) & (frame.family == fam)]
            ref = by_seed(g[(g.setting == "in_domain") & (g.model == "sasrec")], metric,
                          f"SASRec on {t}")
            pop = by_seed(g[(g.setting == "in_domain") & (g.model == "pop")], metric,
                          f"Pop on {t}")
            # an interpolation shows its change of the SASRec seeds it blends; in the long layout
            # a zero-shot model its change of Pop
            against = ref if setting == "interpolate" else pop if layout == "long" else None
            view = (setting, metric, fam)
            if layout == "long":
                for s in every_source:
                    texts = [_model_cell(of[spec], spec, t, s, view, against, seeds)
                             for spec in specs]
                    if any(x != NONE for x in texts):  # a source none of the models has
                        rows.append([label(t), label(s), cell(pop, seeds), cell(ref, seeds),
                                     *texts])
            else:
                rows.append([label(t), cell(pop, seeds), cell(ref, seeds),
                             *(_model_cell(of[spec], spec, t, s, view, against, seeds)
                               for spec, s in cols)])
        out.append(f"{title}:\n\n" + markdown_rows(head, rows))
    return "\n".join(out)


def _source_order(source: str) -> tuple:
    """Single sources first (by name), then joint ones."""
    return "+" in source, source


def _model_cell(runs: pd.DataFrame, spec, target: str, source: str, view: tuple,
                against: pd.Series | None, seeds: int) -> str:
    """The cell of one model × source on `target` in `view` (setting, metric, family), then its
    relative change of `against` on the seeds both have."""
    setting, metric, fam = view
    sel = runs[(runs.target == target) & (runs.family == fam) & (runs.setting == setting)
               & (runs.source == source)]
    values = by_seed(sel, metric, f"{setting} {spec[0]} {source} → {target}")
    text = cell(values, seeds)
    if text == NONE or against is None:
        return text
    both = values.dropna().index.intersection(against.index)
    return text + (f", {pct(values[both].mean(), against[both].mean())}" if len(both) else "")


# ------------------------------------------------------------------------------ text
TEXT_WARM = [("IDP zero-shot", "idp", "zero_shot", None, None),
             ("IDP zero-shot, text-only matcher", "idp", "zero_shot", None, "text_only_matcher"),
             ("UniSRec zero-shot", "unisrec", "zero_shot", None, None),
             ("IDP fine-tuned", "idp", "finetune", None, None),
             ("IDP fine-tuned, text-only matcher", "idp", "finetune", None, "text_only_matcher"),
             ("UniSRec inductive", "unisrec", "finetune", "inductive", None),
             ("UniSRec transductive", "unisrec", "finetune", "transductive", None)]
TEXT_COLD = [c for c in TEXT_WARM if c[2] == "finetune"]


def _tagged(frame: pd.DataFrame, tag: str | None) -> pd.Series:
    if "tag" not in frame:
        return pd.Series(tag is None, index=frame.index)
    absent = frame.tag.isna() | frame.tag.eq(ABSENT)
    return absent if tag is None else frame.tag.eq(tag)


def _pair(g: pd.DataFrame, seeds: int) -> str:
    """NDCG@10 / Recall@10 of the same runs, the seed count once."""
    a = cell(g["NDCG@10"], seeds, count=False)
    if a == NONE:
        return NONE
    n = g["NDCG@10"].notna().sum()
    return f"{a} / {cell(g['Recall@10'], seeds, count=False)}" + (f" ({n})" if n < seeds else "")


def text_tables(frame: pd.DataFrame, seeds: int = 3, targets: list[str] | None = None) -> str:
    frame = frame[frame.family == "full"]
    targets = targets or list(dict.fromkeys(frame.target))

    def pick(g, model, setting, mode, tag):
        sel = g[(g.model == model) & (g.setting == setting) & _tagged(g, tag)]
        if mode is not None:
            sel = sel[sel["mode"] == mode]
        return sel

    warm_head = ["target", "Pop", "SASRec", *(c[0] for c in TEXT_WARM)]
    warm = []
    for t in targets:
        g = frame[(frame.target == t) & (frame.user_fraction == 1.0)]
        warm.append([label(t), _pair(pick(g, "pop", "in_domain", None, None), seeds),
                     _pair(pick(g, "sasrec", "in_domain", None, None), seeds),
                     *(_pair(pick(g, *c[1:]), seeds) for c in TEXT_WARM)])
    cold_head = ["target", "users", "SASRec", *(c[0] for c in TEXT_COLD)]
    cold, change = [], []
    for t in targets:
        g = frame[frame.target == t]
        for frac in sorted(set(g.user_fraction)):
            f = g[g.user_fraction == frac]
            ref = pick(f, "sasrec", "in_domain", None, None)
            cold.append([label(t), f"{frac:g}", _pair(ref, seeds),
                         *(_pair(pick(f, *c[1:]), seeds) for c in TEXT_COLD)])
            change.append([label(t), f"{frac:g}",
                           *(_change(pick(f, *c[1:]), ref) for c in TEXT_COLD)])
    return (f"Warm (all training users of the target), NDCG@10 / Recall@10, full ranking:\n\n"
            f"{markdown_rows(warm_head, warm)}\n"
            f"Cold (a seeded fraction of the target's training users; every user is evaluated):"
            f"\n\n{markdown_rows(cold_head, cold)}\n"
            f"Change against SASRec trained on the same users and seeds, Recall@10 (NDCG@10):"
            f"\n\n{markdown_rows(cold_head[:2] + cold_head[3:], change)}")


def _change(runs: pd.DataFrame, ref: pd.DataFrame) -> str:
    """Relative change of the mean over the seeds both have (a seed's cold sample is the same
    users for every model), Recall@10 and NDCG@10, with the seed count."""
    runs, ref = runs.set_index("seed"), ref.set_index("seed")
    both = runs.index.intersection(ref.index)
    if both.empty:
        return NONE
    r = pct(runs.loc[both, "Recall@10"].mean(), ref.loc[both, "Recall@10"].mean())
    n = pct(runs.loc[both, "NDCG@10"].mean(), ref.loc[both, "NDCG@10"].mean())
    return f"{r} ({n}) [{len(both)}]"


def markdown_rows(head: list[str], rows: list[list[str]]) -> str:
    align = ["---"] + ["---:"] * (len(head) - 1)
    if head[1] == "source":
        align[1] = "---"
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("kind", choices=["transfer", "text"])
    ap.add_argument("results", type=Path, help="results.csv of a per-seed recx report")
    ap.add_argument("--models", nargs="+", default=["preprec"],
                    help="transfer: the transferred models, in column order; model:tag adds a "
                    "tagged variant (e.g. statmlp:popularity_only)")
    ap.add_argument("--targets", nargs="+", default=None, help="row order (default: as found)")
    ap.add_argument("--seeds", type=int, default=3, help="seeds a complete cell has")
    ap.add_argument("--layout", choices=["wide", "long"], default="wide",
                    help="transfer: wide = a row per target, a column per model × source; long "
                    "= a row per target × source, the models side by side, zero-shot cells with "
                    "their change of Pop")
    args = ap.parse_args()
    if not args.results.is_file():
        raise SystemExit(f"{args.results}: no such file; run the report first")
    frame = prepare(args.results)
    if args.kind == "transfer":
        print(transfer_tables(frame, args.models, args.seeds, args.targets, args.layout),
              end="")
    else:
        print(text_tables(frame, args.seeds, args.targets), end="")


if __name__ == "__main__":
    main()
