"""`recx report report.view=transfer|text|claims`: the published result tables and the papers'
claims, from the runs' metrics rows (one row per run and seed), written into
outputs/tables/<report.name>/ and printed.

- `transfer` (transfer.md): one row per target, Pop, SASRec and every transferred model × source
  (`report.tables.models`, in column order; `model:tag` adds a tagged variant, e.g. an
  ablation): zero-shot NDCG@10 under full ranking and Recall@10 against 100 sampled negatives,
  the same for the zero-shot model gated with Pop (where it was run), each with its change of
  Pop, then for the interpolation with SASRec, each with its change of SASRec on the seeds
  the blend used; `report.tables.layout=long` puts the models side by side instead, one row per
  target × source, each zero-shot cell with its change of Pop.
- `text` (text.md): the warm table (all target users) and the cold table (fractions of the
  users) of UniSRec and IDP next to SASRec and Pop, NDCG@10 / Recall@10, then each fine-tuned
  model's change against SASRec on the same users and seeds.
- `claims` (claims.md, claims.csv): per transferred model, target, protocol and source, the
  zero-shot mean relative to the in-domain model's (`report.tables.base`) and to Pop, and the
  interpolation's change of the in-domain model on the seeds where both exist (each blend
  against the in-domain seed it blends) — PrepRec claims +11.8 % Recall@10 and +22 % NDCG@10.

A cell is the mean ± sample std over seeds; "(n)" follows when fewer than `report.tables.seeds`
seeds exist; `·` = not run or not applicable. The rows are those of each target's candidate
policy (`report.candidates`) on the test split (`report.where`), all users' slice; runs whose
configs differ apart from the seed (`experiment_hash`) are never pooled: such a cell is an error
that names what differs.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import OmegaConf

from recx.errors import ConfigError
from recx.stages import StageResult
from recx.stages.report_rows import (
    ABSENT,
    GATED,
    candidate_rows,
    candidates,
    collect,
    gated_as_setting,
    mean_std,
    select,
    split_experiments,
)
from recx.store import atomic_write_text
from recx.tables import markdown

LABELS = {"amazon_beauty_2014": "Beauty", "amazon_sports_2014": "Sports", "yelp_a": "Yelp-A",
          "ml_100k": "ml-100k", "ml_latest_small": "ml-latest-small",
          "amazon_gift_cards_2018": "Gift Cards", "amazon_magazine_2018": "Magazine",
          "amazon_beauty_2014+amazon_sports_2014+yelp_a": "all3"}
MODEL_LABELS = {"pop": "Pop", "sasrec": "SASRec", "preprec": "PrepRec", "statmlp": "statmlp",
                "unisrec": "UniSRec", "idp": "IDP"}
NONE = "·"
METRICS = ("Recall@10", "NDCG@10")
# one cell of a published table: runs equal in these fields are seeds of one experiment
CELL = ["setting", "model", "mode", "base", "source", "target", "protocol", "user_fraction",
        "tag", "paper_compat", "split"]


# ------------------------------------------------------------------------------ the views
def transfer_view(ctx) -> StageResult:
    frame, out, tc = _rows(ctx, "transfer")
    text = transfer_tables(frame, list(tc.models), int(tc.seeds), _targets(tc),
                           str(tc.layout))
    return _publish(out / "transfer.md", text, "transfer")


def text_view(ctx) -> StageResult:
    frame, out, tc = _rows(ctx, "text")
    return _publish(out / "text.md", text_tables(frame, int(tc.seeds), _targets(tc)), "text")


def claims_view(ctx) -> StageResult:
    frame, out, tc = _rows(ctx, "claims")
    tables = [claims(frame, m, str(tc.base), tc.tag) for m in tc.models]
    empty = [m for m, t in zip(tc.models, tables, strict=True) if t.empty]
    if len(empty) == len(tables):
        raise ConfigError(f"report.view=claims: no zero-shot rows of {list(tc.models)} next to "
                          f"in-domain {tc.base} rows on the same target",
                          hint="run the transfers and `recx train model=<base>` on the targets, "
                          "or set report.tables.models / report.tables.base")
    parts = [f"## {m}\n\n" + (markdown(t, list(t.columns)) if len(t) else f"{NONE}\n")
             for m, t in zip(tc.models, tables, strict=True)]
    both = pd.concat([t.assign(model=m) for m, t in zip(tc.models, tables, strict=True)
                      if len(t)], ignore_index=True)
    atomic_write_text(out / "claims.csv", both.to_csv(index=False))
    return _publish(out / "claims.md", "\n".join(parts), "claims")


VIEWS = {"transfer": transfer_view, "text": text_view, "claims": claims_view}


def _rows(ctx, view: str) -> tuple[pd.DataFrame, Path, object]:
    """The metrics rows the view reads (one per run and seed), its output folder and settings."""
    rc = ctx.cfg.report
    where = OmegaConf.to_container(rc.where, resolve=True) or {}
    frame = candidate_rows(select(collect(rc.inputs), where), str(rc.candidates))
    if "slice" in frame:
        frame = frame[frame["slice"].isna() | frame["slice"].eq("all")]
    if frame.empty:
        raise ConfigError(f"report.view={view}: no metrics rows match report.inputs="
                          f"{list(rc.inputs)} and report.where={where}",
                          hint="run the experiments first, or change report.inputs / "
                          "report.where")
    frame = frame.copy()
    _one_experiment_per_cell(frame, view)
    for m in METRICS:
        if m not in frame:
            frame[m] = np.nan
    frame["family"] = frame["protocol"].map(family)
    out = Path(ctx.cfg.paths.outputs) / "tables" / rc.name
    out.mkdir(parents=True, exist_ok=True)
    return frame, out, rc.tables


def _one_experiment_per_cell(frame: pd.DataFrame, view: str) -> None:
    """A published cell pools the seeds of one experiment only (equal `experiment_hash`)."""
    if not split_experiments(frame, CELL):
        return
    differ = sorted(set(frame.loc[frame["config"] != ABSENT, "config"]))
    raise ConfigError(f"report.view={view}: runs of one cell differ in more than the seed "
                      f"({'; '.join(differ)}); a published table never pools them",
                      hint="keep one experiment per cell: narrow report.where (any row field, "
                      "e.g. report.where.experiment_hash=<hash>) or report.inputs")


def _targets(tc) -> list[str] | None:
    return list(tc.targets) if tc.targets else None


def _publish(path: Path, text: str, view: str) -> StageResult:
    from recx.console import console

    atomic_write_text(path, text)
    console.print(text)
    console.print(f"report view {view} → {path}")
    return StageResult([], title=view, write=False)


# ------------------------------------------------------------------------------ cells
def label(name: str) -> str:
    return LABELS.get(name, name)


def variant_label(model: str, tag: str | None) -> str:
    name = MODEL_LABELS.get(model, model)
    return name if tag is None else f"{name} ({tag.replace('_', ' ')})"


def family(protocol: str) -> str:
    """full | sampled: the candidate set of a protocol string (the history mask aside). Another
    tie rule than recx's pessimistic one (a tie study's `eval.ties=random`) is a family of its
    own, which no table shows."""
    candidates = "full" if "/full/" in str(protocol) else "sampled"
    ties = re.search(r"/ties=([^/]+)", str(protocol))
    return candidates if ties is None or ties.group(1) == "pessimistic" else \
        f"{candidates}/ties={ties.group(1)}"


def by_seed(runs: pd.DataFrame, metric: str, what: str) -> pd.Series:
    """`metric` of one cell's runs indexed by seed; two runs of one seed are an error (a cell
    must not average over protocol variants silently)."""
    values = runs.set_index("seed")[metric]
    twice = sorted(set(values.index[values.index.duplicated()]))
    if twice:
        raise ConfigError(f"{what}: more than one run of seed(s) {twice} "
                          f"(protocols {sorted(set(runs.protocol))}); filter the report "
                          f"(report.where) to one protocol per model",
                          hint="e.g. report.where.protocol=<one of them>")
    return values


def seed_cell(values: pd.Series, seeds: int, count: bool = True) -> str:
    """'mean ± std' over the seeds' values, '(n)' when fewer than `seeds`; `·` when none."""
    values = values.dropna()
    if values.empty:
        return NONE
    text = mean_std(values.mean(), values.std())
    return text + (f" ({len(values)})" if count and len(values) < seeds else "")


def pct(new: float, old: float) -> str:
    return f"{100 * (new / old - 1):+.1f} %" if old else "n/a"


def untagged(frame: pd.DataFrame, blend_tag: str | None = None) -> pd.DataFrame:
    """The untagged rows (tagged ones are variants: an ablation, `interpolate.select=gated`, …),
    except that `blend_tag` picks the interpolation rows of that variant instead."""
    if "tag" not in frame:
        return frame
    plain = frame.tag.isna() | frame.tag.eq(ABSENT)
    blend = frame.setting == "interpolate"
    want = plain if blend_tag is None else frame.tag.eq(blend_tag)
    return frame[plain & ~blend | blend & want]


def tagged(frame: pd.DataFrame, tag: str | None) -> pd.Series:
    if "tag" not in frame:
        return pd.Series(tag is None, index=frame.index)
    absent = frame.tag.isna() | frame.tag.eq(ABSENT)
    return absent if tag is None else frame.tag.eq(tag)


def markdown_rows(head: list[str], rows: list[list[str]]) -> str:
    align = ["---"] + ["---:"] * (len(head) - 1)
    if head[1] == "source":
        align[1] = "---"
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------ transfer
TRANSFER_VIEWS = [
    ("Zero-shot, NDCG@10, full ranking", "zero_shot", "NDCG@10", "full"),
    ("Zero-shot, Recall@10 against 100 sampled negatives", "zero_shot", "Recall@10", "sampled"),
    ("Zero-shot gated with Pop (the transferred model blended with Pop counted on the target, "
     "its weight kept only where the validation gain is significant), NDCG@10, full ranking; "
     "the change of Pop", GATED, "NDCG@10", "full"),
    ("The same, Recall@10 against 100 sampled negatives", GATED, "Recall@10", "sampled"),
    ("Interpolated with SASRec (α chosen on validation), NDCG@10, full ranking; the change of "
     "SASRec on the same seeds", "interpolate", "NDCG@10", "full"),
    ("The same, Recall@10 against 100 sampled negatives", "interpolate", "Recall@10", "sampled")]


def transfer_tables(frame: pd.DataFrame, models: list[str], seeds: int = 3,
                    targets: list[str] | None = None, layout: str = "wide") -> str:
    """`models`: names, or `name:tag` for a tagged variant (an ablation) as columns of its own.
    `layout`: wide = one row per target, a column per model × source; long = one row per target
    × source, a column per model (models side by side), each zero-shot cell with its change of Pop
    on the same seeds."""
    if layout not in ("wide", "long"):
        raise ConfigError(f"report.tables.layout={layout!r}", hint="use wide or long")
    specs = [(m.split(":", 1)[0], m.split(":", 1)[1] if ":" in m else None) for m in models]
    frame = gated_as_setting(frame)
    wanted = {t for _, t in specs if t}
    variants = frame[frame.tag.isin(wanted)] if wanted and "tag" in frame else frame.iloc[:0]
    frame = pd.concat([untagged(frame), variants])
    frame = frame[frame.user_fraction.fillna(1.0) == 1.0]
    targets = targets or list(dict.fromkeys(frame.target))
    of = {spec: frame[(frame.model == spec[0]) & tagged(frame, spec[1])] for spec in specs}
    sources = {spec: sorted(set(g[g.setting != "in_domain"].source), key=_source_order)
               for spec, g in of.items()}
    cols = [(spec, s) for spec in specs for s in sources[spec]]
    every_source = sorted({s for _, s in cols}, key=_source_order)
    out = []
    for title, setting, metric, fam in TRANSFER_VIEWS:
        ran = (frame.setting == setting) if setting != "zero_shot" else frame.setting.notna()
        if not (ran & (frame.family == fam)).any():
            continue  # nothing of this kind was ranked under this protocol
        head = (["target", "source", "Pop", "SASRec", *(variant_label(*spec) for spec in specs)]
                if layout == "long" else
                ["target", "Pop", "SASRec", *(f"{variant_label(*spec)} ← {label(s)}"
                                             for spec, s in cols)]) + ["candidates"]
        rows = []
        for t in targets:
            g = frame[(frame.target == t) & (frame.family == fam)]
            cands = candidates(g.protocol)
            ref = by_seed(g[(g.setting == "in_domain") & (g.model == "sasrec")], metric,
                          f"SASRec on {t}")
            pop = by_seed(g[(g.setting == "in_domain") & (g.model == "pop")], metric,
                          f"Pop on {t}")
            # an interpolation shows its change of the SASRec seeds it blends; in the long layout
            # a zero-shot model its change of Pop
            against = (ref if setting == "interpolate" else
                       pop if layout == "long" or setting == GATED else None)
            view = (setting, metric, fam)
            if layout == "long":
                for s in every_source:
                    texts = [_model_cell(of[spec], spec, t, s, view, against, seeds)
                             for spec in specs]
                    if any(x != NONE for x in texts):  # a source none of the models has
                        rows.append([label(t), label(s), seed_cell(pop, seeds),
                                     seed_cell(ref, seeds), *texts, cands])
            else:
                rows.append([label(t), seed_cell(pop, seeds), seed_cell(ref, seeds),
                             *(_model_cell(of[spec], spec, t, s, view, against, seeds)
                               for spec, s in cols), cands])
        protocols = sorted(set(frame[frame.family == fam].protocol))
        out.append(f"{title}:\n\n" + markdown_rows(head, rows)
                   + f"\nProtocols: {', '.join(f'`{p}`' for p in protocols) or NONE}.\n")
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
    text = seed_cell(values, seeds)
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


def _pair(g: pd.DataFrame, seeds: int) -> str:
    """NDCG@10 / Recall@10 of the same runs, the seed count once."""
    a = seed_cell(g["NDCG@10"], seeds, count=False)
    if a == NONE:
        return NONE
    n = g["NDCG@10"].notna().sum()
    return f"{a} / {seed_cell(g['Recall@10'], seeds, count=False)}" + (
        f" ({n})" if n < seeds else "")


def _pick(g: pd.DataFrame, model: str, setting: str, mode: str | None,
          tag: str | None) -> pd.DataFrame:
    sel = g[(g.model == model) & (g.setting == setting) & tagged(g, tag)]
    return sel if mode is None else sel[sel["mode"] == mode]


def text_tables(frame: pd.DataFrame, seeds: int = 3, targets: list[str] | None = None) -> str:
    frame = frame[frame.family == "full"]
    targets = targets or list(dict.fromkeys(frame.target))
    warm_head = ["target", "Pop", "SASRec", *(c[0] for c in TEXT_WARM)]
    warm = []
    for t in targets:
        g = frame[(frame.target == t) & (frame.user_fraction == 1.0)]
        warm.append([label(t), _pair(_pick(g, "pop", "in_domain", None, None), seeds),
                     _pair(_pick(g, "sasrec", "in_domain", None, None), seeds),
                     *(_pair(_pick(g, *c[1:]), seeds) for c in TEXT_WARM)])
    cold_head = ["target", "users", "SASRec", *(c[0] for c in TEXT_COLD)]
    cold, change = [], []
    for t in targets:
        g = frame[frame.target == t]
        for frac in sorted(set(g.user_fraction)):
            f = g[g.user_fraction == frac]
            ref = _pick(f, "sasrec", "in_domain", None, None)
            cold.append([label(t), f"{frac:g}", _pair(ref, seeds),
                         *(_pair(_pick(f, *c[1:]), seeds) for c in TEXT_COLD)])
            change.append([label(t), f"{frac:g}",
                           *(_change(_pick(f, *c[1:]), ref) for c in TEXT_COLD)])
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


# ------------------------------------------------------------------------------ claims
def claims(frame: pd.DataFrame, model: str, base: str = "sasrec",
           tag: str | None = None) -> pd.DataFrame:
    """One row per (target, protocol, source): zero-shot and interpolated scores as ratios.

    Tagged rows are variants (an ablation, `interpolate.select=gated`, …): only untagged rows
    count, except that `tag` picks the interpolation rows of that variant instead."""
    if "seed" not in frame:
        raise ConfigError("the rows have no seed field", hint="report runs of recx stages")
    frame = untagged(frame, tag)
    if "user_fraction" in frame:  # rows of runs that never set it have no such field
        frame = frame[frame.user_fraction.fillna(1.0) == 1.0]
    # Pop masks the history (its own protocol string); pair it with the target's protocol family
    frame = frame.assign(family=frame.protocol.str.replace(r"/mask=[^/]+", "", regex=True))
    rows = []
    for (target, fam), g in frame.groupby(["target", "family"]):
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
